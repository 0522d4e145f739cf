"""``analyze`` of several pairs on Ray: one pair per task, one report, the local run's.

Each task runs ``analyze_models`` on every model with ``pairs=[its pair]``: it opens every
model's index (so the tensors compared are those all the models hold, as in the local run)
and reads the tensors of its two models only. The driver puts the pairs back in the local
run's order into the first task's report (its settings and versions are the run's).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mergekit_weightlevel.analyze import AnalysisReport, analyze_models, display_names
from mergekit_weightlevel.analyze.core import planned_pairs
from mergekit_weightlevel.analyze.reading import is_local_folder
from mergekit_weightlevel.distributed.settings import RaySettings
from mergekit_weightlevel.distributed.units import UnitOutcome, UnitsFailed, run_on_ray
from mergekit_weightlevel.errors import WeightLevelError


@dataclass(frozen=True)
class PairTask:
    """One task's request: ``analyze_models(models, pairs=[pair], **options)``."""

    models: tuple[str, ...]
    pair: tuple[int, int]
    options: dict[str, Any]


def analyze_pair(task: PairTask) -> AnalysisReport:
    """A task's body: the report of its one pair (``quiet``: no progress bar on the worker)."""
    return analyze_models(list(task.models), pairs=[task.pair], quiet=True, **task.options)


def analyze_on_ray(
    models: Sequence[str | Path],
    *,
    settings: RaySettings | None = None,
    all_pairs: bool = False,
    on_done: Callable[[UnitOutcome], None] | None = None,
    **options: Any,
) -> AnalysisReport:
    """``analyze_models(models, all_pairs=…, **options)``, one pair per Ray task.

    ``options`` are ``analyze_models``' (``metrics``, ``include``, ``device``, ``names``, …;
    ``quiet`` is implied). The report equals the local run's (its ``settings["created"]``
    is when the first pair's task started). The models must be at the same paths on every
    node (checked first). A pair that fails does not stop the others; then ``UnitsFailed``
    names each failed pair and why.
    """
    labels = tuple(str(model) for model in models)
    pairs = planned_pairs(len(labels), all_pairs)
    if not pairs:
        raise UnitsFailed("analyze needs at least two models: the reference A and a model B")
    display_names(list(labels), options.get("names"))  # a wrong count fails before Ray starts
    options = {key: value for key, value in options.items() if key != "quiet"}
    tasks = [PairTask(labels, pair, {**options, "all_pairs": all_pairs}) for pair in pairs]
    names = [f"{labels[i]} vs {labels[j]}" for i, j in pairs]
    local = [label for label in labels if is_local_folder(label)]
    outcomes = run_on_ray(
        analyze_pair, tasks, settings or RaySettings(), reads=local, labels=names, on_done=on_done
    )
    failed = [outcome for outcome in outcomes if not outcome.ok]
    if failed:
        first = failed[0].exception
        if len(failed) == len(outcomes) and len({outcome.error for outcome in failed}) == 1:
            # The same for every pair: the input (an option, a model), as the local run says it.
            raise first if isinstance(first, WeightLevelError) else UnitsFailed(failed[0].error)
        raise UnitsFailed(
            f"analyze on Ray: {len(failed)} of {len(outcomes)} pairs failed: "
            + "; ".join(f"{outcome.label}: {outcome.error}" for outcome in failed)
        )
    reports = [outcome.result for outcome in outcomes]
    return replace(reports[0], pairs=[report.pairs[0] for report in reports])

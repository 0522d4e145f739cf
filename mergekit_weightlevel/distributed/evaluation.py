"""Evaluation on Ray: folders evaluated in tasks, into a cache every node and the driver share.

An evaluation's numbers travel through the evaluation cache (``evaluation.cache``: keyed by
the folder's content and the settings), not through Ray: a task evaluates its folders into
the cache, and the driver then builds the table, the choice and the report from the cache
as a local run does, reading instead of evaluating. On a cluster the cache must therefore be
shared storage: by default it is ``.mergekit-weightlevel-cache/evaluations`` beside the
outputs (which must be shared anyway), or ``$MERGEKIT_WEIGHTLEVEL_CACHE`` where set.

``sweep_on_ray_with_evaluation`` is ``sweep … --eval --ray``; ``evaluate_on_ray`` is
``evaluate --ray``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from mergekit.options import MergeOptions

from mergekit_weightlevel.distributed.settings import RaySettings
from mergekit_weightlevel.distributed.units import UnitOutcome, run_on_ray
from mergekit_weightlevel.evaluation.evaluate import EvalSettings, Evaluation, Evaluator
from mergekit_weightlevel.evaluation.sweep import PreparedSweepEvaluation, SweepEvaluation
from mergekit_weightlevel.running.sweep import (
    SweepRequest,
    SweptOutput,
    axis_ends,
    evaluate_swept,
)

CACHE_ENV = "MERGEKIT_WEIGHTLEVEL_CACHE"


def shared_cache_dir(beside: Path) -> Path:
    """The evaluation cache of a run on Ray: ``$MERGEKIT_WEIGHTLEVEL_CACHE``, else a folder
    beside ``beside`` (a folder every node sees)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(beside).resolve() / ".mergekit-weightlevel-cache"


def _quiet(_line: str) -> None:
    pass


@dataclass(frozen=True)
class EvaluateInTask:
    """Evaluates folders into the shared cache, in a Ray task; returns each one's status.

    Called with a sweep group's ``SweptOutput``s (``sweep_on_ray``'s ``evaluate`` hook: the
    task that merged them evaluates them, on its GPU), or with one folder (a unit of
    ``run_on_ray``, for ``evaluate`` and a sweep's reference models).
    """

    settings: EvalSettings
    cache_dir: Path

    def __call__(self, work: Path | Sequence[SweptOutput]) -> str | list[str | None]:
        # Only the cache is filled here: the driver then reads it, as a local run would,
        # and writes the records of the folders that get one (never a reference's).
        evaluator = Evaluator(self.settings, cache_dir=self.cache_dir, log=_quiet)
        if isinstance(work, (str, Path)):
            return evaluator.evaluate_or_fail(Path(work), Path(work).name, record=False).status
        return [
            None
            if output.error
            else evaluator.evaluate_or_fail(output.folder, "", record=False).status
            for output in work
        ]


def sweep_on_ray_with_evaluation(
    request: SweepRequest,
    options: MergeOptions | None,
    prepared: PreparedSweepEvaluation | None,
    out_prefix: str | Path,
    *,
    settings: RaySettings,
    values_per_task: int | None = None,
    reuse: bool = True,
    on_done: Callable[[UnitOutcome], None] | None = None,
) -> tuple[list[SweptOutput], SweepEvaluation | None]:
    """``sweep … [--eval] --ray``: each group of values merged and its outputs evaluated in one
    task, the axis' ends evaluated one per task, then the report built from the shared cache
    exactly as a local run builds it (``running.sweep.evaluate_swept``).

    ``prepared`` (``evaluation.sweep.prepare_sweep_evaluation``, None: no evaluation) must
    use the shared cache (``shared_cache_dir``); its checks ran before anything else.
    """
    from mergekit_weightlevel.distributed.sweep import sweep_on_ray

    evaluate = None
    if prepared is not None:
        evaluate = EvaluateInTask(prepared.evaluator.settings, prepared.evaluator.cache.root)
    swept = sweep_on_ray(
        request,
        options,
        settings=settings,
        values_per_task=values_per_task,
        evaluate=evaluate,
        on_done=on_done,
        reuse=reuse,
        writes_also=[evaluate.cache_dir] if evaluate is not None else [],
    )
    outputs = [result.output for result in swept]
    if prepared is None or all(output.error for output in outputs):
        return outputs, None  # nothing written: each value's line says why
    ends = list(axis_ends(request).values())
    if ends:
        run_on_ray(evaluate, ends, settings, write_in=evaluate.cache_dir,
                   reads=[str(e) for e in ends], on_done=on_done,
                   labels=[f"evaluate {end.name}" for end in ends])  # fmt: skip
    return outputs, evaluate_swept(request, outputs, prepared, out_prefix)


def evaluate_on_ray(
    folders: Sequence[Path],
    tasks: Sequence[str],
    settings: RaySettings,
    *,
    on_done: Callable[[UnitOutcome], None] | None = None,
    log: Callable[[str], None] = print,
    **evaluate_folders_options: object,
) -> Evaluation:
    """``evaluate --ray``: one folder per task into the shared cache, then the table and JSON
    from the cache as ``evaluate_folders`` builds them. ``device`` defaults to cpu here
    (give ``device="cuda"`` on a GPU cluster): the driver and the tasks must agree on it."""
    from mergekit_weightlevel.evaluation.evaluate import evaluate_folders, make_settings

    folders = [Path(f).resolve() for f in folders]
    options = dict(evaluate_folders_options)
    options["device"] = options.get("device") or "cpu"
    options.setdefault("cache_dir", shared_cache_dir(folders[0].parent))
    json_path = options.pop("json_path", None)
    cache_dir = Path(options.pop("cache_dir"))
    run_settings = make_settings(tasks, **options)
    Evaluator(run_settings, cache_dir=cache_dir, log=log).prepare()  # tasks checked first
    cache_dir.mkdir(parents=True, exist_ok=True)
    run_on_ray(EvaluateInTask(run_settings, cache_dir), folders, settings, write_in=cache_dir,
               reads=[str(f) for f in folders], on_done=on_done,
               labels=[f"evaluate {f.name}" for f in folders])  # fmt: skip
    return evaluate_folders(folders, tasks, json_path=json_path, cache_dir=cache_dir, log=log,
                            **options)  # fmt: skip

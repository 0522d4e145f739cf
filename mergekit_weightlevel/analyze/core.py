"""``analyze_models``: stream the models tensor by tensor and build an ``AnalysisReport``."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import torch
from tqdm.auto import tqdm

from mergekit_weightlevel.about import __version__
from mergekit_weightlevel.analyze.labels import DisplayNames, display_names
from mergekit_weightlevel.analyze.names import parse_layers
from mergekit_weightlevel.analyze.options import (
    DEFAULT_METRICS,
    OptionError,
    parse_metrics,
    parse_precision,
)
from mergekit_weightlevel.analyze.pair import PairReport
from mergekit_weightlevel.analyze.reading import (
    AnyLoaderOptions,
    ModelTensors,
    TensorFilter,
    close_models,
    common_names,
    open_models,
)
from mergekit_weightlevel.analyze.records import cheap_record, tensor_record
from mergekit_weightlevel.analyze.report import AnalysisReport
from mergekit_weightlevel.checks.device import check_device
from mergekit_weightlevel.errors import WeightLevelInputError

#: What to do when ``--device`` names a device that cannot be used here.
DEVICE_INSTEAD = "use --device cpu, or --device auto (a GPU only where torch finds one)"


def resolve_device(device: str | None) -> str:
    """``cpu``, ``cuda`` (or ``cuda:N``) or ``auto`` (CUDA when available) → a torch device string."""
    device = (device or "cpu").lower()
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    check_device(device, asked_by=f"analyze: --device {device}", instead=DEVICE_INSTEAD)
    return device


def cuda_hint(device: str | None) -> str | None:
    """One line for stderr when a CUDA device is idle because ``--device`` was left out.

    ``device`` is what the user gave (None: nothing, which means the CPU).
    """
    if device is None and torch.cuda.is_available():
        return (
            "analyze: a CUDA device is available but the SVDs run on the CPU "
            "(the default); add --device cuda (or --device auto) to use it"
        )
    return None


#: How many differing shapes the "nothing comparable" error names.
SHAPE_EXAMPLES = 3


class NothingComparableError(WeightLevelInputError):
    """Two models share tensor names but no tensor of the same shape and floating type."""


def check_comparable(pair: PairReport) -> None:
    """Fail when ``pair`` compared no tensor: a σ or eRank of nothing is no result."""
    if pair.tensors:
        return
    examples = "; ".join(
        f"{item['name']}: {item['reason']}" for item in pair.skipped[:SHAPE_EXAMPLES]
    )
    more = len(pair.skipped) - SHAPE_EXAMPLES
    raise NothingComparableError(
        f"analyze: nothing to compare between {pair.a} and {pair.b}: all "
        f"{len(pair.skipped)} tensors they share differ in shape or type ({examples}"
        + (f"; and {more} more" if more > 0 else "")
        + "). They are not the same architecture and size (e.g. different hidden sizes); "
        "compare checkpoints of one model family (a Base and its Instruct), or keep only "
        "the comparable tensors with --include / --exclude."
    )


def _package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


def _pairs_to_compute(count: int, all_pairs: bool) -> list[tuple[int, int, bool]]:
    """(i, j, full_metrics): the reference against each model; with ``all_pairs`` the rest too.

    Pairs without the reference get the cheap metrics only (σ, Frobenius gap, cosine): that
    is what the σ matrix needs, and it keeps ``--all-pairs`` read-bound.
    """
    pairs = [(0, j, True) for j in range(1, count)]
    if all_pairs:
        pairs += [(i, j, False) for i in range(1, count) for j in range(i + 1, count)]
    return pairs


def planned_pairs(count: int, all_pairs: bool = False) -> list[tuple[int, int]]:
    """The pairs ``analyze_models`` compares among ``count`` models, in the report's order.

    (0, j) for each other model; with ``all_pairs`` then (i, j), 0 < i < j. Indices into
    ``models``; pass a subset as ``analyze_models(pairs=…)`` to compute only those.
    """
    return [(i, j) for i, j, _full in _pairs_to_compute(count, all_pairs)]


def _chosen_pairs(
    count: int, all_pairs: bool, only: Sequence[tuple[int, int]] | None
) -> list[tuple[int, int, bool]]:
    """The plan, restricted to ``only`` (None: all of it); a pair not in the plan is an error."""
    plan = _pairs_to_compute(count, all_pairs)
    if only is None:
        return plan
    wanted = {tuple(pair) for pair in only}
    unknown = sorted(wanted - {(i, j) for i, j, _full in plan})
    if unknown or not wanted:
        raise WeightLevelInputError(
            f"analyze: pairs={unknown} are not compared among {count} models "
            f"(all_pairs={all_pairs}); choose from planned_pairs({count}, {all_pairs}): "
            f"{[(i, j) for i, j, _full in plan]}"
        )
    return [pair for pair in plan if pair[:2] in wanted]


def _missing(models: list[ModelTensors], i: int, j: int, keep: TensorFilter) -> tuple[list, list]:
    held_i, held_j = set(models[i].names), set(models[j].names)
    only_i = [n for n in models[i].names if n not in held_j and keep.keeps(n)]
    only_j = [n for n in models[j].names if n not in held_i and keep.keeps(n)]
    return only_i, only_j


def analyze_models(
    models: Sequence[str | Path],
    *,
    metrics: str | Sequence[str] = DEFAULT_METRICS,
    all_pairs: bool = False,
    include: str | None = None,
    exclude: str | None = None,
    layers: str | Sequence[int] | None = None,
    device: str | None = "cpu",
    precision: str = "float32",
    options: AnyLoaderOptions = None,
    quiet: bool = False,
    names: DisplayNames = None,
    pairs: Sequence[tuple[int, int]] | None = None,
) -> AnalysisReport:
    """Compare ``models[1:]`` with the reference ``models[0]``, tensor by tensor.

    Models are local folders, Hugging Face ids or ``model+adapter`` strings, read through
    mergekit's loaders with ``options`` (mergekit's ``MergeOptions`` or ``LoaderOptions``:
    caches, ``trust_remote_code``, ``lazy_unpickle``; None: mergekit's defaults). At most one tensor per model is held at a time, read in the
    reference's shard order. ``metrics``: ``sigma`` (always), ``erank``, ``structure``.
    ``names``: how the reports name the models (one per model in order, or {model: name});
    default: as given, Hub ids for folders of the Hugging Face cache.

    ``pairs``: only these of ``planned_pairs(len(models), all_pairs)`` (e.g. one per Ray
    task): the report then holds just their ``PairReport``s, each equal to the full run's,
    and only their models' tensors are read (every model's index is still opened: the
    tensors compared are those all the models hold).

    Raises ``NothingComparableError`` when a pair shares no tensor of one shape.
    """
    labels = [str(model) for model in models]
    if len(labels) < 2:
        raise OptionError("analyze needs at least two models: the reference A and a model B")
    chosen = parse_metrics(metrics if isinstance(metrics, str) else list(metrics))
    dtype = parse_precision(precision)
    shown = display_names(labels, names)  # a wrong count fails before anything is read
    plan = _chosen_pairs(len(labels), all_pairs, pairs)
    compute_device = resolve_device(device)
    layer_set = parse_layers(layers) if isinstance(layers, str) else layers
    keep = TensorFilter(include, exclude, frozenset(layer_set) if layer_set is not None else None)
    opened = open_models(labels, options)
    try:
        names = common_names(opened, keep)
        if not names:
            raise WeightLevelInputError(
                f"analyze: no tensor is common to {', '.join(labels)} after the filters "
                f"(include={include!r}, exclude={exclude!r}, layers={layers!r}); loosen them"
            )
        reports = _run(opened, names, keep, chosen, dtype, compute_device, plan, quiet)
    finally:
        close_models(opened)
    for pair in reports:
        check_comparable(pair)
    return AnalysisReport(
        models=labels,
        names=shown,
        metrics=chosen,
        pairs=reports,
        settings={
            "all_pairs": all_pairs,
            "include": include,
            "exclude": exclude,
            "layers": sorted(layer_set) if layer_set is not None else None,
            "device": compute_device,
            "precision": precision,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        },
        versions={
            "mergekit_weightlevel": __version__,
            "mergekit": _package_version("mergekit"),
            "torch": torch.__version__,
        },
    )


def _run(
    opened: list[ModelTensors],
    names: list[str],
    keep: TensorFilter,
    metrics: tuple[str, ...],
    precision: torch.dtype,
    device: str,
    plan: list[tuple[int, int, bool]],
    quiet: bool,
) -> list[PairReport]:
    used = sorted({index for i, j, _full in plan for index in (i, j)})  # models the plan reads
    reports = []
    for i, j, full in plan:
        only_a, only_b = _missing(opened, i, j, keep)
        reports.append(
            PairReport(
                a=opened[i].label,
                b=opened[j].label,
                metrics=metrics if full else ("sigma",),
                only_in_a=only_a,
                only_in_b=only_b,
            )
        )
    progress = tqdm(
        names, desc="analyze", unit="tensor", file=sys.stderr, disable=quiet, dynamic_ncols=True
    )
    for name in progress:
        # One tensor per model is alive at a time; they are dropped before the next name.
        tensors = {index: opened[index].read(name) for index in used}
        for (i, j, full), report in zip(plan, reports):
            a, b = tensors[i], tensors[j]
            reason = _skip_reason(a, b)
            if reason:
                report.skipped.append({"name": name, "reason": reason})
            elif full:
                report.tensors.append(
                    tensor_record(name, a, b, metrics=metrics, precision=precision, device=device)
                )
            else:
                report.tensors.append(cheap_record(name, a.to(device), b.to(device)))
        del tensors, a, b
    progress.close()
    return reports


def _skip_reason(a: torch.Tensor, b: torch.Tensor) -> str | None:
    if not (a.is_floating_point() and b.is_floating_point()):
        return f"not a floating-point tensor ({a.dtype}, {b.dtype})"
    if a.shape != b.shape:
        return f"shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}"
    return None

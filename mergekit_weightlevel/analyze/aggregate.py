"""From per-tensor records to model-level numbers: σ both ways, per module type / layer, α outliers."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from mergekit_weightlevel.analyze.names import in_shadow_ft_mean, module_sort_key
from mergekit_weightlevel.analyze.records import RECORD_COLUMNS, TensorRecord
from mergekit_weightlevel.numerics.robust import ROBUST_Z_THRESHOLD, robust_z_scores
from mergekit_weightlevel.tensor_names import expert_index

#: Columns averaged in the per-module and per-layer tables (the rank itself is not).
AVERAGED_COLUMNS = tuple(column for column in RECORD_COLUMNS if column != "rank")

#: Fewer matrices of one module type than this: no within-type z-score (the MAD means nothing).
MIN_GROUP_FOR_Z = 4

#: A flagged α must also differ from the median it is compared with by more than this
#: fraction: when every α is within a few 1e-4 of 1 the MAD is tiny and z-scores flag noise.
MIN_RELATIVE_DEVIATION = 0.01


def mean(values: Iterable[float]) -> float | None:
    values = list(values)
    return math.fsum(values) / len(values) if values else None


def sigma_global(records: list[TensorRecord]) -> float | None:
    """Σ over tensors of Σ|A − B|, divided by Σ over tensors of (Σ|A| + Σ|B|)."""
    denominator = math.fsum(r.sigma_denominator for r in records)
    if not records:
        return None
    return math.fsum(r.sigma_numerator for r in records) / denominator if denominator > 0 else 0.0


def sparsity_global(records: list[TensorRecord]) -> float | None:
    """Σ over tensors of the unchanged elements (|A − B| < 1e-5) / Σ over tensors of their sizes."""
    elements = sum(math.prod(r.shape) for r in records)
    if not records:
        return None
    return sum(r.unchanged_elements for r in records) / elements if elements else 0.0


def sigma_mean(records: list[TensorRecord]) -> tuple[float | None, str, int]:
    """Shadow-FT's model σ: the unweighted mean of per-tensor σ over ``model.layers.<n>.`` tensors.

    Returns (value, scope, number of tensors). Checkpoints without ``model.layers.<n>.`` names
    (GPT-2's ``h.<n>``) use the tensors with a recognised layer index, then all tensors; the
    scope says which.
    """
    for scope, chosen in (
        ("model.layers.<n>", [r for r in records if in_shadow_ft_mean(r.name)]),
        ("layer-indexed", [r for r in records if r.layer is not None]),
        ("all", records),
    ):
        if chosen:
            return mean(r.sigma for r in chosen), scope, len(chosen)
    return None, "none", 0


def group_means(records: list[TensorRecord]) -> dict[str, float | int | None]:
    """Mean of every averaged column over the records that have it, plus the tensor count."""
    flats = [r.flat() for r in records]
    means: dict[str, float | int | None] = {"tensors": len(records)}
    for column in AVERAGED_COLUMNS:
        value = mean(f[column] for f in flats if f[column] is not None)
        if value is not None:
            means[column] = value
    return means


def by_module(records: list[TensorRecord]) -> dict[str, dict[str, float | int | None]]:
    groups: dict[str, list[TensorRecord]] = defaultdict(list)
    for record in records:
        groups[record.module_type].append(record)
    return {kind: group_means(groups[kind]) for kind in sorted(groups, key=module_sort_key)}


def by_expert(records: list[TensorRecord]) -> dict[str, dict[str, float | int | None]]:
    """Per routed expert, ``"<layer>.<expert>"`` → means over its gate, up and down matrices."""
    groups: dict[tuple[int, int], list[TensorRecord]] = defaultdict(list)
    for record in records:
        expert = expert_index(record.name)
        if expert is not None and record.layer is not None:
            groups[(record.layer, expert)].append(record)
    return {
        f"{layer}.{expert}": group_means(groups[(layer, expert)])
        for layer, expert in sorted(groups)
    }


def by_layer(records: list[TensorRecord]) -> dict[str, dict[str, float | int | None]]:
    groups: dict[int, list[TensorRecord]] = defaultdict(list)
    for record in records:
        if record.layer is not None:
            groups[record.layer].append(record)
    return {str(layer): group_means(groups[layer]) for layer in sorted(groups)}


def stands_out(values: list[float]) -> tuple[list[float], list[bool], float]:
    """(robust z of each value, whether it stands out, the median): the one outlier rule.

    A value stands out when |z| > 3.5 (Iglewicz & Hoaglin's modified z-score) and it differs
    from the median by more than 1 %, so that noise around a common value (a tiny MAD) is
    not reported. Used for α per matrix and for the Reading's layers and module types.
    """
    median = median_of(values)
    scores = robust_z_scores(values)
    flags = [
        abs(score) > ROBUST_Z_THRESHOLD
        and abs(value - median) > MIN_RELATIVE_DEVIATION * abs(median)
        for score, value in zip(scores, values)
    ]
    return scores, flags, median


def _robust_flags(records: list[TensorRecord]) -> tuple[dict[str, float], dict[str, bool]]:
    """Robust z of each α in ``records`` and whether it stands out (``stands_out``)."""
    scores, flags, _ = stands_out([r.structure["alpha"] for r in records])
    names = [r.name for r in records]
    return dict(zip(names, scores)), dict(zip(names, flags))


def median_of(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def alpha_outliers(records: list[TensorRecord]) -> list[dict[str, Any]]:
    """Matrices whose singular-value scale α stands out, with both robust z-scores.

    Rule (documented in docs/analyze.md): modified z-score 0.6745 (α − median) / MAD
    (Iglewicz & Hoaglin), flagged when |z| > 3.5, computed twice: against the whole model's
    matrices (``z_model``: a module type that scales differently as a whole, like W_o in
    reasoning models) and within the matrix's module type (``z_module_type``: one layer
    unlike its siblings; needs at least 4 matrices of that type). A flag also needs
    |α / median − 1| > 1 % against the same median, so that noise around a common α is
    not reported.
    """
    with_alpha = [r for r in records if r.structure is not None]
    if not with_alpha:
        return []
    z_model, stands_out_model = _robust_flags(with_alpha)
    z_type: dict[str, float] = {}
    stands_out_type: dict[str, bool] = {}
    groups: dict[str, list[TensorRecord]] = defaultdict(list)
    for record in with_alpha:
        groups[record.module_type].append(record)
    for group in groups.values():
        if len(group) >= MIN_GROUP_FOR_Z:
            scores, flags = _robust_flags(group)
            z_type.update(scores)
            stands_out_type.update(flags)
    flagged = []
    for record in with_alpha:
        reasons = []
        if stands_out_model[record.name]:
            reasons.append("model")
        if stands_out_type.get(record.name, False):
            reasons.append("module_type")
        if reasons:
            flagged.append(
                {
                    "name": record.name,
                    "module_type": record.module_type,
                    "layer": record.layer,
                    "alpha": record.structure["alpha"],
                    "z_model": z_model[record.name],
                    "z_module_type": z_type.get(record.name),
                    "flagged_against": reasons,
                }
            )
    return sorted(flagged, key=lambda item: (module_sort_key(item["module_type"]), item["name"]))


def pair_summary(records: list[TensorRecord]) -> dict[str, Any]:
    """The ``summary`` object of one pair in the JSON report."""
    value, scope, count = sigma_mean(records)
    overall = group_means(records)
    summary: dict[str, Any] = {
        "sigma_mean": value,
        "sigma_mean_scope": scope,
        "sigma_mean_tensors": count,
        "sigma_global": sigma_global(records),
        "sparsity_global": sparsity_global(records),
        "tensors": len(records),
        "matrices": sum(1 for r in records if r.rank is not None),
        "means": {k: v for k, v in overall.items() if k != "tensors"},
        "by_module": by_module(records),
        "by_layer": by_layer(records),
        "alpha_outliers": alpha_outliers(records),
    }
    experts = by_expert(records)
    if experts:  # mixture-of-experts models only
        summary["by_expert"] = experts
    return summary

"""What each method would do to a pair, before merging, from the numbers ``analyze`` has.

Nothing here reads a weight: the previews use the per-tensor records only (the Frobenius
norms of the σ pass and Timber's split of ΔW's spectrum, computed from the singular values
the ``erank`` level already has). A is taken as the Base and B as the post-trained model
(Timber's W_B and W_I); the ParamΔ preview reads A and B as its old and new base.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from statistics import median
from typing import Any

from mergekit_weightlevel.analyze.names import module_sort_key
from mergekit_weightlevel.analyze.records import TensorRecord
from mergekit_weightlevel.analyze.references import TIMBER_PREVIEW_LAMBDAS
from mergekit_weightlevel.tensor_names import DEFAULT_PROJECTIONS, is_vocabulary_tensor


@dataclass(frozen=True)
class TimberPreview:
    """How far ``timber_spectral`` would move B (W_I), per matrix and over the compared tensors.

    Timber keeps the k = ⌈eRank(ΔW)⌉ leading directions of each matrix's delta and scales the
    rest (the tail) by λ, so its output is W_λ = B − (1 − λ)·tail, and
    ‖W_λ − B‖_F = (1 − λ)·‖tail‖_F for every λ in [0, 1]; 1-D tensors keep B (``scope: all``,
    the default).
    """

    lambdas: tuple[float, ...]
    #: ‖W_λ − B‖_F / ‖B‖_F over every compared tensor (1-D ones contribute 0).
    distances: tuple[float, ...]
    tensors: int
    matrices: int
    #: ‖tail‖_F / ‖ΔW‖_F over all matrices (their tails and deltas as one vector).
    tail_share: float
    median_k_ratio: float  # median over matrices of k / rank
    by_module: dict[str, dict[str, float | int]]
    matrices_detail: list[dict[str, Any]] = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "lambdas": list(self.lambdas),
            "relative_distance": list(self.distances),
            "tensors": self.tensors,
            "matrices": self.matrices,
            "tail_share": self.tail_share,
            "median_k_ratio": self.median_k_ratio,
            "by_module": self.by_module,
            "per_matrix": self.matrices_detail,
        }


def _tail_norm(record: TensorRecord) -> float:
    """‖tail‖_F of the matrix's delta: its share of ‖ΔW‖_F times ‖ΔW‖_F."""
    return record.timber_split["tail_share"] * record.norms["delta"]


def timber_preview(
    tensors: list[TensorRecord], lambdas: tuple[float, ...] = TIMBER_PREVIEW_LAMBDAS
) -> TimberPreview | None:
    """The preview over ``tensors``, or None where no matrix has Timber's split (no ``erank``)."""
    split = [r for r in tensors if r.timber_split is not None and r.norms is not None]
    if not split:
        return None
    b_total = math.sqrt(math.fsum(r.norms["b"] ** 2 for r in tensors if r.norms is not None))
    tail_total = math.sqrt(math.fsum(_tail_norm(r) ** 2 for r in split))
    delta_total = math.sqrt(math.fsum(r.norms["delta"] ** 2 for r in split))
    distances = tuple((1.0 - lam) * tail_total / b_total if b_total > 0 else 0.0 for lam in lambdas)
    detail = [
        {
            "name": r.name,
            "module_type": r.module_type,
            "layer": r.layer,
            "k": r.timber_split["k"],
            "rank": r.rank,
            "tail_share": r.timber_split["tail_share"],
            "relative_distance": [
                (1.0 - lam) * _tail_norm(r) / r.norms["b"] if r.norms["b"] > 0 else 0.0
                for lam in lambdas
            ],
        }
        for r in split
    ]
    return TimberPreview(
        lambdas=tuple(lambdas),
        distances=distances,
        tensors=len(tensors),
        matrices=len(split),
        tail_share=tail_total / delta_total if delta_total > 0 else 0.0,
        median_k_ratio=median(r.timber_split["k"] / r.rank for r in split),
        by_module=_timber_by_module(split),
        matrices_detail=detail,
    )


def _timber_by_module(split: list[TensorRecord]) -> dict[str, dict[str, float | int]]:
    groups: dict[str, list[TensorRecord]] = defaultdict(list)
    for record in split:
        groups[record.module_type].append(record)
    result = {}
    for kind in sorted(groups, key=module_sort_key):
        records = groups[kind]
        delta = math.fsum(r.norms["delta"] ** 2 for r in records)
        tail = math.fsum(_tail_norm(r) ** 2 for r in records)
        result[kind] = {
            "matrices": len(records),
            "median_k_ratio": median(r.timber_split["k"] / r.rank for r in records),
            "tail_share": math.sqrt(tail / delta) if delta > 0 else 0.0,
        }
    return result


def shadow_ft_preview(
    tensors: list[TensorRecord], include: str = DEFAULT_PROJECTIONS
) -> dict[str, Any] | None:
    """Which share of this pair's delta Shadow-FT's default ``include`` would graft.

    Shadow-FT adds the delta only to tensors whose name matches ``include`` (searched,
    case-insensitive, as ``shadow_graft`` and the official ``apply_diff.py`` do); the
    others keep the target's weights. Shares of ‖ΔW‖²_F and of Σ|ΔW| (σ's numerator).
    """
    if not tensors:
        return None
    pattern = re.compile(include, flags=re.IGNORECASE)
    selected = [r for r in tensors if pattern.search(r.name)]
    energy = math.fsum(r.norms["delta"] ** 2 for r in tensors if r.norms is not None)
    absolute = math.fsum(r.sigma_numerator for r in tensors)
    selected_energy = math.fsum(r.norms["delta"] ** 2 for r in selected if r.norms is not None)
    selected_absolute = math.fsum(r.sigma_numerator for r in selected)
    left_out = sorted({r.module_type for r in tensors if not pattern.search(r.name)},
                      key=module_sort_key)  # fmt: skip
    return {
        "include": include,
        "tensors": len(tensors),
        "selected_tensors": len(selected),
        "energy_share": selected_energy / energy if energy > 0 else 0.0,
        "abs_share": selected_absolute / absolute if absolute > 0 else 0.0,
        "left_out_module_types": left_out,
    }


def param_delta_preview(
    summary: dict[str, Any],
    skipped: list[dict[str, str]],
    only_in_a: list[str],
    only_in_b: list[str],
) -> dict[str, Any]:
    """A and B read as ParamΔ's old and new base: their σ and the tensors that cannot take a
    delta tensor by tensor (shapes that differ; vocabulary tensors are aligned by mergekit
    when the config has a ``tokenizer`` section)."""
    differ = [
        {
            "name": item["name"],
            "reason": item["reason"],
            "vocabulary": is_vocabulary_tensor(item["name"]),
        }
        for item in skipped
        if item["reason"].startswith("shapes differ")
    ]
    return {
        "sigma_mean": summary["sigma_mean"],
        "sigma_global": summary["sigma_global"],
        "shape_differs": differ,
        "only_in_a": len(only_in_a),
        "only_in_b": len(only_in_b),
    }

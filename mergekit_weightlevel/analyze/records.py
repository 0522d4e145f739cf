"""Per-tensor metrics of one pair (A = reference, B = the other model)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from mergekit_weightlevel.analyze.names import layer_index, module_type
from mergekit_weightlevel.analyze.options import DEFAULT_METRICS
from mergekit_weightlevel.numerics.effective_rank import (
    as_matrix,
    effective_rank,
    erank_split,
    matrix_effective_rank,
    matrix_singular_values,
)
from mergekit_weightlevel.numerics.pair_statistics import pair_statistics
from mergekit_weightlevel.numerics.spectral import thin_svd
from mergekit_weightlevel.numerics.structure import SpectralStructure, spectral_structure
from mergekit_weightlevel.numerics.structure_gram import (
    STRUCTURE_GRAM_TOLERANCE,
    gram_spectral_structure,
)

#: Flat column names of a record, in CSV order (metrics that do not apply stay empty).
RECORD_COLUMNS = (
    "sigma",
    "rel_frobenius",
    "cosine",
    "sparsity",
    "rank",
    "erank_a",
    "erank_b",
    "erank_delta",
    "erank_ratio_a",
    "erank_ratio_b",
    "erank_ratio_delta",
    "alpha",
    "cv",
    "median_ratio",
    "p5_ratio",
    "p95_ratio",
    "consistency_gap",
    "alignment",
    "reconstruction_error",
)


@dataclass
class TensorRecord:
    """The metrics of one tensor in one pair; spectral fields are None where they do not apply."""

    name: str
    shape: list[int]
    module_type: str
    layer: int | None
    sigma: float
    sigma_numerator: float  # Σ|A − B|, kept for the global ratio of sums
    sigma_denominator: float  # Σ|A| + Σ|B|
    rel_frobenius: float
    cosine: float
    sparsity: float = 0.0  # share of elements with |A − B| < 1e-5 (Timber's sparsity ratio)
    unchanged_elements: int = 0  # their count, kept for the model-level ratio
    #: Frobenius norms {"a": ‖A‖, "b": ‖B‖, "delta": ‖B − A‖}, free from the σ pass (the
    #: Reading weighs tensors by them).
    norms: dict[str, float] | None = None
    rank: int | None = None
    erank: dict[str, float] | None = None  # {"a", "b", "delta"}
    erank_ratio: dict[str, float] | None = None  # erank / rank, same keys
    #: Timber's split of ΔW: {"k": ⌈eRank(ΔW)⌉, "tail_share": ‖ΔW beyond k‖_F / ‖ΔW‖_F}.
    timber_split: dict[str, float] | None = None
    structure: dict[str, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "name": self.name,
            "shape": list(self.shape),
            "module_type": self.module_type,
            "layer": self.layer,
            "sigma": self.sigma,
            "sigma_numerator": self.sigma_numerator,
            "sigma_denominator": self.sigma_denominator,
            "rel_frobenius": self.rel_frobenius,
            "cosine": self.cosine,
            "sparsity": self.sparsity,
            "unchanged_elements": self.unchanged_elements,
        }
        for key in ("norms", "rank", "erank", "erank_ratio", "timber_split", "structure"):
            value = getattr(self, key)
            if value is not None:
                record[key] = value
        return record

    def flat(self) -> dict[str, float | int | None]:
        """Every ``RECORD_COLUMNS`` value (None where it does not apply), for tables and CSV."""
        values: dict[str, float | int | None] = dict.fromkeys(RECORD_COLUMNS)
        values.update(
            sigma=self.sigma,
            rel_frobenius=self.rel_frobenius,
            cosine=self.cosine,
            sparsity=self.sparsity,
            rank=self.rank,
        )
        for side in ("a", "b", "delta"):
            if self.erank is not None:
                values[f"erank_{side}"] = self.erank[side]
            if self.erank_ratio is not None:
                values[f"erank_ratio_{side}"] = self.erank_ratio[side]
        if self.structure is not None:
            values.update(self.structure)
        return values


def cheap_record(name: str, a: torch.Tensor, b: torch.Tensor) -> TensorRecord:
    """σ, relative Frobenius gap, cosine and sparsity: one read-bound pass, any shape."""
    stats = pair_statistics(a, b)
    return TensorRecord(
        name=name,
        shape=list(a.shape),
        module_type=module_type(name),
        layer=layer_index(name),
        sigma=stats.sigma,
        sigma_numerator=stats.abs_diff,
        sigma_denominator=stats.abs_a + stats.abs_b,
        rel_frobenius=stats.rel_frobenius,
        cosine=stats.cosine,
        sparsity=stats.sparsity,
        unchanged_elements=stats.unchanged,
        norms={
            "a": math.sqrt(stats.sq_a),
            "b": math.sqrt(stats.sq_b),
            "delta": math.sqrt(stats.sq_diff),
        },
    )


def matrix_structure(
    matrix_a: torch.Tensor,
    matrix_b: torch.Tensor,
    *,
    precision: torch.dtype = torch.float32,
    name: str = "matrix",
) -> tuple[SpectralStructure, torch.Tensor, torch.Tensor]:
    """The structure fields and A's and B's singular values of one pair of matrices.

    The float64 Gram route first (no singular vectors of the long side, no SVD), kept where
    its error estimate is within ``STRUCTURE_GRAM_TOLERANCE``; otherwise (ill-conditioned
    or rank-deficient matrices), or where an eigendecomposition fails, the thin SVDs of A
    and B in ``precision``.
    """
    try:
        gram = gram_spectral_structure(matrix_a, matrix_b)
    except (RuntimeError, torch.linalg.LinAlgError):  # non-convergence: the SVDs decide
        gram = None
    if gram is not None and gram.error_estimate <= STRUCTURE_GRAM_TOLERANCE:
        return gram.structure, gram.s_a, gram.s_b
    svd_a = thin_svd(matrix_a, precision=precision, name=f"{name} (model A)")
    svd_b = thin_svd(matrix_b, precision=precision, name=f"{name} (model B)")
    return spectral_structure(*svd_a, *svd_b), svd_a.S, svd_b.S


def tensor_record(
    name: str,
    a: torch.Tensor,
    b: torch.Tensor,
    *,
    metrics: tuple[str, ...] = DEFAULT_METRICS,
    precision: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> TensorRecord:
    """Every requested metric of one tensor. Spectral ones only for ≥2-D tensors (shape[0] × rest)."""
    a = a.to(device)
    b = b.to(device)
    record = cheap_record(name, a, b)
    wants_erank = "erank" in metrics
    wants_structure = "structure" in metrics
    if a.ndim < 2 or not (wants_erank or wants_structure):
        return record

    # bf16 / fp16 never reach an SVD: everything spectral runs in `precision` (float32 or 64).
    matrix_a = as_matrix(a).to(precision)
    matrix_b = as_matrix(b).to(precision)
    record.rank = min(matrix_a.shape)
    erank: dict[str, float] = {}
    if wants_structure:
        structure, s_a, s_b = matrix_structure(matrix_a, matrix_b, precision=precision, name=name)
        record.structure = structure.as_dict()
        erank = {"a": effective_rank(s_a), "b": effective_rank(s_b)}
    if wants_erank:
        # Singular values only: the float64 Gram route where its error is provably small
        # (see ``matrix_singular_values``), so no singular vectors are ever computed here.
        for side, matrix in (("a", matrix_a), ("b", matrix_b)):
            if side not in erank:
                label = {"a": "model A", "b": "model B"}[side]
                erank[side] = matrix_effective_rank(
                    matrix, precision=precision, name=f"{name} ({label})"
                )
        delta = matrix_singular_values(
            matrix_b - matrix_a, precision=precision, name=f"{name} (B − A)"
        )
        erank["delta"] = effective_rank(delta)
        k, tail_share = erank_split(delta)  # from the same spectrum: no second decomposition
        record.timber_split = {"k": k, "tail_share": tail_share}
        record.erank = {side: erank[side] for side in ("a", "b", "delta")}
        record.erank_ratio = {side: value / record.rank for side, value in record.erank.items()}
    return record

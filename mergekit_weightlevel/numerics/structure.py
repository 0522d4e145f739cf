"""Spectral structure of post-training (He & Cao, arXiv 2509.17866), from thin SVDs.

The paper describes post-training as W_post ≈ (U_A Q) · α Σ_A · (V_A Q)ᵀ: a near-uniform
scaling of the singular values and one orthogonal rotation Q shared by the left and the
right singular vectors. It publishes no code; the numbers below are this project's
definitions of "how well does that description hold", documented in docs/analyze.md.
``structure_gram`` computes the same fields without any SVD.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from mergekit_weightlevel.numerics.spectral import gram_matrix

#: Singular values of A below this fraction of the largest are left out of the ratios s_B / s_A.
STRUCTURE_RELATIVE_CUTOFF = 1e-6
#: The quantiles of the ratios reported: p5_ratio, median_ratio, p95_ratio.
RATIO_QUANTILES = (0.05, 0.5, 0.95)


def ratio_quantiles(ratios: torch.Tensor) -> torch.Tensor:
    """The ``RATIO_QUANTILES`` of a float64 vector of ratios."""
    levels = torch.tensor(RATIO_QUANTILES, dtype=torch.float64, device=ratios.device)
    return torch.quantile(ratios, levels)


@dataclass(frozen=True)
class SpectralStructure:
    """How far W_B is a scaled and consistently rotated copy of W_A (see ``spectral_structure``)."""

    alpha: float  # least-squares scale ⟨s_B, s_A⟩ / ⟨s_A, s_A⟩
    cv: float  # std / mean of the ratios r_i = s_B,i / s_A,i (0 = perfectly uniform scaling)
    median_ratio: float
    p5_ratio: float
    p95_ratio: float
    consistency_gap: float  # ‖Q_U − Q_V‖_F / ‖Q_U‖_F (0 = the same rotation on both sides)
    alignment: float  # mean |diag(Q_U)| (1 = the left singular vectors did not move)
    reconstruction_error: float  # ‖W_B − U_A Q (α Σ_A) (V_A Q)ᵀ‖_F / ‖W_B‖_F

    def as_dict(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


#: Above this eigenvalue ratio of MᵀM (singular values within a factor 10⁴ of the largest,
#: cond ≤ 10⁴ on those columns) a left vector of the polar factor is M y_i / s_i straight
#: from the eigendecomposition (rounding amplified like eps·(s_0 / s_i)² ≤ 1e-8) …
POLAR_EIGH_MIN_RATIO = 1e-8
#: … below it the few remaining columns are orthogonalised (Gram–Schmidt against the direct
#: ones, then a thin QR), and below this one (cond(M) > 10⁵) an SVD of M decides: the
#: orthogonalised columns' error grows like eps·cond(M)² (measured 5e-9 at 10⁵, 4e-7 at
#: 10⁶), an SVD's like eps·cond(M).
POLAR_QR_MIN_RATIO = 1e-10


def polar_orthogonal_factor(matrix: torch.Tensor, *, svd_beyond_qr: bool = True) -> torch.Tensor:
    """The orthogonal Q nearest to a square ``matrix`` in Frobenius norm: X Yᵀ from M = X S Yᵀ.

    From one float64 eigendecomposition MᵀM = Y S² Yᵀ (≈ 3× faster than an SVD of M at
    4096): X = M Y S⁻¹, column by column, where s_i is not small against s_0. Dividing by a
    small s_i would amplify rounding like eps·(s_0 / s_i)², so those columns (ordered by
    decreasing s, usually a handful: the planes where the two rotations averaged here
    disagree by almost π) come from M y_i orthogonalised against the others, as a
    Householder QR of M Y would give them (signs from R's diagonal), at the cost of a thin
    QR instead of a full one (≈ 2.8 s at 4096 on 2 cores). Beyond cond(M) = 10⁵ an SVD of M
    (≈ 17 s in float64 at 4096), unless ``svd_beyond_qr`` is False: the structure fields
    keep the eigendecomposition there too. Their M (the average of Q_U and Q_V) is nearly
    singular only in those few planes, where the factor is ill-determined for every route
    and moves the reconstruction error by no more than the SVD's choice does (at 1024²,
    cond(M) = 6e7: both within 1.1e-8 of the float64 SVD reference, the same digits).
    """
    matrix = matrix.to(torch.float64)
    if matrix.shape[0] != matrix.shape[1]:
        raise ValueError(
            f"polar_orthogonal_factor needs a square matrix, got {tuple(matrix.shape)}"
        )
    eigenvalues, vectors = torch.linalg.eigh(gram_matrix(matrix)[0], UPLO="U")
    eigenvalues, vectors = eigenvalues.flip(0), vectors.flip(1)  # decreasing singular values
    largest = float(eigenvalues[0]) if eigenvalues.numel() else 0.0
    smallest = float(eigenvalues[-1]) if eigenvalues.numel() else 0.0
    if not largest > 0 or (svd_beyond_qr and not smallest > POLAR_QR_MIN_RATIO * largest):
        x, _, yh = torch.linalg.svd(matrix, full_matrices=False)
        return x @ yh
    direct = int((eigenvalues > POLAR_EIGH_MIN_RATIO * largest).sum())
    images = matrix @ vectors  # column i: M y_i = s_i x_i
    left = images[:, :direct] / eigenvalues[:direct].sqrt()
    if direct < images.shape[1]:
        rest = images[:, direct:]
        for _ in range(2):  # classical Gram–Schmidt, twice: orthogonal to working precision
            rest = rest - left @ (left.T @ rest)
        q, triangle = torch.linalg.qr(rest)
        signs = torch.where(triangle.diagonal() < 0, -1.0, 1.0).to(q.dtype)
        left = torch.cat([left, q * signs], dim=1)
    return left @ vectors.T


def reconstruction_error(
    factors_a: tuple[torch.Tensor, torch.Tensor],
    factors_b: tuple[torch.Tensor, torch.Tensor],
    q_u: torch.Tensor,
    q_v: torch.Tensor,
    s_a: torch.Tensor,
    s_b: torch.Tensor,
    alpha: float,
    rotation: torch.Tensor,
) -> float:
    """‖W_B − U_A R (α Σ_A) (V_A R)ᵀ‖_F / ‖W_B‖_F without forming either m × n matrix.

    Ŵ = U_A R D Rᵀ V_Aᵀ (D = α Σ_A) lies in span(U_A) × span(V_A), so the squared error
    splits into the part of W_B inside that span, N − R D Rᵀ with N = U_Aᵀ W_B V_A =
    Q_U Σ_B Q_Vᵀ (k × k), and the part outside it. One side of a thin SVD is square, so
    the outside part is W_B's component off the other side's span, zero for square
    matrices. It is computed from the factors (``factors_*`` = (U, Vh), float64), not as
    ‖W_B‖² − ‖N‖²: that difference of squares would lose it to the float32 factors'
    rounding (5e-6 on a 1024 × 4096 pair) and to cancellation when it is small.
    """
    w_b_squared = float(s_b @ s_b)
    if w_b_squared <= 0:
        return 0.0
    inside = inside_span_error(q_u, q_v, s_a, s_b, alpha, rotation)
    (u_a, vh_a), (u_b, vh_b) = factors_a, factors_b
    if u_a.shape[0] > u_a.shape[1]:  # tall: W_B − U_A U_Aᵀ W_B = (U_B − U_A Q_U) Σ_B Vh_B
        outside = float(torch.linalg.matrix_norm((u_b - u_a @ q_u) * s_b) ** 2)
    elif vh_a.shape[1] > vh_a.shape[0]:  # wide: W_B (I − V_A V_Aᵀ) = U_B Σ_B (Vh_B − Q_Vᵀ Vh_A)
        outside = float(torch.linalg.matrix_norm(s_b[:, None] * (vh_b - q_v.T @ vh_a)) ** 2)
    else:
        outside = 0.0
    return math.sqrt((inside + outside) / w_b_squared)


def scaling_fields(
    s_a: torch.Tensor, s_b: torch.Tensor, cutoff: float = STRUCTURE_RELATIVE_CUTOFF
) -> dict[str, float]:
    """α, cv and the ratio quantiles: the singular values alone (float64, descending)."""
    s_a, s_b = s_a.to(torch.float64), s_b.to(torch.float64)
    kept = s_a > cutoff * s_a[0] if s_a.numel() else s_a.bool()
    s_a_kept, s_b_kept = s_a[kept], s_b[kept]
    ratios = s_b_kept / s_a_kept
    alpha = float((s_b_kept @ s_a_kept) / (s_a_kept @ s_a_kept)) if kept.any() else 0.0
    mean_ratio = float(ratios.mean()) if ratios.numel() else 0.0
    cv = float(ratios.std(correction=0)) / mean_ratio if mean_ratio > 0 else math.inf
    quantiles = ratio_quantiles(ratios).tolist() if ratios.numel() else [0.0, 0.0, 0.0]
    return {
        "alpha": alpha,
        "cv": cv,
        "median_ratio": quantiles[1],
        "p5_ratio": quantiles[0],
        "p95_ratio": quantiles[2],
    }


def rotation_fields(q_u: torch.Tensor, q_v: torch.Tensor) -> dict[str, float]:
    """The consistency gap and the alignment of the two k × k rotations Q_U and Q_V."""
    q_u_norm = float(torch.linalg.matrix_norm(q_u))
    gap = float(torch.linalg.matrix_norm(q_u - q_v)) / q_u_norm if q_u_norm > 0 else math.inf
    return {"consistency_gap": gap, "alignment": float(q_u.diagonal().abs().mean())}


def inside_span_error(
    q_u: torch.Tensor,
    q_v: torch.Tensor,
    s_a: torch.Tensor,
    s_b: torch.Tensor,
    alpha: float,
    rotation: torch.Tensor,
) -> float:
    """‖N − R (α Σ_A) Rᵀ‖²_F with N = U_Aᵀ W_B V_A = Q_U Σ_B Q_Vᵀ: the k × k part of the error."""
    n = (q_u * s_b) @ q_v.T
    return float(torch.linalg.matrix_norm(n - (rotation * (alpha * s_a)) @ rotation.T) ** 2)


def spectral_structure(
    u_a: torch.Tensor,
    s_a: torch.Tensor,
    vh_a: torch.Tensor,
    u_b: torch.Tensor,
    s_b: torch.Tensor,
    vh_b: torch.Tensor,
    *,
    cutoff: float = STRUCTURE_RELATIVE_CUTOFF,
) -> SpectralStructure:
    """Scale / rotation diagnostics of W_B against W_A from the thin SVDs of both.

    Invariant to the sign an SVD is free to give each singular pair (u_i, v_i) of A or of B:
    a flip negates the same row (for A) or column (for B) of Q_U and Q_V together.
    """
    s_a, s_b = s_a.to(torch.float64), s_b.to(torch.float64)
    scaling = scaling_fields(s_a, s_b, cutoff)
    u_a, vh_a, u_b, vh_b = (t.to(torch.float64) for t in (u_a, vh_a, u_b, vh_b))
    # The two k × k rotations: the only products with an m- or n-long side.
    q_u = u_a.T @ u_b
    q_v = vh_a @ vh_b.T  # V_Aᵀ V_B with V = Vhᵀ
    rotation = polar_orthogonal_factor((q_u + q_v) / 2, svd_beyond_qr=False)
    return SpectralStructure(
        **scaling,
        **rotation_fields(q_u, q_v),
        reconstruction_error=reconstruction_error(
            (u_a, vh_a), (u_b, vh_b), q_u, q_v, s_a, s_b, scaling["alpha"], rotation
        ),
    )

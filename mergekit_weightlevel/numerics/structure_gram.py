"""He & Cao's structure fields without singular vectors of the long side: the float64 Gram route.

The fields are those of ``structure.spectral_structure``; here they come from float64
eigendecompositions of AᵀA and BᵀB and the cross-term AᵀB, with a first-order error
estimate that decides whether the route's result is kept (``analyze`` falls back to SVDs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from mergekit_weightlevel.numerics.spectral import cross_product, factor_blocks, gram_matrix
from mergekit_weightlevel.numerics.structure import (
    STRUCTURE_RELATIVE_CUTOFF,
    SpectralStructure,
    inside_span_error,
    polar_orthogonal_factor,
    ratio_quantiles,
    rotation_fields,
    scaling_fields,
)

#: Largest accepted error estimate of any structure field on the Gram route: the fields are
#: promised within 1e-6 of a float64 SVD, and the estimate stays above the measured error
#: (tests). Above it the SVD route decides.
STRUCTURE_GRAM_TOLERANCE = 1e-6


@dataclass(frozen=True)
class GramStructure:
    """The Gram route's result: the fields, A's and B's singular values, and its error estimate."""

    structure: SpectralStructure
    s_a: torch.Tensor  # float64, descending
    s_b: torch.Tensor
    error_estimate: float  # largest first-order error estimate over the fields


def gram_spectral_structure(
    a: torch.Tensor, b: torch.Tensor, *, cutoff: float = STRUCTURE_RELATIVE_CUTOFF
) -> GramStructure | None:
    """``spectral_structure`` of two m × n matrices from float64 Gram matrices, no SVD.

    Seen tall (m ≥ n; a wide pair is transposed, which swaps the roles of U and V): the
    float64 eigendecompositions G_A = AᵀA = V_A Σ_A² V_Aᵀ (and G_B) give the singular
    values and the square side's vectors, so Q_V = V_Aᵀ V_B. The long side's vectors
    U = A V Σ⁻¹ are never formed: Q_U = U_Aᵀ U_B = Σ_A⁻¹ V_Aᵀ (AᵀB) V_B Σ_B⁻¹, from the
    float64 cross-term AᵀB; W_B's part outside span(U_A) (non-square pairs) is
    Σ s_B² − ‖Q_U Σ_B‖², or the residual B − A G_A⁻¹ AᵀB where that part is too small for a
    difference (``_outside_span``). Three (or four) m × n × n products and three n × n
    eigendecompositions (G_A, G_B, the polar factor) replace two thin SVDs and their m × n
    factors, in float64 throughout.

    The price is a division by s_A,i s_B,j: rounding of size eps·√m·s_A,0 s_B,0 in AᵀB
    (and δ = eps·√m·s_0² in each eigenvalue) is amplified where singular values are small.
    ``error_estimate`` propagates those to every field, to first order; a caller accepts
    the result only below ``STRUCTURE_GRAM_TOLERANCE`` (``analyze`` falls back to the SVDs).
    None where A or B is rank-deficient on the short side (the route divides by every s_i).
    """
    wide = a.shape[0] < a.shape[1]
    if wide:
        a, b = a.T, b.T
    rows, cols = a.shape
    (lam_a, v_a), (lam_b, v_b) = (
        torch.linalg.eigh(gram_matrix(matrix)[0], UPLO="U") for matrix in (a, b)
    )
    lam_a, v_a, lam_b, v_b = lam_a.flip(0), v_a.flip(1), lam_b.flip(0), v_b.flip(1)
    s_a, s_b = lam_a.clamp_min(0.0).sqrt(), lam_b.clamp_min(0.0).sqrt()
    if not (float(s_a[-1]) > 0 and float(s_b[-1]) > 0):
        return None  # rank-deficient on the short side: Σ⁻¹ does not exist
    cross = cross_product(a, b)
    square_side = v_a.T @ v_b
    long_side = (v_a.T @ cross @ v_b) / s_a[:, None] / s_b[None, :]
    q_u, q_v = (square_side, long_side) if wide else (long_side, square_side)

    scaling = scaling_fields(s_a, s_b, cutoff)
    rotation = polar_orthogonal_factor((q_u + q_v) / 2, svd_beyond_qr=False)
    inside = inside_span_error(q_u, q_v, s_a, s_b, scaling["alpha"], rotation)
    w_b_squared = float(s_b @ s_b)
    outside = 0.0
    if rows > cols:
        outside = _outside_span(a, b, lam_a, v_a, cross, long_side, s_b, w_b_squared)
    error_squared = (inside + outside) / w_b_squared if w_b_squared > 0 else 0.0
    structure = SpectralStructure(
        **scaling,
        **rotation_fields(q_u, q_v),
        reconstruction_error=math.sqrt(error_squared),
    )
    estimate = _gram_structure_error(structure, s_a, s_b, q_u, (rows, cols), inside, cutoff)
    return GramStructure(structure, s_a, s_b, estimate)


#: Below this share of ‖W_B‖², W_B's part outside span(A) is summed from the residual
#: rather than taken as the difference ‖W_B‖² − ‖U_Aᵀ W_B‖² (as the SVD route does).
OUTSIDE_DIFFERENCE_MIN_SHARE = 1e-6


def _outside_span(
    a: torch.Tensor,
    b: torch.Tensor,
    lam_a: torch.Tensor,
    v_a: torch.Tensor,
    cross: torch.Tensor,
    long_side: torch.Tensor,
    s_b: torch.Tensor,
    w_b_squared: float,
) -> float:
    """‖W_B − U_A U_Aᵀ W_B‖²_F of a tall pair, without U_A.

    ‖W_B‖² − ‖U_Aᵀ W_B‖² = Σ s_B² − ‖Q_U Σ_B‖²: free, and exact enough where the part is not
    small (its rounding, ~eps·√m·‖W_B‖², is then below 1e-8 of it). Where
    it is below ``OUTSIDE_DIFFERENCE_MIN_SHARE`` of ‖W_B‖², cancellation would leave √eps, so
    the residual W_B − A G_A⁻¹ AᵀB is formed block by block (one more m × n × n product).
    """
    difference = w_b_squared - float(((long_side * s_b) ** 2).sum())
    if difference > OUTSIDE_DIFFERENCE_MIN_SHARE * w_b_squared:
        return difference
    projection = (v_a / lam_a) @ (v_a.T @ cross)
    return sum(
        float((block_b - block_a @ projection).square().sum())
        for (_, block_a), (_, block_b) in zip(factor_blocks(a, True), factor_blocks(b, True))
    )


def _scaling_error(s_a: torch.Tensor, s_b: torch.Tensor, eps: float, cutoff: float) -> float:
    """Largest error of α, cv and the ratio quantiles when each s_i may be off by δ / (2 s_i).

    Per field rather than through the worst ratio: the quantiles are bracketed by those of
    r ± ρ (an order statistic moves by at most the perturbation around it), |Δ std| ≤ rms(ρ)
    and |Δ mean| ≤ mean(ρ), so the few smallest singular values (whose ratios are least
    accurate) move these fields only as much as they weigh in them.
    """
    kept = s_a > cutoff * s_a[0]
    s_a, s_b = s_a[kept], s_b[kept]
    error_a = eps * float(s_a[0]) ** 2 / (2 * s_a)  # |Δs_A,i|
    error_b = eps * float(s_b[0]) ** 2 / (2 * s_b)
    ratios = s_b / s_a
    rho = ratios * (error_a / s_a + error_b / s_b)  # |Δr_i|
    quantiles = float((ratio_quantiles(ratios + rho) - ratio_quantiles(ratios - rho)).max())
    mean, spread = float(ratios.mean()), float(ratios.std(correction=0))
    mean_error, std_error = float(rho.mean()), _rms(rho)
    cv = (std_error + spread / mean * mean_error) / max(mean - mean_error, 1e-300)
    norm_a = float(s_a @ s_a)
    alpha_value = float(s_b @ s_a) / norm_a
    alpha = (
        float(error_b @ s_a + s_b @ error_a) / norm_a
        + alpha_value * 2 * float(s_a @ error_a) / norm_a
    )
    return max(quantiles, cv, alpha)


def _rms(values: torch.Tensor) -> float:
    return float(values.square().mean().sqrt())


def _gram_structure_error(
    structure: SpectralStructure,
    s_a: torch.Tensor,
    s_b: torch.Tensor,
    q_u: torch.Tensor,
    shape: tuple[int, int],
    inside: float,
    cutoff: float,
) -> float:
    """First-order error estimate of the Gram route's fields (see ``gram_spectral_structure``).

    With ε = eps·√max(m, n) (rounding that adds up as a random walk, as
    ``typical_gram_noise``): each entry of Q_U (long side) may be off by
    e_ij = ε / (w_A,i w_B,j), w = s / s_rms (an entry of AᵀB is a sum of m products of
    columns whose norms are s_rms on average, and its rounding spreads over the n² entries
    once rotated by V_A, V_B); each s_i by δ / (2 s_i), δ = ε s_0² (``eigh``'s backward
    error is relative to ‖G‖₂ = s_0²). Checked against float64 SVDs in the tests (the
    estimate stays above the measured error, by 5× to 10⁴×). Every s_i is > 0 here.
    """
    eps = torch.finfo(torch.float64).eps * math.sqrt(max(shape))
    inverse_a, inverse_b = (_rms(s) / s for s in (s_a, s_b))  # 1 / w
    entry_frobenius = eps * float(inverse_a.norm()) * float(inverse_b.norm())  # ‖ΔQ_U‖_F
    alignment = eps * float((inverse_a * inverse_b).mean())
    q_u_norm = float(torch.linalg.matrix_norm(q_u))
    gap = entry_frobenius * (2.0 + structure.consistency_gap) / q_u_norm
    # ΔN = ΔQ Σ_B: ‖ΔN‖_F ≤ ε ‖1/w_A‖ · max_j (s_B,j / w_B,j) · √k = ε ‖1/w_A‖ s_B,rms √k.
    w_b_norm = float(s_b.norm())
    delta_n = eps * float(inverse_a.norm()) * _rms(s_b) * math.sqrt(s_b.numel())
    # ΔR ≈ ΔM: a first-order error of M = (Q_U + Q_V) / 2 moves its polar factor by as much
    # outside the few planes where M is nearly singular (there the factor is ill-determined
    # for every route, the SVD included); the polar routes' own rounding stays below 1e-8
    # (``polar_orthogonal_factor``).
    rotation = entry_frobenius
    scale = structure.alpha * float(s_a[0])
    delta_x = (
        2 * w_b_norm * delta_n + 2 * math.sqrt(inside) * (delta_n + 2 * scale * rotation)
    ) / (w_b_norm**2)
    error = structure.reconstruction_error
    reconstruction = min(math.sqrt(delta_x), delta_x / (2 * error)) if error > 0 else delta_x**0.5
    scaling = _scaling_error(s_a, s_b, eps, cutoff)
    return max(alignment, gap, reconstruction, scaling)

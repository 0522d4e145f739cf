"""Weight-level metrics shared by the merge methods and ``analyze``.

- ``sigma``: the relative weight gap of the Shadow-FT paper, Σ|A − B| / (Σ|A| + Σ|B|).
  Not WeightWatcher's ``sigma`` (a power-law fit error), an unrelated quantity.
- ``effective_rank``: Roy & Vetterli's effective rank of a spectrum, exactly as the
  Timber code computes it (``timber_spectral`` keeps ⌈effective_rank⌉ directions).

Sums are accumulated in float64 so that the numbers do not depend on the input dtype.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

#: Added inside the logarithm, as in the official Timber ``erank.py``: keeps p·log p finite at p = 0.
ERANK_LOG_EPS = 1e-9


def abs_sum(tensor: torch.Tensor) -> float:
    """Σ|tensor| accumulated in float64."""
    return float(tensor.abs().sum(dtype=torch.float64))


def sigma_parts(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    """(Σ|A − B|, Σ|A| + Σ|B|): numerator and denominator of ``sigma``, for ratio-of-sums aggregation."""
    a64 = a.to(torch.float64)
    b64 = b.to(torch.float64)
    return float((a64 - b64).abs().sum()), float(a64.abs().sum() + b64.abs().sum())


def sigma(a: torch.Tensor, b: torch.Tensor) -> float:
    """Relative weight gap Σ|A − B| / (Σ|A| + Σ|B|); 0 for identical tensors, 0 when both are zero."""
    if a.shape != b.shape:
        raise ValueError(
            f"sigma needs tensors of one shape, got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    numerator, denominator = sigma_parts(a, b)
    return numerator / denominator if denominator > 0 else 0.0


def effective_rank(singular_values: torch.Tensor, exponent: float = 1.0) -> float:
    """exp(−Σ p_i log(p_i + 1e-9)) with p_i = s_i^γ / Σ s_j^γ (γ = ``exponent``); 0 if Σ s = 0.

    With γ = 1 this is the official Timber ``erank.py`` to the last bit of float64.
    """
    s = singular_values.detach().to(torch.float64).flatten()
    if exponent != 1.0:
        s = s.pow(exponent)
    total = s.sum()
    if not total > 0:
        return 0.0
    p = s / total
    entropy = -(p * torch.log(p + ERANK_LOG_EPS)).sum()
    return float(torch.exp(entropy))


def erank_uncertainty(
    singular_values: torch.Tensor, sigma_noise: torch.Tensor, exponent: float
) -> float:
    """First-order bound on |ΔeRank| when each σ_i may be off by ``sigma_noise[i]``.

    eRank = exp(H), H = −Σ p_i log(p_i + ε), p = t / Σt with t = σ^γ, so
    |ΔH| ≤ Σ |log(p_i + ε) + p_i / (p_i + ε)| · |Δp_i| and |Δp_i| ≤ (|Δt_i| + p_i Σ|Δt|) / Σt.
    """
    s = singular_values.to(torch.float64)
    t = s.pow(exponent)
    total = t.sum()
    if not total > 0:
        return 0.0
    low = (s - sigma_noise).clamp_min(0.0).pow(exponent)
    high = (s + sigma_noise).pow(exponent)
    dt = torch.maximum(high - t, t - low)
    p = t / total
    dp = (dt + p * dt.sum()) / total
    dh = ((torch.log(p + ERANK_LOG_EPS) + p / (p + ERANK_LOG_EPS)).abs() * dp).sum()
    erank = float(torch.exp(-(p * torch.log(p + ERANK_LOG_EPS)).sum()))
    return erank * float(dh)


def gram_erank_uncertainty(eigenvalues: torch.Tensor, noise: float, exponent: float) -> float:
    """``erank_uncertainty`` of σ_i = √λ_i when each Gram eigenvalue λ_i may be off by ``noise``."""
    singular_values = eigenvalues.sqrt()
    sigma_noise = (eigenvalues + noise).sqrt() - singular_values
    return erank_uncertainty(singular_values, sigma_noise, exponent)


def kept_directions(singular_values: torch.Tensor, exponent: float = 1.0) -> int:
    """k = ⌈effective_rank⌉: how many leading singular directions Timber keeps intact."""
    return int(math.ceil(effective_rank(singular_values, exponent)))


def as_matrix(tensor: torch.Tensor) -> torch.Tensor:
    """A ≥2-D tensor seen as shape[0] × (the rest), as every spectral metric here reads it."""
    return tensor.reshape(tensor.shape[0], -1)


#: Largest tolerated first-order bound on the relative eRank error of the Gram route. A
#: float32 SVD's singular values carry absolute errors of ~1e-7·σ_0, an eRank error of
#: the same order; the float64 Gram route is accepted only where it is provably as good.
ERANK_GRAM_TOLERANCE = 1e-6


def matrix_effective_rank(
    matrix: torch.Tensor, *, precision: torch.dtype = torch.float32, name: str = "matrix"
) -> float:
    """eRank (γ = 1) of a 2-D matrix, on its device, without singular vectors.

    With ``precision`` float32: from ``eigvalsh`` of the float64 Gram matrix (σ² of the
    smaller side, several times cheaper than an SVD), accepted when ``erank_uncertainty``
    bounds its relative error by ``ERANK_GRAM_TOLERANCE``; otherwise, and always with
    float64, from the singular values of an SVD in ``precision``.
    """
    from mergekit_weightlevel.numerics.spectral import gram_eigenvalues, singular_values

    if precision == torch.float32:
        try:
            gram = gram_eigenvalues(matrix, name=name)
        except (RuntimeError, torch.linalg.LinAlgError):  # non-convergence: the SVD decides
            gram = None
        if gram is not None:
            erank = effective_rank(gram.eigenvalues.sqrt())
            uncertainty = gram_erank_uncertainty(gram.eigenvalues, gram.noise, 1.0)
            if uncertainty <= ERANK_GRAM_TOLERANCE * erank:
                return erank
    return effective_rank(singular_values(matrix, precision=precision, name=name))


# --------------------------------------------------------------------------------------
# Cheap companions of sigma (read-bound, any shape)
# --------------------------------------------------------------------------------------


#: Elements per block of ``pair_statistics`` on the CPU: the block of each input, the
#: difference, one term and its float64 copy stay in a core's L2 cache, and blocks are large
#: enough that per-operation overhead does not dominate.
PAIR_STATISTICS_BLOCK = 1 << 16
#: Elements per block on a GPU: few launches, the temporaries a few hundred MB at most.
PAIR_STATISTICS_DEVICE_BLOCK = 1 << 24


@dataclass(frozen=True)
class PairStatistics:
    """The float64 sums behind σ, the relative Frobenius gap and the cosine of two tensors."""

    abs_diff: float  # Σ|A − B|
    abs_a: float  # Σ|A|
    abs_b: float  # Σ|B|
    sq_diff: float  # Σ(A − B)²
    sq_a: float  # Σ A²
    sq_b: float  # Σ B²
    dot: float  # Σ A·B
    #: Elements with |A − B| < ``threshold`` of ``pair_statistics`` (Timber's sparsity count).
    unchanged: int = 0
    elements: int = 0

    @property
    def sparsity(self) -> float:
        """Share of elements with |A − B| below the threshold (0 for empty tensors)."""
        return self.unchanged / self.elements if self.elements else 0.0

    @property
    def sigma(self) -> float:
        """Σ|A − B| / (Σ|A| + Σ|B|), as ``sigma``."""
        denominator = self.abs_a + self.abs_b
        return self.abs_diff / denominator if denominator > 0 else 0.0

    @property
    def rel_frobenius(self) -> float:
        """‖B − A‖_F / ‖A‖_F; inf when A = 0 and B ≠ 0, 0 when both are zero."""
        if self.sq_a > 0:
            return math.sqrt(self.sq_diff) / math.sqrt(self.sq_a)
        return 0.0 if self.sq_diff == 0 else math.inf

    @property
    def cosine(self) -> float:
        """⟨A, B⟩ / (‖A‖_F ‖B‖_F) over the flattened tensors; 0 if either is zero."""
        norms = math.sqrt(self.sq_a) * math.sqrt(self.sq_b)
        return self.dot / norms if norms > 0 else 0.0


#: ``pair_statistics`` counts an element as unchanged when |A − B| is below this (Timber's
#: ``calculate_sparsity_ratio`` threshold).
SPARSITY_THRESHOLD = 1e-5


def pair_statistics(
    a: torch.Tensor, b: torch.Tensor, *, threshold: float = SPARSITY_THRESHOLD
) -> PairStatistics:
    """Every sum of σ, Frobenius gap and cosine, and the sparsity count, in one blocked pass.

    Element-wise work (A − B, the squares, A·B, absolute values) runs in float32 (float64
    for float64 inputs) on blocks of ``PAIR_STATISTICS_BLOCK`` elements; every sum is
    accumulated in float64. Each term is thus rounded at most once, to float32: the sums
    of same-sign terms are within 2⁻²⁴ ≈ 6e-8 relative of the all-float64 computation
    (bf16 / fp16 inputs: exact products, and almost always exact differences). Measured on
    the 120M benchmark pair: σ within 1e-10, cosine within 2e-9 of float64, at 1.7× less
    time than converting every block to float64, which made ``analyze --metrics sigma``
    compute-bound rather than read-bound.

    On the CPU the blocks are shared out between torch's threads, a span of whole blocks
    each, every operation single-threaded (``spans.map_spans``), and every temporary is
    allocated once per span; the blocks' sums are then added in block order, so the
    figures are the same bits whatever the thread count (before, torch's threads split
    each block's sums, and 48 of the 525 figures of the benchmark pair changed in their
    last bit between one and two threads). On a GPU the blocks are larger and the sums stay
    on the device until the end.

    The sparsity count is the number of elements with |A − B| < ``threshold`` (strictly),
    the difference being the block's float32 (float64) one: what Timber's
    ``calculate_sparsity_ratio`` computes on its float32 copies of bf16 weights.
    """
    from mergekit_weightlevel.numerics.spans import map_spans

    if a.shape != b.shape:
        raise ValueError(f"tensors of one shape needed, got {tuple(a.shape)} and {tuple(b.shape)}")
    if not threshold > 0:
        raise ValueError(f"the sparsity threshold must be positive, got {threshold}")
    flat_a, flat_b = a.reshape(-1), b.reshape(-1)
    block = PAIR_STATISTICS_BLOCK if a.device.type == "cpu" else PAIR_STATISTICS_DEVICE_BLOCK
    parts = map_spans(
        lambda start, stop: _span_sums(flat_a, flat_b, start, stop, block, threshold),
        flat_a.numel(),
        block,
        a.device,
    )
    # The blocks' float64 sums added one after the other, in block order: the figures do not
    # depend on how the blocks were shared out.
    sums = [0.0] * 7
    for row in torch.cat([block_sums for block_sums, _ in parts]).tolist():
        sums = [total + value for total, value in zip(sums, row)]
    unchanged = sum(int(part_unchanged) for _, part_unchanged in parts)
    return PairStatistics(*sums, unchanged=unchanged, elements=flat_a.numel())


#: The integer type of each working float type's bit patterns (for the sparsity count).
_BIT_PATTERNS = {torch.float32: torch.int32, torch.float64: torch.int64}


def _span_sums(
    flat_a: torch.Tensor,
    flat_b: torch.Tensor,
    start: int,
    stop: int,
    block: int,
    threshold: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``pair_statistics``' seven float64 sums of each block of ``[start, stop)`` (one row
    per block, in ``PairStatistics``' field order) and its count, on the inputs' device."""
    work = torch.promote_types(torch.promote_types(flat_a.dtype, flat_b.dtype), torch.float32)
    device = flat_a.device
    size = max(0, min(block, stop - start))
    diff_buffer = torch.empty(size, dtype=work, device=device)
    term_buffer = torch.empty(size, dtype=work, device=device)
    # bf16 / fp16 blocks are converted into these (inputs already in `work` are used as they are).
    a_buffer = torch.empty(size if flat_a.dtype != work else 0, dtype=work, device=device)
    b_buffer = torch.empty(size if flat_b.dtype != work else 0, dtype=work, device=device)
    # The count compares bit patterns: for floats ≥ 0 (and NaN, which is never counted, as
    # with `<`) they are ordered like the values, so |A − B| < t where the sign bit of
    # bits(|A − B|) − bits(t) is set: an arithmetic shift makes that −1, else 0. Three
    # cheap integer passes instead of a comparison into booleans (~3× dearer on the CPU).
    bits = _BIT_PATTERNS[work]
    below_buffer = torch.empty(size, dtype=bits, device=device)
    limit = int(torch.tensor(threshold, dtype=work).view(bits))
    sign_shift = torch.iinfo(bits).bits - 1
    blocks = -(-(stop - start) // block)
    sums = torch.zeros(blocks, 7, dtype=torch.float64, device=device)
    below = torch.zeros(blocks, dtype=bits, device=device)
    for index, first in enumerate(range(start, stop, block)):
        last = min(first + block, stop)
        block_a = _in_work_type(flat_a[first:last], a_buffer)
        block_b = _in_work_type(flat_b[first:last], b_buffer)
        diff = torch.sub(block_a, block_b, out=diff_buffer[: last - first])
        term = term_buffer[: last - first]
        row = sums[index]
        for column, (left, right) in enumerate(
            ((diff, diff), (block_a, block_a), (block_b, block_b), (block_a, block_b)), start=3
        ):
            torch.sum(torch.mul(left, right, out=term), 0, dtype=torch.float64, out=row[column])
        # The blocks may be the caller's tensors (no copy when already in `work`): their
        # absolute values go to the buffer; diff is ours, made absolute in place.
        torch.sum(torch.abs(block_a, out=term), 0, dtype=torch.float64, out=row[1])
        torch.sum(torch.abs(block_b, out=term), 0, dtype=torch.float64, out=row[2])
        torch.sum(diff.abs_(), 0, dtype=torch.float64, out=row[0])
        signs = torch.sub(diff.view(bits), limit, out=below_buffer[: last - first])
        torch.sum(signs.bitwise_right_shift_(sign_shift), 0, dtype=bits, out=below[index])
    return sums, -below.sum()


def _in_work_type(piece: torch.Tensor, buffer: torch.Tensor) -> torch.Tensor:
    """``piece`` itself when it has the buffer's dtype, else converted into the buffer."""
    if piece.dtype == buffer.dtype:
        return piece
    return buffer[: piece.numel()].copy_(piece)


# --------------------------------------------------------------------------------------
# Spectral structure of post-training (He & Cao, arXiv 2509.17866)
#
# The paper describes post-training as W_post ≈ (U_A Q) · α Σ_A · (V_A Q)ᵀ: a near-uniform
# scaling of the singular values and one orthogonal rotation Q shared by the left and the
# right singular vectors. It publishes no code; the numbers below are this project's
# definitions of "how well does that description hold", documented in docs/analyze.md.
# --------------------------------------------------------------------------------------

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
    from mergekit_weightlevel.numerics.spectral import gram_matrix

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


# --------------------------------------------------------------------------------------
# The same diagnostics without singular vectors of the long side: the float64 Gram route
# --------------------------------------------------------------------------------------

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
    from mergekit_weightlevel.numerics.spectral import cross_product, gram_matrix

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
    from mergekit_weightlevel.numerics.spectral import factor_blocks

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


# --------------------------------------------------------------------------------------
# Robust outlier scores (used to flag matrices whose α stands out)
# --------------------------------------------------------------------------------------

#: 0.6745 = Φ⁻¹(0.75): makes the MAD of a normal sample estimate its standard deviation.
MAD_TO_SIGMA = 0.6745
#: Iglewicz & Hoaglin's threshold on the modified z-score.
ROBUST_Z_THRESHOLD = 3.5


def robust_z_scores(values: list[float]) -> list[float]:
    """Modified z-scores 0.6745 (x − median) / MAD (Iglewicz & Hoaglin, 1993).

    When the MAD is 0 (more than half the values equal) the mean absolute deviation,
    scaled by 1.2533 (= √(π/2)), stands in for it; when that is 0 too, every score is 0.
    """
    if not values:
        return []
    data = torch.tensor(values, dtype=torch.float64)
    median = torch.quantile(data, 0.5)  # interpolated: the textbook median for even counts
    deviations = (data - median).abs()
    mad = float(torch.quantile(deviations, 0.5))
    if mad > 0:
        return (MAD_TO_SIGMA * (data - median) / mad).tolist()
    mean_deviation = float(deviations.mean())
    if mean_deviation > 0:
        return ((data - median) / (1.2533 * mean_deviation)).tolist()
    return [0.0] * len(values)

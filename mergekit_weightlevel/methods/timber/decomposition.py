"""Timber's linear algebra: how one delta matrix splits at k = ⌈eRank⌉.

``split_delta`` decomposes D once, by the exact float64 SVD (``svd_split``, what the official
``timber.py`` does) or by the float64 eigendecomposition of the smaller Gram matrix
(``gram_split``) where that provably agrees to float32 rounding (``gram_is_accurate``); k is
the one ``timber.py``'s float32 arithmetic gives (``official_effective_rank``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from mergekit_weightlevel.methods.timber.declaration import NAME
from mergekit_weightlevel.numerics.effective_rank import ERANK_LOG_EPS, gram_erank_uncertainty
from mergekit_weightlevel.numerics.spectral import (
    TridiagonalGram,
    factor_blocks,
    gram_matrix,
    gram_noise,
    thin_svd,
    typical_gram_noise,
    use_tridiagonal,
)

# Fast-path acceptance thresholds (see ``gram_is_accurate``).
#: Largest tolerated estimate of ‖D'_gram − D'_svd‖_F / ‖D‖_F from the subspace split at k.
GRAM_MAX_SPLIT_ERROR = 1e-7
#: The last kept direction must have σ² ≥ this × σ_0², well above the Gram's noise floor.
GRAM_MIN_KEPT_ENERGY = 1e-10
#: At most this many σ_i whose float32 cast the Gram route cannot be sure of: every
#: combination of their two possible float32 values is tried (2^8 float32 eRanks, ms).
GRAM_MAX_UNSURE_CASTS = 8


# ----------------------------------------------------------------------------- decomposition


@dataclass
class SpectralSplit:
    """How one delta matrix splits into its top-k directions and the tail.

    ``apply(λ)`` gives D' for any λ without decomposing again, which is what λ sweeps use.
    """

    delta: torch.Tensor  # D, float32, 2-D
    k: int
    erank: float
    solver: str  # "svd" or "gram"
    U: torch.Tensor | None = None  # svd: float32 factors, as the official code keeps them
    S: torch.Tensor | None = None
    Vh: torch.Tensor | None = None
    kept: torch.Tensor | None = None  # gram: P_k(D), float32

    def apply(self, lam: float) -> torch.Tensor:
        """D' for this λ, float32."""
        if self.solver == "svd":
            return _svd_reconstruction(self.U, self.S, self.Vh, self.k, lam)
        # kept + λ·(D − kept), in place on one fresh buffer (IEEE + is commutative: same bits)
        return (self.delta - self.kept).mul_(lam).add_(self.kept)


def _svd_reconstruction(
    U: torch.Tensor, S: torch.Tensor, Vh: torch.Tensor, k: int, lam: float
) -> torch.Tensor:
    """U diag(S') Vh in float32 as ``timber.py`` computes it (U * S' equals U @ diag(S') bitwise)."""
    if lam > 0.0:
        scaled = S.clone()
        scaled[k:] *= lam
        return (U * scaled) @ Vh
    return (U[:, :k] * S[:k]) @ Vh[:k]


def svd_split(delta: torch.Tensor, *, exponent: float, name: str) -> SpectralSplit:
    """The official path: thin SVD in float64, factors cast back to float32, k from S."""
    U, S, Vh = thin_svd(delta, precision=torch.float64, name=f"{NAME}: {name}")
    U, S, Vh = (
        U.to(delta.device, torch.float32),
        S.to(delta.device, torch.float32),
        Vh.to(delta.device, torch.float32),
    )
    erank = official_effective_rank(S, exponent)
    return SpectralSplit(
        delta=delta, k=math.ceil(erank), erank=erank, solver="svd", U=U, S=S, Vh=Vh
    )


# ----------------------------------------------------------------------------- k, as timber.py


def official_effective_rank(singular: torch.Tensor, exponent: float = 1.0) -> float:
    """eRank exactly as ``timber.py``'s ``calculate_effective_rank`` computes it.

    Float32 arithmetic on the float32 S, on the CPU (``timber.py`` runs there), in the same
    operations: p = S / ΣS, H = −Σ p·log(p + 1e-9), exp(H); 0 when ΣS is 0. Where eRank lies
    within float32 rounding of an integer this differs from the float64 value, and k = ⌈eRank⌉
    with it (issue 16). γ ≠ 1 (not in ``timber.py``) raises S to γ in float32 first.
    """
    s = singular.detach().to(device="cpu", dtype=torch.float32).flatten()
    if exponent != 1.0:
        s = s.pow(exponent)
    total = torch.sum(s)
    if total == 0:
        return 0.0
    normalized = s / total
    entropy = -torch.sum(normalized * torch.log(normalized + ERANK_LOG_EPS))
    return float(torch.exp(entropy).item())


#: Relative float32 rounding error allowed for one ``official_effective_rank`` evaluation of
#: n values, per (log2 n + 8): the sums' errors grow with log2 n (cascade summation), the
#: rest (division, log, the float32 entropy, exp) is a few ε each. Measured on 600 power-law,
#: exponential and flat spectra of 16 … 4096 values: |float32 − float64 eRank| / eRank at
#: most 0.57 ε·(log2 n + 8) (1.35e-6 at n = 4096); this allows 2 ε·(log2 n + 8).
FLOAT32_ERANK_ERROR_PER_LOG = 2 * torch.finfo(torch.float32).eps


def float32_erank_error(erank: float, size: int) -> float:
    """Bound on |float32 eRank − exact eRank| for one evaluation of ``size`` values."""
    return FLOAT32_ERANK_ERROR_PER_LOG * (math.log2(max(size, 2)) + 8) * erank


def gram_official_k(
    eigenvalues: torch.Tensor, noise: float, exponent: float
) -> tuple[int | None, float, str]:
    """(k, eRank, reason): the k ``timber.py`` gets from its SVD, or None where not certain.

    ``timber.py``'s S is the float32 cast of the float64 SVD's σ, which lies within the
    Gram route's noise of ours: σ_i ∈ [√(λ_i − δ), √(λ_i + δ)]. Almost always that interval
    casts to one float32 value, and the float32 S, hence ``official_effective_rank`` and k,
    are then those of ``timber.py`` bit for bit. Where a few σ_i may cast to either of two
    neighbouring float32 values, every combination is evaluated (up to
    ``GRAM_MAX_UNSURE_CASTS`` of them). Otherwise k must hold over the float64 eRank
    uncertainty plus the float32 rounding of both evaluations (``float32_erank_error``).
    """
    values = eigenvalues.to(torch.float64)
    # The float32 casts of both ends of each σ interval: where they differ, S_i is unsure.
    low = (values - noise).clamp_min(0.0).sqrt().to(torch.float32)
    high = (values + noise).sqrt().to(torch.float32)
    singular = values.sqrt().to(torch.float32)
    erank = official_effective_rank(singular, exponent)
    k = math.ceil(erank)
    unsure = torch.nonzero(low != high).flatten().tolist()
    if not unsure:
        return k, erank, "float32 S certain"
    neighbours = torch.nextafter(low[unsure], torch.full_like(low[unsure], math.inf))
    if len(unsure) <= GRAM_MAX_UNSURE_CASTS and torch.equal(neighbours, high[unsure]):
        candidate = singular.clone()
        for mask in range(1 << len(unsure)):
            for bit, index in enumerate(unsure):
                candidate[index] = high[index] if mask >> bit & 1 else low[index]
            if math.ceil(official_effective_rank(candidate, exponent)) != k:
                return None, erank, f"k uncertain ({len(unsure)} float32 casts of σ unsure)"
        return k, erank, "every possible float32 S gives this k"
    uncertainty = gram_erank_uncertainty(values, noise, exponent) + 2 * float32_erank_error(
        erank, values.numel()
    )
    if math.ceil(erank - uncertainty) != math.ceil(erank + uncertainty):
        return None, erank, f"k uncertain (eRank {erank:.6f} ± {uncertainty:.2e})"
    return k, erank, "k certain within the float32 and Gram error bounds"


@dataclass
class GramSpectrum:
    """Eigendecomposition of the smaller Gram matrix of D, in float64.

    ``eigenvalues`` are descending (σ_i²). The eigenvectors come from ``eigh`` (all of them,
    ascending like its output, so that the top-k and the tail bases are plain column
    ranges) or, for large CPU Gram matrices, from a ``TridiagonalGram`` that computes only
    the basis asked for.
    """

    eigenvalues: torch.Tensor  # σ_i², clamped at 0, descending
    right: bool  # True: vectors are V (D is tall or square); False: U (D is wide)
    noise: float  # absolute eigenvalue uncertainty δ of the float64 Gram route (worst case)
    typical_noise: float  # δ with random-walk growth, for the split-error estimate
    vectors: torch.Tensor | None = None  # from eigh: every eigenvector, ascending columns
    tridiagonal: TridiagonalGram | None = None  # otherwise: eigenvectors on demand

    def _ascending(self, low: int, high: int) -> torch.Tensor:
        if self.vectors is not None:
            return self.vectors[:, low:high]
        return self.tridiagonal.vectors(low, high)

    def top(self, k: int) -> torch.Tensor:
        """Orthonormal basis of the top-k singular directions (n × k)."""
        rank = self.eigenvalues.numel()
        return self._ascending(rank - k, rank)

    def tail(self, k: int) -> torch.Tensor:
        """Orthonormal basis of every direction beyond the top k (n × (n − k))."""
        return self._ascending(0, self.eigenvalues.numel() - k)


def gram_spectrum(delta: torch.Tensor) -> GramSpectrum:
    """Eigenvalues (and eigenvectors) of DᵀD (tall D) or DDᵀ (wide D) in float64 on D's
    device (D read in blocks, see ``gram_matrix``)."""
    gram, right = gram_matrix(delta)
    vectors = tridiagonal = None
    if use_tridiagonal(gram):
        tridiagonal = TridiagonalGram(gram)  # consumes the Gram buffer
        values = tridiagonal.eigenvalues
    else:
        values, vectors = torch.linalg.eigh(gram, UPLO="U")
    del gram
    values = values.flip(0).clamp_min(0.0)
    shape = tuple(delta.shape)
    return GramSpectrum(
        eigenvalues=values,
        right=right,
        noise=gram_noise(values, shape),
        typical_noise=typical_gram_noise(values, shape),
        vectors=vectors,
        tridiagonal=tridiagonal,
    )


def kept_part(delta: torch.Tensor, spectrum: GramSpectrum, k: int) -> torch.Tensor:
    """P_k(D) in D's dtype, through whichever of the top-k or the tail basis is narrower.

    P_k(D) = D·V_k V_kᵀ = D − D·V_t V_tᵀ (V_k, V_t complementary): both are exact, and the
    cost is 4·m·n·(columns of the basis). Post-training deltas have eRank at 70–90 % of
    the rank, so the tail is usually 3–6× narrower than the top-k basis. The projection
    acts on each row of D separately (each column, for a wide D with the left vectors),
    so it runs in float64 one block of ``FLOAT64_BLOCK`` rows at a time and never holds
    D or P_k(D) whole in float64.
    """
    rank = spectrum.eigenvalues.numel()
    through_top = k <= rank - k
    basis = spectrum.top(k) if through_top else spectrum.tail(k)
    kept = torch.empty_like(delta)
    kept_factor = kept if spectrum.right else kept.T  # rows of the factor, as in factor_blocks
    for start, block in factor_blocks(delta, spectrum.right):
        # In factor orientation both cases are F_b V Vᵀ (left: (Dᵀ)_b U Uᵀ = (U Uᵀ D)ᵀ_b).
        projected = (block @ basis) @ basis.T
        if not through_top:  # −P_tail + D in place: one float64 block buffer less
            projected = projected.neg_().add_(block)
        kept_factor[start : start + block.shape[0]] = projected
    return kept


def gram_is_accurate(spectrum: GramSpectrum, k: int) -> tuple[bool, str]:
    """Whether P_k(D) from the Gram route agrees with the SVD route to float32 rounding.

    k is the one ``timber.py`` gets (``gram_official_k`` decided that). Then two measurable
    conditions, both needed:
    1. The last kept direction is resolved: σ_{k−1}² ≥ 1e-10 · σ_0². Below that the Gram's
       absolute noise (≈ 1e-13 σ_0² for 4096-wide matrices) is a sizeable part of σ².
    2. The split at k is stable: rotating v_{k−1} towards v_k by θ ≈ δ / (σ_{k−1}² − σ_k²)
       changes D' by about θ·σ_{k−1}; relative to ‖D‖_F this must stay ≤ 1e-7, far below
       float32 resolution. Repeated singular values at k (gap ≤ 2δ) always fail here, and
       there the SVD itself picks an arbitrary subspace: falling back keeps the official
       behaviour. This estimate uses the √max(m, n) noise (``typical_gram_noise``): with
       the worst-case max(m, n) one it sat 10⁵–10⁶ above the measured error and sent
       large tall matrices with a strong low-rank part (8B-shaped MLP deltas) to the SVD
       after the Gram work was done (docs/benchmarks.md).
    """
    values = spectrum.eigenvalues
    rank = values.numel()
    if k == 0 or k >= rank:
        return True, "all directions kept or zero delta"
    top = float(values[0])
    last_kept, first_tail = float(values[k - 1]), float(values[k])
    if last_kept < GRAM_MIN_KEPT_ENERGY * top:
        return False, f"σ_(k-1)²/σ_0² = {last_kept / top:.1e} below {GRAM_MIN_KEPT_ENERGY:g}"
    gap = last_kept - first_tail
    frobenius = math.sqrt(float(values.sum()))
    if gap <= 2 * spectrum.noise:
        return False, "σ_(k-1) and σ_k are equal to Gram precision"
    split_error = spectrum.typical_noise / gap * math.sqrt(last_kept) / frobenius
    if split_error > GRAM_MAX_SPLIT_ERROR:
        return False, f"split at k too close (error estimate {split_error:.1e})"
    return True, "accurate"


def gram_split(delta: torch.Tensor, *, exponent: float, name: str) -> SpectralSplit | None:
    """The fast path, or None where ``gram_is_accurate`` says the SVD is needed."""
    try:
        spectrum = gram_spectrum(delta)
    except (RuntimeError, torch.linalg.LinAlgError):
        return None
    values = spectrum.eigenvalues
    k, erank, _reason = gram_official_k(values, spectrum.noise, exponent)
    if k is None:
        return None
    accurate, _reason = gram_is_accurate(spectrum, k)
    if not accurate:
        return None
    if k >= values.numel():
        kept = delta.clone()
    elif k == 0:
        kept = torch.zeros_like(delta)
    else:
        try:
            kept = kept_part(delta, spectrum, k)
        except (RuntimeError, torch.linalg.LinAlgError):  # eigenvectors failed: the SVD decides
            return None
    return SpectralSplit(delta=delta, k=k, erank=erank, solver="gram", kept=kept)


def split_delta(
    delta: torch.Tensor, *, exponent: float = 1.0, solver: str = "auto", name: str = "tensor"
) -> SpectralSplit:
    """Decompose a float32 2-D delta once: Gram fast path where accurate, else the SVD."""
    if solver == "auto":
        fast = gram_split(delta, exponent=exponent, name=name)
        if fast is not None:
            return fast
    return svd_split(delta, exponent=exponent, name=name)


# ----------------------------------------------------------------------------- per tensor

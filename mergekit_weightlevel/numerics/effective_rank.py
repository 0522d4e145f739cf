"""Effective rank (Roy & Vetterli), exactly as the Timber code computes it, and its error bounds.

``timber_spectral`` keeps ⌈effective_rank(ΔW)⌉ directions; ``analyze`` reports the eRank of
A, B and ΔW. Singular values come from the float64 Gram route where its error is provably
small (``matrix_singular_values``), otherwise from an SVD.
"""

from __future__ import annotations

import math

import torch

from mergekit_weightlevel.numerics.spectral import gram_eigenvalues, singular_values

#: Added inside the logarithm, as in the official Timber ``erank.py``: keeps p·log p finite at p = 0.
ERANK_LOG_EPS = 1e-9


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


def as_matrix(tensor: torch.Tensor) -> torch.Tensor:
    """A ≥2-D tensor seen as shape[0] × (the rest), as every spectral metric here reads it."""
    return tensor.reshape(tensor.shape[0], -1)


#: Largest tolerated first-order bound on the relative eRank error of the Gram route. A
#: float32 SVD's singular values carry absolute errors of ~1e-7·σ_0, an eRank error of
#: the same order; the float64 Gram route is accepted only where it is provably as good.
ERANK_GRAM_TOLERANCE = 1e-6


def matrix_singular_values(
    matrix: torch.Tensor, *, precision: torch.dtype = torch.float32, name: str = "matrix"
) -> torch.Tensor:
    """The singular values of a 2-D matrix (descending), on its device, without vectors.

    With ``precision`` float32: √ of ``eigvalsh`` of the float64 Gram matrix (σ² of the
    smaller side, several times cheaper than an SVD), accepted when ``erank_uncertainty``
    bounds the relative error of their eRank by ``ERANK_GRAM_TOLERANCE``; otherwise, and
    always with float64, from an SVD in ``precision``.
    """
    if precision == torch.float32:
        try:
            gram = gram_eigenvalues(matrix, name=name)
        except (RuntimeError, torch.linalg.LinAlgError):  # non-convergence: the SVD decides
            gram = None
        if gram is not None:
            values = gram.eigenvalues.sqrt()
            uncertainty = gram_erank_uncertainty(gram.eigenvalues, gram.noise, 1.0)
            if uncertainty <= ERANK_GRAM_TOLERANCE * effective_rank(values):
                return values
    return singular_values(matrix, precision=precision, name=name)


def matrix_effective_rank(
    matrix: torch.Tensor, *, precision: torch.dtype = torch.float32, name: str = "matrix"
) -> float:
    """eRank (γ = 1) of a 2-D matrix from ``matrix_singular_values``."""
    return effective_rank(matrix_singular_values(matrix, precision=precision, name=name))


def erank_split(singular_values: torch.Tensor) -> tuple[int, float]:
    """(k, tail share) of a delta's spectrum, as Timber splits it.

    Timber keeps the k = ⌈eRank⌉ leading singular directions of ΔW and scales the rest
    by λ; the rest holds ‖tail‖_F / ‖ΔW‖_F = √(Σ_{i≥k} s_i² / Σ s_i²) of the delta (0 for a
    zero delta). So the output is (1 − λ)·‖tail‖_F away from the Instruct for any λ.
    """
    s = singular_values.detach().to(torch.float64).flatten()
    k = math.ceil(effective_rank(s))
    energy = s.square()
    total = float(energy.sum())
    share = math.sqrt(float(energy[k:].sum()) / total) if total > 0 else 0.0
    return k, share

"""Weight-level metrics shared by the merge methods and ``analyze``.

- ``sigma``: the relative weight gap of the Shadow-FT paper, Σ|A − B| / (Σ|A| + Σ|B|).
  Not WeightWatcher's ``sigma`` (a power-law fit error), an unrelated quantity.
- ``effective_rank``: Roy & Vetterli's effective rank of a spectrum, exactly as the
  Timber code computes it (``timber_spectral`` keeps ⌈effective_rank⌉ directions).

Sums are accumulated in float64 so that the numbers do not depend on the input dtype.
"""

from __future__ import annotations

import math

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


def kept_directions(singular_values: torch.Tensor, exponent: float = 1.0) -> int:
    """k = ⌈effective_rank⌉: how many leading singular directions Timber keeps intact."""
    return int(math.ceil(effective_rank(singular_values, exponent)))


def as_matrix(tensor: torch.Tensor) -> torch.Tensor:
    """A ≥2-D tensor seen as shape[0] × (the rest), as every spectral metric here reads it."""
    return tensor.reshape(tensor.shape[0], -1)

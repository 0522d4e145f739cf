"""Independent float64 re-computations of each method, per tensor and per state dict, written
straight from the papers' formulas (``../shared/spec/methods.md``): the oracles of the demo's
check, the tests and the benchmarks. Never used by merges, and independent of the fast kernels
in ``methods/`` (the Timber reference is a plain float64 ``torch.linalg.svd``), so that a wrong
kernel disagrees with it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import torch

State = dict[str, torch.Tensor]


def paramdelta_tensor(
    base: torch.Tensor, new_base: torch.Tensor, donors: Sequence[tuple[torch.Tensor, float]]
) -> torch.Tensor:
    """ParamΔ: Θ'_base + Σ w·(Θ_post − Θ_base), in float64."""
    return new_base.double() + sum(
        weight * (donor.double() - base.double()) for donor, weight in donors
    )


def interp_tensor(instruct: torch.Tensor, thinking: torch.Tensor, lam: float) -> torch.Tensor:
    """Instruct-Thinking interpolation: λ·thinking + (1 − λ)·instruct, in float64."""
    return lam * thinking.double() + (1.0 - lam) * instruct.double()


def shadow_graft_tensor(
    name: str,
    base: torch.Tensor,
    tuned: torch.Tensor,
    target: torch.Tensor,
    include: str,
) -> torch.Tensor:
    """Shadow-FT: target + (tuned − base) where ``include`` matches the tensor's name (a
    case-sensitive ``re.search``, as the demo's projections), target elsewhere; float64."""
    if re.search(include, name):
        return target.double() + (tuned.double() - base.double())
    return target.double()


def effective_rank(singular_values: torch.Tensor, exponent: float = 1.0) -> float:
    """Timber's eRank in float64: exp(−Σ p log(p + 1e-9)), p = σ^γ / Σ σ^γ; 0 when Σ σ^γ = 0."""
    powered = singular_values.double() ** exponent
    total = powered.sum()
    if total == 0:
        return 0.0
    p = powered / total
    return float(torch.exp(-(p * torch.log(p + 1e-9)).sum()))


def timber_tensor(
    base: torch.Tensor, instruct: torch.Tensor, lam: float, exponent: float = 1.0
) -> torch.Tensor:
    """Timber per tensor: base + the top ⌈eRank⌉ directions of ΔW + λ × the rest.

    ΔW is taken in float32 (as ``timber.py``), reshaped to rows × the rest, decomposed with
    a float64 thin SVD; a tensor with fewer than two axes is Instruct's, unchanged."""
    delta = instruct.float() - base.float()
    if delta.ndim < 2:
        return instruct.double()
    U, S, Vh = torch.linalg.svd(delta.reshape(delta.shape[0], -1).double(), full_matrices=False)
    k = math.ceil(effective_rank(S, exponent))
    scaled = torch.cat([S[:k], lam * S[k:]])
    return base.double() + ((U * scaled) @ Vh).reshape(delta.shape)


def paramdelta_state(base: State, post_trained: State, new_base: State) -> State:
    """ParamΔ of whole state dicts (one donor, weight 1), tensor by tensor."""
    return {
        name: paramdelta_tensor(base[name], tensor, [(post_trained[name], 1.0)])
        for name, tensor in new_base.items()
    }


def interp_state(instruct: State, thinking: State, lam: float) -> State:
    return {name: interp_tensor(tensor, thinking[name], lam) for name, tensor in instruct.items()}


def shadow_graft_state(base: State, tuned: State, target: State, include: str) -> State:
    return {
        name: shadow_graft_tensor(name, base[name], tuned[name], tensor, include)
        for name, tensor in target.items()
    }


def timber_state(base: State, instruct: State, lam: float) -> State:
    return {name: timber_tensor(base[name], tensor, lam) for name, tensor in instruct.items()}

"""Timber's per-tensor math: W = W_B + P_k(D) + λ·(D − P_k(D)) for one tensor, any layout.

A stacked-experts tensor is decomposed expert by expert (gate and up separately); any other
tensor as shape[0] × (the rest), as ``timber.py`` does. Pure tensor functions: no mergekit.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch

from mergekit_weightlevel.methods.timber.decomposition import NAME, SpectralSplit, split_delta
from mergekit_weightlevel.numerics.effective_rank import as_matrix
from mergekit_weightlevel.numerics.spectral import (
    SVDFailure,
)
from mergekit_weightlevel.tensor_names import ExpertMatrix, expert_matrices


def timber_tensors(
    base: torch.Tensor,
    instruct: torch.Tensor,
    lambdas: Sequence[float],
    *,
    exponent: float = 1.0,
    solver: str = "auto",
    name: str = "tensor",
    keep_instruct: bool = False,
) -> list[torch.Tensor]:
    """Timber's W for each λ, decomposing the delta once; each result in ``base``'s dtype.

    ``keep_instruct`` (scope ``linear`` on an embedding) returns W_I for every λ. A
    stacked-experts tensor (``tensor_names.expert_matrices``: mergekit's [E, 2I, H]
    ``gate_up_proj``, [E, H, I] ``down_proj``) is decomposed matrix by matrix, each
    expert's gate, up and down separately, as ``timber.py`` does on the per-expert
    checkpoint; any other tensor is seen as shape[0] × (the rest), as ``timber.py`` does.
    """
    instruct_out = instruct.to(base.dtype)
    if keep_instruct or base.ndim < 2:
        return [instruct_out for _ in lambdas]
    base32 = base.to(torch.float32)
    delta = instruct.to(torch.float32) - base32
    stacked = expert_matrices(name, tuple(delta.shape))
    if stacked is not None:
        return _stacked_timber(delta, base32, instruct_out, lambdas, stacked, exponent, solver)
    split = _split_or_warn(as_matrix(delta), exponent=exponent, solver=solver, name=name)
    if split is None:
        return [instruct_out for _ in lambdas]
    outputs = []
    for lam in lambdas:
        if lam == 1.0:  # the tail is kept as it is: W_I exactly, not W_B + (W_I − W_B)
            outputs.append(instruct_out)
        else:
            # apply() returns a fresh buffer: W_B is added in place (same bits as W_B + D').
            outputs.append(split.apply(lam).reshape(base.shape).add_(base32).to(base.dtype))
    return outputs


def _split_or_warn(
    matrix: torch.Tensor, *, exponent: float, solver: str, name: str
) -> SpectralSplit | None:
    """``split_delta``, or None with a warning naming the matrix when every SVD failed."""
    try:
        return split_delta(matrix, exponent=exponent, solver=solver, name=name)
    except SVDFailure as failure:
        warnings.warn(
            f"{NAME}: the SVD of tensor {name} did not converge ({failure}); "
            "keeping the Instruct weights for it.",
            RuntimeWarning,
            stacklevel=3,
        )
        return None


def _stacked_timber(
    delta: torch.Tensor,
    base32: torch.Tensor,
    instruct_out: torch.Tensor,
    lambdas: Sequence[float],
    matrices: list[ExpertMatrix],
    exponent: float,
    solver: str,
) -> list[torch.Tensor]:
    """Timber per expert matrix of a stacked tensor: one buffer per λ, filled matrix by matrix.

    Each matrix is decomposed once and dropped before the next, so memory stays at one
    output per λ plus one matrix's decomposition. A matrix whose SVD fails keeps its delta
    (W_I), with a warning naming it by its per-expert name.
    """
    outputs = {lam: torch.empty_like(delta) for lam in lambdas if lam != 1.0}
    for matrix in matrices:
        part = delta[matrix.index]
        split = _split_or_warn(part, exponent=exponent, solver=solver, name=matrix.name)
        for lam, output in outputs.items():
            output[matrix.index] = part if split is None else split.apply(lam)
    finished = {lam: output.add_(base32).to(instruct_out.dtype) for lam, output in outputs.items()}
    return [instruct_out if lam == 1.0 else finished[lam] for lam in lambdas]


def timber_spectral(
    base: torch.Tensor,
    instruct: torch.Tensor,
    *,
    lam: float = 0.2,
    exponent: float = 1.0,
    solver: str = "auto",
    name: str = "tensor",
    keep_instruct: bool = False,
) -> torch.Tensor:
    """Timber's W = W_B + D' for one tensor, in ``base``'s dtype."""
    (merged,) = timber_tensors(
        base,
        instruct,
        [lam],
        exponent=exponent,
        solver=solver,
        name=name,
        keep_instruct=keep_instruct,
    )
    return merged

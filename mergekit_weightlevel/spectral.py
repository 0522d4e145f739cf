"""Singular value decompositions that do not fail quietly.

Shared by ``timber_spectral`` and ``analyze``. Half-precision input is never decomposed
as such (it is promoted first); a decomposition that fails to converge in float32 is
retried in float64, then on the CPU, before the caller's documented fallback applies.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import torch


class SVDFailure(RuntimeError):
    """Every attempt to decompose a matrix failed (float32, float64, CPU)."""


class ThinSVD(NamedTuple):
    U: torch.Tensor
    S: torch.Tensor
    Vh: torch.Tensor


def _attempts(
    matrix: torch.Tensor, precision: torch.dtype
) -> list[tuple[torch.device, torch.dtype]]:
    attempts = [(matrix.device, precision)]
    if precision != torch.float64:
        attempts.append((matrix.device, torch.float64))
    if matrix.device.type != "cpu":
        attempts.append((torch.device("cpu"), torch.float64))
    return attempts


def _decompose(matrix: torch.Tensor, precision: torch.dtype, name: str, what: str, fn):
    if matrix.ndim != 2:
        raise ValueError(f"{name}: {what} needs a 2-D matrix, got shape {tuple(matrix.shape)}")
    errors = []
    for device, dtype in _attempts(matrix, precision):
        try:
            result = fn(matrix.to(device=device, dtype=dtype))
        except (RuntimeError, torch.linalg.LinAlgError) as error:  # non-convergence
            errors.append(f"{dtype} on {device}: {error}")
            continue
        if all(
            torch.isfinite(t).all() for t in (result if isinstance(result, tuple) else (result,))
        ):
            if errors:
                warnings.warn(
                    f"{name}: {what} retried in {dtype} on {device} after: {'; '.join(errors)}",
                    RuntimeWarning,
                    stacklevel=3,
                )
            return result
        errors.append(f"{dtype} on {device}: non-finite result")
    raise SVDFailure(f"{name}: {what} failed: {'; '.join(errors)}")


def thin_svd(
    matrix: torch.Tensor, *, precision: torch.dtype = torch.float64, name: str = "matrix"
) -> ThinSVD:
    """U, S, Vh of a 2-D matrix (``full_matrices=False``) in ``precision`` or better."""
    precision = torch.promote_types(precision, torch.float32)
    U, S, Vh = _decompose(
        matrix, precision, name, "SVD", lambda m: torch.linalg.svd(m, full_matrices=False)
    )
    return ThinSVD(U, S, Vh)


def singular_values(
    matrix: torch.Tensor, *, precision: torch.dtype = torch.float32, name: str = "matrix"
) -> torch.Tensor:
    """The singular values of a 2-D matrix, descending, in ``precision`` or better."""
    precision = torch.promote_types(precision, torch.float32)
    return _decompose(matrix, precision, name, "singular values", torch.linalg.svdvals)

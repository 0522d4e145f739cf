"""Singular value decompositions that do not fail quietly.

Shared by ``timber_spectral`` and ``analyze``. Half-precision input is never decomposed
as such (it is promoted first); a decomposition that fails to converge in float32 is
retried in float64, then on the CPU, before the caller's documented fallback applies.
"""

from __future__ import annotations

import math
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


# --------------------------------------------------------------------------------------
# Gram route: singular values (and vectors) from the smaller Gram matrix, in float64
# --------------------------------------------------------------------------------------


class GramEigen(NamedTuple):
    """Eigenvalues σ_i² of the smaller Gram matrix (descending, clamped at 0) and their noise."""

    eigenvalues: torch.Tensor  # float64, descending
    noise: float  # absolute uncertainty δ of each eigenvalue (forming G + eigh)


#: Row panels of the Gram matrix computed separately (see ``gram_matrix``).
GRAM_PANELS = 4
#: Rows (tall) or columns (wide) of a matrix turned into float64 at a time by the blocked
#: routines: a float64 copy of the whole matrix is never made (an 8B model's 128256 × 4096
#: embedding would need 4.2 GB per copy).
FLOAT64_BLOCK = 2048


def factor_blocks(matrix: torch.Tensor, right: bool):
    """Float64 blocks F_b of the factor F (F = M if ``right`` else Mᵀ) by rows of F: FᵀF = Σ F_bᵀF_b.

    For a wide M these are column blocks of M, transposed (a view, then one copy each).
    """
    factor = matrix if right else matrix.T
    for start in range(0, factor.shape[0], FLOAT64_BLOCK):
        yield start, factor[start : start + FLOAT64_BLOCK].to(torch.float64)


def gram_matrix(matrix: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """(G, right): G = MᵀM when M is tall or square (right), else MMᵀ; float64, on M's device.

    M may be of any float dtype: it is converted to float64 ``FLOAT64_BLOCK`` rows at a time
    (products of float32 entries are exact in float64) and G accumulated block by block.
    Only G's upper triangle is computed (read it with ``UPLO="U"``; the rest is zero): row
    panel i of G is panel i of Fᵀ times the columns of F from panel i on. With 4 panels
    that is 62.5 % of the full product's flops, in large matrix products on one thread
    pool (BLAS ``syrk`` would need scipy's second one).
    """
    rows, cols = matrix.shape
    right = cols <= rows
    size = cols if right else rows
    gram = torch.zeros(size, size, dtype=torch.float64, device=matrix.device)
    edges = [size * i // GRAM_PANELS for i in range(GRAM_PANELS + 1)]
    for _, block in factor_blocks(matrix, right):
        for low, high in zip(edges[:-1], edges[1:]):
            if high > low:
                gram[low:high, low:].addmm_(block[:, low:high].T, block[:, low:])
    return gram, right


def gram_noise(eigenvalues: torch.Tensor, shape: tuple[int, int]) -> float:
    """Absolute eigenvalue uncertainty of the float64 Gram route: max(m, n)·eps·σ_0².

    Forming G and ``eigh`` both perturb its eigenvalues by about eps·‖G‖ times a dimension
    factor; max(m, n) is the conservative (worst-case growth) choice.
    """
    top = float(eigenvalues[0]) if eigenvalues.numel() else 0.0
    return max(shape) * torch.finfo(torch.float64).eps * top


def typical_gram_noise(eigenvalues: torch.Tensor, shape: tuple[int, int]) -> float:
    """The same with √max(m, n) growth: rounding errors that add up as a random walk.

    LAPACK's own approximate error bounds for ``syev`` take no dimension factor at all
    (eps·‖G‖, LAPACK Users' Guide §4.7.1); √max(m, n) stays above them. For estimates of
    a continuous error (Timber's split), not for discrete decisions such as ⌈eRank⌉.
    """
    return gram_noise(eigenvalues, shape) / math.sqrt(max(shape))


def gram_eigenvalues(matrix: torch.Tensor, *, name: str = "matrix") -> GramEigen:
    """σ_i² of a 2-D matrix from ``eigvalsh`` of its float64 Gram matrix, on its device."""
    if matrix.ndim != 2:
        raise ValueError(f"{name}: eigenvalues need a 2-D matrix, got shape {tuple(matrix.shape)}")
    gram, _ = gram_matrix(matrix)
    values = torch.linalg.eigvalsh(gram, UPLO="U").flip(0).clamp_min(0.0)
    return GramEigen(values, gram_noise(values, tuple(matrix.shape)))

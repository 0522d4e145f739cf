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

from mergekit_weightlevel.errors import WeightLevelError


class SVDFailure(WeightLevelError, RuntimeError):
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


def cross_product(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """AᵀB in float64 for two matrices of the same shape, ``FLOAT64_BLOCK`` rows at a time.

    The cross-term of the Gram route for a pair (``analyze``'s structure level): like
    ``gram_matrix`` it never makes a float64 copy of a whole matrix, and products of
    float32 entries are exact in float64.
    """
    product = torch.zeros(a.shape[1], b.shape[1], dtype=torch.float64, device=a.device)
    for start in range(0, a.shape[0], FLOAT64_BLOCK):
        stop = start + FLOAT64_BLOCK
        product.addmm_(a[start:stop].to(torch.float64).T, b[start:stop].to(torch.float64))
    return product


# --------------------------------------------------------------------------------------
# Large Gram matrices on the CPU: one tridiagonal reduction, eigenvectors only where needed
# --------------------------------------------------------------------------------------

#: From this size on, a CPU Gram matrix is reduced to tridiagonal form once (LAPACK
#: ``sytrd``) instead of going through ``eigh``: all eigenvalues then cost O(n²)
#: (``sterf``) and eigenvectors are computed for the index range Timber needs only
#: (``stemr``, then the Householder back-transformation). Measured against ``eigh`` on
#: post-training-like deltas (2 cores): n = 2048: 0.97 → 0.67 s; 3072: 3.5 → 2.0 s;
#: 4096: 9.4 → 5.3 s; n = 1024: 0.14 → 0.16 s, hence the threshold.
TRIDIAGONAL_MIN_SIZE = 2048


def use_tridiagonal(gram: torch.Tensor) -> bool:
    """Whether ``TridiagonalGram`` is the faster route for this Gram matrix."""
    return gram.device.type == "cpu" and gram.shape[0] >= max(TRIDIAGONAL_MIN_SIZE, 2)


class TridiagonalGram:
    """G = Q T Qᵀ from LAPACK ``dsytrd`` (via scipy, a mergekit dependency), done once.

    ``eigenvalues`` (ascending, float64) come from ``dsterf``; ``vectors(low, high)`` gives
    the eigenvectors of the ascending eigenvalue indices [low, high): those of T from
    ``dstemr`` (MRRR), mapped back by Q. Every step is a backward-stable LAPACK routine,
    so the eigenvalue noise model of the Gram route (``gram_noise``) is unchanged. A LAPACK
    failure raises ``torch.linalg.LinAlgError`` (the caller's SVD fallback handles it).
    """

    def __init__(self, gram_upper: torch.Tensor) -> None:
        from scipy.linalg import lapack

        self._lapack = lapack
        size = gram_upper.shape[0]
        if size < 2:
            raise ValueError("TridiagonalGram needs a Gram matrix of size 2 or more")
        # The transpose of a C-ordered array is Fortran-ordered: its lower triangle is G's
        # upper triangle, which is all gram_matrix fills. sytrd works in place on it.
        lower = gram_upper.numpy().T
        lwork = int(lapack.dsytrd_lwork(size, lower=1)[0])
        reflectors, diagonal, off_diagonal, tau, info = lapack.dsytrd(
            lower, lower=1, lwork=lwork, overwrite_a=1
        )
        self._check("dsytrd", info)
        self._reflectors = torch.from_numpy(reflectors)
        self._tau = torch.from_numpy(tau)
        self._diagonal, self._off_diagonal = diagonal, off_diagonal
        values, info = lapack.dsterf(diagonal.copy(), off_diagonal.copy())
        self._check("dsterf", info)
        self.eigenvalues = torch.from_numpy(values)

    @staticmethod
    def _check(routine: str, info: int) -> None:
        if info != 0:
            raise torch.linalg.LinAlgError(f"LAPACK {routine} failed (info = {info})")

    def vectors(self, low: int, high: int) -> torch.Tensor:
        """Orthonormal eigenvectors of G for ascending eigenvalue indices low … high − 1."""
        import numpy as np

        size = self._diagonal.shape[0]
        if high <= low:
            return torch.zeros(size, 0, dtype=torch.float64)
        off = np.append(self._off_diagonal, 0.0)  # dstemr wants n entries
        lwork, liwork, info = self._lapack.dstemr_lwork(
            self._diagonal, off, 3, 0.0, 0.0, low + 1, high, compute_v=1
        )
        self._check("dstemr_lwork", info)
        found, _, z, info = self._lapack.dstemr(
            self._diagonal.copy(), off, 3, 0.0, 0.0, low + 1, high,
            compute_v=1, lwork=int(lwork), liwork=int(liwork),
        )  # fmt: skip
        self._check("dstemr", info)
        if found != high - low:
            raise torch.linalg.LinAlgError(f"LAPACK dstemr found {found} of {high - low} vectors")
        return self._apply_q(torch.from_numpy(np.ascontiguousarray(z[:, :found])))

    def _apply_q(self, z: torch.Tensor) -> torch.Tensor:
        """Q·Z for Q = H(0) … H(n−2), the reflectors ``dsytrd`` (lower) left in G's lower part.

        Reflector i acts on rows i + 1 … n − 1, with its vector stored below the subdiagonal
        of column i: exactly a QR factorisation's storage for the block G[1:, :n−1]. So Q·Z
        is ``ormqr`` on rows 1 … n − 1 of Z, row 0 untouched (what LAPACK's ``dormtr`` does
        for UPLO = "L"). torch's ``ormqr`` (MKL, blocked) is used rather than scipy's: it
        was the fastest here (4096 × 1182 vectors: 0.51 s; scipy 0.61 s; a hand-written blocked
        loop 0.72 s) and stays on torch's thread pool.
        """
        size = z.shape[0]  # ≥ 2: __init__ refuses smaller Gram matrices
        z[1:] = torch.ormqr(
            self._reflectors[1:, : size - 1], self._tau, z[1:], left=True, transpose=False
        )
        return z


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

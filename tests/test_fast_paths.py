"""The cheaper kernels of issue 5 agree with the straightforward formulas they replace."""

from __future__ import annotations

import math

import pytest
import torch

from mergekit_weightlevel.methods.base import all_finite, evenly_spaced
from mergekit_weightlevel.methods.instruct_thinking_interp import interpolate
from mergekit_weightlevel.methods.paramdelta import paramdelta


def _tensors(dtype: torch.dtype, count: int, shape=(37, 53)) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(5)
    return [torch.randn(shape, generator=generator).to(dtype) for _ in range(count)]


def _paramdelta_reference(target, base, donors, compute_dtype=torch.float32):
    """The formula as first written: copy of the target, then one add per donor."""
    out = target.to(compute_dtype, copy=True)
    for donor, weight in donors:
        if weight != 0.0:
            out.add_(donor.to(compute_dtype) - base.to(compute_dtype), alpha=weight)
    return out.to(target.dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.float64])
@pytest.mark.parametrize("weights", [(1.0,), (0.7, -0.3), (0.0, 1.3), (0.0, 0.0)])
def test_paramdelta_bit_identical_to_plain_formula(dtype, weights):
    target, base, *donor_tensors = _tensors(dtype, 2 + len(weights))
    donors = list(zip(donor_tensors, weights))
    compute = torch.float64 if dtype == torch.float64 else torch.float32
    merged = paramdelta(target, base, donors, compute_dtype=compute)
    expected = _paramdelta_reference(target, base, donors, compute)
    assert merged.dtype == dtype
    assert torch.equal(merged, expected)
    assert merged.data_ptr() != target.data_ptr()  # never the caller's tensor, even for weight 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("lam", [0.2, 0.5, 0.95])
def test_interpolate_bit_identical_to_plain_formula(dtype, lam):
    instruct, thinking = _tensors(dtype, 2)
    before = instruct.clone()
    expected = (
        instruct.to(torch.float32, copy=True)
        .mul_(1.0 - lam)
        .add_(thinking.to(torch.float32), alpha=lam)
        .to(dtype)
    )
    assert torch.equal(interpolate(instruct, thinking, lam), expected)
    assert torch.equal(instruct, before)  # the input is not scaled in place


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_all_finite_never_misses_nan_or_inf(dtype, bad):
    (tensor,) = _tensors(dtype, 1)
    assert all_finite(tensor)
    for index in (0, tensor.numel() // 2, tensor.numel() - 1):
        poisoned = tensor.clone()
        poisoned.view(-1)[index] = bad
        assert not all_finite(poisoned)
    both = tensor.clone()
    both.view(-1)[0], both.view(-1)[1] = float("inf"), float("-inf")  # sum is NaN, still caught
    assert not all_finite(both)


def test_all_finite_is_exact_when_the_sum_overflows():
    """Finite values whose sum overflows: the elementwise check has the last word."""
    huge = torch.full((64,), torch.finfo(torch.float32).max / 2)
    assert not torch.isfinite(huge.sum())
    assert all_finite(huge)
    half = torch.full((64,), 60000.0, dtype=torch.float16)
    assert all_finite(half)


def test_evenly_spaced_sample():
    small = torch.arange(100.0).reshape(10, 10)
    assert torch.equal(evenly_spaced(small, count=1000), small.reshape(-1))
    large = torch.arange(10_000.0).reshape(100, 100)
    sample = evenly_spaced(large, count=64)
    assert sample.numel() == 64
    assert torch.equal(sample, torch.arange(0.0, 64 * 156, 156))  # stride 10000 // 64
    assert sample.data_ptr() == large.data_ptr()  # a view, no copy


# ----------------------------------------------------------------------------- Gram route


def _with_spectrum(rows: int, cols: int, s: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """U diag(s) Vᵀ in float64 with random orthonormal U, V (known singular values)."""
    gen = torch.Generator().manual_seed(seed)
    u, _ = torch.linalg.qr(torch.randn(rows, len(s), generator=gen, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(cols, len(s), generator=gen, dtype=torch.float64))
    return (u * s) @ v.T


def _spectra(r: int) -> dict[str, torch.Tensor]:
    i = torch.arange(r, dtype=torch.float64)
    return {
        "flat-ish (k > r/2)": (i + 1) ** -0.3,
        "power-law 1": (i + 1) ** -1.0,
        "steep (k < r/2)": (i + 1) ** -2.5,
        "ill-conditioned": torch.logspace(0, -9, r, dtype=torch.float64),
    }


@pytest.mark.parametrize("shape", [(150, 90), (90, 150), (100, 100)])
def test_gram_matrix_upper_triangle_is_the_gram(shape):
    """The upper triangle (what eigh reads with UPLO="U") is MᵀM or MMᵀ, whichever is smaller."""
    from mergekit_weightlevel.numerics.spectral import gram_matrix

    matrix = torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    gram, right = gram_matrix(matrix)
    expected = matrix.T @ matrix if shape[1] <= shape[0] else matrix @ matrix.T
    assert right == (shape[1] <= shape[0])
    assert gram.shape == expected.shape
    assert torch.allclose(gram.triu(), expected.triu(), rtol=1e-13, atol=1e-12)


@pytest.mark.parametrize("shape", [(120, 80), (80, 120)])
@pytest.mark.parametrize("kind", list(_spectra(80)))
def test_kept_part_top_and_tail_bases_agree(shape, kind):
    """P_k(D) through the top-k basis and D − P_tail(D) through the tail basis are one matrix."""
    from mergekit_weightlevel.methods import timber as ts

    d64 = _with_spectrum(*shape, _spectra(min(shape))[kind])
    spectrum = ts.gram_spectrum(d64)

    def project(basis: torch.Tensor) -> torch.Tensor:  # D B Bᵀ, or B Bᵀ D with left vectors
        return (d64 @ basis) @ basis.T if spectrum.right else basis @ (basis.T @ d64)

    for k in (1, 17, 40, 63, 79):
        via_top = project(spectrum.top(k))
        via_tail = d64 - project(spectrum.tail(k))
        assert float((via_top - via_tail).norm() / d64.norm()) < 1e-12, (kind, k)
        # kept_part picks the narrower basis and works in row (column) blocks.
        blocked = ts.kept_part(d64, spectrum, k)
        assert float((blocked - via_top).norm() / d64.norm()) < 1e-12, (kind, k)


@pytest.mark.parametrize("shape", [(70, 30), (30, 70)])
def test_blocked_gram_and_kept_part_match_whole_matrix_float64(shape, monkeypatch):
    """Blocks of 8 rows (columns) give the Gram and P_k(D) of the whole-matrix computation."""
    from mergekit_weightlevel.methods import timber as ts
    from mergekit_weightlevel.numerics import spectral

    d64 = _with_spectrum(*shape, _spectra(min(shape))["power-law 1"], seed=3)
    whole = ts.gram_spectrum(d64)
    monkeypatch.setattr(spectral, "FLOAT64_BLOCK", 8)  # ragged: 70 = 8·8 + 6
    gram, right = spectral.gram_matrix(d64.float())
    expected = d64.T @ d64 if right else d64 @ d64.T
    assert torch.allclose(
        gram.triu(), expected.triu(), rtol=1e-6, atol=1e-6 * float(expected.abs().max())
    )
    blocked = {k: ts.kept_part(d64, whole, k) for k in (3, 20)}
    monkeypatch.setattr(spectral, "FLOAT64_BLOCK", 2048)  # one block: the whole matrix
    for k, kept in blocked.items():
        assert float((ts.kept_part(d64, whole, k) - kept).norm() / d64.norm()) < 1e-13


@pytest.mark.parametrize("eigensolver", ["eigh", "tridiagonal"])
@pytest.mark.parametrize("shape", [(160, 96), (96, 160)])
@pytest.mark.parametrize("kind", list(_spectra(8)))
def test_fast_timber_matches_float64_svd_reference(shape, kind, eigensolver, monkeypatch):
    """Both reconstruction routes (tail when k > r/2, else top-k) against an all-float64 SVD,
    with the eigenvectors from eigh and from the tridiagonal route of large Gram matrices."""
    from mergekit_weightlevel.methods import timber as ts
    from mergekit_weightlevel.numerics import spectral
    from mergekit_weightlevel.numerics.effective_rank import effective_rank

    if eigensolver == "tridiagonal":
        monkeypatch.setattr(spectral, "TRIDIAGONAL_MIN_SIZE", 1)
    delta = _with_spectrum(*shape, _spectra(min(shape))[kind]).float()
    fast = ts.gram_split(delta, exponent=1.0, name=kind)
    assert fast is not None and fast.solver == "gram"
    u, s, vh = torch.linalg.svd(delta.double(), full_matrices=False)
    k = math.ceil(effective_rank(s.float()))
    assert fast.k == k
    if kind.startswith("flat"):
        assert k > min(shape) / 2  # the tail route
    if kind.startswith("steep"):
        assert k < min(shape) / 2  # the top-k route
    for lam in (0.0, 0.2, 0.7):
        scaled = s.clone()
        scaled[k:] *= lam
        reference = (u * scaled) @ vh
        error = float((fast.apply(lam).double() - reference).norm() / reference.norm())
        assert error < 1e-6, (kind, lam, error)


@pytest.mark.parametrize("size", [2, 64, 65, 200])
def test_tridiagonal_gram_matches_eigh(size):
    """Eigenvalues, and eigenvectors of any index range (projectors: sign-free), as eigh's."""
    from mergekit_weightlevel.numerics.spectral import TridiagonalGram, gram_matrix

    gen = torch.Generator().manual_seed(size)
    matrix = torch.randn(size + 7, size, generator=gen, dtype=torch.float64)
    gram, _ = gram_matrix(matrix)
    values, vectors = torch.linalg.eigh(gram, UPLO="U")
    reduced = TridiagonalGram(gram.clone())
    scale = float(values.abs().max())
    assert float((reduced.eigenvalues - values).abs().max()) <= 1e-13 * scale
    for low, high in [(0, size), (0, size // 3), (size // 3, size), (size - 1, size)]:
        basis = reduced.vectors(low, high)
        assert basis.shape == (size, high - low)
        assert torch.allclose(
            basis.T @ basis, torch.eye(high - low, dtype=torch.float64), atol=1e-12
        )
        expected = vectors[:, low:high] @ vectors[:, low:high].T
        assert float((basis @ basis.T - expected).abs().max()) < 1e-10, (low, high)
    assert reduced.vectors(3, 3).shape == (size, 0)


def test_tridiagonal_failure_sends_timber_to_the_svd(monkeypatch):
    from scipy.linalg import lapack

    from mergekit_weightlevel.methods import timber as ts
    from mergekit_weightlevel.numerics import spectral

    monkeypatch.setattr(spectral, "TRIDIAGONAL_MIN_SIZE", 1)
    real_dstemr = lapack.dstemr

    def failing_dstemr(*args, **kwargs):
        found, values, vectors, _ = real_dstemr(*args, **kwargs)
        return found, values, vectors, 7  # LAPACK's "info": did not converge

    monkeypatch.setattr(lapack, "dstemr", failing_dstemr)
    delta = _with_spectrum(120, 80, _spectra(80)["power-law 1"]).float()
    assert ts.gram_split(delta, exponent=1.0, name="w") is None
    auto = ts.split_delta(delta, solver="auto", name="w")
    assert auto.solver == "svd"
    assert torch.equal(auto.apply(0.2), ts.split_delta(delta, solver="svd").apply(0.2))


@pytest.mark.parametrize("shape", [(300, 200), (200, 300)])
@pytest.mark.parametrize("kind", list(_spectra(8)))
def test_matrix_effective_rank_gram_route_matches_float64_svd(shape, kind, monkeypatch):
    """At least as close to the float64 SVD as a float32 SVD; the Gram route on smooth spectra.

    Spectra reaching 1e-6·σ_0 and below (steep, ill-conditioned) may fall back: the
    first-order bound counts √δ of error for each tiny σ, which is pessimistic but safe.
    """
    from mergekit_weightlevel.numerics import effective_rank

    matrix = _with_spectrum(*shape, _spectra(min(shape))[kind]).float()
    exact = effective_rank.effective_rank(torch.linalg.svdvals(matrix.double()))
    float32_svd = effective_rank.effective_rank(torch.linalg.svdvals(matrix))

    def no_svd(*args, **kwargs):
        raise AssertionError("the SVD fallback was used")

    if kind in ("flat-ish (k > r/2)", "power-law 1"):
        monkeypatch.setattr(effective_rank, "singular_values", no_svd)
    fast = effective_rank.matrix_effective_rank(matrix, name=kind)
    assert abs(fast - exact) / exact <= max(1e-9, abs(float32_svd - exact) / exact)


def test_matrix_effective_rank_falls_back_to_the_svd_where_the_bound_is_loose(monkeypatch):
    from mergekit_weightlevel.numerics import effective_rank, spectral

    matrix = _with_spectrum(300, 200, _spectra(200)["steep (k < r/2)"]).float()
    calls = []
    real = spectral.singular_values

    def counting(matrix, **kwargs):
        calls.append(kwargs.get("precision"))
        return real(matrix, **kwargs)

    monkeypatch.setattr(effective_rank, "singular_values", counting)
    value = effective_rank.matrix_effective_rank(matrix, name="w")
    assert calls == [torch.float32]
    assert value == effective_rank.effective_rank(torch.linalg.svdvals(matrix))
    # float64 precision always takes the SVD, in float64
    calls.clear()
    effective_rank.matrix_effective_rank(matrix.double(), precision=torch.float64, name="w")
    assert calls == [torch.float64]


@pytest.mark.cuda
def test_gram_routes_run_on_the_inputs_device():
    from mergekit_weightlevel.methods import timber as ts
    from mergekit_weightlevel.numerics import effective_rank

    delta = _with_spectrum(160, 96, _spectra(96)["power-law 1"]).float()
    cpu = ts.gram_split(delta, exponent=1.0, name="w")
    gpu = ts.gram_split(delta.cuda(), exponent=1.0, name="w")
    assert gpu is not None and gpu.kept.device.type == "cuda"
    assert float((gpu.kept.cpu() - cpu.kept).norm() / cpu.kept.norm()) < 1e-6
    assert abs(
        effective_rank.matrix_effective_rank(delta.cuda())
        - effective_rank.matrix_effective_rank(delta)
    ) < 1e-6 * effective_rank.matrix_effective_rank(delta)


# ----------------------------------------------------------------------------- analyze σ pass


def relative_frobenius_gap(a: torch.Tensor, b: torch.Tensor) -> float:
    """Oracle: ‖B − A‖_F / ‖A‖_F straight from whole float64 tensors."""
    a64 = a.to(torch.float64)
    gap = float(torch.linalg.vector_norm(b.to(torch.float64) - a64))
    reference = float(torch.linalg.vector_norm(a64))
    if reference > 0:
        return gap / reference
    return 0.0 if gap == 0 else math.inf


def cosine_similarity(a: torch.Tensor, b: torch.Tensor) -> float:
    """Oracle: ⟨A, B⟩ / (‖A‖_F ‖B‖_F) straight from whole float64 tensors."""
    a64 = a.to(torch.float64).flatten()
    b64 = b.to(torch.float64).flatten()
    norms = float(torch.linalg.vector_norm(a64) * torch.linalg.vector_norm(b64))
    return float(a64 @ b64) / norms if norms > 0 else 0.0


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("block", [7, 1 << 18])
def test_pair_statistics_match_the_separate_metrics(dtype, block, monkeypatch):
    from mergekit_weightlevel.numerics import pair_statistics

    monkeypatch.setattr(pair_statistics, "PAIR_STATISTICS_BLOCK", block)  # 7: many ragged blocks
    a, noise = _tensors(dtype, 2, shape=(41, 29))
    b = (a.float() + 0.05 * noise.float()).to(dtype)
    stats = pair_statistics.pair_statistics(a, b)
    numerator, denominator = pair_statistics.sigma_parts(a, b)
    # Each term is rounded at most once to float32 (2^-24 relative), sums are float64.
    rel = 2.0**-24
    assert stats.abs_diff == pytest.approx(numerator, rel=rel)
    assert stats.abs_a + stats.abs_b == pytest.approx(denominator, rel=rel)
    assert stats.sigma == pytest.approx(pair_statistics.sigma(a, b), rel=2 * rel)
    assert stats.rel_frobenius == pytest.approx(relative_frobenius_gap(a, b), rel=2 * rel)
    assert stats.cosine == pytest.approx(cosine_similarity(a, b), rel=2 * rel)


def test_pair_statistics_are_float64_exact_for_float64_inputs():
    from mergekit_weightlevel.numerics import pair_statistics

    a, noise = _tensors(torch.float64, 2, shape=(37, 23))
    b = a + 1e-3 * noise
    stats = pair_statistics.pair_statistics(a, b)
    assert stats.sigma == pytest.approx(pair_statistics.sigma(a, b), rel=1e-13)
    assert stats.cosine == pytest.approx(cosine_similarity(a, b), rel=1e-13)
    assert stats.rel_frobenius == pytest.approx(relative_frobenius_gap(a, b), rel=1e-12)


def test_pair_statistics_edge_cases():
    from mergekit_weightlevel.numerics import pair_statistics

    zero, ones = torch.zeros(3, 4), torch.ones(3, 4)
    both_zero = pair_statistics.pair_statistics(zero, zero)
    assert (both_zero.sigma, both_zero.rel_frobenius, both_zero.cosine) == (0.0, 0.0, 0.0)
    from_zero = pair_statistics.pair_statistics(zero, ones)
    assert from_zero.rel_frobenius == math.inf and from_zero.cosine == 0.0
    assert from_zero.sigma == 1.0
    with pytest.raises(ValueError, match="one shape"):
        pair_statistics.pair_statistics(zero, torch.zeros(4, 3))


def test_pair_statistics_leave_float64_inputs_untouched():
    from mergekit_weightlevel.numerics import pair_statistics

    a = -torch.rand(5, 7, dtype=torch.float64)
    b = -torch.rand(5, 7, dtype=torch.float64)
    a_before, b_before = a.clone(), b.clone()
    stats = pair_statistics.pair_statistics(a, b)
    assert torch.equal(a, a_before) and torch.equal(b, b_before)
    assert stats.abs_a == pytest.approx(float(a.abs().sum()), rel=1e-14)

"""The cheaper kernels of issue 5 agree with the straightforward formulas they replace."""

from __future__ import annotations

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

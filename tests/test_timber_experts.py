"""Timber on stacked experts: one decomposition per expert matrix, as timber.py per expert."""

from __future__ import annotations

import warnings

import pytest
import torch
from architectures import timber_py_tensor

from mergekit_weightlevel.methods import timber as ts
from mergekit_weightlevel.numerics.spectral import SVDFailure

EXPERTS, INTER, HIDDEN = 3, 12, 10


def pair(shape, seed=0):
    gen = torch.Generator().manual_seed(seed)
    base = torch.randn(shape, generator=gen)
    return base, base + 0.05 * torch.randn(shape, generator=gen)


@pytest.mark.parametrize("solver", ["auto", "svd"])
def test_gate_up_is_decomposed_per_expert_and_per_half(solver):
    base, instruct = pair((EXPERTS, 2 * INTER, HIDDEN))
    lambdas = [0.0, 0.2, 1.0, 0.2]
    outputs = ts.timber_tensors(
        base, instruct, lambdas, solver=solver, name="model.layers.0.mlp.experts.gate_up_proj"
    )
    for lam, out in zip(lambdas, outputs):
        if lam == 1.0:
            assert torch.equal(out, instruct)
            continue
        for expert in range(EXPERTS):
            for half in (slice(0, INTER), slice(INTER, 2 * INTER)):  # gate_proj, then up_proj
                official = timber_py_tensor(base[expert, half], instruct[expert, half], lam)
                error = (out[expert, half].double() - official).norm() / official.norm()
                assert error <= 1e-6, (lam, expert, half, float(error))
    # Not the old E × rest reading, which keeps every direction (rank ≤ E).
    assert not torch.allclose(outputs[1], instruct, atol=1e-6)


def test_down_proj_per_expert_and_other_3d_tensors_as_before():
    base, instruct = pair((EXPERTS, HIDDEN, INTER), seed=1)
    (out,) = ts.timber_tensors(base, instruct, [0.2], name="model.layers.3.mlp.experts.down_proj")
    for expert in range(EXPERTS):
        official = timber_py_tensor(base[expert], instruct[expert], 0.2)
        assert torch.allclose(out[expert].double(), official, atol=1e-6)
    (conv,) = ts.timber_tensors(base, instruct, [0.2], name="encoder.conv.weight")
    assert torch.allclose(conv.double(), timber_py_tensor(base, instruct, 0.2), atol=1e-6)


def test_a_failed_expert_matrix_keeps_its_instruct_weights_with_a_warning(monkeypatch):
    base, instruct = pair((EXPERTS, 2 * INTER, HIDDEN), seed=2)
    real = ts.split_delta

    def failing(matrix, *, name, **kwargs):
        if name == "model.layers.0.mlp.experts.1.up_proj.weight":
            raise SVDFailure("did not converge")
        return real(matrix, name=name, **kwargs)

    from mergekit_weightlevel.methods.timber import kernel

    monkeypatch.setattr(kernel, "split_delta", failing)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        (out,) = ts.timber_tensors(
            base, instruct, [0.2], name="model.layers.0.mlp.experts.gate_up_proj"
        )
    assert any("experts.1.up_proj.weight did not converge" in str(w.message) for w in caught)
    assert torch.allclose(out[1, INTER:], instruct[1, INTER:], atol=1e-6)
    official = timber_py_tensor(base[1, :INTER], instruct[1, :INTER], 0.2)
    assert torch.allclose(out[1, :INTER].double(), official, atol=1e-6)

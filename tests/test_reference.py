"""The float64 references (reference.py) against numbers worked out by hand, so that the
oracles of the method tests are themselves checked."""

from __future__ import annotations

import math

import torch

from mergekit_weightlevel import reference


def test_effective_rank_by_hand():
    s = torch.tensor([3.0, 1.0], dtype=torch.float64)
    p = [0.75, 0.25]
    hand = math.exp(-sum(x * math.log(x + 1e-9) for x in p))
    assert reference.effective_rank(s) == hand
    assert reference.effective_rank(torch.zeros(3)) == 0.0


def test_timber_keeps_the_top_k_and_scales_the_rest():
    # ΔW = diag(3, 1, 0.5): eRank ≈ 2.3, so k = 3 keeps everything; λ has nothing to scale.
    base = torch.zeros(3, 3)
    delta = torch.diag(torch.tensor([3.0, 1.0, 0.5]))
    assert torch.allclose(reference.timber_tensor(base, delta, 0.0), delta.double())
    # One dominant direction and a small tail: eRank just above 1, k = 2, the third × λ.
    delta = torch.diag(torch.tensor([10.0, 0.2, 0.1]))
    k = math.ceil(reference.effective_rank(torch.tensor([10.0, 0.2, 0.1])))
    assert k == 2
    expected = torch.diag(torch.tensor([10.0, 0.2, 0.05], dtype=torch.float64))
    assert torch.allclose(reference.timber_tensor(base, delta, 0.5), expected)
    vector = torch.ones(4)
    assert torch.equal(reference.timber_tensor(torch.zeros(4), vector, 0.5), vector.double())


def test_the_linear_methods_by_hand():
    a, b, c = (torch.full((2,), v) for v in (1.0, 3.0, 10.0))
    assert torch.equal(
        reference.paramdelta_tensor(a, c, [(b, 1.0)]), torch.full((2,), 12.0).double()
    )
    assert torch.equal(reference.interp_tensor(a, b, 0.25), torch.full((2,), 1.5).double())
    grafted = reference.shadow_graft_tensor(
        "model.layers.0.self_attn.q_proj.weight", a, b, c, "q_proj"
    )
    assert torch.equal(grafted, torch.full((2,), 12.0).double())
    assert torch.equal(reference.shadow_graft_tensor("norm.weight", a, b, c, "q_proj"), c.double())

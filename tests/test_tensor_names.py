"""tensor_names: the one home of name rules agrees with itself on every supported architecture."""

from __future__ import annotations

import re

import pytest
from architectures import FAMILIES, MOE_FAMILIES
from helpers import read_state

from mergekit_weightlevel.tensor_names import (
    DEFAULT_PROJECTIONS,
    expert_matrices,
    is_embedding,
    is_projection,
    module_type,
    stacked_expert_names,
)

MLP_KINDS = {"up", "down", "gate_up", "expert.gate_up", "expert.down"}


@pytest.mark.parametrize("name", list(FAMILIES))
def test_default_include_regex_and_module_types_agree(arch_family, name):
    """Every stored tensor (and mergekit's stacked expert names for MoE): the regex that
    shadow_graft uses selects exactly the tensors whose module type is a projection, and
    every layer has attention and MLP projections."""
    names = list(read_state(arch_family(name).instruct))
    if name in MOE_FAMILIES:
        names += ["model.layers.0.mlp.experts.gate_up_proj", "model.layers.0.mlp.experts.down_proj"]
    for tensor in names:
        assert bool(re.search(DEFAULT_PROJECTIONS, tensor, re.I)) == is_projection(tensor), tensor
        assert not (is_projection(tensor) and is_embedding(tensor)), tensor
    kinds = {module_type(t).removesuffix(".bias") for t in names if is_projection(t)}
    assert kinds & {"q", "qkv"} and kinds & {"o"} and kinds & MLP_KINDS, kinds


def test_expert_matrix_names_are_the_split_names():
    shape = (3, 8, 5)
    for stacked in (
        "model.layers.2.mlp.experts.gate_up_proj",
        "model.layers.2.mlp.experts.down_proj",
    ):
        matrices = expert_matrices(stacked, shape)
        assert [m.name for m in matrices] == stacked_expert_names(stacked, shape[0])
        assert {module_type(m.name) for m in matrices} <= {
            "expert.gate",
            "expert.up",
            "expert.down",
        }
    assert expert_matrices("model.layers.2.mlp.gate_up_proj.weight", (8, 5)) is None
    assert expert_matrices("model.layers.2.mlp.experts.gate_up_proj", (3, 7, 5)) is None  # odd


def test_llama4_stacked_gate_up_is_split_on_its_last_axis():
    """Llama 4 stores feed_forward.experts.gate_up_proj as [E, H, 2I]."""
    matrices = expert_matrices("model.layers.0.feed_forward.experts.gate_up_proj", (2, 6, 8))
    gate, up = matrices[0], matrices[1]
    assert gate.index == (0, slice(None), slice(0, 4)) and up.index == (0, slice(None), slice(4, 8))
    assert (gate.name, up.name) == (
        "model.layers.0.feed_forward.experts.0.gate_proj.weight",
        "model.layers.0.feed_forward.experts.0.up_proj.weight",
    )

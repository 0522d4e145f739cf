"""shadow_graft's `include` is checked against the target's tensors before the first graft."""

from __future__ import annotations

import logging

import pytest
from helpers import run_yaml_merge

from mergekit_weightlevel.checks import grafting
from mergekit_weightlevel.errors import WeightLevelConfigError
from mergekit_weightlevel.method_configs import shadow_graft_config


def graft(family, tmp_path, include=None):
    parameters = None if include is None else {"include": include}
    config = shadow_graft_config(
        family.base, family.tuned, family.instruct, parameters=parameters, dtype="float32"
    )
    return run_yaml_merge(config, tmp_path / "out")


def test_include_matching_nothing_is_an_error_naming_what_it_could_have_meant(
    arch_family, tmp_path
):
    family = arch_family("llama")
    with pytest.raises(WeightLevelConfigError) as caught:
        graft(family, tmp_path, include="q_prj")
    message = str(caught.value)
    assert "shadow_graft: parameter `include` ('q_prj') matches none of the" in message
    assert "model.layers.0.self_attn.q_proj.weight" in message  # what it could have meant
    assert not (tmp_path / "out" / "model.safetensors").exists()


@pytest.mark.parametrize("name", ["qwen3_moe", "qwen2_moe"])  # qwen2_moe: layout inferred
def test_include_is_matched_against_mergekit_names_not_the_per_expert_checkpoint(
    arch_family, tmp_path, name
):
    """`experts\\.\\d+` matches the checkpoint's per-expert names, which mergekit never hands to
    the method (it stacks them): nothing would be grafted, so it is an error."""
    family = arch_family(name)
    with pytest.raises(WeightLevelConfigError, match=r"stacked, e\.g\. `mlp\.experts"):
        graft(family, tmp_path, include=r"experts\.\d+\.")


def test_include_taking_attention_but_no_mlp_warns_with_what_it_left_out(
    arch_family, tmp_path, caplog
):
    family = arch_family("llama")
    with caplog.at_level(logging.WARNING, logger=grafting.__name__):
        graft(family, tmp_path, include="self_attn")
    warnings = [r.getMessage() for r in caplog.records if "leaves out" in r.getMessage()]
    assert len(warnings) == 1, warnings  # once per merge, not per tensor
    assert "grafts the k, o, q, v projections" in warnings[0]
    assert "leaves out their down, gate, up projections" in warnings[0]
    assert "model.layers.0.mlp.down_proj.weight" in warnings[0]


@pytest.mark.parametrize("name", ["gpt2", "mixtral"])
def test_default_include_gives_neither_error_nor_warning(arch_family, tmp_path, caplog, name):
    with caplog.at_level(logging.WARNING, logger=grafting.__name__):
        graft(arch_family(name), tmp_path)
    assert not [r for r in caplog.records if "include" in r.getMessage()]

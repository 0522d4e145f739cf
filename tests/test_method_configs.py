"""The config builders (method_configs): each builds the literal config the demo, the toy and
the benchmarks wrote out before, which mergekit validates and merges to the same tensors."""

from __future__ import annotations

import pytest
import torch
from helpers import run_yaml_merge
from mergekit.config import MergeConfiguration

from mergekit_weightlevel.demo import demo_lora_adapter
from mergekit_weightlevel.method_configs import (
    interp_config,
    paramdelta_config,
    shadow_graft_adapter_config,
    shadow_graft_config,
    timber_config,
)


def cases(family, adapter):
    """(name, built, the literal dict it replaces) for every builder."""
    base, instruct = str(family.base), str(family.instruct)
    return [
        (
            "paramdelta",
            paramdelta_config(family.base, family.instruct, family.base_v2, dtype="float32"),
            {
                "merge_method": "paramdelta",
                "base_model": base,
                "models": [
                    {"model": instruct},
                    {"model": str(family.base_v2), "parameters": {"role": "target"}},
                ],
                "dtype": "float32",
            },
        ),
        (
            "paramdelta, weighted donors",
            paramdelta_config(
                family.base, [(family.instruct, 0.8), (family.thinking, 0.3)], family.base_v2
            ),
            {
                "merge_method": "paramdelta",
                "base_model": base,
                "models": [
                    {"model": instruct, "parameters": {"weight": 0.8}},
                    {"model": str(family.thinking), "parameters": {"weight": 0.3}},
                    {"model": str(family.base_v2), "parameters": {"role": "target"}},
                ],
            },
        ),
        (
            "shadow_graft",
            shadow_graft_config(family.base, family.base_tuned, family.instruct, dtype="float32"),
            {
                "merge_method": "shadow_graft",
                "base_model": base,
                "models": [
                    {"model": str(family.base_tuned)},
                    {"model": instruct, "parameters": {"role": "target"}},
                ],
                "dtype": "float32",
            },
        ),
        (
            "shadow_graft_adapter",
            shadow_graft_adapter_config(adapter, family.instruct, dtype="float32"),
            {
                "merge_method": "shadow_graft",
                "models": [{"model": instruct, "parameters": {"role": "target"}}],
                "parameters": {"adapter": str(adapter)},
                "dtype": "float32",
            },
        ),
        (
            "interp",
            interp_config(family.instruct, family.thinking, 0.8, dtype="float32"),
            {
                "merge_method": "instruct_thinking_interp",
                "base_model": instruct,
                "models": [{"model": str(family.thinking)}],
                "parameters": {"lambda": 0.8},
                "dtype": "float32",
            },
        ),
        (
            "timber",
            timber_config(
                family.base, family.instruct, 0.2, parameters={"solver": "svd"}, dtype="float32"
            ),
            {
                "merge_method": "timber_spectral",
                "base_model": base,
                "models": [{"model": instruct}],
                "parameters": {"lambda": 0.2, "solver": "svd"},
                "dtype": "float32",
            },
        ),
    ]


@pytest.fixture(scope="module")
def adapter(llama_family, tmp_path_factory):
    return demo_lora_adapter(llama_family, tmp_path_factory.mktemp("configs") / "base_lora")


@pytest.mark.parametrize("index", range(5))
def test_builder_is_the_literal_config_and_merges_the_same(llama_family, adapter, tmp_path, index):
    name, built, literal = cases(llama_family, adapter)[index]
    assert built == literal
    assert list(built) == list(literal)  # the key order of the YAML files written from it
    MergeConfiguration.model_validate(built)
    merged = run_yaml_merge(built, tmp_path / f"built-{name}")
    expected = run_yaml_merge(literal, tmp_path / f"literal-{name}")
    assert merged.keys() == expected.keys()
    for tensor_name, tensor in merged.items():
        assert torch.equal(tensor, expected[tensor_name]), tensor_name


def test_parameters_only_when_given(llama_family):
    assert "parameters" not in timber_config(llama_family.base, llama_family.instruct)
    assert "dtype" not in timber_config(llama_family.base, llama_family.instruct, 0.2)
    # the sweep sets λ per run on an empty parameters block
    sweep = timber_config(llama_family.base, llama_family.instruct, parameters={})
    assert sweep["parameters"] == {}

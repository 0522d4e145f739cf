"""paramdelta: the paper's formula, mergekit's task_arithmetic as oracle, and its errors."""

from __future__ import annotations

import pytest
import torch
from helpers import read_state, run_yaml_merge
from mergekit.merge_methods import merge_state_dicts

from mergekit_weightlevel import method_configs, reference
from mergekit_weightlevel.errors import WeightLevelConfigError


def float64_paramdelta(target, base, donors):
    """The float64 reference, Θ'_base + Σ w·(Θ_post − Θ_base), of whole state dicts."""
    return {
        name: reference.paramdelta_tensor(
            base[name], tensor, [(donor[name], w) for donor, w in donors]
        )
        for name, tensor in target.items()
    }


def paramdelta_config(family, donors, dtype="float32", base=None):
    return method_configs.paramdelta_config(
        base or family.base, donors, family.base_v2, dtype=dtype
    )


def task_arithmetic_config(family, donors, dtype="float32"):
    return {
        "merge_method": "task_arithmetic",
        "base_model": str(family.base),
        "models": [
            *({"model": str(path), "parameters": {"weight": w}} for path, w in donors),
            {"model": str(family.base_v2), "parameters": {"weight": 1.0}},
        ],
        "parameters": {"normalize": False},
        "dtype": dtype,
    }


@pytest.mark.parametrize("arch", ["llama", "qwen2", "qwen3"])
def test_paper_formula_against_float64(all_families, arch, tmp_path):
    family = all_families[arch]
    out = run_yaml_merge(paramdelta_config(family, [(family.instruct, 1.0)]), tmp_path / "out")
    base, post, target = (read_state(p) for p in (family.base, family.instruct, family.base_v2))
    expected = float64_paramdelta(target, base, [(post, 1.0)])
    assert set(out) == set(expected)
    for name, tensor in out.items():
        assert tensor.dtype == torch.float32
        assert torch.allclose(tensor.double(), expected[name], rtol=0, atol=1e-6), name


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_equals_task_arithmetic_with_several_donors(all_families, arch, tmp_path):
    family = all_families[arch]
    donors = [(family.instruct, 0.7), (family.thinking, 0.5), (family.base_tuned, -0.25)]
    ours = run_yaml_merge(paramdelta_config(family, donors), tmp_path / "ours")
    oracle = run_yaml_merge(task_arithmetic_config(family, donors), tmp_path / "oracle")
    assert set(ours) == set(oracle)
    for name in ours:
        torch.testing.assert_close(ours[name], oracle[name], rtol=1e-6, atol=1e-6)
    # And it is not trivially the target: the deltas did something.
    target = read_state(family.base_v2)
    assert any(not torch.equal(ours[n], target[n]) for n in ours)


def test_bf16_inputs_match_task_arithmetic_in_float32(qwen3_bf16_family, tmp_path):
    """bf16 checkpoints: we compute in float32 and return bf16, like task_arithmetic at dtype float32."""
    family = qwen3_bf16_family
    donors = [(family.instruct, 1.0), (family.thinking, 0.5)]
    ours = run_yaml_merge(paramdelta_config(family, donors, dtype="bfloat16"), tmp_path / "ours")
    oracle_config = task_arithmetic_config(family, donors, dtype="float32")
    oracle_config["out_dtype"] = "bfloat16"
    oracle = run_yaml_merge(oracle_config, tmp_path / "oracle")
    for name in ours:
        assert ours[name].dtype == torch.bfloat16
        torch.testing.assert_close(ours[name], oracle[name], rtol=0, atol=0)


def test_weight_zero_returns_target_in_memory():
    gen = torch.Generator().manual_seed(0)
    state = lambda: {"w": torch.randn(8, 4, generator=gen), "b": torch.randn(8, generator=gen)}  # noqa: E731
    base, post, target = state(), state(), state()
    out = merge_state_dicts(
        {"base": base, "post": post, "target": target},
        "paramdelta",
        base="base",
        parameters={"role": [None, None, "target"], "weight": {"post": 0.0, "target": 1.0}},
    )
    for name in target:
        assert torch.equal(out[name], target[name])


def _merge(roles, weight=None):
    gen = torch.Generator().manual_seed(1)
    models = {k: {"w": torch.randn(4, 4, generator=gen)} for k in ("base", "a", "b")}
    parameters = {"role": roles}
    if weight is not None:
        parameters["weight"] = weight
    return merge_state_dicts(models, "paramdelta", base="base", parameters=parameters)


def test_error_no_target():
    with pytest.raises(
        WeightLevelConfigError, match=r"paramdelta: no model has `role: target`.*a, b"
    ):
        _merge([None, None, None])


def test_error_two_targets():
    with pytest.raises(
        WeightLevelConfigError, match=r"paramdelta: 2 models have `role: target` \(a, b\)"
    ):
        _merge([None, "target", "target"])


def test_error_role_on_base():
    with pytest.raises(
        WeightLevelConfigError, match=r"paramdelta: the base model base has `role: target`"
    ):
        _merge(["target", "target", None])


def test_error_unknown_role():
    with pytest.raises(
        Exception, match=r"paramdelta: parameter `role` must be one of 'target', 'donor'"
    ):
        _merge([None, "targte", None])


def test_error_no_base(llama_family, tmp_path):
    config = paramdelta_config(llama_family, [(llama_family.instruct, 1.0)])
    del config["base_model"]
    with pytest.raises(
        WeightLevelConfigError,
        match=r"paramdelta: Merge method requires a base input.*needs `base_model:`",
    ):
        run_yaml_merge(config, tmp_path / "out")
    assert (
        not list((tmp_path / "out").glob("*.safetensors")) if (tmp_path / "out").exists() else True
    )


def test_error_role_on_base_from_yaml_writes_nothing(llama_family, tmp_path):
    config = paramdelta_config(llama_family, [(llama_family.instruct, 1.0)])
    config["models"].append({"model": str(llama_family.base), "parameters": {"role": "target"}})
    with pytest.raises(WeightLevelConfigError, match="the base model .*base has `role: target`"):
        run_yaml_merge(config, tmp_path / "out")
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").glob("*.safetensors"))


def test_error_only_target_no_donor(llama_family, tmp_path):
    config = paramdelta_config(llama_family, [])
    with pytest.raises(
        WeightLevelConfigError,
        match=r"paramdelta: Merge method requires at least 2 non-base inputs",
    ):
        run_yaml_merge(config, tmp_path / "out")

"""instruct_thinking_interp: mergekit's `linear` as oracle, endpoints, filters, gradients,
the paper's ablation examples, and the configuration errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import load_example, read_state, run_yaml_merge
from hypothesis import given, settings
from hypothesis import strategies as st
from mergekit.merge_methods import merge_state_dicts

from mergekit_weightlevel import method_configs, reference
from mergekit_weightlevel.demo.tiny_models import TinyFamily, build_family
from mergekit_weightlevel.errors import WeightLevelConfigError
from mergekit_weightlevel.methods.instruct_thinking_interp import interpolate

NAME = "instruct_thinking_interp"


def interp_config(family, lam, dtype="float32"):
    return method_configs.interp_config(family.instruct, family.thinking, lam, dtype=dtype)


def linear_config(family, lam, *, normalize, dtype="float32"):
    return {
        "merge_method": "linear",
        "models": [
            {"model": str(family.instruct), "parameters": {"weight": 1.0 - lam}},
            {"model": str(family.thinking), "parameters": {"weight": lam}},
        ],
        "parameters": {"normalize": normalize},
        "dtype": dtype,
    }


float64_interp = reference.interp_tensor  # the paper's formula in float64


def fitted_lambda(out, instruct, thinking) -> float:
    """The λ that best explains ``out`` as a point on the Instruct → Thinking line."""
    direction = thinking.double() - instruct.double()
    return float(((out.double() - instruct.double()) * direction).sum() / direction.pow(2).sum())


def assert_interpolated(out, instruct, thinking, lam, name):
    expected = float64_interp(instruct, thinking, lam)
    torch.testing.assert_close(out.double(), expected, rtol=0, atol=1e-6, msg=name)


# --- The formula, against mergekit's `linear` and a float64 re-computation -------------------


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("arch", ["llama", "qwen2"])
@pytest.mark.parametrize("lam", [0.8, 0.37])
def test_equals_mergekit_linear(all_families, arch, lam, normalize, tmp_path):
    family = all_families[arch]
    ours = run_yaml_merge(interp_config(family, lam), tmp_path / "ours")
    oracle = run_yaml_merge(linear_config(family, lam, normalize=normalize), tmp_path / "oracle")
    instruct, thinking = read_state(family.instruct), read_state(family.thinking)
    assert set(ours) == set(oracle) == set(instruct)
    for name in ours:
        assert ours[name].dtype == torch.float32
        # Same operations as `linear`: equal to one float32 rounding (bit for bit here).
        torch.testing.assert_close(ours[name], oracle[name], rtol=1.2e-7, atol=1e-9)
        assert_interpolated(ours[name], instruct[name], thinking[name], lam, name)


def test_bf16_matches_linear_in_float32(qwen3_bf16_family, tmp_path):
    """bf16 checkpoints: float32 arithmetic, bf16 result, like `linear` at dtype float32."""
    family, lam = qwen3_bf16_family, 0.8
    ours = run_yaml_merge(interp_config(family, lam, dtype="bfloat16"), tmp_path / "ours")
    oracle_config = linear_config(family, lam, normalize=True, dtype="float32")
    oracle_config["out_dtype"] = "bfloat16"
    oracle = run_yaml_merge(oracle_config, tmp_path / "oracle")
    instruct, thinking = read_state(family.instruct), read_state(family.thinking)
    equal = total = 0
    for name in ours:
        assert ours[name].dtype == torch.bfloat16
        # At most one bf16 rounding step apart (a float32 ulp can tip a bf16 rounding).
        torch.testing.assert_close(ours[name], oracle[name], rtol=2**-7, atol=0)
        equal += int((ours[name] == oracle[name]).sum())
        total += ours[name].numel()
        # And not bf16 arithmetic: within half a bf16 ulp of the exact float64 result
        # (plus float32 rounding, which shows where Instruct and Thinking nearly cancel).
        exact = float64_interp(instruct[name], thinking[name], lam)
        assert ((ours[name].double() - exact).abs() <= exact.abs() * 2**-8 + 1e-9).all(), name
    assert equal / total > 0.999


@pytest.mark.parametrize("arch", ["llama", "qwen3"])
@pytest.mark.parametrize("lam", [0.0, 1.0])
def test_endpoints_return_the_models_exactly(all_families, arch, lam, tmp_path):
    family = all_families[arch]
    dtype = "bfloat16" if arch == "qwen3" else "float32"
    out = run_yaml_merge(interp_config(family, lam, dtype=dtype), tmp_path / "out")
    expected = read_state(family.thinking if lam == 1.0 else family.instruct)
    assert set(out) == set(expected)
    for name in out:
        assert torch.equal(out[name], expected[name]), name


# --- mergekit's filters, gradients and slices on `lambda` -------------------------------------


def test_filter_keeps_mlp_at_instruct(llama_family, tmp_path):
    config = interp_config(llama_family, [{"filter": "mlp", "value": 0.0}, {"value": 0.6}])
    out = run_yaml_merge(config, tmp_path / "out")
    instruct, thinking = read_state(llama_family.instruct), read_state(llama_family.thinking)
    for name in out:
        if ".mlp." in name:
            assert torch.equal(out[name], instruct[name]), name
        else:
            assert_interpolated(out[name], instruct[name], thinking[name], 0.6, name)


@pytest.fixture(scope="module")
def three_layer_family(tmp_path_factory) -> TinyFamily:
    """Three layers, so a two-point gradient has a middle layer to interpolate."""
    return build_family(tmp_path_factory.mktemp("three"), arch="qwen3", layers=3)


def test_layer_gradient(three_layer_family, tmp_path):
    family = three_layer_family
    out = run_yaml_merge(interp_config(family, [0.2, 0.8]), tmp_path / "out")
    instruct, thinking = read_state(family.instruct), read_state(family.thinking)
    for name in out:
        # mergekit's gradients: layer i of n gets the value at t = i / (n − 1); tensors
        # outside the layers (embeddings, final norm, lm_head) get the first value.
        if ".layers." in name:
            layer = int(name.split(".layers.")[1].split(".")[0])
            lam = 0.2 + (0.8 - 0.2) * layer / 2
        else:
            lam = 0.2
        assert_interpolated(out[name], instruct[name], thinking[name], lam, name)
        assert abs(fitted_lambda(out[name], instruct[name], thinking[name]) - lam) < 1e-5, name


# --- The example configs of the paper's ablations ---------------------------------------------


@pytest.fixture(scope="module")
def demo_with_chat_templates(tmp_path_factory) -> TinyFamily:
    """The demo layout, with different chat templates on Instruct and Thinking."""
    family = build_family(tmp_path_factory.mktemp("demo") / "weightlevel-demo" / "models")
    from transformers import AutoTokenizer

    for variant in ("instruct", "thinking"):
        path = getattr(family, variant)
        tokenizer = AutoTokenizer.from_pretrained(path)
        tokenizer.chat_template = chat_template(variant)
        tokenizer.save_pretrained(path)
    return family


def chat_template(variant: str) -> str:
    return "{% for m in messages %}" + variant + ": {{ m['content'] }}\n{% endfor %}"


def run_example(name: str, family: TinyFamily, out: Path) -> dict[str, torch.Tensor]:
    """An example config merged as users run it (tokenizer copying on)."""
    return run_yaml_merge(load_example(name, family.root.parent.parent), out, copy_tokenizer=True)


def example_states(family):
    return read_state(family.instruct), read_state(family.thinking)


def test_example_whole_model(demo_with_chat_templates, tmp_path):
    family = demo_with_chat_templates
    out = run_example("instruct_thinking_interp.yml", family, tmp_path / "out")
    instruct, thinking = example_states(family)
    assert set(out) == set(instruct)
    for name in out:
        assert_interpolated(out[name], instruct[name], thinking[name], 0.8, name)
    # Tokenizer and chat template come from the Thinking model, as the official script does,
    # with no `tokenizer:` section in the example (output_files' default).
    from transformers import AutoTokenizer

    merged = AutoTokenizer.from_pretrained(tmp_path / "out")
    assert merged.chat_template == chat_template("thinking")
    assert merged.get_vocab() == AutoTokenizer.from_pretrained(family.thinking).get_vocab()


@pytest.mark.parametrize(
    ("example", "kept"),
    [
        ("instruct_thinking_interp_wo_ffn.yml", ".mlp."),
        ("instruct_thinking_interp_wo_attn.yml", ".self_attn."),
    ],
)
def test_example_module_ablation(demo_with_chat_templates, example, kept, tmp_path):
    family = demo_with_chat_templates
    out = run_example(example, family, tmp_path / "out")
    instruct, thinking = example_states(family)
    kept_names = [name for name in out if kept in name]
    assert len(kept_names) >= 2 * 3  # both layers' q/k/v/o or gate/up/down
    for name in out:
        if kept in name:
            assert torch.equal(out[name], instruct[name]), name
        else:
            assert_interpolated(out[name], instruct[name], thinking[name], 0.8, name)


def test_example_last_two_thirds_of_layers(demo_with_chat_templates, tmp_path):
    family = demo_with_chat_templates
    out = run_example("instruct_thinking_interp_layers.yml", family, tmp_path / "out")
    instruct, thinking = example_states(family)
    assert set(out) == set(instruct)
    for name in out:
        if name.startswith("model.layers.0."):
            assert torch.equal(out[name], instruct[name]), name
        else:  # layer 1, embeddings, final norm, lm_head
            assert_interpolated(out[name], instruct[name], thinking[name], 0.8, name)
    assert any(name.startswith("model.layers.1.") for name in out)


# --- The kernel itself -------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(lam=st.floats(0.0, 1.0), seed=st.integers(0, 2**16))
def test_kernel_is_a_convex_combination(lam, seed):
    gen = torch.Generator().manual_seed(seed)
    instruct, thinking = torch.randn(3, 5, generator=gen), torch.randn(3, 5, generator=gen)
    out = interpolate(instruct, thinking, lam)
    torch.testing.assert_close(
        out.double(), float64_interp(instruct, thinking, lam), rtol=0, atol=1e-6
    )
    low, high = torch.minimum(instruct, thinking), torch.maximum(instruct, thinking)
    assert ((out >= low - 1e-6) & (out <= high + 1e-6)).all()


def test_kernel_endpoints_keep_non_finite_values_and_dtypes():
    instruct = torch.tensor([1.0, float("inf"), -2.0], dtype=torch.bfloat16)
    thinking = torch.tensor([3.0, 0.5, float("-inf")], dtype=torch.bfloat16)
    assert torch.equal(interpolate(instruct, thinking, 0.0), instruct)
    assert torch.equal(interpolate(instruct, thinking, 1.0), thinking)
    assert interpolate(instruct, thinking, 0.5).dtype == torch.bfloat16


def test_kernel_float64_inputs_stay_float64():
    instruct = torch.tensor([1.0, 1e-17], dtype=torch.float64)
    thinking = torch.tensor([1.0 + 2**-40, 0.0], dtype=torch.float64)
    out = merge_state_dicts(
        {"i": {"w": instruct}, "t": {"w": thinking}}, NAME, base="i", parameters={"lambda": 0.5}
    )["w"]
    assert out.dtype == torch.float64
    assert out[0] == 1.0 + 2**-41 and out[1] == 0.5e-17  # float32 would lose both


# --- Errors ------------------------------------------------------------------------------------


def assert_nothing_written(out: Path) -> None:
    assert not out.exists() or not list(out.glob("*.safetensors"))


@pytest.mark.parametrize(
    "lam", [1.5, -0.1, [0.2, 1.2], [{"filter": "mlp", "value": 2.0}, {"value": 0.5}]]
)
def test_error_lambda_out_of_range(llama_family, lam, tmp_path):
    with pytest.raises(
        ValueError, match=rf"{NAME}: parameter `lambda` must be a float in \[0, 1\]"
    ):
        run_yaml_merge(interp_config(llama_family, lam), tmp_path / "out")
    assert_nothing_written(tmp_path / "out")


@pytest.mark.parametrize("lam", [None, [{"filter": "mlp", "value": 0.5}]])
def test_error_lambda_missing(llama_family, lam, tmp_path):
    """No lambda at all, or filters that leave some tensors without one."""
    with pytest.raises(ValueError, match=rf"{NAME}: parameter `lambda` is required"):
        run_yaml_merge(interp_config(llama_family, lam), tmp_path / "out")
    assert_nothing_written(tmp_path / "out")


def test_error_lambda_missing_in_memory():
    states = {"i": {"w": torch.zeros(2)}, "t": {"w": torch.ones(2)}}
    with pytest.raises(ValueError, match=rf"{NAME}: parameter `lambda` is required"):
        merge_state_dicts(states, NAME, base="i")


def test_error_two_other_models(llama_family, tmp_path):
    config = interp_config(llama_family, 0.5)
    config["models"].append({"model": str(llama_family.base_v2)})
    with pytest.raises(
        WeightLevelConfigError,
        match=rf"{NAME}: .*exactly 1 non-base inputs.*got 2.*thinking, .*base_v2.*exactly one other model",
    ):
        run_yaml_merge(config, tmp_path / "out")
    assert_nothing_written(tmp_path / "out")


def test_error_no_thinking_model(llama_family, tmp_path):
    config = interp_config(llama_family, 0.5)
    config["models"] = [{"model": str(llama_family.instruct)}]
    with pytest.raises(WeightLevelConfigError, match=rf"{NAME}: .*at least 1 non-base"):
        run_yaml_merge(config, tmp_path / "out")
    assert_nothing_written(tmp_path / "out")


def test_error_no_base_model(llama_family, tmp_path):
    config = interp_config(llama_family, 0.5)
    config["models"].insert(0, {"model": str(llama_family.instruct)})
    del config["base_model"]
    with pytest.raises(WeightLevelConfigError, match=rf"{NAME}: .*requires a base.*`base_model:`"):
        run_yaml_merge(config, tmp_path / "out")
    assert_nothing_written(tmp_path / "out")


def test_demo_step(tmp_path):
    from mergekit_weightlevel.demo import run_demo

    report = run_demo(tmp_path / "demo")
    (merge,) = [m for m in report.merges if m.method == NAME]
    assert merge.max_abs_error < 1e-6
    # λ = 0.8: the output sits four times closer to Thinking than to Instruct.
    to_instruct, to_thinking = merge.sigmas["output, instruct"], merge.sigmas["output, thinking"]
    assert 3.0 < to_instruct / to_thinking < 5.0
    assert (merge.output / "tokenizer.json").exists()
    assert f"{NAME}: output = 0.8·thinking + 0.2·instruct" in report.render()

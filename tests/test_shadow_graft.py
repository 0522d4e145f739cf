"""shadow_graft: the official apply_diff.py closed form, PEFT's merge as the LoRA oracle, errors."""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path

import pytest
import torch
from helpers import read_state, run_yaml_merge
from mergekit.merge_methods import merge_state_dicts
from safetensors.torch import load_file, save_file

from mergekit_weightlevel.errors import WeightLevelConfigError
from mergekit_weightlevel.method_configs import shadow_graft_adapter_config, shadow_graft_config
from mergekit_weightlevel.methods.shadow_graft.lora import open_adapter, save_lora_adapter
from mergekit_weightlevel.methods.shadow_graft.method import DEFAULT_INCLUDE

peft = pytest.importorskip("peft")

PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


# --- the full-weight path ---------------------------------------------------------------


def is_projection(name: str) -> bool:
    """The official script's test, written out: any of the seven names in the lower-cased name."""
    return any(p in name.lower() for p in PROJECTIONS)


def graft_config(family, donors, *, include=None, dtype="float32"):
    parameters = None if include is None else {"include": include}
    return shadow_graft_config(
        family.base, donors, family.instruct, parameters=parameters, dtype=dtype
    )


@pytest.mark.parametrize("arch", ["llama", "qwen2", "qwen3"])
def test_closed_form_on_projections_only(all_families, arch, tmp_path):
    family = all_families[arch]
    dtype = "bfloat16" if arch == "qwen3" else "float32"
    out = run_yaml_merge(
        graft_config(family, [(family.base_tuned, 1.0)], dtype=dtype), tmp_path / "out"
    )
    base, tuned, instruct = (
        read_state(p) for p in (family.base, family.base_tuned, family.instruct)
    )
    assert set(out) == set(instruct)
    grafted = [n for n in out if is_projection(n)]
    assert len(grafted) == 7 * 2 + (6 if arch == "qwen2" else 0)  # qwen2: q/k/v biases too
    for name, tensor in out.items():
        assert tensor.dtype == instruct[name].dtype
        if not is_projection(name):
            # Embeddings, norms (q_norm / k_norm too), lm_head: the Instruct's, bit for bit.
            assert torch.equal(tensor, instruct[name]), name
            continue
        exact = instruct[name].double() + tuned[name].double() - base[name].double()
        if arch == "qwen3":  # bf16 checkpoints: float32 arithmetic, one rounding to bf16
            f32 = instruct[name].float() + (tuned[name].float() - base[name].float())
            assert torch.equal(tensor, f32.to(torch.bfloat16)), name
            torch.testing.assert_close(tensor.double(), exact, rtol=2**-8, atol=0)
        else:
            torch.testing.assert_close(tensor.double(), exact, rtol=0, atol=1e-6)
        assert not torch.equal(tensor, instruct[name]), name


def test_several_donors_with_alpha(llama_family, tmp_path):
    family = llama_family
    donors = [(family.base_tuned, 0.7), (family.thinking, -0.4)]
    out = run_yaml_merge(graft_config(family, donors), tmp_path / "out")
    base, instruct = read_state(family.base), read_state(family.instruct)
    states = [(read_state(path), w) for path, w in donors]
    for name, tensor in out.items():
        expected = instruct[name].double()
        if is_projection(name):
            expected = expected + sum(
                w * (s[name].double() - base[name].double()) for s, w in states
            )
        torch.testing.assert_close(tensor.double(), expected, rtol=0, atol=1e-6)


def test_include_all_equals_task_arithmetic(qwen2_sharded_family, tmp_path):
    """include: '.*' grafts every tensor: mergekit's task_arithmetic with the target at 1."""
    family = qwen2_sharded_family
    donors = [(family.base_tuned, 1.3), (family.thinking, 0.25)]
    ours = run_yaml_merge(graft_config(family, donors, include=".*"), tmp_path / "ours")
    oracle = run_yaml_merge(
        {
            "merge_method": "task_arithmetic",
            "base_model": str(family.base),
            "models": [
                *({"model": str(p), "parameters": {"weight": w}} for p, w in donors),
                {"model": str(family.instruct), "parameters": {"weight": 1.0}},
            ],
            "parameters": {"normalize": False},
            "dtype": "float32",
        },
        tmp_path / "oracle",
    )
    assert set(ours) == set(oracle)
    for name in ours:
        torch.testing.assert_close(ours[name], oracle[name], rtol=1e-6, atol=1e-6)


def test_include_is_a_case_insensitive_search(llama_family, tmp_path):
    family = llama_family
    out = run_yaml_merge(
        graft_config(family, [(family.base_tuned, 1.0)], include="MLP\\.UP_PROJ|embed"),
        tmp_path / "out",
    )
    instruct = read_state(family.instruct)
    changed = sorted(n for n in out if not torch.equal(out[n], instruct[n]))
    assert changed == sorted(n for n in out if "mlp.up_proj" in n or "embed_tokens" in n), changed


def test_float32_arithmetic_is_closer_than_official_bf16(qwen3_bf16_family):
    """The official script adds in the checkpoint dtype (bf16); we add in float32."""
    family = qwen3_bf16_family
    base, tuned, instruct = (
        read_state(p) for p in (family.base, family.base_tuned, family.instruct)
    )
    names = [n for n in instruct if is_projection(n)]
    ours = merge_state_dicts(
        {"base": base, "tuned": tuned, "instruct": instruct},
        "shadow_graft",
        base="base",
        parameters={"role": [None, None, "target"]},
    )
    ours_err = official_err = 0.0
    for name in names:
        exact = instruct[name].double() + tuned[name].double() - base[name].double()
        official = instruct[name] + (tuned[name] - base[name])  # bf16 arithmetic
        ours_err = max(ours_err, float((ours[name].double() - exact).abs().max()))
        official_err = max(official_err, float((official.double() - exact).abs().max()))
    assert ours_err <= official_err


# --- LoRA adapters made with PEFT -------------------------------------------------------


def make_peft_adapter(base_path: Path, out: Path, *, seed: int = 0, scale: float = 0.05, **lora):
    """A PEFT LoRA adapter on ``base_path`` with random non-zero A and B (PEFT inits B = 0)."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base_path)
    lora.setdefault("target_modules", [*PROJECTIONS, "embed_tokens"])
    peft_model = peft.get_peft_model(model, peft.LoraConfig(**lora))
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_" in name:
                param.copy_(torch.randn(param.shape, generator=gen) * scale)
    peft_model.save_pretrained(out, save_embedding_layers=False)
    return out


def peft_merged(model_path: Path, adapter: Path) -> dict[str, torch.Tensor]:
    """The oracle: PeftModel.from_pretrained(instruct, adapter).merge_and_unload()."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_path)
    merged = peft.PeftModel.from_pretrained(model, adapter).merge_and_unload()
    return {k: v.detach() for k, v in merged.state_dict().items()}


def adapter_config(family, adapter, *, base=True, weight=None):
    return shadow_graft_adapter_config(
        adapter,
        family.instruct,
        base=family.base if base else None,
        parameters=None if weight is None else {"adapter_weight": weight},
        dtype="float32",
    )


def assert_matches_peft(out, oracle, instruct, adapter_path):
    adapted = set(open_adapter(adapter_path).targets())
    assert adapted, "the adapter adapts nothing"
    for name, tensor in out.items():
        if name in adapted:
            torch.testing.assert_close(tensor, oracle[name], rtol=1e-6, atol=1e-6)
            assert not torch.equal(tensor, instruct[name]), name
        else:
            assert torch.equal(tensor, instruct[name]), name
            assert torch.equal(tensor, oracle[name]), name


LORA_VARIANTS = {
    "plain": {"r": 4, "lora_alpha": 8},
    "rslora": {"r": 4, "lora_alpha": 16, "use_rslora": True},
    "patterns": {
        "r": 4,
        "lora_alpha": 8,
        # A suffix pattern, a full-name pattern for one layer, and per-module alphas.
        "rank_pattern": {"k_proj": 2, "model.layers.1.self_attn.q_proj": 6},
        "alpha_pattern": {"down_proj": 3, "embed_tokens": 5},
    },
}


@pytest.mark.parametrize("variant", sorted(LORA_VARIANTS))
def test_adapter_equals_peft_merge_and_unload(llama_family, variant, tmp_path):
    family = llama_family
    adapter = make_peft_adapter(family.base, tmp_path / "adapter", **LORA_VARIANTS[variant])
    out = run_yaml_merge(adapter_config(family, adapter), tmp_path / "out")
    oracle = peft_merged(family.instruct, adapter)
    assert_matches_peft(out, oracle, read_state(family.instruct), adapter)
    if variant == "patterns":
        modules = open_adapter(adapter).modules
        assert modules["model.layers.0.self_attn.k_proj.weight"].rank == 2
        assert modules["model.layers.1.self_attn.q_proj.weight"].rank == 6
        assert modules["model.layers.0.mlp.down_proj.weight"].scaling == 3 / 4


def test_adapter_without_base_model_and_with_adapter_weight(llama_family, tmp_path):
    """No base_model: only the target and the adapter are read; adapter_weight scales B @ A."""
    family = llama_family
    adapter = make_peft_adapter(family.base, tmp_path / "adapter", r=4, lora_alpha=8, seed=3)
    full = run_yaml_merge(adapter_config(family, adapter, base=False), tmp_path / "full")
    half = run_yaml_merge(adapter_config(family, adapter, weight=0.5), tmp_path / "half")
    instruct = read_state(family.instruct)
    assert_matches_peft(full, peft_merged(family.instruct, adapter), instruct, adapter)
    for name in full:
        expected = instruct[name] + 0.5 * (full[name] - instruct[name])
        torch.testing.assert_close(half[name], expected, rtol=0, atol=1e-6)


def test_plus_adapter_donor_equals_peft(llama_family, tmp_path):
    """Route 1: mergekit's own `base+adapter` donor, merged once into --lora-merge-cache."""
    family = llama_family
    adapter = make_peft_adapter(family.base, tmp_path / "adapter", r=4, lora_alpha=8, seed=5)
    config = graft_config(family, [(f"{family.base}+{adapter}", 1.0)], include=".*")
    out = run_yaml_merge(config, tmp_path / "out", lora_merge_cache=str(tmp_path / "cache"))
    assert_matches_peft(
        out, peft_merged(family.instruct, adapter), read_state(family.instruct), adapter
    )
    assert list((tmp_path / "cache").iterdir()), "mergekit wrote the merged base to the cache"


def test_plus_adapter_needs_lora_merge_cache(llama_family, tmp_path):
    family = llama_family
    adapter = make_peft_adapter(family.base, tmp_path / "adapter", r=2, lora_alpha=2)
    config = graft_config(family, [(f"{family.base}+{adapter}", 1.0)])
    with pytest.raises(RuntimeError, match="Need to specify cache dir to merge adapters"):
        run_yaml_merge(config, tmp_path / "out")


def test_fan_in_fan_out_on_gpt2_conv1d(tmp_path):
    """GPT-2's Conv1D stores weights (in, out): PEFT keeps fan_in_fan_out and transposes B @ A."""
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(n_embd=32, n_layer=2, n_head=2, vocab_size=64, n_positions=32,
                        bos_token_id=0, eos_token_id=0)  # fmt: skip
    torch.manual_seed(0)
    GPT2LMHeadModel(config).save_pretrained(tmp_path / "base")
    instruct_model = GPT2LMHeadModel(config)
    instruct_model.save_pretrained(tmp_path / "instruct")
    adapter = make_peft_adapter(
        tmp_path / "base", tmp_path / "adapter", r=4, lora_alpha=8, fan_in_fan_out=True,
        target_modules=["c_attn", "c_fc", "c_proj"],
    )  # fmt: skip
    assert json.loads((adapter / "adapter_config.json").read_text())["fan_in_fan_out"] is True
    instruct = read_state(tmp_path / "instruct")
    out = merge_state_dicts(
        {"instruct": instruct},
        "shadow_graft",
        parameters={"role": ["target"], "adapter": str(adapter)},
    )
    oracle = peft_merged(tmp_path / "instruct", adapter)
    assert_matches_peft(out, oracle, instruct, adapter)
    # c_fc is (32, 128): transposing is what makes the shapes fit at all.
    assert out["transformer.h.0.mlp.c_fc.weight"].shape == (32, 128)


def test_hand_written_adapter_loads_in_peft(llama_family, tmp_path):
    """save_lora_adapter (used by the demo) writes what PEFT reads, and we graft it alike."""
    family = llama_family
    gen = torch.Generator().manual_seed(7)
    base = read_state(family.base)
    matrices = {}
    for layer in range(2):
        for module in ("self_attn.q_proj", "self_attn.v_proj", "mlp.up_proj"):
            out_dim, in_dim = base[f"model.layers.{layer}.{module}.weight"].shape
            matrices[f"model.layers.{layer}.{module}"] = (
                torch.randn(3, in_dim, generator=gen) * 0.05,
                torch.randn(out_dim, 3, generator=gen) * 0.05,
            )
    adapter = save_lora_adapter(
        tmp_path / "adapter", matrices, base_model_name_or_path=str(family.base), lora_alpha=6
    )
    out = run_yaml_merge(adapter_config(family, adapter), tmp_path / "out")
    assert_matches_peft(
        out, peft_merged(family.instruct, adapter), read_state(family.instruct), adapter
    )
    name = "model.layers.0.self_attn.q_proj.weight"
    a, b = matrices["model.layers.0.self_attn.q_proj"]
    expected = read_state(family.instruct)[name] + (6 / 3) * (b @ a)
    torch.testing.assert_close(out[name], expected, rtol=0, atol=1e-6)


def test_modules_to_save_grafted_as_difference_against_base(llama_family, tmp_path):
    """A module saved whole (modules_to_save) is grafted as (saved − W_B) when a base is given."""
    family = llama_family
    adapter = make_peft_adapter(
        family.base, tmp_path / "adapter", r=2, lora_alpha=4, target_modules=["q_proj"],
        modules_to_save=["lm_head"],
    )  # fmt: skip
    weights = load_file(adapter / "adapter_model.safetensors")
    key = "base_model.model.lm_head.weight"
    assert key in weights
    weights[key] = weights[key] + 0.01 * torch.randn(weights[key].shape)  # a trained head
    save_file(weights, adapter / "adapter_model.safetensors", metadata={"format": "pt"})

    with pytest.raises(
        WeightLevelConfigError, match=r"saves whole tensors \(lm_head.weight.*set `base_model:`"
    ):
        run_yaml_merge(adapter_config(family, adapter, base=False), tmp_path / "nobase")
    assert not (tmp_path / "nobase").exists() or not list(
        (tmp_path / "nobase").glob("*.safetensors")
    )

    out = run_yaml_merge(adapter_config(family, adapter, weight=0.5), tmp_path / "out")
    base, instruct = read_state(family.base), read_state(family.instruct)
    expected = instruct["lm_head.weight"] + 0.5 * (weights[key] - base["lm_head.weight"])
    torch.testing.assert_close(out["lm_head.weight"], expected, rtol=0, atol=1e-6)


# --- errors -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def llama_adapter(llama_family, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("adapter") / "adapter"
    return make_peft_adapter(llama_family.base, out, r=4, lora_alpha=8, seed=11)


def edited_adapter(source: Path, folder: Path, *, config=None, rename=None) -> Path:
    """A copy of ``source`` with config fields changed and/or tensor keys renamed."""
    shutil.copytree(source, folder)
    if config:
        data = json.loads((folder / "adapter_config.json").read_text())
        data.update(config)
        (folder / "adapter_config.json").write_text(json.dumps(data))
    if rename:
        weights = load_file(folder / "adapter_model.safetensors")
        weights = {re.sub(rename[0], rename[1], k): v for k, v in weights.items()}
        save_file(weights, folder / "adapter_model.safetensors", metadata={"format": "pt"})
    return folder


def assert_fails(family, adapter, tmp_path, error, pattern, **kwargs):
    with pytest.raises(error, match=pattern):
        run_yaml_merge(adapter_config(family, adapter, **kwargs), tmp_path / "out")
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").glob("*.safetensors"))


@pytest.mark.parametrize(
    ("edit", "pattern"),
    [
        ({"use_dora": True}, r"adapter .*adapter: uses DoRA \(`use_dora: true`"),
        (
            {"peft_type": "IA3"},
            r"adapter .*: peft_type is 'IA3'; shadow_graft grafts LoRA adapters only",
        ),
        (
            {"lora_bias": True},
            r"adapter .*: uses `lora_bias: true` \(a trained bias on lora_B\), which shadow_graft cannot",
        ),
        (
            {"r": 3},
            r"adapter .*: module model\.\S+: its matrices have rank 4, but adapter_config.json says r = 3",
        ),
    ],
)
def test_error_unsupported_or_inconsistent_adapter(
    llama_family, llama_adapter, tmp_path, edit, pattern
):
    adapter = edited_adapter(llama_adapter, tmp_path / "adapter", config=edit)
    assert_fails(llama_family, adapter, tmp_path, Exception, "shadow_graft: " + pattern)


def test_error_adapter_module_not_in_model(llama_family, llama_adapter, tmp_path):
    adapter = edited_adapter(
        llama_adapter, tmp_path / "adapter", rename=(r"layers\.1\.", "layers.7.")
    )
    assert_fails(
        llama_family, adapter, tmp_path, WeightLevelConfigError,
        r"shadow_graft: adapter .* changes tensors that the target .*instruct does not have: "
        r"model\.layers\.7\.",
    )  # fmt: skip


def test_error_adapter_shapes_do_not_fit_model(llama_family, tmp_path):
    matrices = {"model.layers.0.self_attn.k_proj": (torch.ones(2, 48), torch.ones(32, 2))}
    adapter = save_lora_adapter(
        tmp_path / "adapter", matrices, base_model_name_or_path=str(llama_family.base), lora_alpha=2
    )
    assert_fails(
        llama_family, adapter, tmp_path, WeightLevelConfigError,
        r"LoRA matrices for model\.layers\.0\.self_attn\.k_proj\.weight \(A \[2, 48\], B \[32, 2\], "
        r"rank 2\) give a delta of shape \[32, 48\], but the model tensor has shape \[32, 64\]",
    )  # fmt: skip


def test_error_fan_in_fan_out_on_linear(llama_family, llama_adapter, tmp_path):
    adapter = edited_adapter(llama_adapter, tmp_path / "adapter", config={"fan_in_fan_out": True})
    assert_fails(
        llama_family, adapter, tmp_path, WeightLevelConfigError,
        r"LoRA matrices for model\.\S+ .* give a delta of shape \[160, 64\].*The adapter sets `fan_in_fan_out: true`.*PEFT turns it off for nn.Linear",
    )  # fmt: skip


def test_error_unknown_lora_tensor(llama_family, llama_adapter, tmp_path):
    adapter = edited_adapter(
        llama_adapter, tmp_path / "adapter", rename=(r"(layers\.0\.self_attn\.q_proj)\.lora_A\.weight", r"\1.lora_magnitude_vector")
    )  # fmt: skip
    assert_fails(
        llama_family,
        adapter,
        tmp_path,
        Exception,
        r"holds .*q_proj\.lora_magnitude_vector, a LoRA tensor",
    )


def test_error_missing_adapter_and_bin_only(llama_family, llama_adapter, tmp_path):
    assert_fails(
        llama_family,
        tmp_path / "nowhere",
        tmp_path,
        Exception,
        r"shadow_graft: adapter .*nowhere: no such folder",
    )
    adapter = edited_adapter(llama_adapter, tmp_path / "adapter")
    (adapter / "adapter_model.safetensors").rename(adapter / "adapter_model.bin")
    assert_fails(
        llama_family,
        adapter,
        tmp_path,
        Exception,
        r"adapter_model.safetensors is missing \(found: .*adapter_config.json, adapter_model.bin",
    )


def test_error_adapter_with_donor(llama_family, llama_adapter, tmp_path):
    config = adapter_config(llama_family, llama_adapter)
    config["models"].append({"model": str(llama_family.base_tuned)})
    with pytest.raises(
        WeightLevelConfigError,
        match=r"with `adapter` set, donor models are not used, but .*base_tuned",
    ):
        run_yaml_merge(config, tmp_path / "out")


def test_error_adapter_without_target_role(llama_family, llama_adapter, tmp_path):
    config = adapter_config(llama_family, llama_adapter)
    del config["models"][0]["parameters"]
    with pytest.raises(
        WeightLevelConfigError, match=r"exactly one model must have `role: target`.*found 0"
    ):
        run_yaml_merge(config, tmp_path / "out")


def test_warns_when_adapter_base_differs(llama_family, llama_adapter, tmp_path, caplog):
    config = adapter_config(llama_family, llama_adapter)
    config["base_model"] = str(llama_family.base_v2)
    with caplog.at_level(logging.WARNING):
        run_yaml_merge(config, tmp_path / "out")
    warnings = [r.getMessage() for r in caplog.records if "was trained on" in r.getMessage()]
    assert len(warnings) == 1, warnings  # once per merge, not once per tensor
    assert str(llama_family.base) in warnings[0] and str(llama_family.base_v2) in warnings[0]


def test_no_warning_when_adapter_base_matches(llama_family, llama_adapter, tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        run_yaml_merge(adapter_config(llama_family, llama_adapter), tmp_path / "out")
    assert not [r for r in caplog.records if "was trained on" in r.getMessage()]


def test_error_bad_include_regex(llama_family, tmp_path):
    config = graft_config(llama_family, [(llama_family.base_tuned, 1.0)], include="(q|k")
    with pytest.raises(
        Exception, match=r"shadow_graft: parameter `include` is not a valid regular expression"
    ):
        run_yaml_merge(config, tmp_path / "out")


def test_error_full_weight_path_without_base(llama_family, tmp_path):
    config = graft_config(llama_family, [(llama_family.base_tuned, 1.0)])
    del config["base_model"]
    with pytest.raises(
        WeightLevelConfigError, match=r"shadow_graft: no base_model\b.*needs the Instruct"
    ):
        run_yaml_merge(config, tmp_path / "out")


def test_error_full_weight_path_without_donor(llama_family, tmp_path):
    config = graft_config(llama_family, [])
    with pytest.raises(
        WeightLevelConfigError, match=r"shadow_graft: no donor model besides the target"
    ):
        run_yaml_merge(config, tmp_path / "out")


def test_default_include_is_the_official_one_on_llama_style_names(llama_family):
    """On Llama / Qwen names the default selects exactly the official script's tensors."""
    names = list(read_state(llama_family.instruct)) + [
        "model.layers.0.self_attn.q_proj.bias",
        "model.layers.0.mlp.experts.gate_up_proj",
        "model.layers.0.mlp.experts.down_proj",
        "model.layers.0.mlp.gate.weight",
        "model.layers.0.mlp.shared_expert_gate.weight",
    ]
    for name in names:
        assert bool(re.search(DEFAULT_INCLUDE, name, re.I)) == is_projection(name), name
    for name in (
        "model.layers.3.self_attn.qkv_proj.weight",
        "model.layers.0.mlp.gate_up_proj.weight",
    ):
        assert re.search(DEFAULT_INCLUDE, name) and is_projection(name)
    for name in (
        "model.layers.0.self_attn.q_norm.weight",
        "model.embed_tokens.weight",
        "lm_head.weight",
    ):
        assert not re.search(DEFAULT_INCLUDE, name, re.I) and not is_projection(name)


# --- demo and examples ------------------------------------------------------------------


def test_demo_steps_match_float64(llama_family, tmp_path):
    from mergekit.options import MergeOptions

    from mergekit_weightlevel.demo.run import _shadow_graft_demo, _shadow_graft_lora_demo

    for step in (_shadow_graft_demo, _shadow_graft_lora_demo):
        result = step(llama_family, tmp_path, MergeOptions(quiet=True))
        assert result.max_abs_error < 1e-6, result
        assert result.sigmas["output, instruct"] > 1e-3, result  # the graft did something
        assert (result.output / "model.safetensors").exists()


@pytest.mark.parametrize("example", ["shadow_graft.yml", "shadow_graft_lora.yml"])
def test_examples_run_on_the_demo_family(tmp_path, monkeypatch, example):
    """The example YAMLs, as written, from a folder holding `mergekit-weightlevel demo`'s family."""
    import yaml

    from mergekit_weightlevel.demo import demo_lora_adapter
    from mergekit_weightlevel.demo.tiny_models import build_family

    config_text = (Path(__file__).parents[1] / "examples" / example).read_text()
    monkeypatch.chdir(tmp_path)
    family = build_family(Path("weightlevel-demo/models"), arch="llama")
    demo_lora_adapter(family, family.root / "base_lora")
    out = run_yaml_merge(yaml.safe_load(config_text), tmp_path / "out")
    instruct = read_state(family.instruct)
    assert set(out) == set(instruct)
    changed = {
        n for n in out if not torch.equal(out[n].float(), instruct[n].to(torch.bfloat16).float())
    }
    assert changed and all("_proj" in n for n in changed), changed

"""Every form of a mergekit parameter, for every method: a layer gradient, filters, both nested.

Each form merges to what mergekit's own built-ins give for the same config surface (the
oracle: `task_arithmetic` for ParamΔ and Shadow-FT, `linear` for the interpolation; for Timber,
the float64 reference at the λ mergekit resolves per tensor), and the model card the merge
writes says it truthfully, in its summary sentence, its tables, and through `card` and
`publish --dry-run` (issue 29, item 1). The interpolation paper's ablation examples go
through the stock `mergekit-yaml`, then `card` and `publish --dry-run`, as a user runs them.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from helpers import EXAMPLES_DIR, read_state, run_yaml_merge
from huggingface_hub import ModelCard
from mergekit.config import ParameterSetting, evaluate_setting
from pydantic import TypeAdapter

from mergekit_weightlevel import reference
from mergekit_weightlevel.cli import main
from mergekit_weightlevel.demo.tiny_models import build_family
from mergekit_weightlevel.method_configs import (
    interp_config,
    paramdelta_config,
    shadow_graft_config,
    timber_config,
)
from mergekit_weightlevel.publishing import publish_folder

GRADIENT = [0.25, 1.0]
#: keep the attention of the receiving model: a filter, then a catch-all
FILTERS = [{"filter": "self_attn", "value": 0.0}, {"value": 0.5}]
#: a gradient on the MLP only
NESTED = [{"filter": "mlp", "value": [0.0, 1.0]}, {"value": 0.5}]
FORMS = {"gradient": GRADIENT, "filters": FILTERS, "nested": NESTED}

#: What the card says for each form, after the parameter's symbol.
WORDS = {
    "gradient": "from 0.25 at the first layer to 1 at the last, and 0.25 on the embeddings, "
    "final norm and lm_head",
    "filters": "= 0 on self_attn, 0.5 elsewhere",
    "nested": "from 0 at the first layer to 1 at the last on mlp; 0.5 elsewhere",
}


def _setting_at(setting, name: str) -> float:
    """The value mergekit resolves for tensor ``name`` of the 2-layer family (its own code)."""
    match = re.search(r"layers\.(\d+)\.", name)
    t = float(match.group(1)) if match else 0.0  # layer 0 → t = 0, layer 1 → t = 1
    parsed = TypeAdapter(ParameterSetting).validate_python(setting)  # as mergekit parses YAML
    return evaluate_setting(name, parsed, t, validate=float)


def _complement(setting):
    """1 − a setting, in the same form (the Instruct's weight in `linear`)."""
    if isinstance(setting, list) and setting and isinstance(setting[0], dict):
        return [{**entry, "value": _complement(entry["value"])} for entry in setting]
    if isinstance(setting, list):
        return [1.0 - value for value in setting]
    return 1.0 - setting


def _merge(method: str, setting, family, out: Path) -> dict:
    if method == "paramdelta":
        config = paramdelta_config(family.base, family.instruct, family.base_v2)
        config["models"][0]["parameters"] = {"weight": setting}
    elif method == "shadow_graft":
        config = shadow_graft_config(family.base, family.base_tuned, family.instruct)
        config["models"][0]["parameters"] = {"weight": setting}
    elif method == "timber_spectral":
        config = timber_config(family.base, family.instruct, setting)
    else:
        config = interp_config(family.instruct, family.thinking, setting)
    run_yaml_merge(config, out, copy_tokenizer=True)
    return config


def _oracle(method: str, setting, family, tmp_path: Path) -> dict:
    """mergekit's built-in for the same config surface; Timber: the reference per tensor."""
    if method == "timber_spectral":
        base, instruct = read_state(family.base), read_state(family.instruct)
        return {
            name: reference.timber_tensor(base[name], tensor, _setting_at(setting, name))
            for name, tensor in instruct.items()
        }
    if method == "instruct_thinking_interp":
        models = [
            {"model": str(family.instruct), "parameters": {"weight": _complement(setting)}},
            {"model": str(family.thinking), "parameters": {"weight": setting}},
        ]
        config = {"merge_method": "linear", "models": models, "parameters": {"normalize": False}}
    else:
        donor, target = (
            (family.instruct, family.base_v2)
            if method == "paramdelta"
            else (family.base_tuned, family.instruct)
        )
        config = {
            "merge_method": "task_arithmetic",
            "base_model": str(family.base),
            "models": [
                {"model": str(donor), "parameters": {"weight": setting}},
                {"model": str(target), "parameters": {"weight": 1.0}},
            ],
            "parameters": {"normalize": False},
        }
    return run_yaml_merge(config, tmp_path / "oracle")


METHODS = ["paramdelta", "shadow_graft", "timber_spectral", "instruct_thinking_interp"]


@pytest.mark.parametrize("form", list(FORMS))
@pytest.mark.parametrize("method", METHODS)
def test_every_form_merges_as_mergekits_builtins_do(method, form, llama_family, tmp_path):
    setting = FORMS[form]
    _merge(method, setting, llama_family, tmp_path / "out")
    merged, expected = (
        read_state(tmp_path / "out"),
        _oracle(method, setting, llama_family, tmp_path),
    )
    instruct = read_state(llama_family.instruct)
    for name, tensor in merged.items():
        if method == "shadow_graft" and not name.endswith("_proj.weight"):
            assert torch.equal(tensor, instruct[name]), name  # not grafted: W_I as is
            continue
        torch.testing.assert_close(tensor.double(), expected[name].double(), rtol=1e-5, atol=1e-6)


#: The symbol each method's sentence gives the parameter, and how the sentence reads it.
SENTENCE = {
    "paramdelta": "ParamΔ: the post-training of instruct (weight {words}) transplanted onto "
    "Θ'_base (base_v2)",
    "shadow_graft": "grafted onto the Instruct W_I (instruct)",
    "timber_spectral": "Timber: instruct with the spectral tail of its delta from base scaled "
    "by λ {words};",
    "instruct_thinking_interp": "(1 − λ)·Θ_Instruct (instruct) with λ {words}.",
}


@pytest.mark.parametrize("form", list(FORMS))
@pytest.mark.parametrize("method", METHODS)
def test_the_merge_writes_a_card_that_says_every_form(method, form, llama_family, tmp_path):
    out = tmp_path / "out"
    _merge(method, FORMS[form], llama_family, out)
    card = ModelCard.load(out / "README.md")  # the merge's own card, not mergekit's generic one
    assert "model card written by mergekit-weightlevel" in card.text
    words = WORDS[form]
    summary = card.text.split("## Inputs")[0]
    sentence = SENTENCE[method].format(words=words)
    if method == "shadow_graft":
        sentence = f"into W_B⁺ (base_tuned (α {words}))"
    assert sentence in summary
    table = card.text.split("## Files")[0]
    shown = words.removeprefix("= ")
    if method in ("paramdelta", "shadow_graft"):  # per donor: in the inputs table
        assert f"| weight: {shown} |" in table
    else:
        assert re.search(rf"\| `lambda` \| {re.escape(shown)} \|", table)
    result = publish_folder(out, "me/forms", dry_run=True)  # every pre-upload check passes
    assert result.card_text == (out / "README.md").read_text(encoding="utf-8")


def test_filters_without_a_catch_all_name_the_default(llama_family, tmp_path):
    """mergekit gives the tensors no filter matches the default; the card says which."""
    out = tmp_path / "out"
    _merge("paramdelta", [{"filter": "embed_tokens", "value": 0.0}], llama_family, out)
    text = (out / "README.md").read_text(encoding="utf-8")
    assert "instruct (weight = 0 on embed_tokens, 1 (the default) elsewhere)" in text


# ------------------------------ the interpolation paper's ablations, as a user runs them


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory) -> Path:
    """A folder holding `weightlevel-demo/models/…`, the paths the examples name."""
    root = tmp_path_factory.mktemp("ablations")
    build_family(root / "weightlevel-demo" / "models")
    return root


ABLATIONS = {
    "instruct_thinking_interp_wo_attn.yml": (
        "with λ = 0 on self_attn, 0.8 elsewhere.",
        "| `lambda` | 0 on self_attn, 0.8 elsewhere |",
    ),
    "instruct_thinking_interp_wo_ffn.yml": (
        "with λ = 0 on mlp, 0.8 elsewhere.",
        "| `lambda` | 0 on mlp, 0.8 elsewhere |",
    ),
    "instruct_thinking_interp_layers.yml": (
        "with λ = 0.8. Set below the top level, and taking precedence there: λ = 0 on layers, "
        "0.8 elsewhere in slice 0 (layer 0).",
        "| `lambda` | 0 on layers, 0.8 elsewhere | set in the parameters of slice 0 (layer 0), "
        "taking precedence there |",
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("example", list(ABLATIONS))
def test_ablation_example_through_stock_mergekit_yaml_then_card_and_publish(
    example, demo_root, monkeypatch
):
    sentence, row = ABLATIONS[example]
    out = demo_root / f"out-{example}"
    env = {k: v for k, v in os.environ.items() if k != "MERGEKIT_WEIGHTLEVEL_DISABLE"}
    merged = subprocess.run(
        [str(Path(sys.executable).with_name("mergekit-yaml")), str(EXAMPLES_DIR / example),
         str(out), "--quiet"],
        cwd=demo_root, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert merged.returncode == 0, merged.stderr
    assert "could not write the method's model card" not in merged.stderr
    monkeypatch.chdir(demo_root)  # the config's relative paths, as the user's shell has them
    for command in (["card", str(out)], ["publish", str(out), "me/ablation", "--dry-run"]):
        result = CliRunner().invoke(main, command)
        assert result.exit_code == 0, result.output
        card = (out / "README.md").read_text(encoding="utf-8")
        assert sentence in card
        assert row in card

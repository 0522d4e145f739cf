"""The merged folder is the model the output stands for: config, tokenizer, chat template,
generation config (issue 13; spec methods.md, last section).

The tiny family's members differ in exactly these files (``tiny_models.MEMBER_FILES``):
Instruct and Thinking carry their own chat templates and generation configs, the newer
base another context length and RoPE theta. Each test asserts the files' contents.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from mergekit.config import MergeConfiguration
from mergekit.merge import run_merge
from mergekit.options import MergeOptions

from mergekit_weightlevel.demo.tiny_models import INSTRUCT_TEMPLATE, THINKING_TEMPLATE
from mergekit_weightlevel.method_configs import (
    interp_config,
    paramdelta_config,
    shadow_graft_config,
    timber_config,
)
from mergekit_weightlevel.methods.output_files import config_disagreements, file_sources

MESSAGES = [{"role": "user", "content": "w1 w2"}]


def merge(config: dict, out: Path, **options) -> Path:
    """mergekit's own YAML path in process, tokenizer copying on (as users run it)."""
    run_merge(
        MergeConfiguration.model_validate(config),
        str(out),
        options=MergeOptions(quiet=True, **options),
        config_source=yaml.safe_dump(config, sort_keys=False),
    )
    return out


def read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def assert_files_from(out: Path, config_model: Path, tokenizer_model: Path) -> None:
    """``out`` has ``config_model``'s behaviour fields and ``tokenizer_model``'s other files."""
    from transformers import AutoConfig, AutoTokenizer, GenerationConfig

    got, want = read_json(out / "config.json"), read_json(config_model / "config.json")
    for field in ("max_position_embeddings", "rope_parameters", "rope_theta", "eos_token_id"):
        assert got.get(field) == want.get(field), field
    AutoConfig.from_pretrained(out)

    template = tokenizer_model / "chat_template.jinja"
    if template.exists():
        assert (out / "chat_template.jinja").read_text() == template.read_text()
        ours = AutoTokenizer.from_pretrained(out).apply_chat_template(
            MESSAGES, tokenize=False, add_generation_prompt=True
        )
        theirs = AutoTokenizer.from_pretrained(tokenizer_model).apply_chat_template(
            MESSAGES, tokenize=False, add_generation_prompt=True
        )
        assert ours == theirs
    else:
        assert not (out / "chat_template.jinja").exists()
    generation = GenerationConfig.from_pretrained(out)
    source = GenerationConfig.from_pretrained(tokenizer_model)
    assert generation.eos_token_id == source.eos_token_id
    assert generation.temperature == source.temperature
    assert generation.top_p == source.top_p


def configs(family) -> dict[str, dict]:
    """One config per method, as the docs write them."""
    f = {name: str(path) for name, path in family.paths().items()}
    return {
        "timber_spectral": timber_config(f["base"], f["instruct"]),
        "shadow_graft": shadow_graft_config(f["base"], f["base_tuned"], f["instruct"]),
        "instruct_thinking_interp": interp_config(f["instruct"], f["thinking"], 0.5),
        "paramdelta": paramdelta_config(f["base"], f["instruct"], f["base_v2"]),
    }


#: method → (member whose config.json the output gets, member whose tokenizer files it gets)
EXPECTED = {
    "timber_spectral": ("instruct", "instruct"),
    "shadow_graft": ("instruct", "instruct"),
    "instruct_thinking_interp": ("thinking", "thinking"),
    "paramdelta": ("base_v2", "instruct"),
}


@pytest.mark.parametrize("method", sorted(EXPECTED))
def test_each_method_gets_the_files_of_the_model_it_stands_for(method, llama_family, tmp_path):
    out = merge(configs(llama_family)[method], tmp_path / method)
    config_member, tokenizer_member = EXPECTED[method]
    paths = llama_family.paths()
    assert_files_from(out, paths[config_member], paths[tokenizer_member])


def test_file_sources_names_the_models(llama_family):
    sources = file_sources(MergeConfiguration.model_validate(configs(llama_family)["paramdelta"]))
    assert str(sources.config) == str(llama_family.base_v2)
    assert str(sources.tokenizer) == str(llama_family.instruct)
    linear = {"merge_method": "linear", "models": [{"model": str(llama_family.base)}]}
    assert file_sources(MergeConfiguration.model_validate(linear)) is None


def test_the_fixture_family_differs_in_these_files(llama_family):
    """Without this, every assertion above could pass with the base's files."""
    paths = llama_family.paths()
    assert (paths["instruct"] / "chat_template.jinja").read_text() == INSTRUCT_TEMPLATE
    assert (paths["thinking"] / "chat_template.jinja").read_text() == THINKING_TEMPLATE
    assert not (paths["base"] / "chat_template.jinja").exists()
    base_config = read_json(paths["base"] / "config.json")
    assert (
        read_json(paths["base_v2"] / "config.json")["max_position_embeddings"]
        != (base_config["max_position_embeddings"])
    )
    eos = {read_json(paths[m] / "generation_config.json")["eos_token_id"].__repr__() for m in paths}
    assert len(eos) >= 2


def test_builtin_methods_keep_mergekits_donor(llama_family, tmp_path):
    config = {
        "merge_method": "task_arithmetic",
        "base_model": str(llama_family.base),
        "models": [{"model": str(llama_family.instruct), "parameters": {"weight": 1.0}}],
    }
    out = merge(config, tmp_path / "ta")
    assert_files_from(out, llama_family.base, llama_family.base)


def test_config_from_and_tokenizer_from_override_the_default(llama_family, tmp_path):
    config = configs(llama_family)["timber_spectral"]
    config["parameters"] = {"config_from": "base", "tokenizer_from": str(llama_family.base)}
    out = merge(config, tmp_path / "override")
    assert_files_from(out, llama_family.base, llama_family.base)


def test_an_override_naming_no_model_of_the_config_is_refused(llama_family, tmp_path):
    config = configs(llama_family)["timber_spectral"]
    config["parameters"] = {"tokenizer_from": "/no/such/model"}
    with pytest.raises(ValueError, match="tokenizer_from: /no/such/model` is not a model"):
        merge(config, tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_an_override_in_a_per_model_block_is_refused(llama_family, tmp_path):
    config = configs(llama_family)["timber_spectral"]
    config["models"][0]["parameters"] = {"config_from": "base"}
    with pytest.raises(ValueError, match="`config_from` in the parameters of model"):
        merge(config, tmp_path / "bad")


TOKENIZER_SETTINGS = {
    "tokenizer: source: base": {"tokenizer": {"source": "base"}},
    "tokenizer: source: union": {"tokenizer": {"source": "union"}},
    "tokenizer_source: union": {"tokenizer_source": "union"},
}


@pytest.mark.parametrize("setting", list(TOKENIZER_SETTINGS))
@pytest.mark.parametrize("method", sorted(EXPECTED))
def test_a_tokenizer_mergekit_builds_keeps_the_methods_chat_template(
    method, setting, llama_family, tmp_path
):
    """mergekit builds that tokenizer from base_model's; its chat template and the generation
    config still come from the model the output stands for (issue 29, item 8)."""
    config = {**configs(llama_family)[method], **TOKENIZER_SETTINGS[setting]}
    out = merge(config, tmp_path / "tok")
    config_member, tokenizer_member = EXPECTED[method]
    paths = llama_family.paths()
    assert_files_from(out, paths[config_member], paths[tokenizer_member])
    assert "chat_template" not in (out / "mergekit_config.yml").read_text(encoding="utf-8")


def test_tokenizer_from_chooses_the_chat_template_of_a_built_tokenizer_too(llama_family, tmp_path):
    config = configs(llama_family)["instruct_thinking_interp"]
    config |= {"tokenizer": {"source": "union"}, "parameters": {"lambda": 0.5}}
    config["parameters"]["tokenizer_from"] = "base"  # the Instruct model, the λ = 0 end
    out = merge(config, tmp_path / "tok")
    assert_files_from(out, llama_family.thinking, llama_family.instruct)


def test_a_chat_template_in_the_config_wins(llama_family, tmp_path):
    from transformers import AutoTokenizer

    config = {**configs(llama_family)["timber_spectral"], "tokenizer": {"source": "union"}}
    config["chat_template"] = "chatml"
    out = merge(config, tmp_path / "tok")
    prompt = AutoTokenizer.from_pretrained(out).apply_chat_template(
        MESSAGES, tokenize=False, add_generation_prompt=True
    )
    assert prompt.startswith("<|im_start|>user\nw1 w2<|im_end|>")


def test_a_sweep_with_a_built_tokenizer_keeps_the_methods_chat_template(llama_family, tmp_path):
    from mergekit_weightlevel.running.sweep import sweep

    config = {**configs(llama_family)["timber_spectral"], "tokenizer": {"source": "base"}}
    outputs = sweep(config, [0.2, 0.6], tmp_path / "s", options=MergeOptions(quiet=True))
    for output in outputs:
        assert output.error is None
        assert_files_from(output.folder, llama_family.instruct, llama_family.instruct)


# --- a Thinking model with extra tokens (issue 29, item 8) ----------------------------------

THINKING_TOKENS = ["<think>", "</think>", "<|im_end|>"]


@pytest.fixture(scope="module")
def extra_tokens(llama_family, tmp_path_factory):
    """An Instruct with one token of its own and a Thinking model with three, the last its
    end-of-turn token (id 130 there), which its generation config stops at."""
    from helpers import with_extra_tokens

    root = tmp_path_factory.mktemp("extra-tokens")
    instruct = with_extra_tokens(llama_family.instruct, root / "instruct", ["<tool>"])
    thinking = with_extra_tokens(
        llama_family.thinking, root / "thinking", THINKING_TOKENS,
        generation={"eos_token_id": [130, 2]},
    )  # fmt: skip
    return instruct, thinking


def test_a_union_tokenizer_renumbers_the_generation_configs_stop_ids(extra_tokens, tmp_path):
    from transformers import AutoTokenizer

    instruct, thinking = extra_tokens
    config = interp_config(instruct, thinking, 0.5) | {"tokenizer": {"source": "union"}}
    out = merge(config, tmp_path / "out")
    tokenizer = AutoTokenizer.from_pretrained(out)
    stops = read_json(out / "generation_config.json")["eos_token_id"]
    # The union holds <tool> first, so the Thinking model's <|im_end|> (130 there) moved.
    assert tokenizer.convert_ids_to_tokens(stops) == ["<|im_end|>", "</s>"]
    assert stops == [131, 2]
    prompt = tokenizer.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("[assistant] [think]")  # the Thinking model's template


def test_a_stop_token_the_output_lacks_is_removed_with_a_warning(extra_tokens, tmp_path, caplog):
    instruct, thinking = extra_tokens
    config = interp_config(instruct, thinking, 0.5) | {"tokenizer": {"source": "base"}}
    with caplog.at_level(logging.WARNING):
        out = merge(config, tmp_path / "out")
    assert read_json(out / "generation_config.json")["eos_token_id"] == [2]
    (message,) = [r.getMessage() for r in caplog.records if "does not have" in r.getMessage()]
    assert (
        f"instruct_thinking_interp: the generation config (from {thinking}) has eos_token_id "
        "'<|im_end|>' (id 130 there), a token the output's tokenizer (built by mergekit from "
        "`tokenizer: source: base`) does not have: removed from the output's "
        "generation_config.json." in message
    )


def test_a_missing_tokenizer_comes_from_the_next_input_with_one_warning(
    llama_family, tmp_path, caplog
):
    bare = tmp_path / "instruct-no-tokenizer"
    shutil.copytree(llama_family.instruct, bare)
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        (bare / name).unlink()
    (bare / "generation_config.json").unlink()
    config = timber_config(llama_family.base, bare)
    with caplog.at_level(logging.WARNING):
        out = merge(config, tmp_path / "fallback")
    assert_files_from(out, bare, llama_family.base)
    warnings = [r.getMessage() for r in caplog.records if "has no tokenizer" in r.getMessage()]
    assert len(warnings) == 1
    assert str(bare) in warnings[0] and str(llama_family.base) in warnings[0]


def test_config_disagreements_are_listed_with_the_value_the_output_gets(
    llama_family, tmp_path, caplog
):
    with caplog.at_level(logging.WARNING):
        merge(configs(llama_family)["paramdelta"], tmp_path / "pd")
    (message,) = [r.getMessage() for r in caplog.records if "config.json differ" in r.getMessage()]
    assert "max_position_embeddings" in message
    assert f"the output gets 512 ({llama_family.base_v2})" in message
    assert "rope" in message


def test_config_disagreements_lists_only_fields_that_differ():
    lines = config_disagreements(
        {"a": {"vocab_size": 10, "rope_theta": 1.0}, "b": {"vocab_size": 10, "rope_theta": 2.0}},
        "b",
    )
    assert lines == ["rope_theta: a: 1.0, b: 2.0 -> the output gets 2.0 (b)"]


PAPER_TAGS = {"timber_spectral": "timber", "paramdelta": "paramdelta"}
PAPER_PHRASES = {"timber_spectral": "spectral tail", "paramdelta": "transplanted onto"}


@pytest.mark.slow
@pytest.mark.parametrize(
    "method, extra",
    [("timber_spectral", {}), ("paramdelta", {}), ("paramdelta", {"tokenizer_source": "union"})],
    ids=["timber_spectral", "paramdelta", "paramdelta-tokenizer_source"],
)
def test_stock_mergekit_yaml_gets_the_same_files(method, extra, llama_family, tmp_path):
    config_file = tmp_path / "config.yml"
    config = {**configs(llama_family)[method], **extra}
    config_file.write_text(yaml.safe_dump(config), encoding="utf-8")
    out = tmp_path / "out"
    mergekit_yaml = Path(sys.executable).with_name("mergekit-yaml")
    env = {k: v for k, v in os.environ.items() if k != "MERGEKIT_WEIGHTLEVEL_DISABLE"}
    subprocess.run(
        [str(mergekit_yaml), str(config_file), str(out), "--quiet"],
        check=True,
        env=env,
        capture_output=True,
    )
    config_member, tokenizer_member = EXPECTED[method]
    paths = llama_family.paths()
    assert_files_from(out, paths[config_member], paths[tokenizer_member])
    # The method's card, not mergekit's generic one ("merged using ... as a base").
    from huggingface_hub import ModelCard

    card = ModelCard.load(out / "README.md")
    assert {"mergekit", "merge", method, PAPER_TAGS[method]} <= set(card.data.tags)
    assert PAPER_PHRASES[method] in card.text
    assert "as a base" not in card.text


# --- no stale weight files (issue 16, item 4) -------------------------------------------


def weight_names(folder: Path) -> set[str]:
    from mergekit_weightlevel.running.stock_merge import weight_files

    return set(weight_files(folder))


def test_a_rerun_leaves_only_the_weights_it_wrote(llama_family, tmp_path, caplog):
    config = configs(llama_family)["timber_spectral"]
    out = tmp_path / "out"
    merge(config, out, out_shard_size=40_000)
    sharded = weight_names(out)
    assert "model.safetensors.index.json" in sharded and len(sharded) > 3
    (out / "notes.txt").write_text("mine")
    (out / "model-00007-of-00009.safetensors").write_bytes(b"left by an interrupted run")
    with caplog.at_level(logging.WARNING):
        merge(config, out)
    assert weight_names(out) == {"model.safetensors"}
    assert (out / "notes.txt").read_text() == "mine"
    (message,) = [r.getMessage() for r in caplog.records if "did not write" in r.getMessage()]
    assert "model-00007-of-00009.safetensors" in message
    assert "model.safetensors.index.json" in message


def test_builtin_methods_keep_mergekits_output_folder(llama_family, tmp_path):
    out = tmp_path / "ta"
    (out).mkdir()
    (out / "model-00001-of-00002.safetensors").write_bytes(b"old")
    config = {
        "merge_method": "task_arithmetic",
        "base_model": str(llama_family.base),
        "models": [{"model": str(llama_family.instruct), "parameters": {"weight": 1.0}}],
    }
    merge(config, out)
    assert "model-00001-of-00002.safetensors" in weight_names(out)


# --- sweeps: every output is the model it stands for, with its own card -----------------


def test_every_sweep_output_has_its_files_its_title_and_no_leftovers(llama_family, tmp_path):
    from mergekit_weightlevel.running.sweep import sweep_out_dirs, timber_sweep

    lambdas = [0.0, 0.4]
    outs = sweep_out_dirs(tmp_path / "timber", lambdas)
    outs[1].mkdir(parents=True)
    (outs[1] / "model-00002-of-00002.safetensors").write_bytes(b"old")
    timber_sweep(
        llama_family.base,
        llama_family.instruct,
        lambdas,
        outs,
        options=MergeOptions(quiet=True),
    )
    for out, lam in zip(outs, lambdas):
        assert_files_from(out, llama_family.instruct, llama_family.instruct)
        card = (out / "README.md").read_text(encoding="utf-8")
        assert f"# {out.name}\n" in card
        assert f"lambda: {lam}" in (out / "mergekit_config.yml").read_text(encoding="utf-8")
        assert weight_names(out) == {"model.safetensors"}

"""Bad inputs and faults: each gets a clear error (or warning), and no valid-looking output."""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from helpers import read_state, run_yaml_merge, write_config
from safetensors.torch import save_file

from mergekit_weightlevel.checks.headers import PreflightError
from mergekit_weightlevel.cli import main
from mergekit_weightlevel.demo.tiny_models import build_family, build_tokenizer
from mergekit_weightlevel.errors import WeightLevelConfigError
from mergekit_weightlevel.method_configs import (
    interp_config,
    paramdelta_config,
    shadow_graft_config,
    timber_config,
)
from mergekit_weightlevel.methods.base import ALLOW_NONFINITE_ENV


def rewritten(source: Path, dest: Path, edit) -> Path:
    """A copy of a single-file checkpoint whose tensors went through ``edit(state)``."""
    shutil.copytree(source, dest)
    state = read_state(source)
    edit(state)
    (dest / "model.safetensors").unlink()
    save_file({k: v.contiguous() for k, v in state.items()}, str(dest / "model.safetensors"))
    return dest


def paramdelta(family, donor, target=None, **extra):
    return paramdelta_config(family.base, donor, target or family.base_v2) | extra


def assert_no_model_written(out: Path) -> None:
    assert not (out / "config.json").exists()
    assert not list(out.glob("*.safetensors")) if out.exists() else True


def test_truncated_shard_names_the_file(qwen2_sharded_family, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(qwen2_sharded_family.instruct, bad)
    shard = sorted(bad.glob("*.safetensors"))[1]
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    with pytest.raises(
        PreflightError, match=rf"cannot read the safetensors file {shard}.*truncated or corrupted"
    ):
        run_yaml_merge(paramdelta(qwen2_sharded_family, bad), tmp_path / "out")
    assert_no_model_written(tmp_path / "out")


def test_index_entry_without_shard(qwen2_sharded_family, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(qwen2_sharded_family.instruct, bad)
    shard = sorted(bad.glob("*.safetensors"))[0]
    shard.unlink()
    with pytest.raises(PreflightError, match=rf"lists shard\(s\) missing from {bad}: {shard.name}"):
        run_yaml_merge(paramdelta(qwen2_sharded_family, bad), tmp_path / "out")


def test_shape_mismatch_names_tensor_and_both_shapes(llama_family, tmp_path):
    name = "model.layers.0.mlp.up_proj.weight"
    bad = rewritten(
        llama_family.instruct, tmp_path / "bad", lambda s: s.update({name: s[name][:100]})
    )
    with pytest.raises(
        PreflightError, match=rf"tensor {name}: .*base has shape \(160, 64\), .*bad has \(100, 64\)"
    ):
        run_yaml_merge(paramdelta(llama_family, bad), tmp_path / "out")
    assert_no_model_written(tmp_path / "out")


def test_missing_tensor_is_named(llama_family, tmp_path):
    name = "model.layers.1.self_attn.k_proj.weight"
    bad = rewritten(llama_family.instruct, tmp_path / "bad", lambda s: s.pop(name))
    with pytest.raises(PreflightError, match=rf"tensor {name} is in .*base but missing from .*bad"):
        run_yaml_merge(paramdelta(llama_family, bad), tmp_path / "out")


@pytest.fixture(scope="module")
def bigger_vocab_model(llama_family, tmp_path_factory):
    """The instruct model with 4 extra vocabulary rows (and a tokenizer that has them)."""

    def grow(state):
        for name in ("model.embed_tokens.weight", "lm_head.weight"):
            state[name] = torch.cat([state[name], 0.01 * torch.randn(4, state[name].shape[1])])

    folder = rewritten(
        llama_family.instruct, tmp_path_factory.mktemp("vocab") / "instruct132", grow
    )
    build_tokenizer(132).save_pretrained(folder)
    return folder


@pytest.mark.parametrize(
    "name, expected",
    [
        ("model.embed_tokens.weight", True),
        ("lm_head.weight", True),
        ("transformer.wte.weight", True),
        ("gpt_neox.embed_in.weight", True),
        ("embed_out.weight", True),
        ("bert.embeddings.word_embeddings.weight", True),
        ("model.layers.0.self_attn.q_proj.weight", False),
        ("transformer.wpe.weight", False),  # position embeddings: no vocabulary axis
        ("model.lm_head_norm.weight", False),  # a component that only starts like one
    ],
)
def test_vocabulary_tensor_names(name, expected):
    from mergekit_weightlevel.checks.headers import is_vocabulary_tensor

    assert is_vocabulary_tensor(name) is expected


def test_vocabulary_mismatch_error_shows_tokenizer_setting(
    llama_family, bigger_vocab_model, tmp_path
):
    config = write_config(tmp_path / "c.yml", paramdelta(llama_family, bigger_vocab_model))
    result = CliRunner().invoke(main, ["merge", str(config), str(tmp_path / "out")])
    assert result.exit_code == 1
    assert "vocabulary sizes differ" in result.output
    assert "model.embed_tokens.weight" in result.output and "(132, 64)" in result.output
    assert "tokenizer:\n    source: base" in result.output
    assert_no_model_written(tmp_path / "out")


def test_vocabulary_mismatch_then_tokenizer_setting_works(
    llama_family, bigger_vocab_model, tmp_path
):
    config = paramdelta(llama_family, bigger_vocab_model, tokenizer={"source": "base"})
    out = run_yaml_merge(config, tmp_path / "out")
    assert out["model.embed_tokens.weight"].shape == (128, 64)
    base, post, new = (
        read_state(p) for p in (llama_family.base, bigger_vocab_model, llama_family.base_v2)
    )
    name = "model.layers.0.self_attn.q_proj.weight"
    torch.testing.assert_close(out[name], new[name] + post[name] - base[name])


def test_nan_in_input_names_model_and_tensor(llama_family, tmp_path, monkeypatch):
    name = "model.layers.0.self_attn.v_proj.weight"

    def poison(state):
        state[name][3, 5] = float("nan")

    bad = rewritten(llama_family.instruct, tmp_path / "bad", poison)
    monkeypatch.delenv(ALLOW_NONFINITE_ENV, raising=False)
    with pytest.raises(WeightLevelConfigError, match=rf"merged tensor {name} has NaN/Inf.*{bad}"):
        run_yaml_merge(paramdelta(llama_family, bad), tmp_path / "out")
    assert_no_model_written(tmp_path / "out")

    monkeypatch.setenv(ALLOW_NONFINITE_ENV, "1")
    out = run_yaml_merge(paramdelta(llama_family, bad), tmp_path / "out-allowed")
    assert torch.isnan(out[name]).any()


def test_unrelated_models_warn_with_measured_sigma(llama_family, tmp_path, caplog):
    stranger = build_family(tmp_path / "stranger", seed=7).instruct
    with caplog.at_level(logging.WARNING):
        run_yaml_merge(paramdelta(llama_family, stranger), tmp_path / "out")
    warnings = [r.getMessage() for r in caplog.records if "far above" in r.getMessage()]
    assert len(warnings) == 1
    assert f"σ({llama_family.base}, {stranger})" in warnings[0]
    measured = float(warnings[0].split(" = ")[1].split()[0])
    assert measured > 0.25


def test_post_trained_pair_does_not_warn(llama_family, tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        run_yaml_merge(paramdelta(llama_family, llama_family.instruct), tmp_path / "out")
    assert not [r for r in caplog.records if "far above" in r.getMessage()]


def test_fp16_deltas_are_computed_in_float32():
    """(post − base) overflows fp16 here, while the final result fits: float32 arithmetic gets it right."""
    from mergekit.merge_methods import merge_state_dicts

    base = {"w": torch.full((2, 2), -40000.0, dtype=torch.float16)}
    post = {"w": torch.full((2, 2), 40000.0, dtype=torch.float16)}
    target = {"w": torch.full((2, 2), -48000.0, dtype=torch.float16)}
    out = merge_state_dicts(
        {"base": base, "post": post, "target": target},
        "paramdelta",
        base="base",
        parameters={"role": [None, None, "target"]},
    )
    assert out["w"].dtype == torch.float16
    assert torch.equal(out["w"], torch.full((2, 2), 32000.0, dtype=torch.float16))


# ----------------------------------------------------------------------------- decompositions


def fail_first_call(monkeypatch, function: str) -> list[torch.dtype]:
    """Make ``torch.linalg.<function>`` fail to converge once; record every call's dtype."""
    real = getattr(torch.linalg, function)
    calls: list[torch.dtype] = []

    def flaky(matrix, *args, **kwargs):
        calls.append(matrix.dtype)
        if len(calls) == 1:
            raise torch.linalg.LinAlgError("The algorithm failed to converge")
        return real(matrix, *args, **kwargs)

    monkeypatch.setattr(torch.linalg, function, flaky)
    return calls


@pytest.mark.parametrize("function", ["svd", "svdvals"])
def test_decomposition_that_does_not_converge_is_retried_in_float64(monkeypatch, function):
    from mergekit_weightlevel.numerics.spectral import singular_values, thin_svd

    matrix = torch.randn(12, 7, generator=torch.Generator().manual_seed(3))
    name = "model.layers.3.mlp.down_proj.weight"
    calls = fail_first_call(monkeypatch, function)
    with pytest.warns(RuntimeWarning) as caught:
        if function == "svd":
            values = thin_svd(matrix, precision=torch.float32, name=name).S
        else:
            values = singular_values(matrix, precision=torch.float32, name=name)
    assert calls == [torch.float32, torch.float64]
    message = str(caught[0].message)
    assert message.startswith(f"{name}: ") and "retried in torch.float64 on cpu" in message
    assert "The algorithm failed to converge" in message
    expected = torch.from_numpy(__import__("numpy").linalg.svd(matrix.double().numpy())[1])
    torch.testing.assert_close(values, expected, rtol=1e-12, atol=1e-12)


def gram_route_fails(monkeypatch) -> None:
    """analyze takes eRank from the Gram eigenvalues when accurate; a failed ``eigvalsh``
    sends it to the SVD (exact, silent): that is the route whose retries are tested here."""

    def never_converges(*args, **kwargs):
        raise torch.linalg.LinAlgError("The algorithm failed to converge")

    monkeypatch.setattr(torch.linalg, "eigvalsh", never_converges)


def first_decomposed(report) -> object:
    """The first tensor record of the first pair that had its singular values computed."""
    return next(record for record in report.pairs[0].tensors if record.erank)


def test_analyze_retries_a_failed_svd_and_names_the_tensor(llama_family, monkeypatch):
    from mergekit_weightlevel.analyze import analyze_models

    reference = analyze_models([llama_family.base, llama_family.instruct], quiet=True)
    name = first_decomposed(reference).name
    gram_route_fails(monkeypatch)
    calls = fail_first_call(monkeypatch, "svdvals")
    with pytest.warns(RuntimeWarning) as caught:
        report = analyze_models([llama_family.base, llama_family.instruct], quiet=True)
    assert calls[:2] == [torch.float32, torch.float64]
    assert str(caught[0].message).startswith(
        f"{name} (model A): singular values retried in torch.float64 on cpu"
    )
    retried = first_decomposed(report)
    assert retried.name == name
    assert retried.erank["a"] == pytest.approx(first_decomposed(reference).erank["a"], rel=1e-5)


def test_analyze_stops_naming_the_tensor_when_every_attempt_fails(llama_family, monkeypatch):
    def never_converges(*args, **kwargs):
        raise torch.linalg.LinAlgError("The algorithm failed to converge")

    monkeypatch.setattr(torch.linalg, "svdvals", never_converges)
    gram_route_fails(monkeypatch)
    result = CliRunner().invoke(
        main, ["analyze", str(llama_family.base), str(llama_family.instruct), "--quiet"]
    )
    assert result.exit_code == 1
    assert re.search(r"error: \S+\.weight \(model A\): singular values failed:", result.output)
    assert "torch.float32 on cpu" in result.output and "torch.float64 on cpu" in result.output
    assert "Traceback" not in result.output


# ----------------------------------------------------------------------------- missing tensors


@pytest.mark.parametrize(
    "method, config",
    [
        ("shadow_graft", lambda f, bad: shadow_graft_config(f.base, bad, f.base_v2)),
        ("timber_spectral", lambda f, bad: timber_config(f.base, bad)),
        ("instruct_thinking_interp", lambda f, bad: interp_config(bad, f.thinking, 0.5)),
    ],
)
def test_missing_tensor_policy_of_every_method(llama_family, tmp_path, method, config):
    """The documented policy (docs/reliability.md): an error naming tensor and models."""
    name = "model.layers.0.mlp.gate_proj.weight"
    bad = rewritten(llama_family.instruct, tmp_path / "bad", lambda s: s.pop(name))
    with pytest.raises(
        PreflightError, match=rf"(?s){method}: .*tensor {name} is in .* missing from .*bad"
    ):
        run_yaml_merge(config(llama_family, bad), tmp_path / "out")
    assert_no_model_written(tmp_path / "out")


# ----------------------------------------------------------------------------- parameters


def interp(family, parameters, model_parameters=None):
    return {
        "merge_method": "instruct_thinking_interp",
        "base_model": str(family.instruct),
        "models": [{"model": str(family.thinking), "parameters": model_parameters or {}}],
        "parameters": parameters,
    }


def merge_cli(config: dict, tmp_path: Path):
    path = write_config(tmp_path / "c.yml", config)
    return CliRunner().invoke(main, ["merge", str(path), str(tmp_path / "out")])


def test_misspelt_parameter_is_an_error_not_a_silent_default(llama_family, tmp_path):
    config = timber_config(llama_family.base, llama_family.instruct, parameters={"lamda": 0.9})
    result = merge_cli(config, tmp_path)
    assert result.exit_code == 1
    assert (
        "timber_spectral: unknown parameter `lamda` in the top-level `parameters:`. "
        "Did you mean `lambda`?" in result.output
    )
    assert "`lambda`, `scope`, `erank_exponent`, `solver`" in result.output
    assert_no_model_written(tmp_path / "out")


def test_unknown_parameter_on_a_model_names_the_model(llama_family, tmp_path):
    config = paramdelta(llama_family, llama_family.instruct)
    config["models"][1]["parameters"]["wieght"] = 2.0
    result = merge_cli(config, tmp_path)
    assert result.exit_code == 1
    assert (
        f"paramdelta: unknown parameter `wieght` in the parameters of model "
        f"{llama_family.base_v2}. Did you mean `weight`?" in result.output
    )


@pytest.mark.parametrize(
    "parameters, model_parameters, message",
    [
        ({"lambda": "half"}, None, "parameter `lambda` in the top-level `parameters:` must be a "
         "float in [0, 1], got 'half'"),
        ({"lambda": [0.2, 1.5]}, None, "instruct_thinking_interp: parameter `lambda` must be a "
         "float in [0, 1], got 1.5"),
        ({"lambda": [{"filter": "mlp", "value": -1}, {"value": 0.5}]}, None,
         "parameter `lambda` must be a float in [0, 1], got -1"),
        ({"lambda": 0.5}, {"lambda": "x"},
         "in the parameters of model {thinking} is one setting for the whole merge"),
    ],
)  # fmt: skip
def test_wrong_parameter_values_name_method_parameter_and_place(
    llama_family, tmp_path, parameters, model_parameters, message
):
    result = merge_cli(interp(llama_family, parameters, model_parameters), tmp_path)
    assert result.exit_code == 1
    assert message.format(thinking=llama_family.thinking) in result.output
    assert "Traceback" not in result.output
    assert_no_model_written(tmp_path / "out")


def test_gradients_and_filters_in_range_are_accepted(llama_family, tmp_path):
    lam = [{"filter": "mlp", "value": [0.0, 1.0]}, {"value": 0.5}]
    result = merge_cli(interp(llama_family, {"lambda": lam}), tmp_path)
    assert result.exit_code == 0, result.output
    merged, instruct = read_state(tmp_path / "out"), read_state(llama_family.instruct)
    name = "model.layers.0.mlp.up_proj.weight"  # layer 0 of 2: the gradient's start, λ = 0
    assert torch.equal(merged[name], instruct[name])


def test_corrupted_shard_from_the_cli_names_the_file_without_traceback(
    qwen2_sharded_family, tmp_path
):
    bad = tmp_path / "bad"
    shutil.copytree(qwen2_sharded_family.instruct, bad)
    shard = sorted(bad.glob("*.safetensors"))[0]
    shard.write_bytes(b"\x00" * 64)  # not a safetensors header at all
    result = merge_cli(paramdelta(qwen2_sharded_family, bad), tmp_path)
    assert result.exit_code == 1
    assert f"cannot read the safetensors file {shard}" in result.output
    assert "truncated or corrupted: re-download it" in result.output
    assert "Traceback" not in result.output
    assert_no_model_written(tmp_path / "out")


def test_missing_index_entry_from_the_cli(qwen2_sharded_family, tmp_path):
    import json

    bad = tmp_path / "bad"
    shutil.copytree(qwen2_sharded_family.instruct, bad)
    index = bad / "model.safetensors.index.json"
    data = json.loads(index.read_text())
    data["weight_map"]["model.layers.9.mlp.up_proj.weight"] = "model-00099-of-00099.safetensors"
    index.write_text(json.dumps(data))
    result = merge_cli(paramdelta(qwen2_sharded_family, bad), tmp_path)
    assert result.exit_code == 1
    assert f"lists shard(s) missing from {bad}: model-00099-of-00099.safetensors" in result.output
    assert "Traceback" not in result.output


# -------------------------------------------------- the stock mergekit-yaml, as strict (issue 16)


def stock_mergekit_yaml(config: dict, tmp_path: Path) -> subprocess.CompletedProcess:
    path = write_config(tmp_path / "c.yml", config)
    env = {k: v for k, v in os.environ.items() if k != "MERGEKIT_WEIGHTLEVEL_DISABLE"}
    return subprocess.run(
        [str(Path(sys.executable).with_name("mergekit-yaml")), str(path), str(tmp_path / "out")],
        env=env,
        capture_output=True,
        text=True,
    )


def timber(family, **parameters):
    return timber_config(family.base, family.instruct, parameters=parameters)


@pytest.mark.slow
@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda c: c["parameters"].update(lamda=0.5),
         "timber_spectral: unknown parameter `lamda` in the top-level `parameters:`. "
         "Did you mean `lambda`?"),
        (lambda c: c["models"][0].update(parameters={"lamda": 0.5}),
         "timber_spectral: unknown parameter `lamda` in the parameters of model {instruct}"),
        (lambda c: c["parameters"].update({"lambda": "heavy"}),
         "timber_spectral: parameter `lambda` in the top-level `parameters:` must be a float in "
         "[0, inf), got 'heavy'"),
        (lambda c: c.update(merge_method="timber"),
         "unknown merge_method `timber`. Did you mean `merge_method: timber_spectral`?"),
    ],
    ids=["misspelt", "misspelt per model", "wrong type", "method name"],
)  # fmt: skip
def test_stock_mergekit_yaml_refuses_what_merge_refuses(llama_family, tmp_path, edit, message):
    config = timber(llama_family)
    edit(config)
    result = stock_mergekit_yaml(config, tmp_path)
    assert result.returncode == 1, result.stderr
    assert message.format(instruct=llama_family.instruct) in result.stderr
    assert "Traceback" not in result.stderr
    assert_no_model_written(tmp_path / "out")


@pytest.mark.parametrize(
    "written, meant",
    [("timber", "timber_spectral"), ("shadow_ft", "shadow_graft"), ("param_delta", "paramdelta"),
     ("Shadow-FT", "shadow_graft"), ("timber_spectal", "timber_spectral")],
)  # fmt: skip
def test_merge_suggests_our_method_for_a_near_name(llama_family, tmp_path, written, meant):
    result = merge_cli(timber(llama_family) | {"merge_method": written}, tmp_path)
    assert result.exit_code == 1
    assert f"unknown merge_method `{written}`. Did you mean `merge_method: {meant}`?" in (
        result.output
    )


def test_an_unknown_method_far_from_ours_keeps_mergekits_message(llama_family, tmp_path):
    with pytest.raises(Exception, match="Unimplemented merge method frobnicate"):
        run_yaml_merge(timber(llama_family) | {"merge_method": "frobnicate"}, tmp_path / "out")


def test_no_vocabulary_warning_when_the_config_aligns_vocabularies(
    llama_family, bigger_vocab_model, tmp_path, caplog
):
    config = timber(llama_family) | {
        "models": [{"model": str(bigger_vocab_model)}],
        "tokenizer": {"source": "union"},
    }
    with caplog.at_level(logging.WARNING):
        run_yaml_merge(config, tmp_path / "out")
    assert not [r for r in caplog.records if "vocabulary sizes differ" in r.getMessage()]


# ------------------------------------- --unsafe-truncate-embeddings, as mergekit's built-ins

VOCABULARY = ("model.embed_tokens.weight", "lm_head.weight")


def _truncated(state: dict, rows: int = 128) -> dict:
    return {n: t[:rows] if n in VOCABULARY else t for n, t in state.items()}


def _truncation_cases(family, bigger):
    """(config with one input of 132 rows, the reference on the inputs cut to 128 rows)."""
    from mergekit_weightlevel import reference

    base, instruct, v2, tuned, thinking = (
        _truncated(read_state(p))
        for p in (family.base, bigger, family.base_v2, family.base_tuned, family.instruct)
    )
    return {
        "paramdelta": (
            paramdelta_config(family.base, bigger, family.base_v2),
            reference.paramdelta_state(base, instruct, v2),
        ),
        "shadow_graft": (
            shadow_graft_config(family.base, family.base_tuned, bigger),
            reference.shadow_graft_state(base, tuned, instruct, r"(q|k|v|o|gate|up|down)_proj"),
        ),
        "timber_spectral": (
            timber_config(family.base, bigger, 0.2),
            reference.timber_state(base, instruct, 0.2),
        ),
        "instruct_thinking_interp": (
            interp_config(family.instruct, bigger, 0.4),
            reference.interp_state(thinking, instruct, 0.4),
        ),
    }


@pytest.mark.parametrize(
    "method", ["paramdelta", "shadow_graft", "timber_spectral", "instruct_thinking_interp"]
)
def test_unsafe_truncate_embeddings_is_honoured(method, llama_family, bigger_vocab_model, tmp_path):
    config, expected = _truncation_cases(llama_family, bigger_vocab_model)[method]
    out = run_yaml_merge(config, tmp_path / "out", unsafe_truncate_embeddings=True)
    assert out.keys() == expected.keys()
    for name, tensor in out.items():
        torch.testing.assert_close(tensor.double(), expected[name], rtol=1e-5, atol=1e-6)


def test_unsafe_truncate_embeddings_matches_mergekits_task_arithmetic(
    llama_family, bigger_vocab_model, tmp_path
):
    """The oracle: mergekit's own built-in on the same inputs and option."""
    ours = run_yaml_merge(
        paramdelta(llama_family, bigger_vocab_model),
        tmp_path / "ours",
        unsafe_truncate_embeddings=True,
    )
    builtin = run_yaml_merge(
        {
            "merge_method": "task_arithmetic",
            "base_model": str(llama_family.base),
            "models": [
                {"model": str(bigger_vocab_model), "parameters": {"weight": 1.0}},
                {"model": str(llama_family.base_v2), "parameters": {"weight": 1.0}},
            ],
            "parameters": {"normalize": False},
        },
        tmp_path / "builtin",
        unsafe_truncate_embeddings=True,
    )
    for name, tensor in builtin.items():
        torch.testing.assert_close(ours[name], tensor, rtol=1e-5, atol=1e-6)


def test_unsafe_truncate_embeddings_from_the_command_line(
    llama_family, bigger_vocab_model, tmp_path
):
    config = write_config(tmp_path / "c.yml", paramdelta(llama_family, bigger_vocab_model))
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main, ["merge", str(config), str(out), "--unsafe-truncate-embeddings", "--quiet"]
    )
    assert result.exit_code == 0, result.output
    assert read_state(out)["model.embed_tokens.weight"].shape == (128, 64)


def test_unsafe_truncate_embeddings_in_a_sweep(llama_family, bigger_vocab_model, tmp_path):
    from mergekit.options import MergeOptions

    from mergekit_weightlevel.running.sweep import sweep

    config = timber(llama_family) | {"models": [{"model": str(bigger_vocab_model)}]}
    options = MergeOptions(quiet=True, unsafe_truncate_embeddings=True)
    (output,) = sweep(config, [0.4], tmp_path / "s", options=options)
    assert output.error is None
    assert read_state(output.folder)["lm_head.weight"].shape == (128, 64)

"""What the config alone says is wrong is one line before mergekit creates the output folder,
on every entry point (issue 29, items 2 and 11): the stock `mergekit-yaml`, `mergekit-multi`,
`mergekit-weightlevel merge`, `sweep` and mergekit's `run_merge` from Python."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import write_config
from mergekit.config import MergeConfiguration
from mergekit.merge import run_merge
from mergekit.options import MergeOptions

from mergekit_weightlevel.cli import main
from mergekit_weightlevel.errors import WeightLevelConfigError
from mergekit_weightlevel.method_configs import (
    interp_config,
    paramdelta_config,
    shadow_graft_config,
    timber_config,
)


def _paramdelta_without_target(family):
    config = paramdelta_config(family.base, family.instruct, family.base_v2)
    del config["models"][1]["parameters"]
    return config


def _two_targets(family):
    config = paramdelta_config(family.base, family.instruct, family.base_v2)
    config["models"][0]["parameters"] = {"role": "target"}
    return config


def _role_on_the_base(family):
    config = shadow_graft_config(family.base, family.base_tuned, family.instruct)
    config["models"].append({"model": str(family.base), "parameters": {"role": "donor"}})
    return config


def _include_matching_nothing(family):
    return shadow_graft_config(
        family.base, family.base_tuned, family.instruct, parameters={"include": "q_projection"}
    )


def _include_under_a_model(family):
    config = shadow_graft_config(family.base, family.base_tuned, family.instruct)
    config["models"][1]["parameters"]["include"] = "q_proj"
    return config


def _lambda_under_a_model(family):
    config = interp_config(family.instruct, family.thinking)
    config["models"][0]["parameters"] = {"lambda": 0.5}
    return config


def _lambda_nowhere(family):
    return interp_config(family.instruct, family.thinking)


def _timber_with_two_models(family):
    config = timber_config(family.base, family.instruct, 0.2)
    config["models"].append({"model": str(family.thinking)})
    return config


def _no_target_in_a_slice(family):
    """The roles of every group of inputs are checked: here the second slice has no target."""
    config = paramdelta_config(family.base, family.instruct, family.base_v2)
    sources = [
        {"model": str(family.base)},
        {"model": str(family.instruct)},
        {"model": str(family.base_v2), "parameters": {"role": "target"}},
    ]
    tuned = {"model": str(family.base_tuned)}
    config.pop("models")
    config["slices"] = [
        {"sources": [dict(s, layer_range=[0, 1]) for s in sources]},
        {"sources": [dict(s, layer_range=[1, 2]) for s in [*sources[:2], tuned]]},
    ]
    return config


#: (config builder, the one line every entry point prints, naming the fix)
BROKEN = {
    "paramdelta without role: target": (
        _paramdelta_without_target,
        "paramdelta: no model has `role: target` (models: {instruct}, {base_v2}). paramdelta "
        "needs `base_model:` Θ_base, one model with `parameters: {{role: target}}`",
    ),
    "two targets": (_two_targets, "paramdelta: 2 models have `role: target`"),
    "a role on the base": (
        _role_on_the_base,
        "shadow_graft: the base model {base} has `role: donor`, but the base cannot take a role",
    ),
    "include matching nothing": (
        _include_matching_nothing,
        "shadow_graft: parameter `include` ('q_projection') matches none of the 16 ≥2-D "
        "tensors that mergekit merges for the target {instruct}",
    ),
    "include under a model": (
        _include_under_a_model,
        "shadow_graft: parameter `include` in the parameters of model {instruct} is one setting "
        "for the whole merge, and mergekit never reads such a parameter from a model's",
    ),
    "lambda under a model": (
        _lambda_under_a_model,
        "instruct_thinking_interp: parameter `lambda` in the parameters of model {thinking} is "
        "one setting for the whole merge",
    ),
    "lambda nowhere": (
        _lambda_nowhere,
        "instruct_thinking_interp: parameter `lambda` is required (a float in [0, 1]) and the "
        "config does not set it. Add `lambda: …` to the top-level `parameters:`",
    ),
    "timber with two models": (
        _timber_with_two_models,
        "timber_spectral: Merge method requires exactly 1 non-base inputs; got 2",
    ),
    "no target in slice 1": (_no_target_in_a_slice, "paramdelta: no model has `role: target`"),
}


def expected(case: str, family) -> str:
    return BROKEN[case][1].format(**{k: str(v) for k, v in family.paths().items()})


def broken_config(case: str, family) -> dict:
    return BROKEN[case][0](family)


def assert_one_line_and_nothing_written(output: str, message: str, out: Path) -> None:
    assert message in output
    assert "Traceback" not in output
    # the misleading "the output's config comes from … (the first non-base model)" of before
    assert "first non-base model" not in output
    assert not out.exists(), f"{out} was created: {sorted(p.name for p in out.iterdir())}"


@pytest.mark.parametrize("case", list(BROKEN))
def test_python_api_refuses_before_creating_the_folder(case, llama_family, tmp_path):
    out = tmp_path / "out"
    config = MergeConfiguration.model_validate(broken_config(case, llama_family))
    with pytest.raises(WeightLevelConfigError) as raised:
        run_merge(config, str(out), options=MergeOptions(quiet=True))
    assert_one_line_and_nothing_written(str(raised.value), expected(case, llama_family), out)


@pytest.mark.parametrize("case", list(BROKEN))
def test_merge_command_refuses_before_creating_the_folder(case, llama_family, tmp_path):
    config = write_config(tmp_path / "c.yml", broken_config(case, llama_family))
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["merge", str(config), str(out)])
    assert result.exit_code == 1
    assert_one_line_and_nothing_written(result.output, expected(case, llama_family), out)


#: The sweep refuses a swept parameter set below the top level with its own message first.
SWEEP_MESSAGE = {
    "lambda under a model": "instruct_thinking_interp sweep: the config sets `lambda` below "
    "the top level in the parameters of model {thinking}",
}


@pytest.mark.parametrize("case", [c for c in BROKEN if c != "lambda nowhere"])
def test_sweep_refuses_before_creating_any_folder(case, llama_family, tmp_path):
    config = write_config(tmp_path / "c.yml", broken_config(case, llama_family))
    result = CliRunner().invoke(main, ["sweep", str(config), str(tmp_path / "s"), "--values", "1"])
    assert result.exit_code == 1
    message = SWEEP_MESSAGE.get(case, BROKEN[case][1])
    message = message.format(**{k: str(v) for k, v in llama_family.paths().items()})
    assert message in result.output
    assert "Traceback" not in result.output
    assert list(tmp_path.glob("s-*")) == []


def _stock(command: str, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "MERGEKIT_WEIGHTLEVEL_DISABLE"}
    executable = str(Path(sys.executable).with_name(command))
    return subprocess.run([executable, *args], env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
@pytest.mark.parametrize("case", list(BROKEN))
def test_stock_mergekit_yaml_prints_one_line_before_creating_the_folder(
    case, llama_family, tmp_path
):
    config = write_config(tmp_path / "c.yml", broken_config(case, llama_family))
    out = tmp_path / "out"
    result = _stock("mergekit-yaml", str(config), str(out))
    assert result.returncode == 1
    assert f"Error: {expected(case, llama_family)}" in result.stderr
    assert_one_line_and_nothing_written(result.stderr, expected(case, llama_family), out)


@pytest.mark.slow
@pytest.mark.parametrize("case", ["paramdelta without role: target", "include matching nothing"])
def test_stock_mergekit_multi_prints_one_line_before_creating_the_folder(
    case, llama_family, tmp_path
):
    config = write_config(tmp_path / "c.yml", broken_config(case, llama_family))
    out = tmp_path / "out"
    result = _stock(
        "mergekit-multi", str(config), "--out-path", str(out), "-I", str(tmp_path / "i")
    )
    assert f"Error: {expected(case, llama_family)}" in result.stderr
    assert_one_line_and_nothing_written(result.stderr, expected(case, llama_family), out)

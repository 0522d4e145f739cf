"""The `mergekit-weightlevel` CLI, through click's runner, and stock `mergekit-yaml` end to end."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from helpers import read_state, write_config

from mergekit_weightlevel.about import __version__
from mergekit_weightlevel.cli import main
from mergekit_weightlevel.method_configs import paramdelta_config
from mergekit_weightlevel.registry import METHOD_NAMES, METHODS


def test_version():
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert __version__ in result.output


def test_methods_lists_every_parameter_from_the_specs():
    result = CliRunner().invoke(main, ["methods", "--json"])
    assert result.exit_code == 0, result.output
    described = json.loads(result.output)
    assert [m["name"] for m in described] == list(METHOD_NAMES)
    for method, entry in zip(METHODS, described):
        assert entry["reference_url"] == method.spec.reference_url
        assert [p["name"] for p in entry["parameters"]] == [p.name for p in method.spec.parameters]
    text = CliRunner().invoke(main, ["methods"]).output
    assert "paramdelta  (ParamΔ, https://arxiv.org/abs/2504.21023)" in text
    assert "- weight: float, per non-base model, default 1.0" in text


def test_demo_runs_and_reports(tmp_path):
    result = CliRunner().invoke(main, ["demo", str(tmp_path / "demo")])
    assert result.exit_code == 0, result.output
    assert "paramdelta: output = base_v2 + (instruct − base)" in result.output
    assert (tmp_path / "demo" / "merged-paramdelta" / "model.safetensors").exists()
    error = float(result.output.split("float64 re-computation| = ")[1].split()[0])
    assert error < 1e-6


def test_merge_command_runs_a_yaml(llama_family, tmp_path):
    config = write_config(
        tmp_path / "c.yml",
        paramdelta_config(llama_family.base, llama_family.instruct, llama_family.base_v2),
    )
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["merge", str(config), str(out), "--no-copy-tokenizer"])
    assert result.exit_code == 0, result.output
    merged = read_state(out)
    base, post, new = (
        read_state(p) for p in (llama_family.base, llama_family.instruct, llama_family.base_v2)
    )
    for name in merged:
        torch.testing.assert_close(merged[name], new[name] + post[name] - base[name])


def test_merge_command_reports_config_errors_without_traceback(llama_family, tmp_path):
    config = write_config(
        tmp_path / "c.yml",
        {
            "merge_method": "paramdelta",
            "base_model": str(llama_family.base),
            "models": [{"model": str(llama_family.instruct)}, {"model": str(llama_family.base_v2)}],
        },
    )
    result = CliRunner().invoke(main, ["merge", str(config), str(tmp_path / "out")])
    assert result.exit_code == 1
    assert "error: paramdelta: no model has `role: target`" in result.output
    assert "Traceback" not in result.output


def test_usage_error_exit_code():
    result = CliRunner().invoke(main, ["merge"])
    assert result.exit_code == 2


@pytest.mark.slow
def test_stock_mergekit_yaml_console_script(qwen2_sharded_family, tmp_path):
    """The installed `mergekit-yaml`, untouched, runs paramdelta; the card is the method's own
    (ParamΔ's paper linked, the transplant in its terms), not mergekit's generic one."""
    family = qwen2_sharded_family
    exe = shutil.which("mergekit-yaml") or str(Path(sys.executable).parent / "mergekit-yaml")
    config = write_config(
        tmp_path / "paramdelta.yml",
        paramdelta_config(
            family.base,
            [(family.instruct, 0.8), (family.thinking, 0.3)],
            family.base_v2,
            dtype="float32",
        ),
    )
    out = tmp_path / "out"
    proc = subprocess.run([exe, str(config), str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    merged = read_state(out)
    base, post, think, new = (
        read_state(p) for p in (family.base, family.instruct, family.thinking, family.base_v2)
    )
    assert set(merged) == set(new)
    for name in merged:
        expected = (
            new[name].double()
            + 0.8 * (post[name].double() - base[name].double())
            + 0.3 * (think[name].double() - base[name].double())
        )
        assert torch.allclose(merged[name].double(), expected, rtol=0, atol=1e-6), name
    card = (out / "README.md").read_text()
    assert (
        "ParamΔ: the post-training of instruct (weight = 0.8) and thinking (weight = 0.3)" in card
    )
    assert "Post-Train Large Language Model at Zero Cost](https://arxiv.org/abs/2504.21023)" in card

"""Every command: exit 2 for usage errors, 1 for failures, no traceback unless --debug."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import write_config

from mergekit_weightlevel.cli import main


def invoke(*args, debug: bool = False):
    return CliRunner().invoke(main, (["--debug"] if debug else []) + [str(a) for a in args])


@pytest.fixture
def not_a_folder(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    return blocker


@pytest.fixture
def paramdelta_without_target(llama_family, tmp_path):
    return write_config(
        tmp_path / "c.yml",
        {
            "merge_method": "paramdelta",
            "base_model": str(llama_family.base),
            "models": [{"model": str(llama_family.instruct)}, {"model": str(llama_family.base_v2)}],
        },
    )


USAGE_ERRORS = {
    "analyze: no model": ["analyze"],
    "analyze: one model": ["analyze", "a"],
    "analyze: bad metric": ["analyze", "a", "b", "--metrics", "sigma,bogus"],
    "analyze: bad layers": ["analyze", "a", "b", "--layers", "x-y"],
    "analyze: bad regex": ["analyze", "a", "b", "--include", "("],
    "methods: unknown option": ["methods", "--bogus"],
    "merge: no arguments": ["merge"],
    "merge: config does not exist": ["merge", "/no/such/config.yml", "out"],
    "demo: unknown architecture": ["demo", "d", "--arch", "gpt5"],
    "sweep: no subcommand method": ["sweep", "ties"],
    "sweep timber: no --lambdas": ["sweep", "timber"],
    "unknown command": ["mrege"],
}


@pytest.mark.parametrize("args", USAGE_ERRORS.values(), ids=USAGE_ERRORS.keys())
def test_usage_errors_exit_2(args):
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    assert "Usage:" in result.output or "Error:" in result.output
    assert "Traceback" not in result.output


def test_sweep_bad_lambda_list_is_a_usage_error(tmp_path):
    config = write_config(tmp_path / "c.yml", {"merge_method": "timber_spectral"})
    result = invoke("sweep", "timber", config, tmp_path / "o", "--lambdas", "0.1,x")
    assert result.exit_code == 2
    assert "comma-separated list of numbers" in result.output


def failures(llama_family, tmp_path, not_a_folder, paramdelta_without_target):
    """(command line, the start of the expected message) for one failure per command."""
    bad_yaml = tmp_path / "bad.yml"
    bad_yaml.write_text("merge_method: paramdelta\nmodels: [\n")
    unknown = write_config(
        tmp_path / "unknown.yml",
        {"merge_method": "no_such_method", "models": [{"model": str(llama_family.base)}]},
    )
    not_timber = paramdelta_without_target
    return {
        "analyze: missing local model": (
            ["analyze", llama_family.base, tmp_path / "missing" / "model"],
            "error: analyze: model",
        ),
        "merge: config error": (
            ["merge", paramdelta_without_target, tmp_path / "out"],
            "error: paramdelta: no model has `role: target`",
        ),
        "merge: YAML syntax error": (
            ["merge", bad_yaml, tmp_path / "out"],
            f"error: {bad_yaml} is not valid YAML: while parsing",
        ),
        "merge: unknown method": (
            ["merge", unknown, tmp_path / "out"],
            "error: Unimplemented merge method no_such_method",
        ),
        "demo: folder under a file": (
            ["demo", not_a_folder / "demo"],
            f"error: [Errno 20] Not a directory: '{not_a_folder / 'demo'}'",
        ),
        "sweep timber: not a timber config": (
            ["sweep", "timber", not_timber, tmp_path / "o", "--lambdas", "0.1,0.2"],
            "error: timber_spectral sweep: the config's merge_method is 'paramdelta'",
        ),
    }


FAILURE_IDS = [
    "analyze: missing local model",
    "merge: config error",
    "merge: YAML syntax error",
    "merge: unknown method",
    "demo: folder under a file",
    "sweep timber: not a timber config",
]


@pytest.mark.parametrize("case", FAILURE_IDS)
def test_failures_exit_1_without_traceback(
    case, llama_family, tmp_path, not_a_folder, paramdelta_without_target, monkeypatch
):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    args, message = failures(llama_family, tmp_path, not_a_folder, paramdelta_without_target)[case]
    result = invoke(*args)
    assert result.exit_code == 1, result.output
    assert message in result.output, result.output
    assert "(run with --debug for the traceback)" in result.output
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)  # handled, not an escaped exception

    debug = invoke(*args, debug=True)
    assert debug.exit_code == 1
    # With --debug the original exception escapes (click's runner keeps it; a terminal
    # shows its traceback, see the subprocess test below).
    assert not isinstance(debug.exception, SystemExit), debug.output
    assert "(run with --debug" not in debug.output


def test_methods_has_no_failure_mode():
    """`methods` reads only the registry: it succeeds (its only errors are usage errors)."""
    assert invoke("methods").exit_code == 0
    assert invoke("methods", "--json").exit_code == 0


def test_traceback_only_with_debug_in_a_real_process(tmp_path):
    """The console behaviour end to end: no traceback by default, one with --debug."""
    command = [sys.executable, "-m", "mergekit_weightlevel.cli"]
    args = ["analyze", str(tmp_path / "no-model-a"), str(tmp_path / "no-model-b")]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    plain = subprocess.run(command + args, capture_output=True, text=True, env=env, timeout=120)
    assert plain.returncode == 1
    assert "error: analyze: model" in plain.stderr and "Traceback" not in plain.stderr
    debug = subprocess.run(
        command + ["--debug"] + args, capture_output=True, text=True, env=env, timeout=120
    )
    assert debug.returncode == 1
    assert "Traceback (most recent call last)" in debug.stderr
    assert "ModelNotAvailableError" in debug.stderr


# --------------------------------------------------- user errors vs bugs (one error base class)


def _methods_raising(monkeypatch, error: BaseException):
    import mergekit_weightlevel.registry as registry

    def broken():
        raise error

    monkeypatch.setattr(registry, "describe_methods", broken)
    return CliRunner().invoke(main, ["methods"])


def test_a_weightlevel_error_is_one_line_without_traceback(monkeypatch):
    from mergekit_weightlevel.errors import WeightLevelInputError

    result = _methods_raising(monkeypatch, WeightLevelInputError("--x: not like that; do this"))
    assert result.exit_code == 1
    assert "error: --x: not like that; do this" in result.output
    assert "Traceback" not in result.output and "This is a bug" not in result.output


def test_a_builtin_error_from_our_own_code_is_a_bug_with_its_traceback(monkeypatch):
    result = _methods_raising(monkeypatch, KeyError("some_internal_key"))
    assert result.exit_code == 1
    assert "Traceback" in result.output and "KeyError: 'some_internal_key'" in result.output
    assert "This is a bug in mergekit-weightlevel" in result.output


def test_a_librarys_complaint_about_the_input_stays_a_user_error(monkeypatch):
    import json

    import mergekit_weightlevel.registry as registry

    monkeypatch.setattr(registry, "describe_methods", lambda: json.loads("{not json"))
    result = CliRunner().invoke(main, ["methods"])
    assert result.exit_code == 1
    assert result.output.startswith("error: ") and "Traceback" not in result.output


# ------------------------------------------ warnings: one format, as mergekit prints its own


def test_every_warning_of_the_package_carries_its_name(llama_family, tmp_path, caplog):
    """Issued deep inside (running.config_checks here), named as the package."""
    from mergekit.config import MergeConfiguration
    from mergekit.merge import run_merge
    from mergekit.options import MergeOptions

    from mergekit_weightlevel.method_configs import paramdelta_config

    config = paramdelta_config(llama_family.base, llama_family.instruct, llama_family.base_v2)
    with caplog.at_level(logging.WARNING):
        run_merge(MergeConfiguration.model_validate(config), str(tmp_path / "out"), MergeOptions())
    ours = [r for r in caplog.records if "config.json differ" in r.getMessage()]
    assert [r.name for r in ours] == ["mergekit_weightlevel"]


@pytest.mark.slow
@pytest.mark.parametrize("command", ["mergekit-yaml", "mergekit-weightlevel merge"])
def test_warnings_print_like_mergekits_own(command, llama_family, tmp_path):
    from mergekit_weightlevel.method_configs import paramdelta_config

    config = paramdelta_config(llama_family.base, llama_family.instruct, llama_family.base_v2)
    path = write_config(tmp_path / "c.yml", config)
    executable, *sub = command.split()
    result = subprocess.run(
        [str(Path(sys.executable).with_name(executable)), *sub, str(path), str(tmp_path / "o")],
        capture_output=True, text=True, timeout=300,
        env={k: v for k, v in os.environ.items() if k != "MERGEKIT_WEIGHTLEVEL_DISABLE"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "WARNING:mergekit_weightlevel:paramdelta: the inputs' config.json differ" in (
        result.stderr
    )
    assert "WARNING:mergekit_weightlevel." not in result.stderr  # no module path

"""Registration into stock mergekit: the .pth hook, idempotence, the off switch, failure safety."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap

import pytest
from mergekit import merge_methods

from mergekit_weightlevel.registry import METHOD_NAMES, register_methods


def run_python(code: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    """A fresh interpreter, started outside the source tree so it sees the installed package."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MERGEKIT_WEIGHTLEVEL")}
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tempfile.gettempdir(),
        timeout=120,
    )


def test_fresh_interpreter_importing_only_mergekit_sees_methods():
    result = run_python(
        """
        import mergekit.merge_methods as mm
        print(",".join(m.spec.name for m in mm.registered_methods()))
        """
    )
    assert result.returncode == 0, result.stderr
    names = result.stdout.strip().split(",")
    assert set(METHOD_NAMES) <= set(names)
    assert "task_arithmetic" in names  # mergekit's own methods are untouched
    assert "mergekit-weightlevel" not in result.stderr  # no warning


def test_startup_does_not_import_torch_or_mergekit():
    result = run_python("import sys; print('torch' in sys.modules, 'mergekit' in sys.modules)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False"]
    # ... yet the hook is installed: it waits on sys.meta_path.
    result = run_python("import sys; print([type(f).__name__ for f in sys.meta_path])")
    assert "_RegisterAfterImport" in result.stdout


def test_importing_the_package_imports_neither_torch_nor_mergekit():
    """`analyze` on local folders depends on it; registration then waits for mergekit."""
    result = run_python(
        """
        import sys
        import mergekit_weightlevel
        print("torch" in sys.modules, "mergekit" in sys.modules)
        import mergekit.merge_methods as mm
        print(mergekit_weightlevel.METHOD_NAMES)
        print(tuple(m.spec.name for m in mm.registered_methods())[-4:])
        """
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "False False"
    assert lines[1] == lines[2] == str(METHOD_NAMES)


def test_importing_the_registry_first_registers_once_without_warning():
    result = run_python(
        """
        import warnings
        warnings.simplefilter("error", RuntimeWarning)
        import mergekit_weightlevel.registry
        import mergekit.merge_methods as mm
        print([m.spec.name for m in mm.registered_methods()].count("timber_spectral"))
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1"


@pytest.mark.parametrize(
    "first_import",
    [
        "mergekit_weightlevel.methods.timber",
        "mergekit_weightlevel.methods.base",
        "mergekit_weightlevel.running.merging",
        "mergekit.merge",
    ],
)
def test_any_first_import_registers_once_without_warning(first_import):
    """Whichever module pulls in mergekit.merge_methods first, no circular-import warning."""
    result = run_python(
        f"""
        import warnings
        warnings.simplefilter("error", RuntimeWarning)
        import {first_import}
        import mergekit.merge_methods as mm
        names = [m.spec.name for m in mm.registered_methods()]
        print([names.count(name) for name in {METHOD_NAMES!r}])
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[1, 1, 1, 1]"


def test_package_method_names_match_the_registry():
    import mergekit_weightlevel

    assert mergekit_weightlevel.METHOD_NAMES == METHOD_NAMES


def test_disable_switch():
    code = """
        import mergekit.merge_methods as mm
        print("paramdelta" in {m.spec.name for m in mm.registered_methods()})
        """
    assert run_python(code, {"MERGEKIT_WEIGHTLEVEL_DISABLE": "1"}).stdout.strip() == "False"
    assert run_python(code, {"MERGEKIT_WEIGHTLEVEL_DISABLE": "0"}).stdout.strip() == "True"


def test_import_of_package_registers_even_when_disabled():
    result = run_python(
        """
        import mergekit_weightlevel
        from mergekit import merge_methods
        print(merge_methods.get("paramdelta").spec.pretty_name)
        """,
        {"MERGEKIT_WEIGHTLEVEL_DISABLE": "1"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ParamΔ"


def test_package_first_then_mergekit_registers_once_without_warning():
    result = run_python(
        """
        import warnings
        warnings.simplefilter("error", RuntimeWarning)
        import mergekit_weightlevel
        import mergekit.merge_methods as mm
        names = [m.spec.name for m in mm.registered_methods()]
        print(names.count("paramdelta"))
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1"


def test_registration_is_idempotent():
    assert register_methods() == ()  # already registered by the import of the registry
    assert register_methods() == ()
    names = [m.spec.name for m in merge_methods.registered_methods()]
    for name in METHOD_NAMES:
        assert names.count(name) == 1


def test_broken_plugin_never_breaks_mergekit(tmp_path):
    """A plugin that fails to import becomes a warning; mergekit's own methods still work."""
    broken = tmp_path / "mergekit_weightlevel"
    broken.mkdir()
    (broken / "__init__.py").write_text("raise ImportError('simulated breakage')\n")
    result = run_python(
        """
        import mergekit.merge_methods as mm
        print(mm.get("linear").spec.name)
        """,
        {"PYTHONPATH": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "linear"
    assert "mergekit-weightlevel: could not register" in result.stderr
    assert "simulated breakage" in result.stderr


WRAPPED = """
    import warnings
    warnings.simplefilter("error", RuntimeWarning)
    {first}
    import mergekit.merge
    from mergekit.scripts import run_yaml
    print(run_yaml.run_merge.__module__, mergekit.merge._get_donor_model.__module__,
          mergekit.merge._model_out_config.__module__)
"""


@pytest.mark.parametrize(
    "first",
    ["", "import mergekit_weightlevel", "import mergekit.merge; import mergekit_weightlevel",
     "import mergekit.merge_methods", "import mergekit_weightlevel.registry"],
)  # fmt: skip
def test_stock_mergekit_yaml_binds_the_wrapped_run_merge(first):
    """`mergekit-yaml` does `from mergekit.merge import run_merge`: it must get the wrapper,
    whatever was imported first (and the wrapper installed once: `run_merge.__wrapped__`)."""
    result = run_python(WRAPPED.format(first=first))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["mergekit_weightlevel.running.stock_merge"] * 3


def test_the_wrapper_wraps_once():
    import mergekit.merge

    from mergekit_weightlevel.running import stock_merge

    stock_merge.install()
    stock_merge.install()
    inner = mergekit.merge.run_merge.__wrapped__
    assert inner.__module__ == "mergekit.merge"


def test_disable_switch_leaves_run_merge_alone():
    result = run_python(WRAPPED.format(first=""), {"MERGEKIT_WEIGHTLEVEL_DISABLE": "1"})
    assert result.stdout.split() == ["mergekit.merge"] * 3


# ----------------------------------------------- mergekit-pytorch: one checkpoint file per model


def _pytorch_config(config: dict) -> dict:
    """A YAML config with every model path pointing at its `model.safetensors` file, as
    `mergekit-pytorch` takes them."""
    from pathlib import Path

    def file_of(path: str) -> str:
        return str(Path(path) / "model.safetensors")

    converted = dict(config, base_model=file_of(config["base_model"]))
    converted["models"] = [dict(entry, model=file_of(entry["model"])) for entry in config["models"]]
    return converted


def _pytorch_cases(family) -> dict:
    from mergekit_weightlevel.method_configs import (
        interp_config,
        paramdelta_config,
        shadow_graft_config,
        timber_config,
    )

    return {
        "paramdelta": paramdelta_config(family.base, family.instruct, family.base_v2),
        "shadow_graft": shadow_graft_config(family.base, family.base_tuned, family.instruct),
        "timber_spectral": timber_config(family.base, family.instruct, 0.2),
        "instruct_thinking_interp": interp_config(family.instruct, family.thinking, 0.5),
    }


def _mergekit_pytorch(config: dict, out, tmp_path):
    from click.testing import CliRunner
    from helpers import write_config
    from mergekit.scripts.merge_raw_pytorch import main as mergekit_pytorch

    path = write_config(tmp_path / "pytorch.yml", _pytorch_config(config))
    return CliRunner().invoke(mergekit_pytorch, [str(path), str(out), "--quiet"])


@pytest.mark.parametrize("method", METHOD_NAMES)
def test_every_method_under_mergekit_pytorch_equals_its_yaml_merge(method, llama_family, tmp_path):
    """The oracle: the same config through mergekit's YAML path (issue 29, item 10)."""
    import torch
    from helpers import read_state, run_yaml_merge

    config = _pytorch_cases(llama_family)[method]
    result = _mergekit_pytorch(config, tmp_path / "pytorch", tmp_path)
    assert result.exit_code == 0, result.output
    expected = run_yaml_merge(config, tmp_path / "yaml")
    merged = read_state(tmp_path / "pytorch")
    assert merged.keys() == expected.keys()
    for name, tensor in expected.items():
        assert torch.equal(merged[name], tensor), name


def test_shadow_graft_include_is_checked_under_mergekit_pytorch(llama_family, tmp_path):
    """The checkpoint file's own tensor names are what `include` is matched against there."""
    config = _pytorch_cases(llama_family)["shadow_graft"]
    config["parameters"] = {"include": "q_projection"}
    result = _mergekit_pytorch(config, tmp_path / "out", tmp_path)
    assert result.exit_code != 0
    assert "shadow_graft: parameter `include` ('q_projection') matches none of the 16" in str(
        result.exception
    )
    # mergekit-pytorch runs no whole-config check of ours (it bypasses run_merge): the check
    # runs at the first tensor, before any is written.
    assert not list((tmp_path / "out").glob("*.safetensors"))

"""Every `examples/*.yml` runs through mergekit on the tiny demo family and gives a sound model.

The examples refer to `weightlevel-demo/models/<variant>`, the folder `mergekit-weightlevel
demo` writes. Here the family is built once under a temporary `weightlevel-demo/models`
and those paths are rewritten to it. Files are discovered by globbing, so a new example is
tested as soon as it is added; one that needs files the demo does not make is skipped,
naming them.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import EXAMPLES_DIR, demo_paths, load_example, read_state, run_yaml_merge

from mergekit_weightlevel.demo import demo_lora_adapter
from mergekit_weightlevel.demo.tiny_models import TinyFamily, build_family

EXAMPLES = sorted(path.name for path in EXAMPLES_DIR.glob("*.yml"))


@pytest.fixture(scope="session")
def demo_family(tmp_path_factory) -> TinyFamily:
    """The family exactly where `mergekit-weightlevel demo DIR` puts it: DIR/models/<variant>,
    with the demo's LoRA adapter on the base (DIR/models/base_lora)."""
    family = build_family(tmp_path_factory.mktemp("examples") / "weightlevel-demo" / "models")
    demo_lora_adapter(family, family.root / "base_lora")
    return family


def demo_parent(family: TinyFamily) -> Path:
    """The folder holding `weightlevel-demo/`, against which example paths are resolved."""
    return family.root.parent.parent


def test_examples_are_found():
    assert "paramdelta.yml" in EXAMPLES
    assert "instruct_thinking_interp.yml" in EXAMPLES


@pytest.mark.parametrize("example", EXAMPLES)
def test_example_runs_and_loads(example, demo_family, tmp_path):
    parent = demo_parent(demo_family)
    config = load_example(example, parent)
    referenced = demo_paths(config, parent)
    assert referenced, f"{example} refers to no `weightlevel-demo/...` path"
    missing = sorted({str(p.relative_to(parent)) for p in referenced if not p.exists()})
    if missing:
        pytest.skip(f"{example} needs files the demo family does not have: {', '.join(missing)}")

    out = run_yaml_merge(config, tmp_path / "out")

    base = read_state(demo_family.base)
    assert set(base) <= set(out), f"{example}: missing {sorted(set(base) - set(out))}"
    for name, tensor in out.items():
        assert not torch.isnan(tensor).any(), f"{example}: NaN in {name}"
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tmp_path / "out")
    loaded = model.state_dict()
    for name in base:
        # The loaded model holds exactly what mergekit wrote (nothing re-initialised).
        torch.testing.assert_close(loaded[name], out[name].to(loaded[name].dtype), rtol=0, atol=0)


# --------------------------------------- what the README and the examples tell a newcomer

REPO = EXAMPLES_DIR.parent
QUICKSTART = EXAMPLES_DIR / "quickstart.sh"


def test_the_quickstart_says_what_it_does_before_each_slow_step():
    """Its installs take minutes and print nothing themselves (pip -q): each is announced."""
    import subprocess

    assert subprocess.run(["bash", "-n", str(QUICKSTART)]).returncode == 0
    lines = [
        line.strip()
        for line in QUICKSTART.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    slow = ("pip install", "-m venv", "mergekit-weightlevel demo")
    steps = [i for i, line in enumerate(lines) if any(s in line for s in slow)]
    assert len(steps) == 5
    for index in steps:
        announced = lines[index].split("python3 -m venv")[0] + lines[index - 1]
        assert "say " in announced, f"quickstart.sh runs `{lines[index]}` without saying so"


def _output_folders() -> dict[str, set[str]]:
    """example → every output folder the README, the docs and the example's own comments
    give it in `mergekit-yaml examples/<example> OUT`."""
    import re

    command = re.compile(r"mergekit-yaml examples/([\w.]+\.yml) (\S+)")
    texts = [REPO / "README.md", *(REPO / "docs").rglob("*.md"), *EXAMPLES_DIR.glob("*.yml")]
    found: dict[str, set[str]] = {}
    for path in texts:
        for example, out in command.findall(path.read_text(encoding="utf-8")):
            found.setdefault(example, set()).add(out)
    return found


def test_each_example_has_one_output_folder_everywhere():
    """The README's `out/timber` and the example's comment used to disagree (`merged-timber`)."""
    folders = _output_folders()
    assert "timber_spectral.yml" in folders
    assert {example: outs for example, outs in folders.items() if len(outs) > 1} == {}

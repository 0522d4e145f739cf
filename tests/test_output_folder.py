"""The output folder as a user leaves it: a README.md of their own, notes beside the model, a
merge interrupted half-way (issue 29, items 3 and 6)."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from helpers import write_config
from mergekit.config import MergeConfiguration
from mergekit.merge import run_merge
from mergekit.options import MergeOptions

from mergekit_weightlevel.checks.model_folder import INCOMPLETE_MARKER
from mergekit_weightlevel.cli import main
from mergekit_weightlevel.method_configs import paramdelta_config, timber_config
from mergekit_weightlevel.publishing import publish_folder

USERS_CARD = "---\nlicense: mit\n---\n# My merge\n\nNotes I wrote before merging.\n"
UNFINISHED = "the merge into this folder did not finish: run it again"


def merge(config: dict, out: Path, **options) -> None:
    """mergekit's own YAML path (what `mergekit-yaml` runs), tokenizer and card written."""
    run_merge(
        MergeConfiguration.model_validate(config),
        str(out),
        options=MergeOptions(quiet=True, **options),
        config_source=yaml.safe_dump(config, sort_keys=False),
    )


def folder_with_users_card(tmp_path: Path) -> Path:
    out = tmp_path / "out"
    out.mkdir()
    (out / "README.md").write_text(USERS_CARD, encoding="utf-8")
    return out


# ------------------------------------------------------------------- a user's own README.md


def assert_card_moved_aside(out: Path, kept: str = "README.user.md") -> None:
    assert (out / kept).read_text(encoding="utf-8") == USERS_CARD  # byte for byte
    assert "model card written by mergekit-weightlevel" in (out / "README.md").read_text()


def test_a_merge_moves_a_users_card_aside_with_one_warning(llama_family, tmp_path, caplog):
    out = folder_with_users_card(tmp_path)
    with caplog.at_level(logging.WARNING):
        merge(timber_config(llama_family.base, llama_family.instruct, 0.2), out)
    assert_card_moved_aside(out)
    moved = [r.getMessage() for r in caplog.records if "README.user.md" in r.getMessage()]
    assert len(moved) == 1
    assert (
        f"{out / 'README.md'} was not written by mergekit or mergekit-weightlevel: moved to "
        in (moved[0])
    )


def test_a_card_moved_aside_before_is_never_overwritten(llama_family, tmp_path):
    out = folder_with_users_card(tmp_path)
    (out / "README.user.md").write_text("an earlier card", encoding="utf-8")
    merge(timber_config(llama_family.base, llama_family.instruct, 0.2), out)
    assert (out / "README.user.md").read_text(encoding="utf-8") == "an earlier card"
    assert_card_moved_aside(out, "README.user-2.md")


def test_without_a_card_to_write_the_users_readme_stays(llama_family, tmp_path):
    out = folder_with_users_card(tmp_path)
    merge(timber_config(llama_family.base, llama_family.instruct, 0.2), out, write_model_card=False)
    assert (out / "README.md").read_text(encoding="utf-8") == USERS_CARD
    assert not (out / "README.user.md").exists()


def test_the_merge_command_and_a_sweep_move_it_aside(llama_family, tmp_path):
    config = write_config(
        tmp_path / "c.yml", timber_config(llama_family.base, llama_family.instruct, 0.2)
    )
    out = folder_with_users_card(tmp_path)
    result = CliRunner().invoke(main, ["merge", str(config), str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    assert_card_moved_aside(out)
    swept = tmp_path / "s-lambda0.4"
    swept.mkdir()
    (swept / "README.md").write_text(USERS_CARD, encoding="utf-8")
    result = CliRunner().invoke(
        main, ["sweep", str(config), str(tmp_path / "s"), "--values", "0.2,0.4", "--quiet"]
    )
    assert result.exit_code == 0, result.output
    assert_card_moved_aside(swept)


def test_the_card_command_moves_it_aside(llama_family, tmp_path):
    out = tmp_path / "out"
    merge(timber_config(llama_family.base, llama_family.instruct, 0.2), out)
    (out / "README.md").write_text(USERS_CARD, encoding="utf-8")
    result = CliRunner().invoke(main, ["card", str(out)])
    assert result.exit_code == 0, result.output
    assert_card_moved_aside(out)


def test_publish_lists_the_files_that_are_not_part_of_the_model(llama_family, tmp_path):
    out = folder_with_users_card(tmp_path)
    (out / "notes.txt").write_text("to do: evaluate", encoding="utf-8")
    merge(timber_config(llama_family.base, llama_family.instruct, 0.2), out)
    result = CliRunner().invoke(main, ["publish", str(out), "me/tiny", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "  notes.txt  15 B  (not part of the model)" in result.output
    size = len(USERS_CARD.encode())
    assert f"  README.user.md  {size} B  (not part of the model)" in result.output
    assert "  model.safetensors  413.0 KB\n" in result.output  # part of the model: no flag
    assert (
        "note: 2 file(s) in " + str(out) + " are not part of the model and would be uploaded "
        "with it: README.user.md, notes.txt" in result.output
    )
    assert publish_folder(out, "me/tiny", dry_run=True).not_model_files == [
        "README.user.md",
        "notes.txt",
    ]


@pytest.mark.slow
def test_stock_mergekit_yaml_moves_a_users_card_aside(llama_family, tmp_path):
    config = write_config(
        tmp_path / "c.yml", timber_config(llama_family.base, llama_family.instruct, 0.2)
    )
    out = folder_with_users_card(tmp_path)
    result = subprocess.run(
        [str(Path(sys.executable).with_name("mergekit-yaml")), str(config), str(out)],
        env=_plugin_on(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert_card_moved_aside(out)
    assert "moved to " + str(out / "README.user.md") in result.stderr


# -------------------------------------------------------------------- an interrupted merge

#: The stock `mergekit-yaml` (mergekit's own entry point), hanging after its second shard
#: until it is interrupted: a merge stopped half-way, deterministically.
DRIVER = """
import signal, sys, time
from pathlib import Path

# Ctrl-C as in a terminal, whatever this process inherited from the test process (a signal
# mask or an ignored SIGINT is inherited across fork and exec; Ray and multiprocess block
# SIGINT around the processes they start).
signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
signal.signal(signal.SIGINT, signal.default_int_handler)

import mergekit.io.tensor_writer as writer

ready = Path(sys.argv.pop(1))
write = writer.TensorWriter._write_shard_task

def write_then_wait(self, shard_data, shard_index, shard_path):
    write(self, shard_data, shard_index, shard_path)
    if shard_index == 1:
        ready.write_text("two shards written")
        time.sleep(600)

writer.TensorWriter._write_shard_task = write_then_wait
from mergekit.scripts.run_yaml import main
main()
"""


def _plugin_on() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "MERGEKIT_WEIGHTLEVEL_DISABLE"}


def interrupted_merge(config: dict, out: Path, tmp_path: Path, sig: int) -> None:
    """Run the stock mergekit-yaml on ``config`` and send ``sig`` after two shards."""
    driver, ready = tmp_path / "driver.py", tmp_path / "ready"
    driver.write_text(DRIVER, encoding="utf-8")
    config_file = write_config(tmp_path / "c.yml", config)
    command = [sys.executable, str(driver), str(ready), str(config_file), str(out)]
    process = subprocess.Popen(
        [*command, "--out-shard-size", "100000", "--quiet"],
        env=_plugin_on(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        while not ready.exists():
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            time.sleep(0.2)
        process.send_signal(sig)
        try:
            process.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            status = Path(f"/proc/{process.pid}/status").read_text().splitlines()
            signals = [line for line in status if line.startswith(("SigBlk", "SigIgn", "SigCgt"))]
            raise AssertionError(f"the merge did not stop on signal {sig!r}: {signals}") from None
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode != 0


def assert_refused_as_unfinished(out: Path) -> None:
    for command in (["card", str(out)], ["publish", str(out), "me/tiny", "--dry-run"]):
        result = CliRunner().invoke(main, command)
        assert result.exit_code == 1
        assert f"error: {out}: {UNFINISHED}" in result.output, result.output
        assert "mergekit_config.yml is missing" not in result.output


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "killed"])
def test_an_interrupted_merge_is_refused_until_it_is_run_again(sig, llama_family, tmp_path):
    config = paramdelta_config(llama_family.base, llama_family.instruct, llama_family.base_v2)
    out = tmp_path / "out"
    interrupted_merge(config, out, tmp_path, sig)
    assert sorted(p.name for p in out.iterdir()) == [
        INCOMPLETE_MARKER,
        "model-1.safetensors",
        "model-2.safetensors",
    ]
    assert_refused_as_unfinished(out)

    merge(config, out)  # run again: one shard now, the interrupted run's two removed
    assert not (out / INCOMPLETE_MARKER).exists()
    assert not (out / "model-1.safetensors").exists()
    result = CliRunner().invoke(main, ["publish", str(out), "me/tiny", "--dry-run"])
    assert result.exit_code == 0, result.output


@pytest.mark.slow
def test_an_interrupted_merge_of_mergekits_own_method_is_recognised(llama_family, tmp_path):
    """No marker (our wrapper leaves mergekit's methods alone): weights without config.json."""
    config = {
        "merge_method": "linear",
        "models": [
            {"model": str(llama_family.base), "parameters": {"weight": 0.5}},
            {"model": str(llama_family.instruct), "parameters": {"weight": 0.5}},
        ],
    }
    out = tmp_path / "out"
    interrupted_merge(config, out, tmp_path, signal.SIGINT)
    assert not (out / INCOMPLETE_MARKER).exists()
    assert_refused_as_unfinished(out)
    result = CliRunner().invoke(main, ["card", str(out)])
    assert (
        "(it holds 2 weight file(s) but no config.json, which mergekit writes after the last "
        in (result.output)
    )

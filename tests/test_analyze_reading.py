"""analyze reads checkpoints as merge does: damaged shards are named before any tensor is read."""

from __future__ import annotations

import shutil

import pytest
from click.testing import CliRunner

from mergekit_weightlevel.cli import main


def truncate(path, keep: float = 0.5) -> None:
    size = path.stat().st_size
    with open(path, "r+b") as handle:
        handle.truncate(int(size * keep))


@pytest.mark.parametrize("which", ["single file", "one shard of several"])
def test_truncated_shard_is_named_with_re_download_advice(
    llama_family, qwen2_sharded_family, tmp_path, which
):
    """Issue 16 item 7: the message names the file (not the folder) and says re-download."""
    family = llama_family if which == "single file" else qwen2_sharded_family
    damaged = tmp_path / "damaged"
    shutil.copytree(family.instruct, damaged)
    shards = sorted(damaged.glob("*.safetensors"))
    victim = shards[-1]
    truncate(victim)
    result = CliRunner().invoke(main, ["analyze", str(family.base), str(damaged), "--quiet"])
    assert result.exit_code == 1
    assert f"analyze: model {damaged}" in result.output
    assert f"cannot read the safetensors file {victim}" in result.output
    assert "truncated or corrupted: re-download it" in result.output

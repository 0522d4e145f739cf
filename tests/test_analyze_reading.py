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


def test_preflight_accepts_both_expert_layouts_and_still_checks_the_rest(tmp_path):
    """Per-expert names in one model, stacked in the other: expert names are left to mergekit's
    conversion; a missing or reshaped non-expert tensor is still an error."""
    import pytest
    import torch
    from safetensors.torch import save_file

    from mergekit_weightlevel.checks.headers import PreflightError, check_inputs

    per_expert = {
        "model.layers.0.block_sparse_moe.experts.0.w1.weight": torch.zeros(4, 2),
        "model.layers.0.block_sparse_moe.gate.weight": torch.zeros(1, 2),
        "model.layers.0.self_attn.q_proj.weight": torch.zeros(2, 2),
        "model.norm.weight": torch.zeros(2),
    }
    stacked = {
        "model.layers.0.mlp.experts.gate_up_proj": torch.zeros(1, 8, 2),
        "model.layers.0.mlp.gate.weight": torch.zeros(1, 2),
        "model.layers.0.self_attn.q_proj.weight": torch.zeros(2, 2),
        "model.norm.weight": torch.zeros(2),
    }
    folders = []
    for label, state in (("per_expert", per_expert), ("stacked", stacked)):
        folder = tmp_path / label
        folder.mkdir()
        save_file(state, str(folder / "model.safetensors"))
        folders.append(folder)
    assert check_inputs(folders, method="timber_spectral") == []
    del stacked["model.norm.weight"]
    stacked["model.layers.0.self_attn.q_proj.weight"] = torch.zeros(3, 2)
    save_file(stacked, str(folders[1] / "model.safetensors"))
    with pytest.raises(PreflightError) as caught:
        check_inputs(folders, method="timber_spectral")
    assert "tensor model.norm.weight is in" in str(caught.value)
    assert "model.layers.0.self_attn.q_proj.weight" in str(caught.value)
    assert "experts" not in str(caught.value)

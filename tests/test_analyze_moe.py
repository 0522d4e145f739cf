"""analyze on mixture-of-experts models and on GPT-2 / NeoX-style names.

A per-expert checkpoint (as saved by transformers) and a merge output of it (experts
stacked, as mergekit 0.1.5 writes them) are read through mergekit's layout and analysed
per expert matrix, so they compare tensor for tensor.
"""

from __future__ import annotations

import json

import pytest
import torch
from architectures import MOE_FAMILIES
from helpers import read_state, run_yaml_merge

from mergekit_weightlevel.analyze import analyze_models
from mergekit_weightlevel.analyze.schema import validate_report
from mergekit_weightlevel.method_configs import interp_config, timber_config
from mergekit_weightlevel.tensor_names import MODULE_ORDER, module_type


def float64_erank(matrix: torch.Tensor) -> float:
    s = torch.linalg.svdvals(matrix.double())
    p = s / s.sum()
    return float(torch.exp(-(p * torch.log(p + 1e-9)).sum()))


@pytest.fixture(scope="module", params=[f for f in MOE_FAMILIES if f != "qwen2_moe"])
def moe_output(request, arch_family, tmp_path_factory):
    """(family, a merge output of it with experts stacked: Timber at λ = 1, i.e. W_I)."""
    family = arch_family(request.param)
    out = tmp_path_factory.mktemp(f"{request.param}-merged")
    config = timber_config(family.base, family.instruct, 1.0, dtype="float32")
    run_yaml_merge(config, out)
    return family, out


def test_checkpoint_and_merge_output_match_tensor_for_tensor(moe_output):
    family, merged = moe_output
    stored = set(read_state(merged))
    assert any(name.endswith("experts.gate_up_proj") for name in stored)  # stacked on disk
    assert not any(name.endswith("experts.gate_up_proj") for name in read_state(family.instruct))
    per_expert = analyze_models([family.base, family.instruct], metrics="sigma", quiet=True)
    stacked = analyze_models([family.base, merged], metrics="sigma", quiet=True)
    first, second = per_expert.pairs[0], stacked.pairs[0]
    for pair in (first, second):
        assert pair.only_in_a == [] and pair.only_in_b == [] and pair.skipped == []
    sigmas = {record.name: record.sigma for record in first.tensors}
    assert sigmas == {record.name: record.sigma for record in second.tensors}  # λ = 1: W_I


def test_experts_are_analysed_per_matrix_and_grouped_per_projection(moe_output, tmp_path):
    family, _merged = moe_output
    report = analyze_models([family.base, family.instruct], metrics="sigma,erank", quiet=True)
    pair = report.pairs[0]
    records = {record.name: record for record in pair.tensors}
    kinds = {record.module_type for record in pair.tensors}
    assert {"router", "expert.gate", "expert.up", "expert.down"} <= kinds
    assert "gate" not in kinds  # the router is not mixed with gate projections any more
    # One record per expert matrix: its rank and eRank, not the stack's.
    base, instruct = read_state(family.base), read_state(family.instruct)
    for record in pair.tensors:
        if record.module_type.startswith("expert."):
            assert record.name.split(".experts.")[1].split(".")[0].isdigit()
    expert_names = [n for n, r in records.items() if r.module_type == "expert.up"]
    assert len(expert_names) == 2 * 4  # 2 layers × 4 experts
    stored = {n: n for n in base}
    if family.model_type == "mixtral":  # stored as block_sparse_moe.experts.<e>.w3
        stored = {
            n.replace("block_sparse_moe", "mlp").replace(".w1.", ".gate_proj.")
            .replace(".w3.", ".up_proj.").replace(".w2.", ".down_proj."): n
            for n in base
        }  # fmt: skip
    for name in expert_names:
        delta = instruct[stored[name]].double() - base[stored[name]].double()
        record = records[name]
        assert record.rank == min(delta.shape)
        assert record.erank["delta"] == pytest.approx(float64_erank(delta), rel=1e-4)
    summary = pair.summary
    assert summary["by_module"]["expert.gate"]["tensors"] == 2 * 4
    assert summary["by_module"]["router"]["tensors"] == 2
    assert set(summary["by_expert"]) == {f"{layer}.{e}" for layer in range(2) for e in range(4)}
    assert summary["by_expert"]["1.3"]["tensors"] == 3  # its gate, up and down
    validate_report(json.loads(report.to_json()))
    rows = [row for row in report.rows() if ".experts.2." in row["name"]]
    assert len(rows) == 2 * 3  # the per-expert view in the CSV rows


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("gpt_neox.layers.0.attention.dense.weight", "o"),
        ("gpt_neox.layers.0.attention.query_key_value.bias", "qkv.bias"),
        ("gpt_neox.layers.0.mlp.dense_h_to_4h.weight", "up"),
        ("gpt_neox.layers.0.mlp.dense_4h_to_h.weight", "down"),
        ("gpt_neox.embed_in.weight", "embed"),
        ("embed_out.weight", "lm_head"),
        ("model.layers.0.mlp.c_fc.weight", "up"),  # Starcoder2
        ("model.layers.0.mlp.c_proj.bias", "down.bias"),
        ("model.layers.0.mlp.gate.weight", "router"),
        ("model.layers.0.block_sparse_moe.gate.weight", "router"),
        ("model.layers.0.mlp.shared_expert_gate.weight", "shared_expert_gate"),
        ("model.layers.0.mlp.shared_expert.gate_proj.weight", "gate"),
        ("model.layers.0.mlp.experts.3.gate_proj.weight", "expert.gate"),
        ("model.layers.0.block_sparse_moe.experts.3.w3.weight", "expert.up"),
        ("model.layers.0.block_sparse_moe.experts.3.w2.weight", "expert.down"),
        ("model.layers.0.mlp.experts.down_proj", "expert.down"),
    ],
)
def test_module_types_of_other_architectures(name, kind):
    assert module_type(name) == kind


def test_qwen2_moe_without_a_mergekit_definition_is_read_as_mergekit_infers_it(
    arch_family, tmp_path
):
    """No JSON architecture in mergekit 0.1.5: its layout comes from the transformers model."""
    family = arch_family("qwen2_moe")
    config = interp_config(family.instruct, family.tuned, 0.5, dtype="float32")
    run_yaml_merge(config, tmp_path / "out")
    pair = analyze_models([family.base, tmp_path / "out"], metrics="sigma", quiet=True).pairs[0]
    assert pair.only_in_a == [] and pair.only_in_b == []
    kinds = set(pair.summary["by_module"])
    assert {"router", "shared_expert_gate", "expert.gate", "gate"} <= kinds  # gate: shared expert


@pytest.mark.parametrize("name", ["llama_tied", "qwen2", "gemma2", "phi3", "gpt2", "starcoder2"])
def test_analyze_types_every_projection_of_the_dense_architectures(arch_family, name):
    family = arch_family(name)
    pair = analyze_models([family.base, family.instruct], metrics="sigma", quiet=True).pairs[0]
    assert pair.only_in_a == [] and pair.only_in_b == [] and pair.tensors
    known = set(MODULE_ORDER)
    for record in pair.tensors:
        assert record.module_type.removesuffix(".bias") in known, record.name
    kinds = set(pair.summary["by_module"])
    assert kinds & {"q", "qkv"} and "o" in kinds and "down" in kinds and "norms" in kinds

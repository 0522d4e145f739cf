"""analyze: aggregation by hand, streaming through mergekit's loaders, the report's formats."""

from __future__ import annotations

import json
import os
import weakref
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import read_state
from mergekit.io.lazy_tensor_loader import LazyTensorLoader
from mergekit.io.loader import TensorLoader
from mergekit.options import MergeOptions

from mergekit_weightlevel.analyze import analyze_models, validate_report
from mergekit_weightlevel.analyze.report import write_atomically
from mergekit_weightlevel.demo import run_demo


def numpy_parts(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    a, b = a.double().numpy(), b.double().numpy()
    return float(np.abs(a - b).sum()), float(np.abs(a).sum() + np.abs(b).sum())


def test_model_sigma_both_ways_and_group_means_by_hand(llama_family):
    report = analyze_models([llama_family.base, llama_family.instruct], metrics="sigma", quiet=True)
    summary = report.pairs[0].summary
    base, post = read_state(llama_family.base), read_state(llama_family.instruct)
    parts = {name: numpy_parts(base[name], post[name]) for name in base}
    sigmas = {name: num / den for name, (num, den) in parts.items()}

    in_layers = [s for name, s in sigmas.items() if name.startswith("model.layers.")]
    assert summary["sigma_mean_scope"] == "model.layers.<n>"
    assert summary["sigma_mean_tensors"] == len(in_layers) == 18  # 2 layers × (7 + 2 norms)
    # Per-tensor sums carry at most 2^-24 relative error (float32 terms, float64 sums).
    assert summary["sigma_mean"] == pytest.approx(sum(in_layers) / len(in_layers), rel=1e-7)
    total_num = sum(num for num, _ in parts.values())
    total_den = sum(den for _, den in parts.values())
    assert summary["sigma_global"] == pytest.approx(total_num / total_den, rel=1e-7)
    # The two aggregates are different numbers (the mean ignores tensor sizes).
    assert summary["sigma_mean"] != pytest.approx(summary["sigma_global"], rel=1e-9)

    q = [s for name, s in sigmas.items() if name.endswith("q_proj.weight")]
    assert summary["by_module"]["q"]["tensors"] == 2
    assert summary["by_module"]["q"]["sigma"] == pytest.approx(sum(q) / 2, rel=1e-7)
    norms = [s for name, s in sigmas.items() if "norm" in name]
    assert summary["by_module"]["norms"]["sigma"] == pytest.approx(np.mean(norms), rel=1e-7)
    layer1 = [s for name, s in sigmas.items() if name.startswith("model.layers.1.")]
    assert summary["by_layer"]["1"]["sigma"] == pytest.approx(np.mean(layer1), rel=1e-7)
    assert list(summary["by_layer"]) == ["0", "1"]


def test_streaming_holds_one_tensor_per_model_and_reads_each_shard_once(
    qwen2_sharded_family, monkeypatch
):
    family = qwen2_sharded_family
    shards = len(list(Path(family.base).glob("*.safetensors")))
    assert shards > 3  # the fixture really is sharded

    live = 0
    peak = 0
    loads: dict[str, int] = {}
    opened: list[str] = []
    original_get_tensor = LazyTensorLoader.get_tensor
    original_open = TensorLoader.get

    def released() -> None:
        nonlocal live
        live -= 1

    def counting_get_tensor(self, key, *args, **kwargs):
        nonlocal live, peak
        tensor = original_get_tensor(self, key, *args, **kwargs)
        loads[key] = loads.get(key, 0) + 1
        live += 1
        peak = max(peak, live)
        weakref.finalize(tensor, released)
        return tensor

    def counting_open(shard_path, *args, **kwargs):
        opened.append(shard_path)
        return original_open(shard_path, *args, **kwargs)

    monkeypatch.setattr(LazyTensorLoader, "get_tensor", counting_get_tensor)
    monkeypatch.setattr(TensorLoader, "get", staticmethod(counting_open))
    report = analyze_models([family.base, family.instruct], metrics="sigma,erank", quiet=True)

    names = read_state(family.base).keys()
    assert len(report.pairs[0].tensors) == len(names) > 20
    assert loads == dict.fromkeys(names, 2)  # each tensor read once from each model
    assert peak <= 2, f"{peak} tensors alive at once"  # never more than one per model
    assert live == 0  # nothing kept after the analysis
    # Shard order: every shard file of each model is opened exactly once.
    assert len(opened) == 2 * shards and len(set(opened)) == 2 * shards


def test_lazy_unpickle_falls_back_to_plain_loading(tmp_path, llama_family, monkeypatch):
    from mergekit.io import loader as mergekit_loader

    folders = []
    for name in ("base", "instruct"):  # the same weights as pickled .bin checkpoints
        (tmp_path / name).mkdir()
        torch.save(read_state(getattr(llama_family, name)), tmp_path / name / "pytorch_model.bin")
        folders.append(tmp_path / name)

    refused = []

    def refuse(self, path, device=None):
        refused.append(path)
        raise RuntimeError("renamed zip root")  # what mergekit's sharded .bin output triggers

    monkeypatch.setattr(mergekit_loader.LazyPickleLoader, "__init__", refuse)
    report = analyze_models(
        folders, metrics="sigma", options=MergeOptions(lazy_unpickle=True), quiet=True
    )
    reference = analyze_models(
        [llama_family.base, llama_family.instruct], metrics="sigma", quiet=True
    )
    assert len(refused) == 2  # one attempt per model, then plain loading
    by_name = {r.name: r.sigma for r in reference.pairs[0].tensors}
    assert len(report.pairs[0].tensors) == len(by_name)
    for record in report.pairs[0].tensors:
        assert record.sigma == pytest.approx(by_name[record.name], rel=1e-12)


def test_all_pairs_gives_the_full_sigma_matrix(llama_family):
    models = [llama_family.base, llama_family.instruct, llama_family.thinking]
    report = analyze_models(models, metrics="sigma", all_pairs=True, quiet=True)
    assert [(p.a, p.b) for p in report.pairs] == [
        (str(models[0]), str(models[1])),
        (str(models[0]), str(models[2])),
        (str(models[1]), str(models[2])),
    ]
    matrix = report.sigma_matrix()
    states = [read_state(m) for m in models]
    for i in range(3):
        assert matrix[i][i] == 0.0
        for j in range(3):
            if i == j:
                continue
            assert matrix[i][j] == matrix[j][i]
            layer_names = [n for n in states[0] if n.startswith("model.layers.")]
            expected = np.mean(
                [
                    np.divide(*numpy_parts(states[i][n], states[j][n])) for n in layer_names
                ]  # Shadow-FT's unweighted mean
            )
            assert matrix[i][j] == pytest.approx(expected, rel=1e-7)
    assert "σ matrix" in report.summary_text()


def test_filters_select_tensors(llama_family):
    models = [llama_family.base, llama_family.instruct]
    only_mlp = analyze_models(models, metrics="sigma", include=r"\.mlp\.", quiet=True)
    assert {r.module_type for r in only_mlp.pairs[0].tensors} == {"gate", "up", "down"}
    no_norms = analyze_models(models, metrics="sigma", exclude="norm", quiet=True)
    assert all("norm" not in r.name for r in no_norms.pairs[0].tensors)
    assert len(no_norms.pairs[0].tensors) == 21 - 5
    layer1 = analyze_models(models, metrics="sigma", layers="1", quiet=True)
    assert {r.layer for r in layer1.pairs[0].tensors} == {1}
    with pytest.raises(ValueError, match="no tensor is common"):
        analyze_models(models, include="no-such-tensor", quiet=True)


def test_report_formats_and_schema(qwen3_bf16_family, tmp_path):
    family = qwen3_bf16_family
    report = analyze_models(
        [family.base, family.thinking],
        metrics="sigma,erank,structure",
        include=r"layers\.0\.",
        quiet=True,
    )
    data = json.loads(report.to_json(tmp_path / "report.json"))
    validate_report(data)
    assert data == json.loads((tmp_path / "report.json").read_text())
    pair = data["pairs"][0]
    q = next(t for t in pair["tensors"] if t["name"].endswith("q_proj.weight"))
    assert set(q["erank"]) == {"a", "b", "delta"}
    assert {"alpha", "cv", "median_ratio", "consistency_gap", "alignment"} <= set(q["structure"])
    norm = next(t for t in pair["tensors"] if t["name"].endswith("q_norm.weight"))
    assert "erank" not in norm and "structure" not in norm and norm["module_type"] == "norms"

    rows = report.rows()
    assert len(rows) == len(pair["tensors"])
    frame = report.to_dataframe()
    assert list(frame["name"]) == [t["name"] for t in pair["tensors"]]
    assert frame["sigma"].tolist() == pytest.approx([t["sigma"] for t in pair["tensors"]])

    # The schema rejects a broken report.
    del data["pairs"][0]["tensors"][0]["sigma"]
    data["schema_version"] = "0.9"
    with pytest.raises(ValueError, match="schema"):
        validate_report(data)


def test_write_atomically_never_leaves_a_partial_file(tmp_path, monkeypatch):
    target = tmp_path / "out" / "report.json"
    write_atomically(target, "first\n")
    assert target.read_text() == "first\n"

    def interrupted(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_atomically(target, "second\n")
    assert target.read_text() == "first\n"  # the old file is intact
    assert sorted(p.name for p in target.parent.iterdir()) == ["report.json"]  # no temp left


def test_demo_ends_with_an_analysis_of_its_family(tmp_path):
    report = run_demo(tmp_path / "demo")
    assert report.analysis is not None
    assert report.analysis.models[0] == str(report.family.base)
    assert [p.b for p in report.analysis.pairs] == [
        str(report.family.instruct),
        str(report.family.thinking),
        str(report.family.base_v2),
    ]
    rendered = report.render()
    assert "mergekit-weightlevel analyze" in rendered
    assert rendered.rstrip().endswith(report.analysis.summary_text().rstrip())
    # The tiny family's variants are ordered by the size of their delta.
    sigmas = [p.summary["sigma_mean"] for p in report.analysis.pairs]
    assert sigmas[0] < sigmas[2] < sigmas[1]  # instruct 0.05 < base_v2 0.06 < thinking 0.07


def test_written_reports_get_a_normal_files_mode(tmp_path):
    """Not mkstemp's 0600: a report is shared, uploaded, served."""
    import os

    previous = os.umask(0o022)
    try:
        target = write_atomically(tmp_path / "card.md", "text\n")
    finally:
        os.umask(previous)
    assert target.stat().st_mode & 0o777 == 0o644

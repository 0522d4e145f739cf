"""analyze's Reading (issue 28): constructed pairs in each regime, the W_o signature, the
method previews against independent computations and an actual Timber merge, and no second
pass over the weights."""

from __future__ import annotations

import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import read_state, run_yaml_merge
from mergekit.io.lazy_tensor_loader import LazyTensorLoader

from mergekit_weightlevel.analyze import analyze_models, validate_report
from mergekit_weightlevel.analyze.columns import SIGMA, percent
from mergekit_weightlevel.analyze.references import (
    POST_TRAINING_SIGMA_MAX,
    SHADOW_FT_SIGMA_RANGE,
    TIMBER_ERANK_CHANGE_MAX,
    TIMBER_PREVIEW_LAMBDAS,
    UNRELATED_COSINE_MAX,
)
from mergekit_weightlevel.demo.tiny_models import (
    apply_variant,
    random_base_state,
    save_checkpoint,
    tiny_config,
)
from mergekit_weightlevel.method_configs import timber_config
from mergekit_weightlevel.tensor_names import DEFAULT_PROJECTIONS

LAYERS = 4


def save(state: dict[str, torch.Tensor], folder: Path, config=None) -> Path:
    return save_checkpoint(state, config or tiny_config(layers=LAYERS), folder, tokenizer=False)


@pytest.fixture(scope="module")
def base_state() -> dict[str, torch.Tensor]:
    return random_base_state(tiny_config(layers=LAYERS), seed=0)


@pytest.fixture(scope="module")
def pairs(tmp_path_factory, base_state) -> dict[str, tuple[Path, Path]]:
    """(A, B) folders of each constructed regime."""
    root = tmp_path_factory.mktemp("regimes")
    base = save(base_state, root / "base")
    small = apply_variant(base_state, scale=0.02, seed=1)  # low-rank + noise, σ ≈ 0.01
    large = apply_variant(base_state, scale=0.8, seed=2)  # far beyond post-training
    unrelated = random_base_state(tiny_config(layers=LAYERS), seed=7)
    # Post-training-like everywhere, and every o_proj's singular values scaled by 1.1.
    o_scaled = {
        name: tensor * 1.1 if name.endswith("o_proj.weight") else tensor
        for name, tensor in small.items()
    }
    return {
        "small": (base, save(small, root / "small")),
        "large": (base, save(large, root / "large")),
        "unrelated": (base, save(unrelated, root / "unrelated")),
        "o_scaled": (base, save(o_scaled, root / "o_scaled")),
    }


def reading_of(pair: tuple[Path, Path], metrics: str = "sigma,erank,structure"):
    report = analyze_models(list(pair), metrics=metrics, quiet=True)
    return report, report.pairs[0]


def statements(pair_report, topic: str) -> list[str]:
    return [s.text for s in pair_report.reading.statements if s.topic == topic]


def numpy_matrix_cosine(a_folder: Path, b_folder: Path) -> float:
    a, b = read_state(a_folder), read_state(b_folder)
    values = []
    for name, tensor in a.items():
        if tensor.ndim >= 2:
            x, y = tensor.double().numpy().ravel(), b[name].double().numpy().ravel()
            values.append(abs(x @ y) / (np.linalg.norm(x) * np.linalg.norm(y)))
    return float(np.mean(values))


# ----------------------------------------------------------------------------- regimes


def test_a_small_structured_delta_reads_as_a_post_training_pair(pairs):
    report, pair = reading_of(pairs["small"])
    sigma = pair.summary["sigma_mean"]
    assert SHADOW_FT_SIGMA_RANGE[0] <= sigma <= SHADOW_FT_SIGMA_RANGE[1]  # the construction
    reading = pair.reading
    assert reading.regime == "post-training"
    (text,) = statements(pair, "regime")
    assert f"σ {SIGMA.cell(sigma)}" in text and "within the range Shadow-FT reports" in text
    assert "0.004 Qwen-2.5-32B" in text and "0.018 Llama-3.1-8B" in text
    regime = next(s for s in reading.statements if s.topic == "regime")
    assert [(s.paper, s.where) for s in regime.sources] == [("shadow_ft", "Fig. 1")]
    assert not statements(pair, "premise")

    # eRank change against Timber's examples, checked with numpy float64 SVDs.
    a, b = read_state(pairs["small"][0]), read_state(pairs["small"][1])
    changes = []
    for name, tensor in a.items():
        if tensor.ndim >= 2:
            eranks = []
            for matrix in (tensor, b[name]):
                s = np.linalg.svd(matrix.double().numpy(), compute_uv=False)
                p = s / s.sum()
                eranks.append(math.exp(-(p * np.log(p + 1e-9)).sum()))
            changes.append(abs(eranks[1] - eranks[0]) / eranks[0])
    (erank,) = statements(pair, "erank")
    assert f"changes by {percent(float(np.median(changes)))}" in erank
    assert f"at most {percent(max(changes))}" in erank
    expected = np.median(changes) <= TIMBER_ERANK_CHANGE_MAX
    assert ("as unchanged as in Timber's examples" in erank) == expected
    assert "2629 → 2630" in erank and "3534 → 3539" in erank

    # He & Cao: figures, and no verdict where the paper gives no range.
    (structure,) = statements(pair, "structure")
    alphas = [r.structure["alpha"] for r in pair.tensors if r.structure]
    assert f"α {np.median(alphas):.4f}" in structure
    assert "no numeric range" in structure and "no verdict" in structure
    # No W_o anomaly in a pair perturbed alike everywhere.
    assert reading.signature["hint"] == "no W_o anomaly"
    validate_report(report.to_dict())


def test_two_unrelated_models_are_said_to_be_unrelated(pairs):
    _, pair = reading_of(pairs["unrelated"], metrics="sigma")
    assert pair.reading.regime == "unrelated"
    cosine = numpy_matrix_cosine(*pairs["unrelated"])
    assert cosine < UNRELATED_COSINE_MAX
    (text,) = statements(pair, "regime")
    assert f"mean |cosine| of {cosine:.3f}" in text
    assert "two independent sets of weights" in text
    (premise,) = statements(pair, "premise")
    assert "ParamΔ, Shadow-FT and Timber" in premise and "does not hold" in premise


def test_a_large_delta_is_in_no_known_regime_and_gets_no_label(pairs):
    _, pair = reading_of(pairs["large"], metrics="sigma")
    sigma = pair.summary["sigma_mean"]
    cosine = numpy_matrix_cosine(*pairs["large"])
    assert sigma > POST_TRAINING_SIGMA_MAX and cosine > UNRELATED_COSINE_MAX  # the construction
    assert pair.reading.regime is None
    (text,) = statements(pair, "regime")
    assert f"σ {SIGMA.cell(sigma)}" in text and f"|cosine| {cosine:.3f}" in text
    assert "above every published post-training pair (largest 0.0638" in text
    assert "no label" in text
    assert statements(pair, "premise")


def test_a_copy_reads_as_identical(pairs, tmp_path):
    base = pairs["small"][0]
    copy = shutil.copytree(base, tmp_path / "copy")
    _, pair = reading_of((base, copy), metrics="sigma")
    assert pair.reading.regime == "identical"
    assert statements(pair, "regime")[0].endswith("A and B are identical.")


def test_an_o_proj_scaled_up_shows_he_and_caos_long_cot_signature(pairs):
    _, pair = reading_of(pairs["o_scaled"])
    signature = pair.reading.signature
    assert signature["hint"] == "long-CoT distillation"
    assert signature["o_matrices"] == signature["o_outliers"] == LAYERS
    assert signature["alpha_o"] == pytest.approx(1.1, rel=2e-2)
    assert signature["alpha_others"] == pytest.approx(1.0, abs=1e-2)
    assert all(layer["o_highest"] for layer in signature["per_layer"])
    (text,) = statements(pair, "signature")
    assert f"o_proj's α {signature['alpha_o']:.4f} against {signature['alpha_others']:.4f}" in text
    assert "long-CoT distillation" in text and "not a verdict" in text
    # The module type stands out among the module types too, named in one line.
    outliers = [o for o in pair.reading.outliers if o["metric"] == "alpha"]
    assert [(o["group"], o["key"]) for o in outliers] == [("module type", "o")]
    assert any(t.startswith("Module type o stands out in α") for t in statements(pair, "outlier"))


def test_a_layer_that_moved_more_is_named_with_its_figures(tmp_path, base_state):
    shifted = apply_variant(base_state, scale=0.02, seed=1)
    for name in shifted:
        if ".layers.2." in name:
            shifted[name] = base_state[name] + 6 * (shifted[name] - base_state[name])
    _, pair = reading_of((save(base_state, tmp_path / "a"), save(shifted, tmp_path / "b")), "sigma")
    flagged = [o for o in pair.reading.outliers if o["group"] == "layer"]
    assert [(o["key"], o["metric"]) for o in flagged] == [("2", "sigma")]
    layer_sigma = pair.summary["by_layer"]["2"]["sigma"]
    assert flagged[0]["value"] == layer_sigma
    assert f"Layer 2 stands out in σ: {SIGMA.cell(layer_sigma)}" in statements(pair, "outlier")[0]


# ----------------------------------------------------------------------------- previews


@pytest.mark.parametrize("lam", TIMBER_PREVIEW_LAMBDAS)
def test_timber_preview_matches_an_actual_timber_merge(pairs, tmp_path, lam):
    """The preview's distance from B (W_I), from the eRank level's singular values, against a
    real timber_spectral merge: per matrix and over the model, within 1e-4 (relative)."""
    base_folder, instruct_folder = pairs["small"]
    _, pair = reading_of(pairs["small"], metrics="sigma,erank")
    preview = pair.reading.timber
    index = preview.lambdas.index(lam)
    merged = run_yaml_merge(
        timber_config(base_folder, instruct_folder, lam, dtype="float32"), tmp_path
    )
    instruct = read_state(instruct_folder)
    squared_distance = squared_norm = 0.0
    for name, tensor in instruct.items():
        difference = (merged[name].double() - tensor.double()).norm().item()
        squared_distance += difference**2
        squared_norm += tensor.double().norm().item() ** 2
    actual = math.sqrt(squared_distance / squared_norm)
    assert actual > 0
    assert preview.distances[index] == pytest.approx(actual, rel=1e-4)
    for item in preview.to_dict()["per_matrix"]:
        b = instruct[item["name"]].double()
        actual_matrix = ((merged[item["name"]].double() - b).norm() / b.norm()).item()
        assert item["relative_distance"][index] == pytest.approx(actual_matrix, rel=1e-4)


def test_shadow_ft_preview_counts_what_the_default_include_grafts(pairs):
    _, pair = reading_of(pairs["small"], metrics="sigma")
    a, b = read_state(pairs["small"][0]), read_state(pairs["small"][1])
    pattern = re.compile(DEFAULT_PROJECTIONS, re.IGNORECASE)
    energy = {n: ((b[n].double() - t.double()) ** 2).sum().item() for n, t in a.items()}
    selected = [n for n in a if pattern.search(n)]
    preview = pair.reading.shadow_ft
    assert preview["selected_tensors"] == len(selected) == 7 * LAYERS
    assert preview["energy_share"] == pytest.approx(
        sum(energy[n] for n in selected) / sum(energy.values()), rel=1e-6
    )
    assert preview["left_out_module_types"] == ["embed", "norms", "lm_head"]
    (text,) = statements(pair, "shadow_ft")
    assert f"holding {percent(preview['energy_share'])}" in text


def test_param_delta_preview_names_the_tensors_that_differ_in_shape(tmp_path, base_state):
    wider = tiny_config(layers=LAYERS, shape={"vocab_size": 160})
    state = random_base_state(wider, seed=0)
    for name, tensor in base_state.items():  # the same weights where the shapes agree
        if state[name].shape == tensor.shape:
            state[name] = tensor.clone()
    a = save(base_state, tmp_path / "old_base")
    b = save(state, tmp_path / "new_base", config=wider)
    _, pair = reading_of((a, b), metrics="sigma")
    differ = pair.reading.param_delta["shape_differs"]
    assert {item["name"] for item in differ} == {"model.embed_tokens.weight", "lm_head.weight"}
    assert all(item["vocabulary"] for item in differ)
    (text,) = statements(pair, "param_delta")
    assert "2 tensors differ in shape: " in text and "aligned by a tokenizer section" in text


# ----------------------------------------------------------------------------- outputs, cost


def test_every_output_carries_the_reading_with_its_sources(pairs, monkeypatch):
    report, pair = reading_of(pairs["o_scaled"])
    # The Reading reads no weight: every loader is closed and reading a tensor now fails.
    monkeypatch.setattr(LazyTensorLoader, "get_tensor", lambda *a, **k: pytest.fail("reread"))
    data = report.to_dict()
    validate_report(data)
    reading = data["pairs"][0]["reading"]
    assert reading["regime"] == "post-training"
    assert [s["topic"] for s in reading["statements"]][:4] == [
        "regime", "erank", "structure", "signature",
    ]  # fmt: skip
    assert reading["timber_preview"]["lambdas"] == list(TIMBER_PREVIEW_LAMBDAS)
    texts = [s["text"] for s in reading["statements"]]
    summary = " ".join(report.summary_text().split())
    markdown = report.to_markdown()
    page = report.to_html()
    for text in texts:
        assert text in summary
        assert re.sub(r"[\\]", "", text) in re.sub(r"\\(.)", r"\1", markdown)
    assert page.count('<li data-topic="') == len(texts)
    assert "https://arxiv.org/abs/2509.17866" in markdown  # He & Cao, linked as a source
    assert "| λ | ‖W_λ − B‖ / ‖B‖ |" in markdown
    assert "**Reading**" in markdown and "**Reading**" not in report.to_markdown(reading=False)

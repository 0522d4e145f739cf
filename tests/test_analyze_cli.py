"""`mergekit-weightlevel analyze` through click's runner: exit codes, outputs, progress, filters."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys

import pytest
import torch
from click.testing import CliRunner

from mergekit_weightlevel.analyze import (
    METRIC_COSTS,
    OptionError,
    analyze_models,
    validate_report,
)
from mergekit_weightlevel.cli import main

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run(*args: str):
    return CliRunner().invoke(main, ["analyze", *map(str, args)])


def test_help_states_the_cost_of_each_metric_level():
    result = CliRunner().invoke(
        main, ["analyze", "--help"], terminal_width=400, max_content_width=400
    )
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    for level, cost in METRIC_COSTS.items():  # declared once, in the library
        assert f"{level} ({' '.join(cost.split())})" in text
    assert "[default: sigma,erank]" in text
    for option in ("--lora-merge-cache", "--transformers-cache", "--trust-remote-code"):
        assert option in text
    assert "--lazy-unpickle" in text and "-j" in text and "--device" in text


@pytest.mark.parametrize(
    "args, message",
    [
        (["ONE"], "at least two models"),
        (["A", "B", "--metrics", "sigma,entropy"], "unknown metric"),
        (["A", "B", "--layers", "x-1"], "--layers"),
        (["A", "B", "--include", "("], "not a valid regex"),
        (["A", "B", "--precision", "float16"], "float16"),
    ],
)
def test_usage_errors_exit_2(args, message):
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert message in result.output


@pytest.mark.parametrize(
    "options, message",
    [
        ({"metrics": "sigma,entropy"}, "unknown metric"),
        ({"layers": "x-1"}, "--layers"),
        ({"include": "("}, "--include: '\\(' is not a valid regex"),
        ({"exclude": "["}, "--exclude"),
        ({"precision": "float16"}, "--precision"),
        ({"names": ["only one"]}, "display name"),
    ],
)
def test_the_library_checks_every_option_before_opening_a_model(options, message):
    """The CLI declares the options and leaves their checks to analyze_models, which makes
    them before any model is opened (these models do not exist)."""
    with pytest.raises(OptionError, match=message):
        analyze_models(["/no/such/model-a", "/no/such/model-b"], quiet=True, **options)


def test_failures_exit_1_with_a_clear_message(llama_family, tmp_path):
    result = run(llama_family.base, tmp_path / "does-not-exist")
    assert result.exit_code == 1
    assert "is not a local folder" in result.output and "does-not-exist" in result.output
    assert "Traceback" not in result.output
    (tmp_path / "empty").mkdir()
    result = run(llama_family.base, tmp_path / "empty")
    assert result.exit_code == 1
    assert "cannot open model" in result.output and "empty" in result.output
    assert "Traceback" not in result.output
    result = run(llama_family.base, llama_family.instruct, "--include", "nothing-matches")
    assert result.exit_code == 1
    assert "no tensor is common" in result.output


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message without CUDA")
@pytest.mark.parametrize("device_args", [["--device", "cuda"], ["--cuda"]])
def test_cuda_without_a_gpu_is_a_clear_failure(llama_family, device_args):
    result = run(llama_family.base, llama_family.instruct, *device_args, "--quiet")
    assert result.exit_code == 1
    assert "no CUDA device is available" in result.output


def test_reading_options_are_accepted_and_merge_only_options_refused(llama_family):
    result = run(
        llama_family.base,
        llama_family.instruct,
        "--metrics",
        "sigma",
        "--lazy-unpickle",
        "-j",
        "1",
        "--no-trust-remote-code",
        "--quiet",
    )
    assert result.exit_code == 0, result.output
    # mergekit-yaml's output options mean nothing here: refused, not silently ignored.
    result = run(llama_family.base, llama_family.instruct, "--out-shard-size", "1B")
    assert result.exit_code == 2
    assert "--out-shard-size" in result.output


def test_local_folders_are_analysed_without_importing_transformers(llama_family, tmp_path):
    """The point of the light path: mergekit's loader, not mergekit.common and its imports."""
    code = f"""
import sys
from mergekit_weightlevel.cli import main
try:
    main(["analyze", {str(llama_family.base)!r}, {str(llama_family.instruct)!r},
          "--metrics", "sigma,erank", "--quiet"])
except SystemExit as done:
    assert done.code == 0, done.code
heavy = sorted(m for m in ("transformers", "peft", "mergekit.common", "mergekit.options")
               if m in sys.modules)
print("heavy:", ",".join(heavy) or "none", file=sys.stderr)
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert "heavy: none" in result.stderr
    assert "σ global ratio of sums over all tensors" in result.stdout


def markdown_tables(text: str) -> list[list[str]]:
    """Every block of consecutive '|' lines."""
    tables, current = [], []
    for line in text.splitlines():
        if line.startswith("|"):
            current.append(line)
        elif current:
            tables.append(current)
            current = []
    return tables + ([current] if current else [])


def test_every_output_is_written_and_valid(llama_family, tmp_path):
    out = tmp_path / "out"
    result = run(
        llama_family.base,
        llama_family.instruct,
        llama_family.thinking,
        "--metrics",
        "sigma,erank,structure",
        "--layers",
        "0",
        "--json",
        out / "report.json",
        "--csv",
        out / "report.csv",
        "--markdown",
        out / "card.md",
        "--plots",
        out / "plots",
        "--quiet",
    )
    assert result.exit_code == 0, result.output
    assert "σ mean over model.layers.<n> tensors" in result.stdout
    assert "α outliers" in result.stdout

    data = json.loads((out / "report.json").read_text())
    validate_report(data)
    assert data["schema_version"] == "1.2"
    assert [p["b"] for p in data["pairs"]] == [
        str(llama_family.instruct),
        str(llama_family.thinking),
    ]
    tensors_per_pair = len(data["pairs"][0]["tensors"])
    assert tensors_per_pair == 9  # layer 0: 7 projections + 2 norms

    with open(out / "report.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert len(rows) == 2 * tensors_per_pair  # a row per tensor and pair
    assert {(r["b"], r["name"]) for r in rows} == {
        (p["b"], t["name"]) for p in data["pairs"] for t in p["tensors"]
    }
    q_row = next(r for r in rows if r["name"].endswith("q_proj.weight"))
    assert float(q_row["alpha"]) > 0 and q_row["erank_delta"]
    assert next(r for r in rows if "norm" in r["name"])["erank_a"] == ""

    markdown = (out / "card.md").read_text()
    assert markdown.startswith("## Weight-level analysis")
    tables = markdown_tables(markdown)
    assert len(tables) >= 4
    for table in tables:
        columns = table[0].count("|")
        assert re.fullmatch(r"\|(---:?\|)+", table[1]), table[1]
        assert all(line.count("|") - line.count("\\|") == columns for line in table)
        assert table[1].count("|") == columns

    from matplotlib.image import imread

    pngs = sorted((out / "plots").glob("*.png"))
    names = {p.name for p in pngs}
    assert "pair1_instruct_vs_base_sigma_heatmap.png" in names
    assert "pair1_instruct_vs_base_erank_delta_ratio_heatmap.png" in names
    assert "pair1_instruct_vs_base_alpha_heatmap.png" in names
    assert "pair2_thinking_vs_base_sigma_hist.png" in names
    assert "sigma_matrix.png" in names
    for png in pngs:
        assert png.read_bytes()[:8] == PNG_MAGIC
        image = imread(png)
        assert image.ndim == 3 and image.shape[0] > 50 and image.shape[1] > 50
    assert not [p for p in out.rglob("*.tmp")]  # atomic writes left nothing behind


def test_progress_bar_on_stderr_and_quiet(llama_family):
    models = (llama_family.base, llama_family.instruct)
    loud = run(*models, "--metrics", "sigma")
    assert loud.exit_code == 0, loud.output
    assert "analyze:" in loud.stderr and "tensor" in loud.stderr and "100%" in loud.stderr
    assert "analyze:" not in loud.stdout and "%|" not in loud.stdout
    quiet = run(*models, "--metrics", "sigma", "--quiet")
    assert quiet.exit_code == 0
    assert quiet.stderr == ""
    assert quiet.stdout == loud.stdout  # the summary itself is not suppressed


def test_filters_on_the_command_line(llama_family, tmp_path):
    models = (llama_family.base, llama_family.instruct)
    result = run(*models, "--metrics", "sigma", "--include", "mlp", "--exclude", "down_proj",
                 "--layers", "1", "--json", tmp_path / "r.json", "--quiet")  # fmt: skip
    assert result.exit_code == 0, result.output
    names = [
        t["name"] for t in json.loads((tmp_path / "r.json").read_text())["pairs"][0]["tensors"]
    ]
    assert names == ["model.layers.1.mlp.gate_proj.weight", "model.layers.1.mlp.up_proj.weight"]


def test_all_pairs_on_the_command_line(llama_family, tmp_path):
    models = (llama_family.base, llama_family.instruct, llama_family.thinking, llama_family.base_v2)
    result = run(
        *models, "--metrics", "sigma", "--all-pairs", "--json", tmp_path / "r.json", "--quiet"
    )
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "r.json").read_text())
    assert len(data["pairs"]) == 6
    matrix = data["sigma_matrix"]["sigma_mean"]
    assert all(value is not None for row in matrix for value in row)
    assert all(matrix[i][j] == matrix[j][i] > 0 for i in range(4) for j in range(4) if i != j)
    assert "σ matrix" in result.stdout


def test_the_summary_names_models_as_names_says(llama_family):
    result = run(
        llama_family.base, llama_family.instruct, "--metrics", "sigma", "--names",
        "Tiny Base,Tiny Instruct", "--quiet",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"reference A = Tiny Base ({llama_family.base})" in result.stdout
    assert f"A = Tiny Base ({llama_family.base})" in result.stdout
    assert f"B = Tiny Instruct ({llama_family.instruct})" in result.stdout
    # Without --names a model is shown as given, once.
    plain = run(llama_family.base, llama_family.instruct, "--metrics", "sigma", "--quiet")
    assert f"B = {llama_family.instruct}\n" in plain.stdout


def test_missing_matplotlib_is_reported_before_the_analysis(llama_family, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # import fails
    result = run(llama_family.base, llama_family.instruct, "--plots", tmp_path / "p", "--quiet")
    assert result.exit_code == 1
    assert "pip install 'mergekit-weightlevel[plots]'" in result.output
    assert "σ mean" not in result.output  # it failed before spending time on the analysis

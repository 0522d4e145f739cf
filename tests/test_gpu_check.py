"""benchmarks/gpu_check.sh where there is no GPU (CI, the development machine): it says so,
skips the GPU rows and only those, and prints one table; and layer_cost.py's CUDA column,
filled from a GPU run's JSON and from nothing else."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mergekit_weightlevel.checks.device import device_problem

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture
def benchmark_modules(monkeypatch):
    """The benchmarks' modules import each other by plain name, from their folder."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))


def table_rows(table: str) -> dict[str, str]:
    """check → status of a summary table."""
    rows = {}
    for line in table.splitlines():
        cells = [cell.strip() for cell in line.strip("|").split(" | ")]
        if line.startswith("| ") and len(cells) == 4 and cells[0] != "check":
            rows[cells[0]] = cells[1]
    return rows


@pytest.mark.skipif(torch.cuda.is_available(), reason="with a GPU the script runs its rows")
def test_without_a_gpu_it_says_so_and_skips_only_the_gpu_rows(tmp_path, benchmark_modules):
    from gpu_check import GPU_ROWS

    proc = subprocess.run(
        ["bash", str(BENCHMARKS / "gpu_check.sh"), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHON": sys.executable},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    table = (tmp_path / "summary.md").read_text()
    assert proc.stdout.count("| check | status | result | seconds |") == 1  # one table
    assert table in proc.stdout
    assert f"No GPU is present: {device_problem('cuda')}. The GPU rows are skipped." in table
    assert table_rows(table) == {
        "machine": "ok",
        "install": "ok",
        **dict.fromkeys(GPU_ROWS, "skipped"),
    }


def test_the_cuda_column_is_filled_from_a_gpu_run_and_nothing_else(benchmark_modules):
    from layer_cost import KINDS, NO_GPU_SENTENCE, PER_LAYER_HEADING, cost_page, fill_cuda_column

    cpu = {kind: {"seconds": 10.0 + i, "kernel_extra_mb": 5.0} for i, kind in enumerate(KINDS)}
    page = cost_page(cpu, [("16M", 373.0, 8.1)], None, "a test machine")
    assert NO_GPU_SENTENCE in page.splitlines()
    per_layer = page.split(PER_LAYER_HEADING)[1].split("\n## ")[0]
    assert per_layer.count("| not measured |") == len(KINDS)

    gpu = {
        kind: {"seconds": 0.25 * (i + 1), "kernel_extra_mb": 1.0} for i, kind in enumerate(KINDS)
    }
    cuda = {"card": "NVIDIA H100 80GB HBM3", "date": "2026-12-24", "machine": "m", "kinds": gpu}
    filled = fill_cuda_column(page, cuda)
    assert NO_GPU_SENTENCE not in filled and "GPU: NVIDIA H100 80GB HBM3, the CUDA column" in filled
    assert "not measured" not in filled
    changed = [
        (before, after)
        for before, after in zip(page.splitlines(), filled.splitlines())
        if before != after
    ]
    assert len(changed) == len(KINDS) + 1  # the per-layer rows and the GPU sentence, no other
    for i, kind in enumerate(KINDS):
        row = next(
            line for line in filled.split(PER_LAYER_HEADING)[1].splitlines() if f"`{kind}`" in line
        )
        assert row.endswith(f"| {cpu[kind]['seconds']:.1f} | 5 | {0.25 * (i + 1):.2f} |")
    assert fill_cuda_column(filled, cuda) == filled  # filling twice changes nothing more

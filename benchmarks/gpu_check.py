"""The GPU paths, checked and timed on one GPU in a few minutes; one summary table at the end.

    bash benchmarks/gpu_check.sh [--out DIR] [--budget SECONDS]

(``gpu_check.sh`` installs the carried wheels first, then runs this file.) The rows:

1. ``machine``: the card, torch and CUDA; ``install``: where mergekit came from.
2. ``cuda-marked tests``: ``pytest -m cuda`` over the test files that have such tests.
3. ``benchmark family``: the 8-layer family of ``run_benchmarks.py``, built on the spot.
4. ``Timber --cuda vs CPU``: ``timber_spectral`` (λ = 0.2) of that family merged with
   ``--cuda`` and on the CPU, through ``mergekit-weightlevel merge``; the largest relative
   difference per tensor, ‖gpu − cpu‖_F / ‖cpu‖_F, and the tensor it is in.
5. ``structure_kernels.py``: analyze's structure level per matrix at Llama-3-8B shapes on
   the GPU, each route against float64 SVDs (``--device cuda``).
6. ``layer_cost.py``: each method and analyze level per Llama-3-8B decoder layer on the GPU
   (``--device cuda``), × 32 layers against the issue's targets (Timber under 2 minutes,
   ``analyze --metrics sigma,erank,structure`` under 5, per 8B pair).
7. ``evaluate``: ``mergekit-weightlevel evaluate FOLDER --tasks T --include-path DIR --device
   cuda`` where that command exists (and lm_eval is installed); skipped, saying why, where not.

Without a GPU it says so first, with the reason (``checks.device``: a torch built without
CUDA, no GPU visible), and skips the GPU rows (every row from 2 on), so it also runs in CI's
tests in seconds. Each step runs in a child process with a time limit taken from what is left
of ``--budget`` (default 270 s, so that installs included it stays within 5 minutes on one
H100): a step that runs out is stopped and its row says so, and the table is always printed.

Written to ``--out`` (default benchmarks/out/gpu_check; pass ``$OUT`` on the device machine
so that they come back, 4 files): ``summary.md`` (the table), ``gpu_check.log`` (every step's
output), ``structure_cuda.json`` and ``layer_cost_cuda.json``. Then, here: ``python
benchmarks/layer_cost.py --fill-cuda …/layer_cost_cuda.json`` fills docs/cost.md's CUDA
column, and the table goes to benchmarks/notes.md's GPU section (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "benchmarks"

#: Seconds each step may take at most (less when less of the budget is left).
STEP_LIMITS = {
    "tests": 90,
    "family": 90,
    "timber": 120,
    "structure": 150,
    "layer_cost": 150,
    "evaluate": 90,
}
#: Below this many seconds of budget a step is not started.
MIN_STEP_SECONDS = 10
#: Decoder layers of Llama-3-8B, for the per-layer figures' whole-model totals.
LLAMA3_8B_LAYERS = 32
#: The issue's targets for one 8B pair on one H100-class GPU (seconds of GPU work).
TARGETS = {"timber_spectral": 120.0, "analyze sigma,erank,structure": 300.0}
#: The largest relative difference per tensor the GPU may have from the CPU.
MAX_GPU_CPU_DIFFERENCE = 1e-5

#: The rows' names.
TESTS = "cuda-marked tests"
FAMILY = "benchmark family (8 layers)"
TIMBER = "Timber --cuda vs CPU"
STRUCTURE = "structure_kernels.py (GPU)"
LAYER_COST = "layer_cost.py (GPU)"
EVALUATE = "evaluate (GPU)"


@dataclass
class Row:
    check: str
    status: str  # ok, FAILED, timed out (the exit status is 1), skipped, target missed
    result: str
    seconds: float | None = None


@dataclass
class Step:
    """The outcome of one child process: exit status (None: stopped at its limit), output."""

    returncode: int | None
    output: str
    seconds: float


class Runner:
    """Runs the steps' child processes within the budget, every output into one log."""

    def __init__(self, out: Path, budget: float, device: str) -> None:
        self.out = out
        self.device = device
        self.deadline = time.monotonic() + budget
        self.log = out / "gpu_check.log"
        self.log.write_text("")

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def limit(self, step: str) -> float:
        return min(STEP_LIMITS[step], self.left())

    def run(self, title: str, argv: list[str], limit: float) -> Step:
        """``argv`` in its own process group (its children are stopped with it at the limit)."""
        start = time.monotonic()
        with self.log.open("a") as log:
            log.write(f"\n===== {title}: {' '.join(argv)} (limit {limit:.0f} s)\n")
            log.flush()
            process = subprocess.Popen(
                argv,
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
            )
            try:
                output, _ = process.communicate(timeout=limit)
                returncode: int | None = process.returncode
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                output, _ = process.communicate()
                returncode = None
            log.write(output)
        return Step(returncode, output, time.monotonic() - start)


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else "(no output)"


def failed_row(check: str, step: Step, limit: float) -> Row:
    if step.returncode is None:
        return Row(check, "timed out", f"stopped after {limit:.0f} s", step.seconds)
    return Row(check, "FAILED", last_line(step.output), step.seconds)


# ------------------------------------------------------------------------------ the rows


def gpu_problem() -> str | None:
    """Why no GPU can be used here (the package's own device check); None when one can."""
    from mergekit_weightlevel.checks.device import device_problem

    return device_problem("cuda")


def machine_row() -> Row:
    import torch

    from mergekit_weightlevel.machine import machine_description

    if torch.cuda.is_available():
        card = (
            f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}"
        )
        return Row("machine", "ok", f"{card}; {machine_description()}")
    return Row("machine", "ok", machine_description())


def install_row() -> Row:
    """What ``gpu_check.sh`` did (``GPU_CHECK_INSTALL``), and the versions imported."""
    from importlib.metadata import version

    how = os.environ.get("GPU_CHECK_INSTALL", "run without gpu_check.sh")
    try:
        versions = f"mergekit {version('mergekit')}, pydantic {version('pydantic')}"
    except Exception as error:  # noqa: BLE001 - the row says what is missing
        return Row("install", "FAILED", f"{how}; {error}")
    return Row("install", "ok", f"{how}; {versions}")


def cuda_tests_row(runner: Runner) -> Row:
    files = sorted(
        str(path.relative_to(ROOT))
        for path in (ROOT / "tests").glob("test_*.py")
        if "pytest.mark.cuda" in path.read_text(encoding="utf-8")
    )
    limit = runner.limit("tests")
    argv = [sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider", *files]
    step = runner.run(TESTS, argv, limit)
    counts = dict(
        (kind, int(number))
        for number, kind in re.findall(r"(\d+) (passed|failed|skipped|errors?)", step.output)
    )
    summary = ", ".join(f"{n} {kind}" for kind, n in counts.items()) or last_line(step.output)
    if step.returncode == 0 and counts.get("passed"):
        return Row(TESTS, "ok", f"{summary} ({len(files)} files)", step.seconds)
    if step.returncode is None:
        return failed_row(TESTS, step, limit)
    return Row(TESTS, "FAILED", summary, step.seconds)


def family_row(runner: Runner, workdir: Path) -> tuple[Row, Path | None]:
    family = workdir / "family-8L"
    if (family / "base_tuned" / "config.json").exists():
        return Row(FAMILY, "ok", f"reused {family}"), family
    limit = runner.limit("family")
    argv = [sys.executable, str(BENCHMARKS / "workers.py"), "build", str(family), "8"]
    step = runner.run(FAMILY, argv, limit)
    if step.returncode != 0:
        return failed_row(FAMILY, step, limit), None
    return Row(FAMILY, "ok", f"built {family}", step.seconds), family


def largest_difference(folder: Path, reference: Path) -> tuple[float, str]:
    """max over tensors of ‖a − b‖_F / ‖b‖_F, and the tensor where it is."""
    from mergekit_weightlevel.checkpoints import read_state

    a, b = read_state(folder), read_state(reference)
    worst, where = 0.0, "the same bits in every tensor"
    for name, expected in b.items():
        expected64 = expected.double()
        scale = float(expected64.norm()) or 1.0
        difference = float((a[name].double() - expected64).norm()) / scale
        if difference > worst:
            worst, where = difference, name
    return worst, where


def timber_row(runner: Runner, family: Path, workdir: Path) -> tuple[Row, Path | None]:
    import yaml

    from mergekit_weightlevel.method_configs import timber_config

    config = workdir / "gpu_check_timber.yml"
    config.write_text(
        yaml.safe_dump(timber_config(family / "base", family / "instruct", 0.2, dtype="float32"))
    )
    seconds = {}
    gpu_flags = ["--cuda"] if runner.device == "cuda" else ["--device", runner.device]
    for side, flags in (("gpu", gpu_flags), ("cpu", [])):
        out = workdir / f"gpu_check_timber_{side}"
        argv = [
            *(sys.executable, "-m", "mergekit_weightlevel.cli", "merge", str(config), str(out)),
            *("--out-shard-size", "16M", "--no-copy-tokenizer", "--quiet", *flags),
        ]
        limit = runner.limit("timber") / (2 if side == "gpu" else 1)
        step = runner.run(f"timber_spectral {' '.join(flags) or 'on the CPU'}", argv, limit)
        if step.returncode != 0:
            return failed_row(TIMBER, step, limit), None
        seconds[side] = step.seconds
    merged = workdir / "gpu_check_timber_gpu"
    worst, where = largest_difference(merged, workdir / "gpu_check_timber_cpu")
    status = "ok" if worst <= MAX_GPU_CPU_DIFFERENCE else "FAILED"
    result = (
        f"max rel. diff per tensor {worst:.1e} ({where}; target ≤ {MAX_GPU_CPU_DIFFERENCE:g}); "
        f"merge with {' '.join(gpu_flags)} {seconds['gpu']:.1f} s, on the CPU "
        f"{seconds['cpu']:.1f} s (imports included)"
    )
    return Row(TIMBER, status, result, sum(seconds.values())), merged


def structure_row(runner: Runner) -> Row:
    rows_file = runner.out / "structure_cuda.json"
    limit = runner.limit("structure")
    argv = [
        *(sys.executable, str(BENCHMARKS / "structure_kernels.py"), "--device", runner.device),
        *("--json", str(rows_file)),
    ]
    step = runner.run(STRUCTURE, argv, limit)
    if step.returncode != 0:
        return failed_row(STRUCTURE, step, limit)
    rows = json.loads(rows_file.read_text())
    ours = sum(row["per_layer"] * row["ours_s"] for row in rows)
    svds = sum(row["per_layer"] * row["float32_svds_s"] for row in rows)
    worst = max(row["ours_difference"] for row in rows)
    status = "ok" if worst <= MAX_GPU_CPU_DIFFERENCE else "FAILED"
    result = (
        f"per Llama-3-8B layer: ours {ours:.1f} s, bare float32 SVDs {svds:.1f} s; every field "
        f"within {worst:.1e} of float64 SVDs"
    )
    return Row(STRUCTURE, status, result, step.seconds)


def layer_cost_row(runner: Runner, workdir: Path) -> Row:
    results_file = runner.out / "layer_cost_cuda.json"
    limit = runner.limit("layer_cost")
    argv = [
        *(sys.executable, str(BENCHMARKS / "layer_cost.py"), "--device", runner.device),
        *("--json", str(results_file), "--workdir", str(workdir)),
    ]
    step = runner.run(LAYER_COST, argv, limit)
    if step.returncode != 0:
        return failed_row(LAYER_COST, step, limit)
    kinds = json.loads(results_file.read_text())["kinds"]
    parts, status = [], "ok"
    for kind, target in TARGETS.items():
        whole = kinds[kind]["seconds"] * LLAMA3_8B_LAYERS
        met = whole <= target
        status = status if met else "target missed"  # a measurement, not a failure
        parts.append(
            f"{kind} {kinds[kind]['seconds']:.2f} s/layer × {LLAMA3_8B_LAYERS} = {whole:.0f} s "
            f"(target < {target:.0f} s: {'met' if met else 'missed'})"
        )
    return Row(LAYER_COST, status, "; ".join(parts), step.seconds)


def evaluate_row(runner: Runner, merged: Path | None) -> Row:
    """``evaluate`` on one folder on the GPU, where the command exists (see the module text)."""
    cli = [sys.executable, "-m", "mergekit_weightlevel.cli"]
    helped = subprocess.run([*cli, "evaluate", "--help"], cwd=ROOT, capture_output=True, text=True)
    if helped.returncode != 0:
        return Row(
            EVALUATE,
            "skipped",
            "`mergekit-weightlevel evaluate` does not exist in this checkout yet (it is being "
            "built on lm-evaluation-harness); this row runs once it does",
        )
    try:
        import lm_eval  # noqa: F401
    except ImportError:
        return Row(
            EVALUATE,
            "skipped",
            "lm_eval is not installed: add its wheels to .whl (benchmarks/gpu_wheels.sh --with-eval)",
        )
    folder = Path(os.environ.get("GPU_CHECK_EVAL_FOLDER", ROOT / "examples/toy/models/thinking"))
    if not folder.exists() and merged is not None:
        folder = merged
    tasks = os.environ.get("GPU_CHECK_EVAL_TASKS", "example_sums")
    include = os.environ.get("GPU_CHECK_EVAL_INCLUDE", str(ROOT / "examples/eval_task"))
    argv = [*cli, "evaluate", str(folder), "--tasks", tasks, "--include-path", include]
    argv += ["--device", runner.device]
    if "--limit" in helped.stdout:
        argv += ["--limit", os.environ.get("GPU_CHECK_EVAL_LIMIT", "8")]
    limit = runner.limit("evaluate")
    step = runner.run(EVALUATE, argv, limit)
    if step.returncode != 0:
        return failed_row(EVALUATE, step, limit)
    return Row(EVALUATE, "ok", f"{folder.name}, {tasks}: {last_line(step.output)}", step.seconds)


# ------------------------------------------------------------------------------ the table

#: The rows that need a GPU, in order (skipped, each with the reason, where there is none).
GPU_ROWS = (TESTS, FAMILY, TIMBER, STRUCTURE, LAYER_COST, EVALUATE)


def summary_table(rows: list[Row], title: str, note: str = "") -> str:
    lines = [f"## {title}", "", *([note, ""] if note else [])]
    lines += ["| check | status | result | seconds |", "|---|---|---|---:|"]
    for row in rows:
        seconds = "" if row.seconds is None else f"{row.seconds:.1f}"
        result = row.result.replace("|", "\\|")
        lines.append(f"| {row.check} | {row.status} | {result} | {seconds} |")
    return "\n".join(lines) + "\n"


def gpu_rows(runner: Runner, workdir: Path) -> list[Row]:
    """The GPU rows; one whose budget is spent, or whose input an earlier one failed to
    make, is skipped with the reason."""
    rows: list[Row] = []

    def can_start(check: str) -> bool:
        if runner.left() >= MIN_STEP_SECONDS:
            return True
        rows.append(Row(check, "skipped", "the time budget (--budget) is spent"))
        return False

    if can_start(TESTS):
        rows.append(cuda_tests_row(runner))
    family = merged = None
    if can_start(FAMILY):
        row, family = family_row(runner, workdir)
        rows.append(row)
    if family is None:
        rows.append(Row(TIMBER, "skipped", "no benchmark family (row above)"))
    elif can_start(TIMBER):
        row, merged = timber_row(runner, family, workdir)
        rows.append(row)
    if can_start(STRUCTURE):
        rows.append(structure_row(runner))
    if can_start(LAYER_COST):
        rows.append(layer_cost_row(runner, workdir))
    if can_start(EVALUATE):
        rows.append(evaluate_row(runner, merged))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=BENCHMARKS / "out" / "gpu_check")
    parser.add_argument("--budget", type=float, default=270.0, help="seconds for every step")
    parser.add_argument(
        "--device",
        default="cuda",
        help="the GPU rows' device; cpu only to try the script's plumbing without a GPU "
        "(the rows are sized for a GPU: on a CPU most run out of time)",
    )
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    workdir = BENCHMARKS / "out"
    workdir.mkdir(parents=True, exist_ok=True)
    runner = Runner(args.out, args.budget, args.device)
    today = datetime.date.today().isoformat()

    problem = gpu_problem() if args.device == "cuda" else None
    rows = [machine_row(), install_row()]
    if problem is None:
        import torch

        card = torch.cuda.get_device_name(0) if args.device == "cuda" else args.device
        title = f"GPU check: {card} ({today})"
        rows += gpu_rows(runner, workdir)
        note = ""
    else:
        note = f"No GPU is present: {problem}. The GPU rows are skipped."
        title = f"GPU check: no GPU present ({today})"
        rows += [Row(check, "skipped", "no GPU present") for check in GPU_ROWS]
    table = summary_table(rows, title, note)
    (args.out / "summary.md").write_text(table)
    print(table)
    print(f"wrote {args.out / 'summary.md'} and {runner.log}")
    return 1 if any(row.status in ("FAILED", "timed out") for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())

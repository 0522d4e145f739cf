"""`mergekit-weightlevel evaluate` of 4 folders against 4 runs of lm-eval's command line.

    python benchmarks/evaluate_vs_lm_eval.py [--limit 100] [--batch-size 64] [--out DIR]

The folders: the toy's shipped Instruct and Thinking members and two interpolations of them
(λ = 0.3, 0.7, merged here). The tasks: ``toy_qa_add3`` and ``toy_plain_add3`` (greedy
generation), offline. Both sides run as command lines, one after the other, with the same
device, batch size and limit; `evaluate` starts from an empty cache (its rerun, reading the
cache, is timed too). The numbers of both sides are compared (they must be equal). Writes a
Markdown table (docs/evaluation.md quotes it) to stdout and OUT/evaluate_vs_lm_eval.md.

What `evaluate` shares across the 4 folders: one Python process (torch, transformers and
lm-eval imported once), one task lookup (the shipped folder only: lm-eval's command line
indexes its ~15 000 built-in task files on every run). Each model is loaded once, for all
its tasks, by both sides: lm-eval cannot share a model between different checkpoints.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from mergekit_weightlevel.evaluation.shipped import TASKS_DIR  # noqa: E402
from mergekit_weightlevel.machine import machine_description  # noqa: E402

TOY = REPO / "examples" / "toy" / "models"
TASKS = "toy_qa_add3,toy_plain_add3"
OFFLINE = {"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def folders(root: Path) -> list[Path]:
    """The toy pair and its interpolations at λ = 0.3 and 0.7."""
    from mergekit.options import MergeOptions

    from mergekit_weightlevel.method_configs import interp_config
    from mergekit_weightlevel.running.merging import merge_yaml

    made = []
    for lam in (0.3, 0.7):
        config = interp_config(TOY / "instruct", TOY / "thinking", lam, dtype="float32")
        out = root / f"interp-{lam:g}"
        made.append(merge_yaml(config, out, MergeOptions(quiet=True, copy_tokenizer=True)))
    return [TOY / "instruct", made[0], made[1], TOY / "thinking"]


def timed(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, env=env)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out")
    args = parser.parse_args()
    bin_dir = Path(sys.executable).parent
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        models = folders(root)
        env = {**os.environ, **OFFLINE, "MERGEKIT_WEIGHTLEVEL_CACHE": str(root / "cache")}
        common = ["--limit", str(args.limit), "--batch-size", str(args.batch_size)]
        ours = [
            str(bin_dir / "mergekit-weightlevel"),
            "evaluate",
            *map(str, models),
            "--tasks",
            TASKS,
            "--device",
            "cpu",
            *common,
            "--json",
            str(root / "ours.json"),
        ]
        first = timed(ours, env)
        cached = timed(ours, env)
        theirs = []
        for index, model in enumerate(models):
            command = [
                str(bin_dir / "lm_eval"),
                "--model", "hf",
                "--model_args", f"pretrained={model}",
                "--tasks", TASKS,
                "--include_path", str(TASKS_DIR),
                "--device", "cpu",
                "--limit", str(args.limit),
                "--batch_size", str(args.batch_size),
                "--output_path", str(root / f"cli-{index}"),
            ]  # fmt: skip
            theirs.append(timed(command, env))
        # The same numbers on both sides, or the comparison means nothing.
        combined = json.loads((root / "ours.json").read_text())
        for index, model in enumerate(combined["models"]):
            (written,) = (root / f"cli-{index}").rglob("results_*.json")
            cli = json.loads(written.read_text())["results"]
            for metric in model["metrics"]:
                key = f"{metric['metric']},{metric['filter']}"
                assert cli[metric["task"]][key] == metric["value"], (model["folder"], key)
    total = sum(theirs)
    lines = [
        f"Tasks {TASKS}, --limit {args.limit}, batch size {args.batch_size}, CPU; 4 folders "
        "(the toy's Instruct, two interpolations, Thinking). Every number equal on both sides.",
        "",
        "| run | wall time (s) |",
        "|---|---:|",
        f"| `mergekit-weightlevel evaluate` of the 4 folders, empty cache | {first:.1f} |",
        f"| 4 × `lm_eval --model hf ...` (one per folder) | {total:.1f} "
        f"({', '.join(f'{t:.1f}' for t in theirs)}) |",
        f"| ratio (lm_eval ÷ evaluate) | {total / first:.2f} × |",
        f"| `evaluate` again (every result from the cache) | {cached:.1f} |",
        "",
        f"Machine: {machine_description()}.",
    ]
    text = "\n".join(lines)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "evaluate_vs_lm_eval.md").write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()

"""Side-by-side benchmarks: our methods vs a named alternative, in one run, same machine.

    python benchmarks/run_benchmarks.py [--workdir DIR] [--layers 8] [--small-layers 4]
                                        [--only paramdelta,interp,...] [--out docs/benchmarks.md]

Builds a Llama-shaped family locally (hidden 1024, MLP 2816, vocabulary 8192; 8 layers is
about 120M parameters) with post-training-like deltas, then runs every case in a fresh
subprocess and records its wall time and its peak anonymous memory (the largest
``RssAnon`` of /proc/PID/status, sampled every 10 ms by this driver), with ``ru_maxrss``
as a second column. ``ru_maxrss`` also counts the pages of memory-mapped safetensors
files, which belong to the page cache, not to the process: a streaming merge that reads
three checkpoints would look as large as one that holds them. Each pair is run back to
back, outputs are compared, and the ratios are written as a Markdown table with the
machine and date. Page cache is warmed first so that every case reads from memory.

Baselines:
- mergekit's own ``task_arithmetic`` / ``linear`` doing the same arithmetic;
- "load-everything" implementations written here of what the papers' official scripts
  do (whole state dicts in RAM; for Timber a float64 full SVD per tensor and, as
  ``timber.py`` does by default, its SVD cache kept and saved next to the output);
- for λ sweeps, one ``timber_spectral`` run (a sweep of 4 λ should cost ≤ 1.6 × that);
- for the interpolation's and ParamΔ's sweeps (their declared grids, 7 λ and 4 weights), one
  ``mergekit-yaml`` run per value, and one such run (7 λ should cost ≤ 2.5 × one merge);
- reading both checkpoints tensor by tensor and nothing else (for ``analyze --metrics sigma``);
- the ``sigma,erank`` analysis itself, for the cost of the Reading built from it.

Its parts: ``settings.py`` (shape, λ, shard size), ``workers.py`` (the subprocess workers),
``measure.py`` (running and measuring one case), ``cases.py`` (the cases), ``render.py`` (the
page). This file is the entry point.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import measure as measuring
from cases import (
    build,
    run_cases,
    run_floor,
    run_kernels,
    run_reading_cost,
    run_structure,
    warm_page_cache,
)
from render import render


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workdir", type=Path, default=Path("benchmarks/out"))
    parser.add_argument(
        "--layers", type=int, default=8, help="layers of the main family (8 ≈ 120M parameters)"
    )
    parser.add_argument(
        "--small-layers",
        type=int,
        default=4,
        help="layers of the second family, for the RSS-vs-size check (0: skip)",
    )
    parser.add_argument(
        "--only",
        default="paramdelta,interp,shadow,timber,sweeps,analyze,contended,floor,kernels,structure,reading",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=2,
        help="runs per case; the table keeps the best time and the largest memory",
    )
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks.md"))
    parser.add_argument(
        "--notes",
        type=Path,
        default=Path(__file__).with_name("notes.md"),
        help="Markdown appended under the tables (default: benchmarks/notes.md)",
    )
    args = parser.parse_args()
    measuring.REPEAT = max(1, args.repeat)
    only = set(args.only.split(","))
    args.workdir.mkdir(parents=True, exist_ok=True)

    sections = {}
    floor: dict = {}
    reading: list = []
    sizes = [args.layers] + ([args.small_layers] if args.small_layers else [])
    for layers in sizes:
        family = build(args.workdir, layers)
        warm_page_cache(family.root)
        # The first process to import torch / mergekit pays for reading their files (and for
        # compiling the package's modules, measure.child_environment): not ours to measure.
        subprocess.run(
            [
                sys.executable,
                "-c",
                "import mergekit.merge, mergekit_weightlevel.cli, mergekit_weightlevel.analyze",
            ],
            check=True,
            env=measuring.child_environment(),
        )
        print(f"{layers} layers:", flush=True)
        sections[f"{layers}-layer family (hidden 1024, MLP 2816, vocab 8192)"] = run_cases(
            family, args.workdir, only
        )
        if "floor" in only and not floor:  # the main family only
            floor = run_floor(family)
        if "reading" in only and not reading:  # the main family only
            reading = run_reading_cost(family, measuring.REPEAT)
    kernels = run_kernels() if "kernels" in only else []
    structure = run_structure(args.workdir) if "structure" in only else []
    notes = args.notes.read_text() if args.notes and args.notes.exists() else ""
    args.out.write_text(render(sections, notes, kernels, floor, structure, reading))
    (args.workdir / "results.json").write_text(
        json.dumps(
            {
                title: [(n, o.__dict__, a.__dict__, d) for n, o, a, d in rows]
                for title, rows in sections.items()
            }
            | {
                "kernels": kernels,
                "eigen_floor": floor,
                "structure": structure,
                "reading": reading,
            },
            indent=2,
        )
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "worker":  # the former worker command line
        from workers import WORKERS

        WORKERS[sys.argv[2]](*sys.argv[3:])
    else:
        main()

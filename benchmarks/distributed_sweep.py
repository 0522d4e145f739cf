"""A 3-value sweep on Ray with two workers vs the same sweep without Ray, in one run.

    python benchmarks/distributed_sweep.py [--workdir benchmarks/out/distributed] [--layers 2]
                                           [--methods interp,timber] [--out FILE.json]

Builds a family of the benchmarks' shape (``settings.BENCH_SHAPE``, ``--layers`` decoder
layers) and, in this one process, for each method:

1. a warm-up sweep of one value, not timed: imports, page cache;
2. **local**: ``run_sweep`` of the three values (one pass over the inputs; torch's threads:
   as many as the machine has CPUs);
3. **Ray**: ``ray.init(address="local", num_cpus=2)`` (timed: Ray's start-up), then
   ``sweep_on_ray`` three times: with cold workers (each imports torch and mergekit: part of
   what Ray costs) and with warm ones, the three values in two groups (two, then one: one
   task per worker, one CPU each, each group one pass over the inputs); then with warm
   workers as one task (``values_per_task=3``). Then Ray is stopped.

Every Ray run's outputs are compared bit for bit with the local run's. The overhead is the
ratio of the Ray run's wall time (with the start-up in the cold row) to the local run's. A Markdown table and the machine go to stdout; ``--out`` also writes them as JSON.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from settings import BENCH_SHAPE, OUT_SHARD_PARAMETERS

VALUES = {"interp": (0.2, 0.5, 0.8), "timber": (0.0, 0.2, 0.4)}


def configs(family) -> dict[str, dict]:
    from mergekit_weightlevel import method_configs

    return {
        "interp": method_configs.interp_config(family.instruct, family.thinking, 0.5),
        "timber": method_configs.timber_config(family.base, family.instruct),
    }


def same_files(here: Path, there: Path) -> bool:
    """Every file of the two folders equal, byte for byte (the card's own path aside)."""

    def files(folder: Path) -> dict[str, bytes]:
        return {
            p.name: p.read_bytes().replace(str(folder).encode(), b"FOLDER")
            for p in sorted(folder.iterdir())
            if p.is_file()
        }

    return files(here) == files(there)


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("benchmarks/out/distributed"))
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--methods", default="interp,timber")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    import ray
    from mergekit.options import MergeOptions

    from mergekit_weightlevel.demo.tiny_models import build_family
    from mergekit_weightlevel.distributed.settings import RaySettings
    from mergekit_weightlevel.distributed.sweep import sweep_on_ray
    from mergekit_weightlevel.machine import machine_description
    from mergekit_weightlevel.running.sweep import plan_sweep, run_sweep

    shutil.rmtree(args.workdir, ignore_errors=True)
    family = build_family(args.workdir / "family", shape=BENCH_SHAPE, layers=args.layers)
    options = MergeOptions(quiet=True, out_shard_size=OUT_SHARD_PARAMETERS)
    rows = []
    for method in args.methods.split(","):
        config, values = configs(family)[method], VALUES[method]
        out = args.workdir / method

        def plan(where: str, chosen=values, config=config, out=out, method=method):
            return plan_sweep(config, chosen, out_prefix=out / where / method)

        run_sweep(plan("warmup", values[:1]), options)
        local_s, local = timed(run_sweep, plan("local"), options)
        startup, _ = timed(
            ray.init, address="local", num_cpus=2, include_dashboard=False, log_to_driver=False
        )
        for workers, per_task in (("cold", None), ("warm", None), ("warm", len(values))):
            shutil.rmtree(out / "ray", ignore_errors=True)
            ray_s, swept = timed(
                sweep_on_ray, plan("ray"), options, settings=RaySettings(), values_per_task=per_task
            )
            identical = all(
                same_files(here.folder, there.output.folder) for here, there in zip(local, swept)
            )
            started = startup if workers == "cold" else 0.0
            rows.append(
                {
                    "method": method,
                    "workers": workers,
                    "tasks": "2 (2 + 1 values)" if per_task is None else f"1 ({per_task} values)",
                    "local_s": local_s,
                    "ray_startup_s": started,
                    "ray_run_s": ray_s,
                    "ratio": (started + ray_s) / local_s,
                    "identical": identical,
                }
            )
        ray.shutdown()
    machine = machine_description()
    date = time.strftime("%Y-%m-%d")
    print(f"Produced by `python benchmarks/distributed_sweep.py --layers {args.layers}` on {date}.")
    print(f"Machine: {machine}.\n")
    print(
        "| sweep of 3 values | Ray workers | tasks | local (s) | Ray start-up (s) | Ray run (s) "
        "| Ray / local | outputs |"
    )
    print("|---|---|---|---:|---:|---:|---:|---|")
    for row in rows:
        same = "identical" if row["identical"] else "**DIFFER**"
        print(
            f"| {row['method']} | {row['workers']} | {row['tasks']} | {row['local_s']:.1f} | "
            f"{row['ray_startup_s']:.1f} | {row['ray_run_s']:.1f} | {row['ratio']:.2f} | {same} |"
        )
    if args.out is not None:
        args.out.write_text(
            json.dumps({"date": date, "machine": machine, "layers": args.layers, "rows": rows},
                       indent=2) + "\n",
            encoding="utf-8",
        )  # fmt: skip


if __name__ == "__main__":
    main()

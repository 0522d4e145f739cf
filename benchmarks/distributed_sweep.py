"""A 3-value sweep on Ray with two workers vs the same sweep without Ray, in one run.

    python benchmarks/distributed_sweep.py [--workdir benchmarks/out/distributed] [--layers 2]
                                           [--methods interp,timber,interp-eval] [--out FILE.json]

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

``interp-eval`` is the sweep with evaluation (``sweep … --eval``, on Ray ``sweep … --eval
--ray``): the shipped toy pair (``examples/toy/models``, models that have learned their
task) interpolated at the three values, each output evaluated on ``toy_qa_add3`` (100
questions, the quickstart's settings) and the axis' ends as references, then the choice.
On Ray each group is evaluated in the task that merged it, the ends one per task. Every run
evaluates into a cache of its own: with one shared cache every run after the first would
only read the first one's numbers.

Every Ray run's outputs are compared with the local run's, byte for byte (for
``interp-eval`` also the numbers of every output and reference, and the chosen value);
where weights differ the column says how many elements and by how much. A Ray task runs
torch on one thread (Ray sets ``OMP_NUM_THREADS=1`` for a one-CPU task) where the local run
uses two, and LAPACK's decompositions round differently with another thread count.

The overhead is the ratio of the Ray run's wall time (with the start-up in the cold row) to
the local run's. A Markdown table and the machine go to stdout; ``--out`` also writes them
as JSON.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from settings import BENCH_SHAPE, OUT_SHARD_PARAMETERS

VALUES = {"interp": (0.2, 0.5, 0.8), "timber": (0.0, 0.2, 0.4), "interp-eval": (0.2, 0.5, 0.8)}
#: The evaluation of ``interp-eval``: the quickstart's task and settings.
EVAL_TASK = "toy_qa_add3"
EVAL_SETTINGS = {"limit": 100, "batch_size": 128, "device": "cpu"}
TOY_MODELS = Path(__file__).resolve().parents[1] / "examples" / "toy" / "models"


def configs(family) -> dict[str, dict]:
    from mergekit_weightlevel import method_configs

    return {
        "interp": method_configs.interp_config(family.instruct, family.thinking, 0.5),
        "timber": method_configs.timber_config(family.base, family.instruct),
        "interp-eval": method_configs.interp_config(
            str(TOY_MODELS / "instruct"), str(TOY_MODELS / "thinking"), 0.5, dtype="float32"
        ),
    }


def prepared_evaluation(cache_dir: Path):
    """``--eval toy_qa_add3 --limit 100 --batch-size 128``, checked, into its own cache."""
    from mergekit_weightlevel.evaluation.sweep import prepare_sweep_evaluation

    return prepare_sweep_evaluation(
        [EVAL_TASK], cache_dir=cache_dir, log=lambda _line: None, **EVAL_SETTINGS
    )


def same_files(here: Path, there: Path) -> bool:
    """Every file of the two folders equal, byte for byte (the card's own path aside), but
    ``evaluation.json``, whose date differs (its numbers are ``same_evaluation``'s)."""

    def files(folder: Path) -> dict[str, bytes]:
        return {
            p.name: p.read_bytes().replace(str(folder).encode(), b"FOLDER")
            for p in sorted(folder.iterdir())
            if p.is_file() and p.name != "evaluation.json"
        }

    return files(here) == files(there)


def weights_difference(here: Path, there: Path) -> str:
    """Where two output folders' weights differ: how many elements, by how much at most."""
    from safetensors.torch import load_file

    differing = total = 0
    largest = 0.0
    for shard in sorted(here.glob("*.safetensors")):
        mine, theirs = load_file(shard), load_file(there / shard.name)
        for name, tensor in mine.items():
            other = theirs[name]
            differing += int((tensor != other).sum())
            total += tensor.numel()
            largest = max(largest, float((tensor.double() - other.double()).abs().max()))
    return f"{differing} of {total / 1e6:.0f}M elements differ, by {largest:.1e} at most"


def compare_outputs(local, swept) -> str:
    """ "identical", or, per value, how the Ray run's weights differ from the local run's."""
    differ = [
        f"λ {here.value:g}: {weights_difference(here.folder, there.folder)}"
        for here, there in zip(local, swept)
        if not same_files(here.folder, there.folder)
    ]
    return "; ".join(differ) or "identical"


def same_evaluation(here, there) -> bool:
    """The same numbers for every output and reference, and the same chosen value."""

    def numbers(report):
        models = [m for _, m in report.outputs] + list(report.references.values())
        measured = [(m.folder.name, [(v.key, v.value) for v in m.metrics]) for m in models]
        return measured, report.chosen.value if report.chosen else None

    return numbers(here) == numbers(there)


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("benchmarks/out/distributed"))
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--methods", default="interp,timber,interp-eval")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    import ray
    from mergekit.options import MergeOptions

    from mergekit_weightlevel.demo.tiny_models import build_family
    from mergekit_weightlevel.distributed.evaluation import sweep_on_ray_with_evaluation
    from mergekit_weightlevel.distributed.settings import RaySettings
    from mergekit_weightlevel.machine import machine_description
    from mergekit_weightlevel.running.sweep import evaluate_swept, plan_sweep, run_sweep

    shutil.rmtree(args.workdir, ignore_errors=True)
    family = build_family(args.workdir / "family", shape=BENCH_SHAPE, layers=args.layers)
    options = MergeOptions(quiet=True, out_shard_size=OUT_SHARD_PARAMETERS)
    rows = []
    for method in args.methods.split(","):
        config, values = configs(family)[method], VALUES[method]
        out = args.workdir / method
        evaluated = method.endswith("-eval")

        def plan(where: str, chosen=values, config=config, out=out, method=method):
            return plan_sweep(config, chosen, out_prefix=out / where / method)

        def prepared(where: str, out=out, evaluated=evaluated):
            return prepared_evaluation(out / where / "cache") if evaluated else None

        def run_locally(where: str, chosen=values, out=out, method=method):
            """``sweep`` without Ray: run_sweep, then (``--eval``) the evaluation and choice."""
            request, evaluation = plan(where, chosen), prepared(where)
            outputs = run_sweep(request, options)
            if evaluation is None:
                return outputs, None
            return outputs, evaluate_swept(request, outputs, evaluation, out / where / method)

        run_locally("warmup", values[:1])
        local_s, (local, local_report) = timed(run_locally, "local")
        startup, _ = timed(
            ray.init, address="local", num_cpus=2, include_dashboard=False, log_to_driver=False
        )
        for workers, per_task in (("cold", None), ("warm", None), ("warm", len(values))):
            shutil.rmtree(out / "ray", ignore_errors=True)
            ray_s, (swept, ray_report) = timed(
                sweep_on_ray_with_evaluation, plan("ray"), options, prepared("ray"),
                out / "ray" / method, settings=RaySettings(), values_per_task=per_task,
            )  # fmt: skip
            outputs = compare_outputs(local, swept)
            if evaluated and not same_evaluation(local_report, ray_report):
                outputs += "; **numbers or choice DIFFER**"
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
                    "outputs": outputs,
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
        print(
            f"| {row['method']} | {row['workers']} | {row['tasks']} | {row['local_s']:.1f} | "
            f"{row['ray_startup_s']:.1f} | {row['ray_run_s']:.1f} | {row['ratio']:.2f} | "
            f"{row['outputs']} |"
        )
    if args.out is not None:
        args.out.write_text(
            json.dumps({"date": date, "machine": machine, "layers": args.layers, "rows": rows},
                       indent=2) + "\n",
            encoding="utf-8",
        )  # fmt: skip


if __name__ == "__main__":
    main()

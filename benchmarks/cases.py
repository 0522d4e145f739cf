"""The cases: each of our methods beside its named alternative on one family, back to back,
and the runs of the per-matrix and Gram-floor measurements."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml
from measure import Measurement, cli_argv, max_relative_difference, measure, worker_argv
from settings import SWEEP_LAMBDAS, TIMBER_LAMBDA

from mergekit_weightlevel.method_configs import (
    interp_config,
    paramdelta_config,
    shadow_graft_config,
    timber_config,
    with_value,
)
from mergekit_weightlevel.methods.instruct_thinking_interp import DECLARATION as INTERP_DECLARATION
from mergekit_weightlevel.methods.paramdelta import DECLARATION as PARAMDELTA_DECLARATION


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@dataclass
class Family:
    root: Path

    def __getattr__(self, name: str) -> Path:
        return self.root / name


def build(workdir: Path, layers: int) -> Family:
    """The benchmark family (built once, in a child process, then reused)."""
    root = workdir / f"family-{layers}L"
    if not (root / "base_tuned" / "config.json").exists():
        print(f"building the {layers}-layer benchmark family in {root} ...", flush=True)
        subprocess.run(worker_argv("build", root, layers), check=True)
    return Family(root)


def warm_page_cache(folder: Path) -> None:
    for file in folder.rglob("*.safetensors"):
        with open(file, "rb") as handle:
            while handle.read(1 << 24):
                pass


@dataclass(frozen=True)
class MergePair:
    """One of our methods beside a mergekit built-in doing the same arithmetic, both merged
    through mergekit's YAML path; ``case`` is the ``--only`` name and the config file name."""

    case: str
    title: str
    ours_label: str
    ours: Callable[[Family], dict]
    alternative_label: str
    alternative_name: str
    alternative: Callable[[Family], dict]


def task_arithmetic_config(f: Family) -> dict:
    """mergekit's task_arithmetic with weights 1, 1 and no normalisation: ParamΔ's sum."""
    return {
        "merge_method": "task_arithmetic",
        "base_model": str(f.base),
        "dtype": "float32",
        "parameters": {"normalize": False},
        "models": [
            {"model": str(f.instruct), "parameters": {"weight": 1.0}},
            {"model": str(f.base_v2), "parameters": {"weight": 1.0}},
        ],
    }


def linear_config(f: Family) -> dict:
    """mergekit's linear with weights (0.2, 0.8): the interpolation at λ = 0.8."""
    return {
        "merge_method": "linear",
        "dtype": "float32",
        "models": [
            {"model": str(f.instruct), "parameters": {"weight": 0.2}},
            {"model": str(f.thinking), "parameters": {"weight": 0.8}},
        ],
    }


MERGE_PAIRS = (
    MergePair(
        "paramdelta",
        "paramdelta vs mergekit task_arithmetic",
        "paramdelta (mergekit-yaml)",
        lambda f: paramdelta_config(f.base, f.instruct, f.base_v2, dtype="float32"),
        "task_arithmetic, same arithmetic (mergekit-yaml)",
        "task_arithmetic",
        task_arithmetic_config,
    ),
    MergePair(
        "interp",
        "instruct_thinking_interp vs mergekit linear",
        "instruct_thinking_interp λ=0.8 (mergekit-yaml)",
        lambda f: interp_config(f.instruct, f.thinking, 0.8, dtype="float32"),
        "linear (0.2, 0.8) (mergekit-yaml)",
        "linear",
        linear_config,
    ),
)


#: The analyze cases: (--metrics, the alternative's label, its worker, the table's row title).
ANALYZE_PAIRS = (
    (
        "sigma",
        "read both checkpoints, nothing else",
        "read_only",
        "analyze sigma vs reading both models",
    ),
    (
        "sigma,erank",
        "load-everything σ + eRank",
        "analyze_baseline",
        "analyze sigma,erank vs load-everything",
    ),
)


def run_cases(
    family, workdir: Path, only: set[str]
) -> list[tuple[str, Measurement, Measurement, str]]:
    """Every (ours, alternative) pair for one family; returns rows for the table."""
    import shutil

    rows = []
    out = workdir / "out"
    # Fresh outputs for every family: mergekit does not delete shards of an earlier run, and
    # the output comparison reads every *.safetensors of a folder.
    shutil.rmtree(out, ignore_errors=True)
    f = family

    def merge(label, config_name, config):
        path = write_config(workdir / f"{config_name}.yml", config)
        return measure(label, worker_argv("merge", path, out / config_name)), out / config_name

    for pair in MERGE_PAIRS:
        if pair.case not in only:
            continue
        ours, ours_out = merge(pair.ours_label, pair.case, pair.ours(f))
        alt, alt_out = merge(pair.alternative_label, pair.alternative_name, pair.alternative(f))
        rows.append((pair.title, ours, alt, max_relative_difference(ours_out, alt_out)))

    if "shadow" in only:
        ours, ours_out = merge(
            "shadow_graft (mergekit-yaml)",
            "shadow",
            shadow_graft_config(f.base, f.base_tuned, f.instruct, dtype="float32"),
        )
        alt = measure(
            "load-everything apply_diff-style",
            worker_argv(
                "shadow_baseline", f.base, f.base_tuned, f.instruct, out / "shadow_baseline"
            ),
        )
        rows.append(
            (
                "shadow_graft vs load-everything",
                ours,
                alt,
                max_relative_difference(ours_out, out / "shadow_baseline"),
            )
        )

    if "timber" in only:
        ours, ours_out = merge(
            f"timber_spectral λ={TIMBER_LAMBDA} (mergekit-yaml)",
            "timber",
            timber_config(f.base, f.instruct, TIMBER_LAMBDA, dtype="float32"),
        )
        alt = measure(
            "timber.py-style float64 full SVD + SVD cache, all in RAM",
            worker_argv("timber_baseline", f.base, f.instruct, out / "timber_baseline"),
        )
        rows.append(
            (
                "timber_spectral vs official-style SVD",
                ours,
                alt,
                max_relative_difference(ours_out, out / "timber_baseline"),
            )
        )
        lambdas = ",".join(str(v) for v in SWEEP_LAMBDAS)
        config = workdir / "timber.yml"
        sweep = measure(
            f"sweep --values {lambdas}",
            worker_argv("sweep", config, out / "sweep", lambdas),
        )
        rows.append(
            (
                f"timber sweep of {len(SWEEP_LAMBDAS)} λ vs one timber_spectral run",
                sweep,
                ours,
                max_relative_difference(out / f"sweep-lambda{TIMBER_LAMBDA:g}", ours_out),
            )
        )

    if "sweeps" in only:
        rows += sweep_rows(f, workdir, out)

    if "analyze" in only:
        for metrics, alternative_label, worker, title in ANALYZE_PAIRS:
            ours = measure(
                f"analyze --metrics {metrics}",
                cli_argv("analyze", f.base, f.instruct, "--metrics", metrics, "--quiet"),
            )
            alt = measure(alternative_label, worker_argv(worker, f.base, f.instruct))
            rows.append((title, ours, alt, "n/a"))

    if "contended" in only:
        rows += contended_rows(f, workdir, out)
    return rows


#: The sweeps measured against one merge per value: (case, config builder, values), each
#: method's declared grid (the interpolation paper's 7 λ, ParamΔ's 4 weights).
SWEEP_CASES = (
    (
        "instruct_thinking_interp",
        lambda f: interp_config(f.instruct, f.thinking, 0.5, dtype="float32"),
        INTERP_DECLARATION.sweep,
    ),
    (
        "paramdelta",
        lambda f: paramdelta_config(f.base, f.instruct, f.base_v2, dtype="float32"),
        PARAMDELTA_DECLARATION.sweep,
    ),
)


def sweep_rows(f, workdir: Path, out: Path) -> list:
    """A sweep of each method's grid against the same values merged one mergekit-yaml run
    each (their times summed, their memory the largest), and against one of those runs."""
    rows = []
    for method, build_config, axis in SWEEP_CASES:
        config = build_config(f)
        values = ",".join(f"{v:g}" for v in axis.grid)
        path = write_config(workdir / f"sweep_{method}.yml", config)
        sweep = measure(
            f"sweep {method} --values {values}",
            worker_argv("sweep", path, out / f"sweep_{method}", values),
        )
        singles = []
        for value in axis.grid:
            single = with_value(config, axis.parameter, value, per_donor=axis.per_donor)
            name = f"single_{method}_{value:g}"
            single_path = write_config(workdir / f"{name}.yml", single)
            singles.append(measure(f"{method} {axis.parameter}={value:g}",
                                   worker_argv("merge", single_path, out / name)))  # fmt: skip
        separate = Measurement(
            f"{len(singles)} separate mergekit-yaml runs",
            sum(m.seconds for m in singles),
            max(m.peak_anon_mb for m in singles),
            max(m.peak_rss_mb for m in singles),
        )
        last = f"{axis.grid[-1]:g}"
        diff = max_relative_difference(
            out / f"sweep_{method}-{axis.parameter}{last}", out / f"single_{method}_{last}"
        )
        rows.append((f"{method} sweep of {len(singles)} values vs one run per value",
                     sweep, separate, diff))  # fmt: skip
        rows.append((f"{method} sweep of {len(singles)} values vs one merge", sweep,
                     singles[-1], diff))  # fmt: skip
    return rows


#: The "contended" case's other work: one busy process per CPU, each stopping by itself
#: after this many seconds, and killed as soon as the measured run ends.
BURN_SECONDS = 600


#: The thread settings compared there (environment of the merge process).
THREAD_SETTINGS = {
    "our thread policy (the default)": {},
    "torch's default threads (MERGEKIT_WEIGHTLEVEL_THREADS=off)": {
        "MERGEKIT_WEIGHTLEVEL_THREADS": "off"
    },
    "one thread (OMP_NUM_THREADS=1)": {"OMP_NUM_THREADS": "1"},
}


def contended_rows(f, workdir: Path, out: Path) -> list:
    """The Timber merge while every CPU is busy with other work, under each thread setting;
    each setting against one thread (a merge on a busy machine should never be slower)."""
    config = write_config(
        workdir / "timber_contended.yml",
        timber_config(f.base, f.instruct, TIMBER_LAMBDA, dtype="float32"),
    )
    measured = {}
    for label, env in THREAD_SETTINGS.items():
        burners = [
            subprocess.Popen(worker_argv("burn", BURN_SECONDS)) for _ in range(os.cpu_count() or 1)
        ]
        try:
            measured[label] = measure(
                f"timber beside {len(burners)} busy CPUs, {label}",
                worker_argv("merge", config, out / "timber_contended"),
                env,
            )
        finally:
            for burner in burners:
                burner.kill()
                burner.wait()
    single = measured.pop("one thread (OMP_NUM_THREADS=1)")
    return [
        (f"timber_spectral, every CPU busy: {label} vs one thread", ours, single, "n/a")
        for label, ours in measured.items()
    ]


def run_kernels() -> list:
    """The per-matrix Timber rows (see ``worker_kernels``), computed in a child process."""
    print("Timber per matrix at Llama-3-8B shapes (a few minutes):", flush=True)
    result = subprocess.run(worker_argv("kernels"), capture_output=True, text=True, check=True)
    rows = json.loads(result.stdout.strip().splitlines()[-1])
    for label, m, n, _, ours_s, svd_s, diff, path in rows:
        print(f"  {label} {m}x{n}: {ours_s:.1f} s ({path}) vs {svd_s:.1f} s, diff {diff:.1e}")
    return rows


def run_structure(workdir: Path) -> list[dict]:
    """The per-matrix rows of analyze's structure level (``structure_kernels.py``), in a
    child process: its own memory, and no torch in this driver."""
    print("analyze structure per matrix at Llama-3-8B shapes (about 10 minutes):", flush=True)
    rows_file = workdir / "structure_rows.json"
    script = Path(__file__).with_name("structure_kernels.py")
    subprocess.run([sys.executable, str(script), "--json", str(rows_file)], check=True)
    return json.loads(rows_file.read_text())


def run_reading_cost(family, repeat: int) -> list[dict]:
    """``analyze --metrics sigma,erank`` and its Reading, timed apart in one child process
    (``worker_reading_cost``), ``repeat`` times on one family."""
    print("analyze's Reading against the analysis (sigma,erank):", flush=True)
    runs = []
    for _ in range(repeat):
        result = subprocess.run(
            worker_argv("reading_cost", family.base, family.instruct),
            capture_output=True,
            text=True,
            check=True,
        )
        runs.append(json.loads(result.stdout.strip().splitlines()[-1]))
        run = runs[-1]
        share = (run["reading"] + run["split"]) / run["analysis"]
        print(
            f"  analysis {run['analysis']:.2f} s, Reading {run['reading'] * 1000:.1f} ms "
            f"+ split {run['split'] * 1000:.1f} ms: {100 * share:.3f} %",
            flush=True,
        )
    return runs


def run_floor(family) -> dict:
    """Seconds of the Gram route's unavoidable steps on one family (``worker_eigen_floor``)."""
    print("Gram matrices and eigendecompositions alone:", flush=True)
    result = subprocess.run(
        worker_argv("eigen_floor", family.base, family.instruct),
        capture_output=True,
        text=True,
        check=True,
    )
    floor = json.loads(result.stdout.strip().splitlines()[-1])
    print("  " + ", ".join(f"{k} {v:.1f} s" for k, v in floor.items() if k != "matrices"))
    return floor

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
- reading both checkpoints tensor by tensor and nothing else (for ``analyze --metrics sigma``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from mergekit_weightlevel.method_configs import (
    interp_config,
    paramdelta_config,
    shadow_graft_config,
    timber_config,
)

BENCH_SHAPE = {
    "hidden_size": 1024,
    "intermediate_size": 2816,
    "num_attention_heads": 16,
    "num_key_value_heads": 16,
    "vocab_size": 8192,
}
PROJECTIONS = r"(q|k|v|o|gate|up|down)_proj"
TIMBER_LAMBDA = 0.2
#: The λ of the sweep case (Timber's range; includes TIMBER_LAMBDA for the output check).
SWEEP_LAMBDAS = (0.0, 0.1, 0.2, 0.4)


# --------------------------------------------------------------------------- workers
# Each worker runs in its own process so that its peak RSS is its own.


def load_state(folder: str, *, in_memory: bool = False) -> dict:
    """The package's checkpoint reader (``in_memory`` copies the zero-copy-mapped tensors
    into the process, as the load-everything baselines must)."""
    from mergekit_weightlevel.checkpoints import read_state

    return read_state(folder, in_memory=in_memory)


def save_state(state: dict, folder: str, like: str) -> None:
    import shutil

    from safetensors.torch import save_file

    Path(folder).mkdir(parents=True, exist_ok=True)
    shutil.copy(Path(like) / "config.json", Path(folder) / "config.json")
    save_file(
        {k: v.contiguous() for k, v in state.items()}, str(Path(folder) / "model.safetensors")
    )


#: Parameters per output shard of every merge (16M float32 = 64 MB). mergekit's default,
#: 5B, would hold the whole merged model in memory until the end, hiding the streaming.
OUT_SHARD_PARAMETERS = 16 * 1024 * 1024


def merge_options():
    """The MergeOptions of every merge case: quiet, no tokenizer / card, 64 MB shards."""
    from mergekit.options import MergeOptions

    return MergeOptions(
        quiet=True,
        copy_tokenizer=False,
        write_model_card=False,
        out_shard_size=OUT_SHARD_PARAMETERS,
    )


def worker_merge(config_path: str, out: str, *extra: str) -> None:
    """mergekit's YAML path: `mergekit-yaml CONFIG OUT --out-shard-size 16M`."""
    from mergekit_weightlevel.running.merging import merge_yaml

    merge_yaml(config_path, out, merge_options())


def worker_shadow_baseline(base: str, tuned: str, instruct: str, out: str) -> None:
    """What the official apply_diff.py does: three whole models in RAM, projections grafted."""
    w_b, w_bplus, w_i = (load_state(m, in_memory=True) for m in (base, tuned, instruct))
    pattern = re.compile(PROJECTIONS, re.IGNORECASE)
    merged = {}
    for name, tensor in w_i.items():
        if pattern.search(name):
            merged[name] = (tensor.float() + (w_bplus[name].float() - w_b[name].float())).to(
                tensor.dtype
            )
        else:
            merged[name] = tensor
    save_state(merged, out, instruct)


def worker_timber_baseline(base: str, instruct: str, out: str) -> None:
    """What the official timber.py does by default: float64 full SVD per tensor, every output
    and the SVD cache (float32 U, S, Vh per tensor) held in RAM, the cache saved to
    OUT/svd_cache.pt (``--svd_cache_path`` defaults there) so that a later run can reuse it."""
    import math

    import torch

    from mergekit_weightlevel.methods.timber import official_effective_rank

    w_b, w_i = load_state(base), load_state(instruct)
    merged, svd_cache = {}, {}
    for name, instruct_tensor in w_i.items():
        delta = instruct_tensor.float() - w_b[name].float()
        if delta.ndim < 2:
            merged[name] = instruct_tensor
            continue
        matrix = delta.reshape(delta.shape[0], -1)
        U, S, Vh = torch.linalg.svd(matrix.double(), full_matrices=False)
        U, S, Vh = U.float(), S.float(), Vh.float()
        svd_cache[name] = (U, S, Vh)
        k = math.ceil(official_effective_rank(S))  # float32 arithmetic, as timber.py
        scaled = S.clone()
        scaled[k:] *= TIMBER_LAMBDA
        merged[name] = (
            (w_b[name].float() + (U * scaled) @ Vh).reshape(delta.shape).to(w_b[name].dtype)
        )
    save_state(merged, out, instruct)
    torch.save(svd_cache, Path(out) / "svd_cache.pt")


def worker_sweep(config_path: str, out_prefix: str, lambdas: str) -> None:
    """`mergekit-weightlevel sweep timber CONFIG OUT_PREFIX --lambdas ...`, in-process."""
    from mergekit_weightlevel.running.sweep import sweep_config, sweep_out_dirs

    values = [float(v) for v in lambdas.split(",")]
    sweep_config(config_path, values, sweep_out_dirs(out_prefix, values), merge_options())


def worker_read_only(a: str, b: str) -> None:
    """Read every tensor of both checkpoints once, in file order, and do nothing else.

    safetensors ≥ 0.8 maps a tensor zero-copy from the file: ``get_tensor`` alone touches
    none of its bytes (1 GB "read" in 5 ms). Each tensor is therefore copied into the
    process (``clone``), which is what reading its bytes costs (as ``read()`` would)."""
    from safetensors import safe_open

    for folder in (a, b):
        for shard in sorted(Path(folder).glob("*.safetensors")):
            with safe_open(str(shard), framework="pt") as handle:
                for name in handle.keys():  # noqa: SIM118 - a safe_open handle is not iterable
                    handle.get_tensor(name).clone()


def worker_analyze_baseline(a: str, b: str) -> None:
    """σ and eRank (of A, B, ΔW) with both whole models in RAM, float32 singular values."""
    import torch

    from mergekit_weightlevel.numerics.metrics import effective_rank, sigma

    state_a, state_b = load_state(a, in_memory=True), load_state(b, in_memory=True)
    results = {}
    for name, tensor_a in state_a.items():
        tensor_b = state_b[name]
        record = {"sigma": sigma(tensor_a, tensor_b)}
        if tensor_a.ndim >= 2:
            for key, matrix in (
                ("a", tensor_a),
                ("b", tensor_b),
                ("delta", tensor_b.float() - tensor_a.float()),
            ):
                values = torch.linalg.svdvals(matrix.float().reshape(matrix.shape[0], -1))
                record[key] = effective_rank(values)
        results[name] = record
    print(len(results))


def worker_eigen_floor(a: str, b: str) -> None:
    """The float64 Gram matrices and their eigendecompositions that the Gram route needs,
    timed one by one: Timber's (ΔW: Gram, ``eigh``) and analyze's eRank (A, B and ΔW:
    Gram, ``eigvalsh``). Prints the seconds per step as JSON."""
    import torch

    from mergekit_weightlevel.numerics.spectral import gram_matrix

    def timed(key: str, fn, *args):
        start = time.perf_counter()
        result = fn(*args)
        seconds[key] = seconds.get(key, 0.0) + time.perf_counter() - start
        return result

    state_a, state_b = load_state(a), load_state(b)
    seconds: dict[str, float] = {}
    matrices = 0
    for name, tensor_a in state_a.items():
        if tensor_a.ndim < 2:
            continue
        matrices += 1
        tensor_b = state_b[name]
        for key, matrix in (
            ("delta", tensor_b.float() - tensor_a.float()),
            ("a_and_b", tensor_a),
            ("a_and_b", tensor_b),
        ):
            gram, _ = timed(f"gram_{key}", gram_matrix, matrix.reshape(matrix.shape[0], -1))
            timed(f"eigvalsh_{key}", lambda g: torch.linalg.eigvalsh(g, UPLO="U"), gram)
            if key == "delta":
                timed("eigh_delta", lambda g: torch.linalg.eigh(g, UPLO="U"), gram)
    print(json.dumps(seconds | {"matrices": matrices}))


#: Llama-3-8B's decoder-layer matrices (rows × cols) and how many of each a layer has.
KERNEL_SHAPES = {
    "q_proj, o_proj": ((4096, 4096), 2),
    "k_proj, v_proj": ((1024, 4096), 2),
    "gate_proj, up_proj": ((14336, 4096), 2),
    "down_proj": ((4096, 14336), 1),
}


def worker_kernels() -> None:
    """Timber per matrix at 8B shapes: our split (auto) vs the official float64 SVD, timed
    back to back in this process on one post-training-like delta per shape; prints JSON."""
    import torch

    from mergekit_weightlevel.demo.tiny_models import post_training_delta
    from mergekit_weightlevel.methods.timber import split_delta, svd_split

    rows = []
    for label, ((m, n), count) in KERNEL_SHAPES.items():
        base = torch.randn(m, n, generator=torch.Generator().manual_seed(m + n)) * 0.02
        delta = post_training_delta(base, label, scale=0.05, seed=1, rank=16)
        start = time.perf_counter()
        split = split_delta(delta, name=label)
        ours = split.apply(TIMBER_LAMBDA)
        ours_s = time.perf_counter() - start
        start = time.perf_counter()
        official = svd_split(delta, exponent=1.0, name=label).apply(TIMBER_LAMBDA)
        svd_s = time.perf_counter() - start
        diff = float((ours.double() - official.double()).norm() / official.double().norm())
        rows.append([label, m, n, count, ours_s, svd_s, diff, split.solver])
        del base, delta, split, ours, official
    print(json.dumps(rows))


def worker_diff(a_folder: str, b_folder: str) -> None:
    a, b = load_state(a_folder), load_state(b_folder)
    worst = 0.0
    for name, tensor in b.items():
        reference = tensor.double()
        scale = float(reference.norm()) or 1.0
        worst = max(worst, float((a[name].double() - reference).norm()) / scale)
    print(f"{worst:.1e}")


def worker_build(root: str, layers: str) -> None:
    from mergekit_weightlevel.demo.tiny_models import build_family

    build_family(root, arch="llama", layers=int(layers), shape=BENCH_SHAPE, shard_size="200MB")


def worker_burn(seconds: str) -> None:
    """Other work for the "contended" case: one CPU kept busy, stopping by itself."""
    end = time.monotonic() + float(seconds)
    while time.monotonic() < end:
        pass


WORKERS = {
    "burn": worker_burn,
    "diff": worker_diff,
    "build": worker_build,
    "merge": worker_merge,
    "shadow_baseline": worker_shadow_baseline,
    "timber_baseline": worker_timber_baseline,
    "sweep": worker_sweep,
    "read_only": worker_read_only,
    "analyze_baseline": worker_analyze_baseline,
    "eigen_floor": worker_eigen_floor,
    "kernels": worker_kernels,
}


# --------------------------------------------------------------------------- driver


@dataclass
class Measurement:
    label: str
    seconds: float
    peak_anon_mb: float  # largest RssAnon sampled: the process's own memory
    peak_rss_mb: float  # ru_maxrss: also counts touched pages of mmap'd checkpoint files


#: How often the driver samples a child's RssAnon (seconds).
SAMPLE_PERIOD = 0.01


def rss_anon_kb(pid: int) -> int:
    """The RssAnon line of /proc/PID/status (kB); 0 once the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


#: Runs per case (``--repeat``): the table keeps the fastest time and the largest memory.
REPEAT = 1


def measure(label: str, argv: list[str], env: dict[str, str] | None = None) -> Measurement:
    """``run_once`` REPEAT times: the best time (least disturbed by other load) and the
    worst memory of the runs. ``env`` adds variables to the child's environment."""
    runs = [run_once(label, argv, env) for _ in range(REPEAT)]
    return Measurement(
        label,
        min(run.seconds for run in runs),
        max(run.peak_anon_mb for run in runs),
        max(run.peak_rss_mb for run in runs),
    )


def run_once(label: str, argv: list[str], extra_env: dict[str, str] | None = None) -> Measurement:
    """Run argv in a child process: wall time, peak RssAnon (sampled) and ru_maxrss."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(extra_env or {})}
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stderr_chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: stderr_chunks.append(proc.stderr.read()))
    reader.start()  # drain stderr so that a chatty child never blocks on a full pipe
    peak_anon_kb = 0
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        peak_anon_kb = max(peak_anon_kb, rss_anon_kb(proc.pid))
        time.sleep(SAMPLE_PERIOD)
    seconds = time.perf_counter() - start
    reader.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    stderr = b"".join(stderr_chunks).decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"{label} failed:\n{stderr[-3000:]}")
    measurement = Measurement(label, seconds, peak_anon_kb / 1024, usage.ru_maxrss / 1024)
    print(
        f"  {label:<58} {seconds:8.2f} s  anon {measurement.peak_anon_mb:6.0f} MB  "
        f"maxrss {measurement.peak_rss_mb:6.0f} MB",
        flush=True,
    )
    return measurement


def worker_argv(name: str, *args: str) -> list[str]:
    return [sys.executable, __file__, "worker", name, *map(str, args)]


def cli_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "mergekit_weightlevel.cli", *map(str, args)]


def max_relative_difference(a_folder: Path, b_folder: Path) -> str:
    """max over tensors of ‖a − b‖_F / ‖b‖_F, computed in a child (the driver stays small)."""
    result = subprocess.run(
        worker_argv("diff", a_folder, b_folder), capture_output=True, text=True, check=True
    )
    return result.stdout.strip().splitlines()[-1]


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

    if "paramdelta" in only:
        ours, ours_out = merge(
            "paramdelta (mergekit-yaml)",
            "paramdelta",
            paramdelta_config(f.base, f.instruct, f.base_v2, dtype="float32"),
        )
        alt, alt_out = merge(
            "task_arithmetic, same arithmetic (mergekit-yaml)",
            "task_arithmetic",
            {
                "merge_method": "task_arithmetic",
                "base_model": str(f.base),
                "dtype": "float32",
                "parameters": {"normalize": False},
                "models": [
                    {"model": str(f.instruct), "parameters": {"weight": 1.0}},
                    {"model": str(f.base_v2), "parameters": {"weight": 1.0}},
                ],
            },
        )
        rows.append(
            (
                "paramdelta vs mergekit task_arithmetic",
                ours,
                alt,
                max_relative_difference(ours_out, alt_out),
            )
        )

    if "interp" in only:
        ours, ours_out = merge(
            "instruct_thinking_interp λ=0.8 (mergekit-yaml)",
            "interp",
            interp_config(f.instruct, f.thinking, 0.8, dtype="float32"),
        )
        alt, alt_out = merge(
            "linear (0.2, 0.8) (mergekit-yaml)",
            "linear",
            {
                "merge_method": "linear",
                "dtype": "float32",
                "models": [
                    {"model": str(f.instruct), "parameters": {"weight": 0.2}},
                    {"model": str(f.thinking), "parameters": {"weight": 0.8}},
                ],
            },
        )
        rows.append(
            (
                "instruct_thinking_interp vs mergekit linear",
                ours,
                alt,
                max_relative_difference(ours_out, alt_out),
            )
        )

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
            f"sweep timber --lambdas {lambdas}",
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

    if "analyze" in only:
        ours = measure(
            "analyze --metrics sigma",
            cli_argv("analyze", f.base, f.instruct, "--metrics", "sigma", "--quiet"),
        )
        alt = measure(
            "read both checkpoints, nothing else", worker_argv("read_only", f.base, f.instruct)
        )
        rows.append(("analyze sigma vs reading both models", ours, alt, "n/a"))
        ours = measure(
            "analyze --metrics sigma,erank",
            cli_argv("analyze", f.base, f.instruct, "--metrics", "sigma,erank", "--quiet"),
        )
        alt = measure(
            "load-everything σ + eRank", worker_argv("analyze_baseline", f.base, f.instruct)
        )
        rows.append(("analyze sigma,erank vs load-everything", ours, alt, "n/a"))

    if "contended" in only:
        rows += contended_rows(f, workdir, out)
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


def machine() -> str:
    """The package's machine description, asked of a child process: the driver itself never
    imports torch or mergekit, so that its own memory stays small."""
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "from mergekit_weightlevel.machine import machine_description; "
            "print(machine_description())",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


METHOD_TEXT = (
    "## Method",
    "",
    "The script builds a Llama-shaped family locally (hidden 1024, MLP 2816, vocabulary 8192,",
    "untied lm_head; 8 layers ≈ 120M parameters, float32, ~0.5 GB per model) whose",
    "post-trained members carry low-rank-plus-noise deltas, warms the page cache, and runs",
    "every case in a fresh process, ours and the alternative back to back:",
    "",
    "- `paramdelta` vs mergekit's `task_arithmetic` (weights 1, 1, no normalisation: the same",
    "  arithmetic); `instruct_thinking_interp` (λ = 0.8) vs mergekit's `linear` (0.2, 0.8);",
    "- `shadow_graft` vs a load-everything version of Shadow-FT's `apply_diff.py` (three whole",
    "  models in process memory: safetensors ≥ 0.8 maps tensors zero-copy from the file, so",
    "  the load-everything scripts copy them in, as loading with transformers would);",
    "- `timber_spectral` (λ = 0.2) vs a version of Timber's `timber.py` written for the",
    "  benchmark: float64 full SVD per tensor, every output and the SVD cache (float32",
    "  U, S, Vh) in RAM, the cache saved to `OUT/svd_cache.pt` as `timber.py` does by default;",
    "- a Timber sweep of 4 λ (`sweep timber --lambdas 0,0.1,0.2,0.4`) vs one Timber run;",
    "- `analyze --metrics sigma` vs reading every tensor of both checkpoints with",
    "  `safetensors` and nothing else (same interpreter start, torch imported in both; each",
    "  tensor is copied into the process, since safetensors maps it zero-copy and would",
    "  otherwise read none of its bytes);",
    "  `analyze --metrics sigma,erank` vs a load-everything script computing the same numbers",
    "  the straightforward way (whole state dicts, `torch.linalg.svdvals` in float32 per matrix",
    "  for A, B and ΔW);",
    "- `contended`: the Timber merge while one busy-looping process per CPU runs beside it,",
    "  with our thread policy (the default), torch's default threads and one thread; each",
    "  against one thread, which a merge on a busy machine should never be slower than;",
    "- all of it at two model sizes (`--layers`, `--small-layers`), to show that our peak",
    "  memory does not grow with the model;",
    "- the best speed-up our Gram route could reach at the family's shapes (`floor`: its",
    "  Gram matrices and eigendecompositions alone, plus what every run pays anyway);",
    "- Timber's linear algebra alone, per matrix, at Llama-3-8B shapes (`kernels`).",
    "",
    "Merges run through mergekit's YAML path (`mergekit-yaml`'s code, in-process) with",
    "`--out-shard-size 16M` (64 MB float32 shards; mergekit's default of 5B parameters would",
    "keep the whole merged model in memory until the end, for ours and mergekit's built-ins",
    "alike). Their time includes mergekit's fixed cost: importing mergekit pulls in",
    "transformers and peft, and planning a merge: a few seconds that the standalone scripts",
    "do not pay.",
    "",
    "Every case runs `--repeat` times (default 2) in a row; the table keeps the best time",
    "(the run least disturbed by other load: on this 2-core machine single runs vary by",
    "±15 %) and the largest memory.",
    "",
    "Time is wall-clock, interpreter start and imports included. Memory is the process's peak",
    "anonymous memory (the largest `RssAnon` of /proc/PID/status, sampled every "
    f"{SAMPLE_PERIOD * 1000:.0f} ms",
    "by the driver): what the process allocated itself. `ru_maxrss` is shown as well, but it",
    "also counts the touched pages of memory-mapped safetensors files, which are page cache",
    "shared with the OS, not the process's memory: with it a streaming merge of three 0.5 GB",
    "checkpoints looks as large as a script that loads them. Ratios are ours / alternative",
    "(lower is better for us); `max rel. diff` compares the two outputs",
    "tensor by tensor (max ‖a − b‖_F / ‖b‖_F).",
    "",
    "Run it on a quiet machine (nothing else using the CPU): `python",
    "benchmarks/run_benchmarks.py` (all cases, 8 and 4 layers, about 30 minutes on 2 cores);",
    "`--only paramdelta,interp,shadow,timber,analyze,contended,floor,kernels`, `--layers N --small-layers M` (0 skips",
    "the second size) and `--workdir DIR` (default benchmarks/out, git-ignored; the families",
    "are built once and reused) narrow it; `--out` (default docs/benchmarks.md) and `--notes`",
    "(default benchmarks/notes.md, appended under the tables) set the page.",
)


def run_kernels() -> list:
    """The per-matrix Timber rows (see ``worker_kernels``), computed in a child process."""
    print("Timber per matrix at Llama-3-8B shapes (a few minutes):", flush=True)
    result = subprocess.run(worker_argv("kernels"), capture_output=True, text=True, check=True)
    rows = json.loads(result.stdout.strip().splitlines()[-1])
    for label, m, n, _, ours_s, svd_s, diff, path in rows:
        print(f"  {label} {m}x{n}: {ours_s:.1f} s ({path}) vs {svd_s:.1f} s, diff {diff:.1e}")
    return rows


def kernel_table(rows: list) -> list[str]:
    if not rows:
        return []
    lines = [
        "## timber_spectral per matrix at Llama-3-8B shapes",
        "",
        "One post-training-like delta (low-rank + noise) per shape, timed in one process: our",
        "decomposition + reconstruction (`solver: auto`) vs the official float64 thin SVD +",
        "reconstruction (`solver: svd`, what `timber.py` does per tensor). Reading and writing",
        "are left out: at 8B the linear algebra is almost the whole run.",
        "",
        "| matrix | shape | per layer | ours (s) | float64 SVD (s) | time ratio | path | rel. diff of D' |",
        "|---|---|---:|---:|---:|---:|---|---:|",
    ]
    ours_layer = svd_layer = 0.0
    for label, m, n, count, ours_s, svd_s, diff, path in rows:
        lines.append(
            f"| {label} | {m} × {n} | {count} | {ours_s:.2f} | {svd_s:.2f} "
            f"| {ours_s / svd_s:.2f} | {path} | {diff:.1e} |"
        )
        ours_layer += count * ours_s
        svd_layer += count * svd_s
    lines.append(
        f"| one decoder layer (weighted) | | 7 | {ours_layer:.1f} | {svd_layer:.1f} "
        f"| {ours_layer / svd_layer:.2f} | | |"
    )
    return [*lines, ""]


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


def floor_table(title: str, rows: list, floor: dict) -> list[str]:
    """The best speed-up the Gram route could reach on this family: the alternative's time
    over (the cost every run pays before any linear algebra + the Gram matrices + their
    eigendecompositions), everything else counted as free."""
    by_name = {name: (ours, alt) for name, ours, alt, _ in rows}
    timber_eigen = floor["eigh_delta"]
    analyze_gram = floor["gram_delta"] + floor["gram_a_and_b"]
    analyze_eigen = floor["eigvalsh_delta"] + floor["eigvalsh_a_and_b"]
    cases = [
        # (target, its row, the row whose time is the fixed cost, ours or alt., Gram, eigen)
        (
            "timber_spectral ≥ 3× the official-style SVD",
            "timber_spectral vs official-style SVD",
            "instruct_thinking_interp vs mergekit linear",  # a two-model mergekit merge
            0,
            floor["gram_delta"],
            timber_eigen,
        ),
        (
            "analyze sigma,erank ≥ 3× load-everything",
            "analyze sigma,erank vs load-everything",
            "analyze sigma vs reading both models",  # reading both models
            1,
            analyze_gram,
            analyze_eigen,
        ),
    ]
    lines = []
    for target, case, fixed_case, side, gram_s, eigen_s in cases:
        if case not in by_name or fixed_case not in by_name:
            continue
        ours, alt = by_name[case]
        fixed = by_name[fixed_case][side]
        bound = alt.seconds / (fixed.seconds + gram_s + eigen_s)
        lines.append(
            f"| {target} | {alt.seconds:.2f} | {fixed.seconds:.2f} ({fixed.label}) "
            f"| {gram_s:.2f} | {eigen_s:.2f} | {bound:.2f}× | {alt.seconds / ours.seconds:.2f}× |"
        )
    if not lines:
        return []
    return [
        f"## What bounds the speed-up at these shapes ({title.split(' ')[0]} family)",
        "",
        "The steps of our Gram route that no amount of tuning around them removes, timed one",
        "by one in one process: the float64 Gram matrices and their eigendecompositions",
        f"({floor['matrices']} matrices; Timber: ΔW, `eigh`; analyze: A, B and ΔW, `eigvalsh`),",
        "plus what a run pays before any linear algebra (a two-model mergekit merge; reading",
        "both checkpoints). Everything else (P_k(D), λ, σ, writing) counts as free, so the",
        "best possible speed-up is an upper bound for this route on this machine.",
        "",
        "| target | alternative (s) | fixed cost (s) | Gram matrices (s) "
        "| eigendecompositions (s) | best possible speed-up | measured speed-up |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *lines,
        "",
    ]


def render(
    sections: dict[str, list], notes: str, kernels: list | None = None, floor: dict | None = None
) -> str:
    lines = [
        "# Benchmarks",
        "",
        f"Produced by `python benchmarks/run_benchmarks.py` on {datetime.date.today().isoformat()}.",
        f"Machine: {machine()}.",
        "",
        *METHOD_TEXT,
        "",
    ]
    for title, rows in sections.items():
        lines += [
            f"## {title}",
            "",
            "| comparison | ours (s) | alternative (s) | time ratio | ours peak anon (MB) "
            "| alternative peak anon (MB) | anon ratio | ours / alt. ru_maxrss (MB) | max rel. diff |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for name, ours, alt, diff in rows:
            lines.append(
                f"| {name} | {ours.seconds:.2f} | {alt.seconds:.2f} "
                f"| {ours.seconds / alt.seconds:.2f} | {ours.peak_anon_mb:.0f} "
                f"| {alt.peak_anon_mb:.0f} | {ours.peak_anon_mb / alt.peak_anon_mb:.2f} "
                f"| {ours.peak_rss_mb:.0f} / {alt.peak_rss_mb:.0f} | {diff} |"
            )
        lines.append("")
    lines += memory_vs_size(sections)
    if floor:
        main_title = next(iter(sections))
        lines += floor_table(main_title, sections[main_title], floor)
    lines += kernel_table(kernels or [])
    lines.append(notes)
    return "\n".join(lines) + "\n"


def memory_vs_size(sections: dict[str, list]) -> list[str]:
    """Our peak anonymous memory per case at each family size (flat = streaming)."""
    if len(sections) < 2:
        return []
    titles = list(sections)
    by_case: dict[str, list[Measurement]] = {}
    for title in titles:
        for _, ours, _, _ in sections[title]:
            by_case.setdefault(ours.label, []).append(ours)
    sizes = [title.split(" ")[0] for title in titles]
    lines = [
        "## Peak anonymous memory of our side vs model size",
        "",
        "| case | " + " | ".join(f"{size} (MB)" for size in sizes) + " | largest / smallest |",
        "|---|" + "---:|" * (len(sizes) + 1),
    ]
    for label, measurements in by_case.items():
        if len(measurements) != len(sizes):
            continue
        values = [m.peak_anon_mb for m in measurements]
        lines.append(
            f"| {label} | "
            + " | ".join(f"{v:.0f}" for v in values)
            + f" | {values[0] / values[-1]:.2f} |"
        )
    return [*lines, ""]


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
        "--only", default="paramdelta,interp,shadow,timber,analyze,contended,floor,kernels"
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
    global REPEAT
    REPEAT = max(1, args.repeat)
    only = set(args.only.split(","))
    args.workdir.mkdir(parents=True, exist_ok=True)

    sections = {}
    floor: dict = {}
    sizes = [args.layers] + ([args.small_layers] if args.small_layers else [])
    for layers in sizes:
        family = build(args.workdir, layers)
        warm_page_cache(family.root)
        # The first process to import torch / mergekit pays for reading their files: not ours.
        subprocess.run(
            [sys.executable, "-c", "import mergekit.merge, mergekit_weightlevel.cli"], check=True
        )
        print(f"{layers} layers:", flush=True)
        sections[f"{layers}-layer family (hidden 1024, MLP 2816, vocab 8192)"] = run_cases(
            family, args.workdir, only
        )
        if "floor" in only and not floor:  # the main family only
            floor = run_floor(family)
    kernels = run_kernels() if "kernels" in only else []
    notes = args.notes.read_text() if args.notes and args.notes.exists() else ""
    args.out.write_text(render(sections, notes, kernels, floor))
    (args.workdir / "results.json").write_text(
        json.dumps(
            {
                title: [(n, o.__dict__, a.__dict__, d) for n, o, a, d in rows]
                for title, rows in sections.items()
            }
            | {"kernels": kernels, "eigen_floor": floor},
            indent=2,
        )
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "worker":
        WORKERS[sys.argv[2]](*sys.argv[3:])
    else:
        main()

"""The subprocess workers of the benchmarks: each case runs in its own process, so that its
peak memory is its own. Run as ``python benchmarks/workers.py NAME ARGS...`` (``worker_argv``
in ``measure.py`` builds that command line).

The load-everything baselines model what the papers' official scripts do (whole state dicts in
RAM, their float32 SVD cache): they are the alternatives the tables time, not references."""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

from settings import (
    BENCH_SHAPE,
    LLAMA3_8B_LAYER,
    OUT_SHARD_PARAMETERS,
    PROJECTIONS,
    TIMBER_LAMBDA,
)


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


def worker_sweep(config_path: str, out_prefix: str, values: str) -> None:
    """`mergekit-weightlevel sweep CONFIG OUT_PREFIX --values ...` (any method), in-process."""
    from mergekit_weightlevel.running.sweep import sweep

    outputs = sweep(config_path, [float(v) for v in values.split(",")], out_prefix,
                    options=merge_options())  # fmt: skip
    failed = [o.error for o in outputs if o.error]
    if failed:
        raise SystemExit("; ".join(failed))


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

    from mergekit_weightlevel.numerics.effective_rank import effective_rank
    from mergekit_weightlevel.numerics.pair_statistics import sigma

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


def worker_kernels() -> None:
    """Timber per matrix at 8B shapes: our split (auto) vs the official float64 SVD, timed
    back to back in this process on one post-training-like delta per shape; prints JSON."""
    import torch

    from mergekit_weightlevel.demo.tiny_models import post_training_delta
    from mergekit_weightlevel.methods.timber import split_delta, svd_split

    rows = []
    for label, ((m, n), count) in LLAMA3_8B_LAYER.items():
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


def worker_reading_cost(a: str, b: str) -> None:
    """analyze --metrics sigma,erank on A and B, then its Reading, timed apart in one process.

    The Reading's share of the analysis: building every pair's Reading (``read_pair``: the
    regime, the previews, the outliers, from the records) and rendering it in the stdout
    summary, the Markdown and the HTML, plus its one per-matrix step inside the analysis
    (Timber's split of the ΔW spectrum the eRank level computes anyway, ``erank_split``),
    timed where it runs. The pair's summary is computed first: the report needs it anyway.
    Prints the seconds as JSON."""
    import mergekit_weightlevel.analyze.records as records
    from mergekit_weightlevel.analyze import analyze_models
    from mergekit_weightlevel.analyze.html_page import _reading as html_reading
    from mergekit_weightlevel.analyze.interpretation import read_pair
    from mergekit_weightlevel.analyze.markdown import _reading as markdown_reading
    from mergekit_weightlevel.analyze.report import reading_lines

    split_seconds = 0.0
    original_split = records.erank_split

    def timed_split(singular_values):
        nonlocal split_seconds
        start = time.perf_counter()
        result = original_split(singular_values)
        split_seconds += time.perf_counter() - start
        return result

    records.erank_split = timed_split
    start = time.perf_counter()
    report = analyze_models([a, b], metrics="sigma,erank", quiet=True)
    analysis = time.perf_counter() - start
    for pair in report.pairs:
        pair.summary  # noqa: B018 - computed before the clock starts: not the Reading's cost
    start = time.perf_counter()
    for pair in report.pairs:
        pair.reading = read_pair(pair)
        html_reading(pair), markdown_reading(pair), reading_lines(pair)
    reading = time.perf_counter() - start
    print(json.dumps({"analysis": analysis, "reading": reading, "split": split_seconds,
                      "tensors": len(report.pairs[0].tensors)}))  # fmt: skip


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
    "reading_cost": worker_reading_cost,
}


if __name__ == "__main__":
    WORKERS[sys.argv[1]](*sys.argv[2:])

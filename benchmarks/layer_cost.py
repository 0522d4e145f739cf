"""What a real run costs: each method and each `analyze` level per Llama-3-8B decoder layer,
measured, then extrapolated to 8B / 14B / 32B / 70B models.

    python benchmarks/layer_cost.py [--out docs/cost.md] [--workdir benchmarks/out]
                                    [--structure-rows benchmarks/out/structure_rows.json]
    python benchmarks/layer_cost.py --device cuda --json PATH.json   # on a GPU machine
    python benchmarks/layer_cost.py --fill-cuda PATH.json [--out docs/cost.md]

Each kind runs in its own child process over the seven matrices of one Llama-3-8B decoder
layer (post-training-like float32 inputs generated in the child; generation is not timed):
the per-tensor kernel of each method (what mergekit calls once per tensor) and analyze's
per-tensor record at each metric level. A thread samples the child's anonymous memory
during each kernel call: what it allocates beyond its inputs. Reading and
writing checkpoints are not in these numbers (at these sizes the linear algebra dominates
all but the elementwise methods; for those, reading the inputs is the cost: see the
disk column). The `--out-shard-size` rows merge the 8-layer benchmark family with
paramdelta at three shard sizes through mergekit's YAML path.

The page's CUDA column: ``--device cuda`` (``benchmarks/gpu_check.sh`` runs it) measures the
same kinds on the GPU, from the same inputs moved there, timed with the GPU's queue drained
and its memory read by ``torch.cuda.max_memory_allocated``, and writes them as JSON with the
card's name; ``--fill-cuda`` that JSON then fills the column of an existing page (the CPU
figures stay as they are). Nothing else ever fills it: without that JSON it says
"not measured".
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from contextlib import nullcontext
from pathlib import Path

from measure import rss_anon_kb
from render import machine
from settings import LLAMA3_8B_LAYER

#: Decoder layers, hidden size, MLP width, key/value width, vocabulary (untied embeddings),
#: from the models' config.json.
MODELS = {
    "Llama-3-8B": {"layers": 32, "hidden": 4096, "mlp": 14336, "kv": 1024, "vocab": 128256},
    "Qwen2.5-14B": {"layers": 48, "hidden": 5120, "mlp": 13824, "kv": 1024, "vocab": 152064},
    "Qwen2.5-32B": {"layers": 64, "hidden": 5120, "mlp": 27648, "kv": 1024, "vocab": 152064},
    "Llama-3-70B": {"layers": 80, "hidden": 8192, "mlp": 28672, "kv": 1024, "vocab": 128256},
}

#: What each kind runs per matrix, and how its cost grows with a matrix's shape: elementwise
#: kinds with m·n, kinds built on Gram matrices / eigendecompositions / SVDs with
#: m·n·k + k³ (k = min(m, n)).
KINDS = {
    "paramdelta": ("ParamΔ: Θ'_base + (Θ_post − Θ_base)", "elementwise"),
    "shadow_graft": ("Shadow-FT: W_I + (W_B⁺ − W_B), full weights", "elementwise"),
    "instruct_thinking_interp": ("λ·Thinking + (1 − λ)·Instruct", "elementwise"),
    "timber_spectral": ("Timber, λ = 0.2 (`solver: auto`)", "spectral"),
    "analyze sigma": ("σ, Frobenius gap, cosine, sparsity", "elementwise"),
    "analyze sigma,erank": ("+ eRank of A, B and ΔW (the default)", "spectral"),
    "analyze sigma,erank,structure": ("+ the scale / rotation diagnostics", "spectral"),
}


def layer_matrices(model: dict) -> list[tuple[int, int]]:
    """The seven projection shapes of one decoder layer (rows × cols, as stored)."""
    h, mlp, kv = model["hidden"], model["mlp"], model["kv"]
    return [(h, h), (kv, h), (kv, h), (h, h), (mlp, h), (mlp, h), (h, mlp)]


def work(shapes: list[tuple[int, int]], scaling: str) -> float:
    if scaling == "elementwise":
        return float(sum(m * n for m, n in shapes))
    return float(sum(m * n * min(m, n) + min(m, n) ** 3 for m, n in shapes))


def parameters(model: dict) -> int:
    per_layer = sum(m * n for m, n in layer_matrices(model)) + 2 * model["hidden"]
    return model["layers"] * per_layer + 2 * model["vocab"] * model["hidden"] + model["hidden"]


def anon_mb() -> float:
    """This process's anonymous memory (MB), as the driver samples a child's."""
    return rss_anon_kb(os.getpid()) / 1024


# --------------------------------------------------------------------------- the child


def kernel_for(kind: str):
    """A function (name, A, B, C) → tensor or record: the per-tensor work of ``kind``."""
    import torch

    from mergekit_weightlevel.analyze.records import tensor_record
    from mergekit_weightlevel.methods.instruct_thinking_interp import interpolate
    from mergekit_weightlevel.methods.paramdelta import paramdelta
    from mergekit_weightlevel.methods.timber.kernel import timber_spectral

    if kind in ("paramdelta", "shadow_graft"):  # both: target + (donor − base)
        return lambda name, a, b, c: paramdelta(c, a, [(b, 1.0)])
    if kind == "instruct_thinking_interp":
        return lambda name, a, b, c: interpolate(a, b, 0.5)
    if kind == "timber_spectral":
        return lambda name, a, b, c: timber_spectral(a, b, lam=0.2, name=name)
    metrics = tuple(kind.split(" ", 1)[1].split(","))
    return lambda name, a, b, c: tensor_record(name, a, b, metrics=metrics, precision=torch.float32)


class PeakSampler:
    """This process's largest RssAnon while it runs (sampled every 5 ms by a thread)."""

    def __init__(self) -> None:
        import threading

        self.peak = anon_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, anon_mb())

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, anon_mb())


def worker(kind: str, result_file: str, device: str = "cpu") -> None:
    """Per matrix: generate the inputs (not timed; on the CPU, then moved to ``device``), then
    time the kernel and measure the memory it adds beyond its inputs (on a GPU: the GPU's,
    with its queue drained before the clock stops)."""
    import torch

    from mergekit_weightlevel.demo.tiny_models import post_training_delta

    kernel = kernel_for(kind)
    on_gpu = torch.device(device).type == "cuda"
    seconds, inputs_mb, extra_mb = 0.0, 0.0, 0.0
    for label, ((m, n), count) in LLAMA3_8B_LAYER.items():
        base = torch.randn(m, n, generator=torch.Generator().manual_seed(m + n)) * 0.02
        post = base + post_training_delta(base, label, scale=0.05, seed=1, rank=16)
        new_base = base + post_training_delta(base, label, scale=0.1, seed=2, rank=16)
        inputs_mb = max(inputs_mb, 3 * base.numel() * base.element_size() / 2**20)
        base, post, new_base = base.to(device), post.to(device), new_base.to(device)
        if on_gpu:
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device) / 2**20 if on_gpu else anon_mb()
        start = time.perf_counter()
        with nullcontext() if on_gpu else PeakSampler() as sampler:
            result = kernel(label, base, post, new_base)
            if on_gpu:
                torch.cuda.synchronize(device)
        seconds += count * (time.perf_counter() - start)
        peak = torch.cuda.max_memory_allocated(device) / 2**20 if on_gpu else sampler.peak
        extra_mb = max(extra_mb, peak - before)
        del base, post, new_base, result
    Path(result_file).write_text(
        json.dumps({"seconds": seconds, "inputs_mb": inputs_mb, "kernel_extra_mb": extra_mb})
    )


# --------------------------------------------------------------------------- the driver


def measure_kinds(workdir: Path, device: str = "cpu") -> dict[str, dict]:
    from measure import run_once

    results = {}
    for kind in KINDS:
        result_file = workdir / "layer_cost_child.json"
        argv = [sys.executable, __file__, "--worker", kind, str(result_file), "--device", device]
        measured = run_once(kind, argv)
        child = json.loads(result_file.read_text())
        results[kind] = {**child, "child_peak_anon_mb": measured.peak_anon_mb}
        print(f"  {kind}: {results[kind]}", flush=True)
    return results


def measure_shard_sizes(workdir: Path) -> list[tuple[str, float, float]]:
    """paramdelta on the 8-layer benchmark family at three ``--out-shard-size`` values."""
    from cases import build, write_config
    from measure import cli_argv, run_once

    from mergekit_weightlevel.method_configs import paramdelta_config

    family = build(workdir, 8)
    config = write_config(
        workdir / "layer_cost_paramdelta.yml",
        paramdelta_config(
            base=str(family.base),
            post_trained=str(family.instruct),
            new_base=str(family.base_v2),
            dtype="float32",
        ),
    )
    rows = []
    for shard in ("16M", "128M", "5B"):
        out = workdir / f"layer_cost_shard_{shard}"
        argv = cli_argv("merge", str(config), str(out), "--out-shard-size", shard)
        measured = run_once(f"paramdelta, --out-shard-size {shard}", argv)
        rows.append((shard, measured.peak_anon_mb, measured.seconds))
    return rows


#: The section of the page whose table has the CUDA column.
PER_LAYER_HEADING = "## Per Llama-3-8B decoder layer, measured"

#: The page's sentence about the CUDA column until a GPU run fills it (``fill_cuda_column``).
NO_GPU_SENTENCE = (
    "GPU: **not measured**: the CUDA column is filled only from a GPU run of "
    "`benchmarks/gpu_check.sh` (`layer_cost.py --device cuda`, then `--fill-cuda`)."
)


def cost_page(kinds: dict, shards: list, structure_rows: list | None, machine_text: str) -> str:
    eight_b = MODELS["Llama-3-8B"]
    lines = [
        "# What a run costs: 8B to 70B",
        "",
        f"Produced by `python benchmarks/layer_cost.py` on {datetime.date.today().isoformat()}.",
        f"Machine: {machine_text}.",
        NO_GPU_SENTENCE,
        "",
        PER_LAYER_HEADING,
        "",
        "The seven projection matrices of one layer (4096 × 4096 q and o, 1024 × 4096 k and v,",
        "14336 × 4096 gate and up, 4096 × 14336 down), float32, post-training-like inputs; the",
        "per-tensor work each method does inside mergekit, and analyze's per-tensor record at",
        "each level. Memory: what the kernel allocates beyond its inputs, at its largest over",
        "the layer's matrices (sampled every 5 ms); the inputs themselves are three float32",
        "copies of the largest matrix (672 MB at 14336 × 4096), as mergekit holds one tensor",
        "group; a merge adds mergekit's imports (~400 MB) and its output shard (below).",
        "",
        "| kind | what | CPU s / layer | beyond the inputs (MB) | CUDA s / layer |",
        "|---|---|---:|---:|---|",
    ]
    for kind, (what, _) in KINDS.items():
        row = kinds[kind]
        lines.append(
            f"| `{kind}` | {what} | {row['seconds']:.1f} | {row['kernel_extra_mb']:.0f} "
            "| not measured |"
        )
    lines += [
        "",
        "The CUDA column is measured on a GPU only: `bash benchmarks/gpu_check.sh` on a machine",
        "with one (carrying the wheels `benchmarks/gpu_wheels.sh` builds where mergekit is not",
        "installed) runs `layer_cost.py --device cuda` among its checks and writes",
        "`layer_cost_cuda.json`; `python benchmarks/layer_cost.py --fill-cuda",
        "layer_cost_cuda.json` then fills the column and names the card, the CPU figures",
        "unchanged.",
        "",
        "## Extrapolated to whole models (decoder layers)",
        "",
        "Per-layer time × the model's layer count, scaled by how each kind's work grows with",
        "a layer's shapes (elementwise kinds with m·n, the spectral ones with m·n·k + k³,",
        "k = min(m, n)); an estimate, not a measurement, beyond Llama-3-8B. Embeddings and",
        "`lm_head` are left out: they add 1.05 B parameters at 8B (about 13 % more reading for",
        "the elementwise kinds) and, for the spectral kinds, two 128256 × 4096 matrices (Timber's",
        "default `scope: all` and analyze decompose them; `scope: linear` skips them). On this",
        "CPU; reading the inputs is extra for every kind (see Disk).",
        "",
        "| kind | " + " | ".join(MODELS) + " |",
        "|---|" + "---:|" * len(MODELS),
    ]
    for kind, (_, scaling) in KINDS.items():
        per_layer = kinds[kind]["seconds"]
        cells = []
        for model in MODELS.values():
            ratio = work(layer_matrices(model), scaling) / work(layer_matrices(eight_b), scaling)
            cells.append(_duration(per_layer * ratio * model["layers"]))
        lines.append(f"| `{kind}` | " + " | ".join(cells) + " |")
    largest = {name: max(m * n for m, n in layer_matrices(model)) for name, model in MODELS.items()}
    lines += [
        "",
        "Memory grows with the largest matrix (the MLP projections): "
        + ", ".join(f"{name} {largest[name] / largest['Llama-3-8B']:.2f} ×" for name in MODELS)
        + " the 8B figures above.",
        "",
        "## Disk",
        "",
        "| model | parameters | one checkpoint, bfloat16 (GB) | read by a 3-input merge (GB) |",
        "|---|---:|---:|---:|",
    ]
    for name, model in MODELS.items():
        count = parameters(model)
        lines.append(
            f"| {name} | {count / 1e9:.2f} B | {2 * count / 1e9:.1f} | {6 * count / 1e9:.1f} |"
        )
    lines += [
        "",
        "A merge writes one checkpoint of the output dtype (the bfloat16 column; float32",
        "doubles it); a Timber sweep writes one per λ. `analyze` writes only its reports.",
        "",
        "## `--out-shard-size` and memory",
        "",
        "mergekit holds each output shard in memory until it is full, so a merge's peak memory",
        "grows by up to one shard: with mergekit's default of 5B parameters, that is the",
        "whole output of a model of up to 5B parameters (10 GB in bfloat16 for a shard of an",
        "8B model). Measured: paramdelta on the 8-layer benchmark family (120 M parameters,",
        "float32 output, 480 MB):",
        "",
        "| `--out-shard-size` | peak anonymous memory (MB) | time (s) |",
        "|---|---:|---:|",
    ]
    for shard, peak, seconds in shards:
        lines.append(f"| {shard} | {peak:.0f} | {seconds:.1f} |")
    lines += [
        "",
        "For 8B–70B merges on a machine with less RAM than the output, pass e.g.",
        "`--out-shard-size 1B` (2 GB shards in bfloat16).",
        "",
    ]
    if structure_rows:
        lines += [
            "## analyze `structure` per matrix",
            "",
            "The structure level's rows of `docs/benchmarks.md` (the Gram route against bare",
            "float32 SVDs and the SVD route) are the per-matrix detail of the structure row above.",
            "",
        ]
    return "\n".join(lines)


def cuda_sentence(cuda: dict) -> str:
    return (
        f"GPU: {cuda['card']}, the CUDA column from `benchmarks/gpu_check.sh` on {cuda['date']} "
        f"({cuda['machine']}); its time includes no reading or writing, as the CPU column."
    )


def fill_cuda_column(page: str, cuda: dict) -> str:
    """``page`` with the CUDA column of the per-layer table and the GPU sentence from a
    ``--device cuda`` run's JSON (``cuda["kinds"]``: kind → its seconds per layer)."""
    lines, section = [], ""
    for line in page.splitlines():
        if line.startswith("## "):
            section = line
        if line == NO_GPU_SENTENCE or line.startswith("GPU: "):
            line = cuda_sentence(cuda)
        for kind, measured in cuda["kinds"].items():
            if section == PER_LAYER_HEADING and line.startswith(f"| `{kind}` |"):
                cells = line.split(" | ")
                cells[-1] = f"{measured['seconds']:.2f} |"
                line = " | ".join(cells)
        lines.append(line)
    return "\n".join(lines) + ("\n" if page.endswith("\n") else "")


def cuda_results(kinds: dict, device: str) -> dict:
    """The JSON of a ``--device cuda`` run: the card, the date, the machine, each kind."""
    import torch

    on_gpu = torch.device(device).type == "cuda"
    return {
        "card": torch.cuda.get_device_name(device) if on_gpu else device,
        "date": datetime.date.today().isoformat(),
        "machine": machine(),
        "kinds": kinds,
    }


def cuda_table(cuda: dict) -> str:
    lines = [
        f"Per Llama-3-8B decoder layer on {cuda['card']} ({cuda['date']}):",
        "",
        "| kind | CUDA s / layer | GPU memory beyond the inputs (MB) |",
        "|---|---:|---:|",
    ]
    for kind, measured in cuda["kinds"].items():
        lines.append(
            f"| `{kind}` | {measured['seconds']:.2f} | {measured['kernel_extra_mb']:.0f} |"
        )
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/cost.md"))
    parser.add_argument("--workdir", type=Path, default=Path("benchmarks/out"))
    parser.add_argument("--structure-rows", type=Path)
    parser.add_argument("--worker", nargs=2, metavar=("KIND", "RESULT_FILE"))
    parser.add_argument(
        "--device", default="cpu", help="cuda: measure the kinds on the GPU (writes --json)"
    )
    parser.add_argument(
        "--json", type=Path, help="measure the kinds on --device into this JSON (no page)"
    )
    parser.add_argument(
        "--fill-cuda", type=Path, metavar="JSON", help="fill --out's CUDA column from this"
    )
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker, device=args.device)
        return
    if args.fill_cuda:
        cuda = json.loads(args.fill_cuda.read_text())
        args.out.write_text(fill_cuda_column(args.out.read_text(), cuda))
        print(f"wrote {args.out} (CUDA column from {args.fill_cuda})")
        return
    args.workdir.mkdir(parents=True, exist_ok=True)
    if args.device != "cpu" or args.json:
        print(f"per Llama-3-8B layer on {args.device}:", flush=True)
        cuda = cuda_results(measure_kinds(args.workdir, args.device), args.device)
        target = args.json or args.workdir / f"layer_cost_{args.device}.json"
        target.write_text(json.dumps(cuda, indent=1) + "\n")
        print(cuda_table(cuda))
        print(f"wrote {target}")
        return
    print("per Llama-3-8B layer:", flush=True)
    kinds = measure_kinds(args.workdir)
    print("--out-shard-size:", flush=True)
    shards = measure_shard_sizes(args.workdir)
    rows = None
    if args.structure_rows and args.structure_rows.exists():
        rows = json.loads(args.structure_rows.read_text())
    page = cost_page(kinds, shards, rows, machine())
    args.out.write_text(page + "\n")
    (args.workdir / "layer_cost.json").write_text(
        json.dumps({"kinds": kinds, "shards": shards}, indent=1)
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

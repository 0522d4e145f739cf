"""The benchmarks page: the machine, the method text, one table per family, memory against
size, the Gram floor and the per-matrix Timber table."""

from __future__ import annotations

import datetime
import subprocess
import sys

from measure import SAMPLE_PERIOD, Measurement
from structure_kernels import structure_table


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
    "- Timber's linear algebra alone, per matrix, at Llama-3-8B shapes (`kernels`);",
    "- `analyze --metrics structure` per matrix at Llama-3-8B shapes: the float64 Gram route",
    "  against bare float32 SVDs and the SVD route, each checked against float64 SVDs (`structure`);",
    "- the cost of analyze's Reading against the `sigma,erank` analysis it reads (`reading`).",
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
    "Time is wall-clock, interpreter start and imports included (from compiled bytecode, as",
    "an installed package imports; since 2026-12-06). Memory is the process's peak",
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
    "benchmarks/run_benchmarks.py` (all cases, 8 and 4 layers, about 40 minutes on 2 cores);",
    "`--only paramdelta,interp,shadow,timber,analyze,contended,floor,kernels,structure,reading`,",
    "`--layers N --small-layers M` (0 skips",
    "the second size) and `--workdir DIR` (default benchmarks/out, git-ignored; the families",
    "are built once and reused) narrow it; `--out` (default docs/benchmarks.md) and `--notes`",
    "(default benchmarks/notes.md, appended under the tables) set the page.",
)


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


def reading_table(title: str, runs: list[dict]) -> list[str]:
    """analyze's Reading against the analysis it reads (``worker_reading_cost``)."""
    if not runs:
        return []
    lines = [
        f"## analyze's Reading against `analyze --metrics sigma,erank` ({title.split(' ')[0]} family)",
        "",
        "One process per run: the analysis (`analyze_models`, sigma,erank), then the Reading",
        "built from its records (`read_pair`: regime, signature, previews, outliers) and",
        "rendered for the stdout summary, the Markdown and the HTML; plus the Reading's one",
        "step inside the analysis, Timber's split of each ΔW spectrum the eRank level computes",
        "anyway (`erank_split`), timed where it runs. No weight is read twice. Target: < 5 %.",
        "",
        "| run | analysis (s) | Reading (ms) | split inside the analysis (ms) | Reading / analysis |",
        "|---:|---:|---:|---:|---:|",
    ]
    for index, run in enumerate(runs, start=1):
        share = (run["reading"] + run["split"]) / run["analysis"]
        lines.append(
            f"| {index} | {run['analysis']:.2f} | {run['reading'] * 1000:.1f} "
            f"| {run['split'] * 1000:.1f} | {100 * share:.3f} % |"
        )
    return [*lines, ""]


def render(
    sections: dict[str, list],
    notes: str,
    kernels: list | None = None,
    floor: dict | None = None,
    structure: list | None = None,
    reading: list | None = None,
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
    if reading:
        lines += reading_table(next(iter(sections)), reading)
    lines += kernel_table(kernels or [])
    lines += structure_table(structure or [])
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

"""`analyze --metrics structure` per matrix at Llama-3-8B shapes: our route vs the SVDs.

    python benchmarks/structure_kernels.py [--out PATH.md] [--json PATH.json] [--device cuda]

One post-training-like pair (A = a random base, B = A + the benchmark's low-rank + noise
delta) per shape of a Llama-3-8B decoder layer, timed in one process, back to back:

- bare float32 thin SVDs of A and B (the floor of any SVD route);
- the SVD route (those SVDs, then ``spectral_structure``): what `analyze` did before the
  float64 Gram route, and still does where the Gram route's error estimate is too large;
- ours (``matrix_structure``: the Gram route, the SVDs as its fallback);
- a float64 reference: float64 thin SVDs, then ``spectral_structure``; every field of the
  other two is compared with it;
- the floor of the Gram route: its float64 Gram matrices, cross-term and three ``eigh``
  (G_A, G_B and the polar factor's MᵀM) alone, without the n × n products that turn them
  into the fields: what no implementation of this route can go below.

Reading the checkpoints is left out: at 8B the linear algebra is almost all of the level.
With ``--device cuda`` every route runs on the GPU (the float64 reference too), from the
same pairs (generated on the CPU, then moved); ``benchmarks/gpu_check.sh`` runs it so.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from settings import LLAMA3_8B_LAYER


def synchronize(device) -> None:
    """Wait for the GPU's queued work, so that a timer measures it (nothing on the CPU)."""
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, *args, device="cpu", **kwargs):
    synchronize(device)
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    synchronize(device)
    return result, time.perf_counter() - start


def largest_difference(got: dict, reference: dict) -> float:
    return max(abs(got[name] - reference[name]) for name in reference)


def gram_route_floor(a, b) -> float:
    """Seconds of the Gram route's unavoidable steps for one pair (``gram_spectral_structure``).

    The float64 Gram matrices of A and B and their cross-term (the only products with an
    m-long side), and three float64 ``eigh`` of n × n (G_A, G_B, and one more of the same
    size standing in for the polar factor's MᵀM, whose matrix is only known after products
    that the floor leaves out).
    """
    import torch

    from mergekit_weightlevel.numerics.spectral import cross_product, gram_matrix

    if a.shape[0] < a.shape[1]:
        a, b = a.T, b.T

    def floor() -> None:
        gram_a, gram_b = gram_matrix(a)[0], gram_matrix(b)[0]
        cross_product(a, b)
        for gram in (gram_a, gram_b, gram_a):
            torch.linalg.eigh(gram, UPLO="U")

    return timed(floor, device=a.device)[1]


def structure_rows(shapes: dict = LLAMA3_8B_LAYER, device: str = "cpu") -> list[dict]:
    """One row per shape: seconds of each route and each route's largest field difference."""
    import torch

    from mergekit_weightlevel.demo.tiny_models import post_training_delta
    from mergekit_weightlevel.numerics.spectral import thin_svd
    from mergekit_weightlevel.numerics.structure import spectral_structure
    from mergekit_weightlevel.numerics.structure_gram import (
        STRUCTURE_GRAM_TOLERANCE,
        gram_spectral_structure,
    )

    def svds(a, b, precision):
        return thin_svd(a, precision=precision), thin_svd(b, precision=precision)

    def structure(svd_pair):
        return spectral_structure(*svd_pair[0], *svd_pair[1]).as_dict()

    rows = []
    for label, ((m, n), count) in shapes.items():
        base = torch.randn(m, n, generator=torch.Generator().manual_seed(m + n)) * 0.02
        post = base + post_training_delta(base, label, scale=0.05, seed=1, rank=16)
        a, b = base.to(device), post.to(device)
        float32_svds, svd_s = timed(svds, a, b, torch.float32, device=device)
        svd_route, after_svd_s = timed(structure, float32_svds, device=device)
        del float32_svds
        # What analyze's matrix_structure does, timed in its two parts: the Gram route,
        # then the SVD route only where the Gram route's estimate is too large.
        gram, gram_s = timed(gram_spectral_structure, a, b, device=device)
        kept = gram is not None and gram.error_estimate <= STRUCTURE_GRAM_TOLERANCE
        ours = gram.structure.as_dict() if kept else svd_route
        ours_s = gram_s if kept else gram_s + svd_s + after_svd_s
        floor_s = gram_route_floor(a, b)
        float64_svds, reference_s = timed(
            svds, a.double(), b.double(), torch.float64, device=device
        )
        reference = structure(float64_svds)
        rows.append(
            {
                "matrix": label,
                "shape": [m, n],
                "device": str(device),
                "per_layer": count,
                "float32_svds_s": svd_s,
                "svd_route_s": svd_s + after_svd_s,
                "ours_s": ours_s,
                "ours_route": "gram" if kept else "svd",
                "gram_floor_s": floor_s,
                "float64_reference_s": reference_s,
                "ours_difference": largest_difference(ours, reference),
                "svd_route_difference": largest_difference(svd_route, reference),
                "gram_error_estimate": gram.error_estimate if gram is not None else None,
            }
        )
        print(json.dumps(rows[-1]), flush=True)
        del base, post, a, b, gram, float64_svds
    return rows


def structure_table(rows: list[dict], machine: str = "") -> list[str]:
    """The rows as a Markdown table, with one decoder layer's weighted totals."""
    if not rows:
        return []
    lines = [
        "## analyze `--metrics structure` per matrix at Llama-3-8B shapes",
        "",
        "One post-training-like pair per shape, timed in one process: bare float32 thin SVDs",
        "of A and B; the SVD route (those SVDs + the k × k diagnostics; the fallback); ours",
        "(the float64 Gram route, kept where its error estimate is ≤ 1e-6); each route's",
        "largest difference over the eight fields from float64 thin SVDs of the same pair;",
        "the floor of the Gram route (its Gram matrices, cross-term and three float64 `eigh`",
        "alone, without the products that make the fields of them).",
        *([f"Machine: {machine}.", ""] if machine else [""]),
        "| matrix | shape | per layer | float32 SVDs (s) | SVD route (s) | ours (s) "
        "| ours / SVDs | ours / SVD route | ours: max diff | SVD route: max diff "
        "| estimate (route kept) | floor (s) | floor / SVDs |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    totals = {"float32_svds_s": 0.0, "svd_route_s": 0.0, "ours_s": 0.0, "gram_floor_s": 0.0}
    for row in rows:
        m, n = row["shape"]
        estimate = row["gram_error_estimate"]
        estimate = "rank-deficient" if estimate is None else f"{estimate:.1e} ({row['ours_route']})"
        lines.append(
            f"| {row['matrix']} | {m} × {n} | {row['per_layer']} | {row['float32_svds_s']:.1f} "
            f"| {row['svd_route_s']:.1f} | {row['ours_s']:.1f} "
            f"| {row['ours_s'] / row['float32_svds_s']:.2f} "
            f"| {row['ours_s'] / row['svd_route_s']:.2f} | {row['ours_difference']:.1e} "
            f"| {row['svd_route_difference']:.1e} | {estimate} | {row['gram_floor_s']:.1f} "
            f"| {row['gram_floor_s'] / row['float32_svds_s']:.2f} |"
        )
        for key in totals:
            totals[key] += row["per_layer"] * row[key]
    worst_ours = max(row["ours_difference"] for row in rows)
    worst_svd = max(row["svd_route_difference"] for row in rows)
    lines.append(
        f"| one decoder layer (weighted) | | 7 | {totals['float32_svds_s']:.1f} "
        f"| {totals['svd_route_s']:.1f} | {totals['ours_s']:.1f} "
        f"| {totals['ours_s'] / totals['float32_svds_s']:.2f} "
        f"| {totals['ours_s'] / totals['svd_route_s']:.2f} | {worst_ours:.1e} | {worst_svd:.1e} | "
        f"| {totals['gram_floor_s']:.1f} | {totals['gram_floor_s'] / totals['float32_svds_s']:.2f} |"
    )
    return [*lines, ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write the Markdown table here")
    parser.add_argument("--json", type=Path, help="write the rows as JSON here")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    args = parser.parse_args()
    rows = structure_rows(device=args.device)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    table = "\n".join(structure_table(rows))
    if args.out:
        args.out.write_text(table)
    print(table)


if __name__ == "__main__":
    main()

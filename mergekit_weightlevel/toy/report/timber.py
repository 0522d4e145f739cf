"""Timber (arXiv 2509.23595): pass@k of instruct and of its Timber merges at several λ."""

from __future__ import annotations

from pathlib import Path

import torch

from mergekit_weightlevel.checkpoints import read_state
from mergekit_weightlevel.numerics.pair_statistics import sigma
from mergekit_weightlevel.toy.report.evaluator import Scores
from mergekit_weightlevel.toy.report.section import Section, pct

#: The toy tasks this section reads, for `instruct` and each Timber output.
TASKS = ("add3", "pass")


def timber_section(
    paths: dict[str, Path], ev: Scores, outputs: list[tuple[float, Path]]
) -> Section:
    ks = sorted(ev.pass_at(paths["instruct"]))
    sampling = ev.facts(paths["instruct"], "pass")
    rows = [
        ["model", "greedy add3"]
        + [f"pass@{k}" for k in ks]
        + ["σ(model, base), all weights", "‖model − instruct‖ / ‖instruct − base‖"]
    ]
    base_flat = _flat(read_state(paths["base"]))
    instruct_flat = _flat(read_state(paths["instruct"]))
    delta_norm = float(torch.linalg.vector_norm(instruct_flat - base_flat))
    removed = {}
    named = [("`instruct`", paths["instruct"])] + [
        (f"**Timber** λ = {lam:g}", path) for lam, path in outputs
    ]
    results = {}
    for label, path in named:
        passes = ev.pass_at(path)
        results[label] = passes
        flat = _flat(read_state(path))
        # How much of the post-training delta the merge takes away (0 for instruct itself).
        removed[label] = float(torch.linalg.vector_norm(flat - instruct_flat)) / delta_norm
        rows.append(
            [label, pct(ev(path, "add3").accuracy)]
            + [pct(passes[k]) for k in ks]
            + [f"{sigma(flat, base_flat):.4f}", pct(removed[label])]
        )
    inst = results["`instruct`"]
    reading = [
        f"Sampling at temperature {sampling.temperature:g}, {sampling.samples} samples on "
        f"{sampling.documents} held-out sums: `instruct` has pass@1 {pct(inst[ks[0]])} and "
        f"pass@{ks[-1]} {pct(inst[ks[-1]])}.",
        f"Timber changes the delta by at most {pct(max(removed.values()))} of its norm: the "
        "tail beyond the top-⌈eRank⌉ directions of each matrix's delta holds little of it.",
        _timber_verdict(results, ks),
    ]
    return Section(
        "Timber (arXiv 2509.23595)",
        "keeping the top-eRank directions of (Instruct − Base) and attenuating the tail by λ "
        "(0.2 best) raises pass@k (exploration) while pass@1 stays about the same, training-free.",
        rows,
        reading,
        key="timber",
    )


def _timber_verdict(results: dict[str, dict[int, float]], ks: list[int]) -> str:
    inst = results["`instruct`"]
    gains = {
        label: r[ks[-1]] - inst[ks[-1]] for label, r in results.items() if label != "`instruct`"
    }
    top = max(gains, key=gains.get)
    if gains[top] > 0.005:
        delta1 = results[top][ks[0]] - inst[ks[0]]
        return (
            f"Shown: {top} raises pass@{ks[-1]} by {100 * gains[top]:.1f} points "
            f"(pass@1 {'+' if delta1 >= 0 else '−'}{abs(100 * delta1):.1f} points)."
        )
    return (
        f"Not shown: no λ raises pass@{ks[-1]} above `instruct` here, the toy does not show "
        "Timber's exploration gain."
    )


def _flat(state: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.flatten().float() for t in state.values()])

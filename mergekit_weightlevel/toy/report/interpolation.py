"""Instruct ↔ Thinking interpolation (arXiv 2510.10977): the λ sweep, its reading and its plot."""

from __future__ import annotations

from pathlib import Path

from mergekit_weightlevel.evaluation.selection import Selection, choose
from mergekit_weightlevel.toy.eval_tasks import QA_TASKS
from mergekit_weightlevel.toy.report.evaluator import Scores, Summary
from mergekit_weightlevel.toy.report.section import Section, pct

#: The widest λ interval (≤ 5 % to ≥ 95 % reasoning) still called a narrow switch.
NARROW = 0.35
#: The toy tasks this section reads, for each λ.
TASKS = ("add3",)
#: The efficiency reading of ``sweep --eval``: the shortest answers within this many points
#: of the best accuracy (the interpolation paper's efficient point).
WITHIN = 2.0


def interp_section(sweep: list[tuple[float, Path]], ev: Scores, plot_path: Path | None) -> Section:
    rows = [["λ", "add3 accuracy", "format", "reasoning share", "mean length (tokens)"]]
    points = []
    for lam, path in sweep:
        s = ev(path, "add3")
        points.append((lam, s))
        rows.append(
            [
                f"{lam:.1f}",
                pct(s.accuracy),
                pct(s.format_followed),
                pct(s.reasoning_share),
                f"{s.mean_length:.1f}",
            ]
        )
    reading = _interp_reading(points)
    verdict = reading[-1]
    choice = choose(
        "λ",
        [(lam, ev.evaluation(path, "add3")) for lam, path in sweep],
        Selection(QA_TASKS["add3"], "acc"),
        within=WITHIN,
    )
    if choice is not None:
        lowest = min(lam for lam, _ in sweep)
        command = (
            f"`sweep --eval {QA_TASKS['add3']} --select {QA_TASKS['add3']}:acc --within {WITHIN:g}`"
        )
        if choice.value == lowest:
            reading.append(
                f"{command} (the paper's efficiency reading: the shortest answers within "
                f"{WITHIN:g} points of the best accuracy) chooses λ = {choice.value:g}: no λ "
                "past the switch comes that close to the best accuracy, so the efficient "
                "point is the Instruct end."
            )
        else:
            chosen = dict(points)[choice.value]
            reading.append(
                f"{command} (the paper's efficiency reading: the shortest answers within "
                f"{WITHIN:g} points of the best accuracy) chooses λ = {choice.value:g} "
                f"({pct(chosen.accuracy)}, length {chosen.mean_length:.1f})."
            )
    extra = ""
    if plot_path is not None:
        plot_sweep(points, plot_path)
        extra = f"![interpolation sweep]({plot_path.name})"
    return Section(
        "Instruct ↔ Thinking interpolation (arXiv 2510.10977)",
        "sweeping λ in λ·Thinking + (1 − λ)·Instruct goes through three stages: the Instruct "
        "behaviour first (short answers, no reasoning), then a quick switch to explicit "
        "reasoning, then a plateau where accuracy saturates while length keeps growing.",
        rows,
        reading,
        extra,
        verdict=verdict,
        key="interpolation",
    )


def _interp_reading(points: list[tuple[float, Summary]]) -> list[str]:
    on = [lam for lam, s in points if s.reasoning_share >= 0.5]
    best = max(points, key=lambda p: p[1].accuracy)
    ends = points[0][1], points[-1][1]
    low = [lam for lam, s in points if s.reasoning_share <= 0.05]
    high = [lam for lam, s in points if s.reasoning_share >= 0.95]
    sentences = [
        f"At λ = 0 the model is `instruct` ({pct(ends[0].accuracy)}, length "
        f"{ends[0].mean_length:.1f}); at λ = 1 it is `thinking` ({pct(ends[1].accuracy)}, "
        f"length {ends[1].mean_length:.1f}).",
    ]
    if on:
        sentences.append(
            f"Reasoning stays off up to λ = {max(low) if low else 0:.1f}, is on in at least half "
            f"the answers from λ = {min(on):.1f}, and in ≥ 95 % from "
            f"λ = {min(high) if high else float('nan'):.1f}."
        )
    else:
        sentences.append("Reasoning never reaches half the answers in this sweep.")
    sentences.append(f"Accuracy peaks at λ = {best[0]:.1f} ({pct(best[1].accuracy)}).")
    middle = [s for lam, s in points if 0 < lam < 1]
    dip = min(middle, key=lambda s: s.format_followed) if middle else None
    if dip is not None and dip.format_followed < 0.9:
        sentences.append(
            f"In the transition the outputs mix the two formats (format followed drops to "
            f"{pct(dip.format_followed)})."
        )
    worst = min(points, key=lambda p: p[1].accuracy)
    collapse = 0 < worst[0] < 1 and worst[1].accuracy < 0.5 * min(e.accuracy for e in ends)
    if collapse:
        sentences.append(
            f"Unlike the paper, accuracy collapses in between (lowest {pct(worst[1].accuracy)} "
            f"at λ = {worst[0]:.1f}): these two tiny models are too far apart in weight space "
            "for their average to work as a model."
        )
    stages = bool(low) and bool(high) and min(high) - max(low) <= NARROW
    if not collapse:
        sentences.append(
            f"No λ collapses: accuracy stays between {pct(worst[1].accuracy)} and "
            f"{pct(best[1].accuracy)} and the format is followed in at least "
            f"{pct(min(s.format_followed for _, s in points))} of the answers everywhere."
        )
    rises = ends[1].accuracy > ends[0].accuracy
    width = f"{min(high) - max(low):.1f}" if low and high else "?"
    step = points[1][0] - points[0][0] if len(points) > 1 else 1.0
    if stages and rises and not collapse:
        sentences.append(
            "Shown: the three stages (Instruct-like, a narrow switch, a Thinking-like plateau) "
            "are visible, and accuracy rises through the switch."
        )
    elif stages and not collapse:
        sentences.append(
            "Shown in part: the three stages show in the behaviour (reasoning off, a switch "
            f"of width {width} in λ, reasoning on) but accuracy, which the paper sees rise "
            "through the switch, falls here, since `thinking` is less accurate than `instruct`."
        )
    elif stages:
        sentences.append(
            "The three stages show in the behaviour (reasoning off, a narrow switch, reasoning "
            "on) but not in accuracy, which the paper sees rise through the switch."
        )
    else:
        sentences.append(
            f"Not shown as three stages: the switch from ≤ 5 % to ≥ 95 % reasoning takes "
            f"{width} of the λ range (we call it narrow up to {NARROW}; λ step {step:g}); "
            + (
                "accuracy rises from `instruct` to `thinking`."
                if rises
                else "accuracy falls from `instruct` to `thinking`, where the paper sees it rise."
            )
        )
    return sentences


def plot_sweep(points: list[tuple[float, Summary]], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lams = [lam for lam, _ in points]
    fig, left = plt.subplots(figsize=(6, 3.4), dpi=90)
    left.plot(lams, [s.accuracy for _, s in points], "o-", label="accuracy (add3 held out)")
    left.plot(lams, [s.reasoning_share for _, s in points], "s--", label="reasoning share")
    left.plot(lams, [s.format_followed for _, s in points], "^:", label="format followed")
    left.set_xlabel("λ  (0 = instruct, 1 = thinking)")
    left.set_ylabel("share of answers")
    left.set_ylim(-0.02, 1.02)
    right = left.twinx()
    right.plot(lams, [s.mean_length for _, s in points], "k-", alpha=0.4, label="mean length")
    right.set_ylabel("mean length (tokens)")
    handles = left.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
    # Below the axes, not inside them: a legend inside covered a data point.
    left.legend(handles=handles, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)
    left.set_title("Toy Instruct ↔ Thinking interpolation", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path

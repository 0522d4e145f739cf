"""ParamΔ (arXiv 2504.21023): base_v2 + (instruct − base) against the SFT run on base_v2."""

from __future__ import annotations

from pathlib import Path

from mergekit_weightlevel.toy.report.evaluator import Evaluator
from mergekit_weightlevel.toy.report.section import Section, pct


def paramdelta_section(paths: dict[str, Path], ev: Evaluator, merged: Path) -> Section:
    tasks = ("mul", "add3", "add2", "sub")
    rows = [
        [
            "model",
            "Q/A mul (new): accuracy",
            "format",
            "Q/A add3 (held out)",
            "Q/A add2",
            "Q/A sub",
            "mean of the four",
        ]
    ]
    named = [
        ("`base_v2` (new knowledge, no SFT)", paths["base_v2"]),
        ("`instruct` (SFT, old knowledge)", paths["instruct"]),
        ("**ParamΔ** `base_v2 + (instruct − base)`", merged),
        ("`base_v2_sft` (the SFT run on base_v2)", paths["base_v2_sft"]),
    ]
    means = {}
    for label, path in named:
        scores = [ev(path, task).accuracy for task in tasks]
        means[path] = sum(scores) / len(scores)
        rows.append(
            [label, pct(scores[0]), pct(ev(path, "mul").format_followed)]
            + [pct(x) for x in scores[1:]]
            + [pct(means[path])]
        )
    pd, direct = ev(merged, "mul").accuracy, ev(paths["base_v2_sft"], "mul").accuracy
    ratio = means[merged] / means[paths["base_v2_sft"]] if means[paths["base_v2_sft"]] else 0.0
    reading = [
        f"Averaged over the four Q/A sets, ParamΔ reaches {100 * ratio:.0f} % of the direct SFT "
        f"of `base_v2` (the paper: ≈ 95 %). On the new knowledge alone: {pct(pd)} vs {pct(direct)}.",
        _paramdelta_verdict(ev, paths, merged),
    ]
    verdict = (
        f"ParamΔ keeps {100 * ratio:.0f} % of the direct SFT's mean Q/A accuracy (the paper: "
        f"≈ 95 %) and {'does' if pd > ev(paths['instruct'], 'mul').accuracy else 'does not'} "
        "answer more of the new knowledge than `instruct`."
    )
    return Section(
        "ParamΔ (arXiv 2504.21023)",
        "adding the post-training delta (instruct − base) to a newer base gives a model that "
        "follows the format with the newer knowledge, ≈ 95 % of post-training the newer base "
        "directly, at zero training cost.",
        rows,
        reading,
        verdict=verdict,
        key="paramdelta",
    )


def _paramdelta_verdict(ev: Evaluator, paths: dict[str, Path], merged: Path) -> str:
    fmt_v2 = ev(paths["base_v2"], "mul").format_followed
    fmt_pd = ev(merged, "mul").format_followed
    mul_i, mul_pd = ev(paths["instruct"], "mul").accuracy, ev(merged, "mul").accuracy
    direct = ev(paths["base_v2_sft"], "mul").accuracy
    if fmt_pd > fmt_v2 and mul_pd > mul_i:
        return (
            f"The delta carries the format ({pct(fmt_v2)} → {pct(fmt_pd)} answers in format) "
            f"and the merge knows more mul than `instruct` ({pct(mul_i)} → {pct(mul_pd)})."
        )
    if direct < 0.5:
        return (
            "The toy does not show the effect on the new knowledge: even the direct SFT of "
            "`base_v2` answers few new products, because in models this small the knowledge "
            "learned in plain text (`7*8=56.`) is not reached from the Q/A prompt: an SFT on "
            "the products the base knew (a, b < 5) does not carry over to the new ones."
        )
    return "The toy does not show the paper's effect here; see the numbers above."

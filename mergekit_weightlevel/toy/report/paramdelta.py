"""ParamΔ (arXiv 2504.21023): base_v2 + (instruct − base) against the SFT run on base_v2."""

from __future__ import annotations

from pathlib import Path

from mergekit_weightlevel.toy.report.evaluator import Scores
from mergekit_weightlevel.toy.report.section import Section, pct

#: A share of the direct SFT from which the effect is called shown (the paper: ≈ 95 %).
SHOWN = 0.90
#: The toy tasks this section reads, for each model in its table.
TASKS = ("mul", "add3", "add2", "sub")


def paramdelta_section(paths: dict[str, Path], ev: Scores, merged: Path) -> Section:
    tasks = TASKS
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
    v2, direct = means[paths["base_v2"]], means[paths["base_v2_sft"]]
    ratio = means[merged] / direct if direct else 0.0
    # This base already answers questions, so also read the share of the SFT's gain over
    # base_v2 that ParamΔ recovers (on real LLMs the two agree: a base scores ≈ 0 there).
    gain = (means[merged] - v2) / (direct - v2) if direct > v2 else float("nan")
    mul = {name: ev(paths[name], "mul").accuracy for name in ("instruct", "base_v2_sft")}
    pd_mul = ev(merged, "mul").accuracy
    reading = [
        f"Averaged over the four Q/A sets, ParamΔ reaches {100 * ratio:.0f} % of the direct SFT "
        f"of `base_v2` (the paper: ≈ 95 %)"
        + (
            f", and recovers {100 * gain:.0f} % of what that SFT adds to `base_v2` "
            f"({pct(v2)} → {pct(direct)}; ParamΔ {pct(means[merged])})."
            if direct > v2
            else f"; the SFT adds nothing to `base_v2` ({pct(v2)} → {pct(direct)})."
        ),
        f"On the new knowledge alone (Q/A mul): ParamΔ {pct(pd_mul)}, `instruct` "
        f"{pct(mul['instruct'])}, the direct SFT {pct(mul['base_v2_sft'])}.",
    ]
    shown_ratio, shown_gain = ratio >= SHOWN, gain >= SHOWN
    knows_more = pd_mul > mul["instruct"]
    if shown_ratio and shown_gain and knows_more:
        verdict = "Shown: ParamΔ is within reach of the direct SFT and knows the newer facts."
    elif shown_ratio and knows_more:
        verdict = (
            f"Shown in part: by the paper's measure ({100 * ratio:.0f} % of the direct SFT; "
            f"we call it shown from {100 * SHOWN:.0f} %) and on the new knowledge, not by the "
            f"share of the SFT's gain ({100 * gain:.0f} %)."
        )
    else:
        verdict = (
            f"Not shown: ParamΔ reaches {100 * ratio:.0f} % of the direct SFT "
            f"(shown from {100 * SHOWN:.0f} %) and "
            f"{'knows more' if knows_more else 'does not know more'} of the new facts than "
            "`instruct`."
        )
    reading.append(verdict)
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

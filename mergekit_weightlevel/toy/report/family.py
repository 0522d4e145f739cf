"""The family at a glance (no paper): what each trained member knows and answers."""

from __future__ import annotations

from pathlib import Path

from mergekit_weightlevel.toy.evaluate import plain_accuracy
from mergekit_weightlevel.toy.family import Data
from mergekit_weightlevel.toy.report.evaluator import Evaluator
from mergekit_weightlevel.toy.report.section import Section, pct
from mergekit_weightlevel.toy.train import load_model


def family_section(paths: dict[str, Path], ev: Evaluator, data: Data) -> Section:
    rows = [
        [
            "member",
            "plain add3 (held out)",
            "Q/A add3: accuracy",
            "format",
            "reasoning",
            "length",
            "Q/A mul (new)",
            "Q/A mod",
        ]
    ]
    for name in ("base", "instruct", "thinking", "base_v2", "base_v2_sft", "base_tuned"):
        model = load_model(paths[name])
        add3 = ev(paths[name], "add3", model)
        rows.append(
            [
                f"`{name}`",
                pct(plain_accuracy(model, ev.sets["add3"])),
                pct(add3.accuracy),
                pct(add3.format_followed),
                pct(add3.reasoning_share),
                f"{add3.mean_length:.1f}",
                pct(ev(paths[name], "mul", model).accuracy),
                pct(ev(paths[name], "mod", model).accuracy),
            ]
        )
    base_plain = float(rows[1][1].split()[0]) / 100
    gap = ev(paths["thinking"], "add3").accuracy - ev(paths["instruct"], "add3").accuracy
    reading = [
        f"`base` completes {pct(base_plain)} of the held-out three-term sums in plain text "
        "but does not answer questions (format 0 %): knowledge without the format.",
        f"SFT gives the format; answering by steps is {abs(100 * gap):.1f} points "
        f"{'more' if gap >= 0 else 'less'} accurate than answering directly on problems "
        "no model was trained on.",
    ]
    return Section(
        "The family",
        "(no paper: what each trained member knows; held-out add3 = 300 sums never trained on)",
        rows,
        reading,
        key="family",
    )

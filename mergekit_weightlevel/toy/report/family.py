"""The family at a glance (no paper): what each trained member knows and answers."""

from __future__ import annotations

from pathlib import Path

from mergekit_weightlevel.toy.report.evaluator import Scores
from mergekit_weightlevel.toy.report.section import Section, pct

MEMBERS = ("base", "instruct", "thinking", "base_v2", "base_v2_sft", "base_tuned")
#: The toy tasks this section reads, for each member.
TASKS = ("add3", "plain", "mul", "mod")


def family_section(paths: dict[str, Path], ev: Scores) -> Section:
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
    for name in MEMBERS:
        add3 = ev(paths[name], "add3")
        rows.append(
            [
                f"`{name}`",
                pct(ev.plain(paths[name])),
                pct(add3.accuracy),
                pct(add3.format_followed),
                pct(add3.reasoning_share),
                f"{add3.mean_length:.1f}",
                pct(ev(paths[name], "mul").accuracy),
                pct(ev(paths[name], "mod").accuracy),
            ]
        )
    base_plain = ev.plain(paths["base"])
    base, instruct, thinking = (ev(paths[n], "add3") for n in ("base", "instruct", "thinking"))
    gap = thinking.accuracy - instruct.accuracy
    if base.format_followed < 0.05:
        asked = "but does not answer questions (format 0 %): knowledge without the format."
    else:
        asked = (
            f"and, asked `Q:…?A:`, already answers {pct(base.accuracy)} of them in the format "
            f"(directly or by steps: reasoning in {pct(base.reasoning_share)}), from the "
            "Q/A pages of its corpus: SFT has a behaviour to amplify, not to create."
        )
    reading = [
        f"`base` completes {pct(base_plain)} of the held-out three-term sums in plain text "
        + asked,
        f"SFT settles the format: `instruct` answers directly ({pct(instruct.accuracy)}, "
        f"reasoning {pct(instruct.reasoning_share)}), `thinking` by steps "
        f"({pct(thinking.accuracy)}, reasoning {pct(thinking.reasoning_share)}); answering by "
        f"steps is {abs(100 * gap):.1f} points {'more' if gap >= 0 else 'less'} accurate than "
        "answering directly on problems no model was trained on.",
    ]
    return Section(
        "The family",
        f"(no paper: what each trained member knows; held-out add3 = "
        f"{ev(paths['base'], 'add3').count} sums never trained on)",
        rows,
        reading,
        key="family",
    )

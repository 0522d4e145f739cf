"""Shadow-FT (arXiv 2505.12716): tune the base, graft the update onto instruct, full and LoRA."""

from __future__ import annotations

from pathlib import Path

from mergekit_weightlevel.toy.report.evaluator import Scores
from mergekit_weightlevel.toy.report.section import Section, pct

#: The toy tasks this section reads, for each model in its table.
TASKS = ("mod", "add3", "add2", "sub")


def shadow_section(
    paths: dict[str, Path], ev: Scores, grafted_full: Path, grafted_lora: Path, direct_lora: Path
) -> Section:
    """``direct_lora``: `instruct` with its own LoRA merged by PEFT (``merges.apply_lora``)."""
    rows = [["model", "Q/A mod (new skill)", "Q/A add3 (kept?)", "Q/A add2", "Q/A sub"]]
    named = [
        ("`instruct` (before tuning)", paths["instruct"]),
        ("full FT of `instruct` (usual)", paths["instruct_tuned"]),
        ("**Shadow-FT full**: `instruct + (base_tuned − base)`", grafted_full),
        ("LoRA on `instruct` (usual)", direct_lora),
        ("**Shadow-FT LoRA**: `instruct` + base's LoRA (`adapter:`)", grafted_lora),
        ("`base_tuned` itself", paths["base_tuned"]),
    ]
    for label, path in named:
        row = [label]
        for task in TASKS:
            row.append(pct(ev(path, task).accuracy))
        rows.append(row)
    shadow = ev(grafted_full, "mod").accuracy, ev(grafted_full, "add3").accuracy
    usual = (
        ev(paths["instruct_tuned"], "mod").accuracy,
        ev(paths["instruct_tuned"], "add3").accuracy,
    )
    shadow_l = ev(grafted_lora, "mod").accuracy, ev(grafted_lora, "add3").accuracy
    usual_l = ev(direct_lora, "mod").accuracy, ev(direct_lora, "add3").accuracy
    reading = [
        f"Full weights: grafting scores {pct(shadow[0])} on the new skill vs {pct(usual[0])} for "
        f"tuning `instruct` directly, and keeps {pct(shadow[1])} vs {pct(usual[1])} of held-out add3.",
        f"LoRA: {pct(shadow_l[0])} vs {pct(usual_l[0])} on the new skill, "
        f"{pct(shadow_l[1])} vs {pct(usual_l[1])} on add3.",
        _shadow_verdict(shadow, usual, shadow_l, usual_l),
    ]
    return Section(
        "Shadow-FT (arXiv 2505.12716)",
        "tuning the Base and grafting the update onto the Instruct (W_I + W_B⁺ − W_B) beats "
        "tuning the Instruct directly, with full weights and with LoRA.",
        rows,
        reading,
        key="shadow_ft",
    )


def _shadow_verdict(shadow, usual, shadow_l, usual_l) -> str:
    wins = sum(s[0] + s[1] > u[0] + u[1] for s, u in ((shadow, usual), (shadow_l, usual_l)))
    if wins == 2:
        return (
            "Shown: counting new skill plus kept skill, grafting wins in both settings, as "
            "the paper reports."
        )
    if wins == 1:
        return (
            "Shown in part: counting new skill plus kept skill, grafting wins in one of the "
            "two settings only."
        )
    return (
        "Not shown: counting new skill plus kept skill, the toy does not show Shadow-FT's "
        "advantage."
    )

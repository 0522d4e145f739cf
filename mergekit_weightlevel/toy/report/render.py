"""The report page: the header (command, date, machine, timings, members), every section, the summary
and the choices made."""

from __future__ import annotations

import datetime

from mergekit_weightlevel.toy.report.machine import machine_description
from mergekit_weightlevel.toy.report.section import Section
from mergekit_weightlevel.toy.settings import Settings
from mergekit_weightlevel.toy.train import load_model

INTRO = """\
A family of tiny Llama models trained in this repository on synthetic arithmetic
(`mergekit_weightlevel/toy/`), merged with this package's methods through mergekit's
YAML path, and evaluated. Questions are asked as `Q:3+5+8?A:`; `instruct` answers `16`,
`thinking` answers `[3+5=8,8+8=16]16`. Pre-training is plain text (`3+5+8=16.`): add2
(a+b, a<20, b<10), sub (a−b), 400 of the 1000 three-term sums (add3) and the products
a*b with a, b < 5; the SFTs ask about the same problems. 300 other add3 sums are never
trained on by any model and are the held-out benchmark. `base_v2` continues pre-training
with the rest of the multiplication table (75 products with a factor ≥ 5, "mul (new)")
in plain text; the Shadow-FT skill is a%b (mod), trained in the Q/A format.

Scores: *accuracy* (right number, format followed), *format* (a bare number, or
`[steps]` then a number, then end of sequence), *reasoning* (the answer starts with a
step list), *length* (generated tokens), pass@k (unbiased estimator, sampled). The
models are tiny: they show mechanisms at work, not the papers' numbers."""


def _from_scratch(members: dict, timings: dict[str, float]) -> float:
    training = sum(m.seconds for m in members.values())
    return training + sum(
        seconds for stage, seconds in timings.items() if stage not in ("train", "total")
    )


def render(
    sections: list[Section],
    members: dict,
    settings: Settings,
    timings: dict[str, float],
    command: str,
) -> str:
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    shape = settings.recipe.shape
    trained = [m for m in members.values() if not m.cached]
    parameters = sum(p.numel() for p in load_model(members["base"].path).parameters())
    lines = [
        "# Toy replication: the papers' effects on a laptop-scale model family",
        "",
        INTRO,
        "",
        f"- **Command:** `{command}` (from the repository root; trained models are cached "
        "in the work folder, delete it to retrain)",
        f"- **Date:** {now}",
        f"- **Machine:** {machine_description(settings.threads)}",
        "- **Time of this run:** "
        + ", ".join(f"{stage} {seconds:.0f} s" for stage, seconds in timings.items())
        + ("" if trained else " (training skipped: every member was cached)"),
        f"- **Time from scratch:** {_from_scratch(members, timings) / 60:.1f} min (training "
        "time of every member, as recorded when it was trained, plus this run's merges, "
        "evaluations and analysis)",
        f"- **Models:** Llama, {parameters / 1e6:.2f} M parameters: "
        f"{shape.num_hidden_layers} layers, hidden {shape.hidden_size}, "
        f"MLP {shape.intermediate_size}, {shape.num_attention_heads} heads, character "
        "vocabulary of 28, float32; seeds fixed.",
        "",
        "| member | final training loss | training time |",
        "|---|---|---|",
    ]
    lines += [
        f"| `{m.name}` | {m.final_loss:.3f} | {m.seconds:.0f} s{' (cached)' if m.cached else ''} |"
        for m in members.values()
    ]
    lines.append("")
    lines += [section.markdown() for section in sections]
    lines += summary(sections)
    return "\n".join(lines)


def summary(sections: list[Section]) -> list[str]:
    """The verdict of each section (its last reading sentence), gathered at the end."""
    lines = ["## In short", ""]
    lines += [f"- **{s.title}**: {s.verdict or s.reading[-1]}" for s in sections[1:]]
    lines += [
        "",
        "The methods that add or average weight deltas (ParamΔ, Shadow-FT, interpolation) "
        "rely on post-training deltas that are small and nearly independent, as they are "
        "between real Base and Instruct checkpoints. Where the σ measured above is several "
        "times larger than the papers' 0.004–0.06, the toy's weight space is not linear "
        "enough for that arithmetic (our reading, not a proven cause), and those tables say "
        "so; what does not depend on it "
        "(formats learned, reasoning switched on, eRank kept) shows as in the papers. "
        "(Post-training at a third of these learning rates, with more steps, was tried: σ fell "
        "by about a third and the merges did not improve.)",
        "",
        *CHOICES,
    ]
    return lines


#: What was chosen where the issue left room, printed under the tables (docs/ must say it).
CHOICES = [
    "## Choices",
    "",
    "- **Checkpoints are rebuilt, not committed.** The family is about 11 MB in float32 "
    "(over the ~10 MB budget for committed files) and rebuilds deterministically in a few "
    "minutes; two runs from scratch on one machine gave identical tables. Trained members "
    "are cached in the work folder (`toy-work/`, git-ignored) under a key of their recipe, "
    "so a rerun only merges and evaluates.",
    "- **`demo` uses the trained family when asked** (`mergekit-weightlevel demo DIR "
    "--family toy-work/models`), not silently: the quickstart's commands refer to the "
    "demo's own folder, and a default that depended on what an earlier run left in the "
    "current folder would make the quickstart's output depend on history.",
    "- **One torch thread by default** (`--threads N`): on 2 shared cores two threads were "
    "up to 13x slower per step; on a quiet machine only ~23 % faster.",
    "",
]

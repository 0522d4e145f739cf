"""The report page: the header (command, date, machine, timings, members), every section, the
summary, what changed since the first family, and the choices made."""

from __future__ import annotations

import datetime

from mergekit_weightlevel.machine import machine_description
from mergekit_weightlevel.toy.family import Recipe
from mergekit_weightlevel.toy.report.regime import Regime
from mergekit_weightlevel.toy.report.section import Section
from mergekit_weightlevel.toy.settings import Settings
from mergekit_weightlevel.toy.tokenizer import vocab_size
from mergekit_weightlevel.toy.train import load_model


def intro(recipe: Recipe) -> str:
    r = recipe
    return f"""\
A family of tiny Llama models trained in this repository on synthetic arithmetic
(`mergekit_weightlevel/toy/`), merged with this package's methods through mergekit's
YAML path, and evaluated. Questions are asked as `Q:3+5+8?A:`; `instruct` answers `16`,
`thinking` answers `[3+5=8,8+8=16]16`. Pre-training ({r.pretrain_steps} steps) is mostly
plain text (`3+5+8=16.`): add2 (a+b, a<20, b<10), sub (a−b), {r.seen_add3} of the 1000
three-term sums (add3) and the products a*b with a, b < 5; now and then
({100 * r.pretrain_format_share:g} % of the documents) the same facts appear as questions and
answers, half answered directly and half with worked steps, as web text holds Q&A pages.
The SFTs (`instruct` {r.sft_steps} steps at learning rate {rate(r.sft_lr)}, `thinking`
{r.thinking_steps} at {rate(r.thinking_lr)}) ask about the same problems. {r.held_out_add3} other add3 sums are never trained on by any
model and are the held-out benchmark. `base_v2` continues pre-training
({r.continued_steps} steps) with the rest of the multiplication table (75 products with a
factor ≥ 5, "mul (new)") in the same kind of text; the Shadow-FT skill is a%b (mod),
trained in the Q/A format and never seen before.

Every score is lm-evaluation-harness's, on the toy's lm-eval tasks
(`mergekit_weightlevel/evaluation/tasks/toy/`, run by `mergekit-weightlevel evaluate`'s
Python API): *accuracy* (right number, format followed), *format* (a bare number, or
`[steps]` then a number, then end of sequence), *reasoning* (the answer starts with a
step list), *length* (generated tokens), pass@k (unbiased estimator, sampled). The
models are tiny: they show mechanisms at work, not the papers' numbers."""


#: The evaluations' own time, as recorded when each ran (a rerun reads them from the cache).
EVALUATIONS = "evaluations as run"


def _from_scratch(members: dict, timings: dict[str, float]) -> float:
    """Training and evaluations as recorded when they ran, plus this run's merges and analysis."""
    training = sum(m.seconds for m in members.values())
    rest = ("merge", "analyze", EVALUATIONS)
    return training + sum(seconds for stage, seconds in timings.items() if stage in rest)


def render(
    sections: list[Section],
    regime: dict[str, Regime],
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
        intro(settings.recipe),
        "",
        f"- **Command:** `{command}` (from the repository root; trained models are cached "
        "in the work folder, delete it to retrain)",
        f"- **Date:** {now}",
        f"- **Machine:** {machine_description(settings.threads)}",
        "- **Time of this run:** "
        + ", ".join(
            f"{stage} {seconds:.0f} s" for stage, seconds in timings.items() if stage != EVALUATIONS
        )
        + ("" if trained else " (training skipped: every member was cached)"),
        f"- **Time from scratch:** {_from_scratch(members, timings) / 60:.1f} min (training "
        "time of every member and lm-eval time of every evaluation, as recorded when they ran "
        f"({timings.get(EVALUATIONS, 0):.0f} s of evaluations), plus this run's merges and "
        "analysis)",
        f"- **Models:** Llama, {parameters / 1e6:.2f} M parameters: "
        f"{shape.num_hidden_layers} layers, hidden {shape.hidden_size}, "
        f"MLP {shape.intermediate_size}, {shape.num_attention_heads} heads, character "
        f"vocabulary of {vocab_size()}, float32; seeds fixed.",
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
    lines += summary(sections, regime, settings.recipe, members)
    return "\n".join(lines)


def summary(
    sections: list[Section], regime: dict[str, Regime], recipe: Recipe, members: dict
) -> list[str]:
    """The verdict of each section, what changed since the first family, and the choices."""
    lines = ["## In short", ""]
    lines += [f"- **{s.title}**: {s.verdict or s.reading[-1]}" for s in sections[1:]]
    met = all(r.met for r in regime.values() if r.targeted)
    lines += [
        "",
        "The methods that add or average weight deltas (ParamΔ, Shadow-FT, interpolation) "
        "rely on post-training deltas that are small and nearly independent, as they are "
        "between real Base and Instruct checkpoints. "
        + (
            "This family is in that regime by the measures above, so where a table still does "
            "not show a paper's effect, distance in weight space as σ measures it no longer "
            "explains it (our reading)."
            if met
            else "This family misses some of the regime targets above; the tables should be "
            "read with that in mind."
        ),
        "",
    ]
    lines += what_changed(sections, regime)
    lines += choices(regime, recipe, members)
    return lines


#: The first family's results (issue 7's recipe: pre-training on plain text only, SFT 300
#: steps at 1e-3), as the same command measured them at commit ce38c12
#: (docs/toy-replication.md there, 2026-11-22). Quoted, not rerun.
FIRST_FAMILY = {
    "regime": "σ from `base` 0.068–0.188 (`instruct` 0.1195, `thinking` 0.1880, `base_v2` "
    "0.0680, `base_tuned` 0.1259; 0.154 for `instruct` over all weights); mean "
    "eRank(instruct)/eRank(base) 0.988.",
    "paramdelta": "ParamΔ kept 25 % of the direct SFT's mean Q/A accuracy (the paper: ≈ 95 %) "
    "and did not answer more of the new knowledge than `instruct`.",
    "shadow_ft": "Grafting scored 7.8 % (full) and 11.1 % (LoRA) on the new skill against "
    "93.9 % and 89.4 % for tuning `instruct` directly: no advantage.",
    "interpolation": "Reasoning switched on between λ = 0.6 and 0.9, but accuracy collapsed "
    "in between (0.0 % at λ = 0.7, from 86.0 % and 81.0 % at the ends).",
    "timber": "No λ raised pass@16 (97.0 % for `instruct` and for every λ): no exploration gain.",
}


def what_changed(sections: list[Section], regime: dict[str, Regime]) -> list[str]:
    lines = [
        "## What changed: the first family and this one",
        "",
        "The first toy family (pre-training on plain text only, then post-training of 300–600 "
        "steps at learning rate 1e-3) sat 6–40× further from its base than real post-trained "
        "models. This family's base has seen the answer formats now and then, is pre-trained "
        "longer, and is post-trained briefly at a small learning rate (see Choices). The "
        "first family's column is quoted from the page the same command wrote at commit "
        "`ce38c12`; this family's is measured by this run.",
        "",
        f"| | first family (σ(base, instruct) {FIRST_SIGMA:.4f}) | this family "
        f"(σ(base, instruct) {regime['instruct'].sigma:.4f}) |",
        "|---|---|---|",
    ]
    for section in sections:
        if section.key in FIRST_FAMILY:
            now = section.verdict or section.reading[-1]
            lines.append(f"| {section.title} | {FIRST_FAMILY[section.key]} | {now} |")
    return [*lines, ""]


#: The first family's pre-training steps and σ(base, instruct) (analyze's decoder-layer
#: mean), quoted like ``FIRST_FAMILY``.
FIRST_PRETRAIN_STEPS = 1500
FIRST_SIGMA = 0.1195


def rate(x: float) -> str:
    """A learning rate as written in the recipe: ``1e-4``, ``3e-3``."""
    mantissa, exponent = f"{x:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def choices(regime: dict[str, Regime], recipe: Recipe, members: dict) -> list[str]:
    """What was chosen where the issues left room (docs/ must say it)."""
    r = recipe
    megabytes = sum(
        f.stat().st_size for m in members.values() for f in m.path.glob("*.safetensors")
    )
    loud = regime.get("instruct_loud")
    yardstick = (
        f" To see which lever does what, the first family's SFT ({r.loud_sft_steps} steps at "
        f"{rate(r.loud_sft_lr)}) is also run on this base (`instruct_loud`): σ "
        f"{FIRST_SIGMA:.4f} (first family) → {loud.sigma:.4f} with this base and the old "
        f"post-training → {regime['instruct'].sigma:.4f} with the new post-training."
        if loud is not None
        else ""
    )
    return [
        "## Choices",
        "",
        "- **How the toy reaches the papers' regime** (issue 20). Three levers, all in "
        "`toy/family.py`'s `Recipe`: (1) the base's corpus holds the answer formats now and "
        "then (`pretrain_format_share` of the documents: `Q:3+5?A:8` and "
        "`Q:3+5+8?A:[3+5=8,8+8=16]16`, every token in the loss, as web pages with questions "
        "and answers), so that SFT amplifies a behaviour the base already has instead of "
        f"creating it; (2) a longer pre-training ({r.pretrain_steps} steps; the first "
        f"family's: {FIRST_PRETRAIN_STEPS}) against a post-training of {r.sft_steps} steps; "
        f"(3) post-training at learning rate {rate(r.sft_lr)} (the first family's: "
        f"{rate(r.loud_sft_lr)}), warm-up then cosine. Continued pre-training (`base_v2`) "
        f"runs at {rate(r.continued_lr)}, with replay, and the Shadow-FT tunes at "
        f"{rate(r.tune_lr)}." + yardstick + " The model "
        "keeps its size (3 layers, hidden 96): the longer pre-training already uses the "
        "2-core time budget, and a 192-wide model was 2.3× slower per step when the first "
        "family was built. Development runs also tried SFT at 3e-4 and for 300 steps on a base "
        "trained the same way: σ stayed under the target; 100 steps at 1e-4 moved the weights "
        "least while already giving the format. They also tried what might bring the effects "
        "that do not show: Shadow-FT tunes at 1e-4 (300 and 600 steps; grafting still "
        "scored below tuning `instruct` on the new skill), a 200-step thinking SFT (still "
        "less accurate than `instruct`), and continued pre-training at several rates and "
        "lengths: at 1e-4 for 300 or 600 steps, 7e-5 for 400 and 5e-5 for 600, σ(base, "
        "base_v2) was at or over the target; 5e-5 for 400 (kept) and 3e-5 for 600 were "
        "under it, and learned fewer of the new facts.",
        "- **Evaluated with lm-evaluation-harness** (issue 26): every score comes from "
        "lm-eval on the toy's tasks in `evaluation/tasks/toy/` (the same prompts, the BOS the "
        "models were trained with, answers read as before), cached by the models' content in "
        "the work folder. The greedy figures are those the page's former decoding code "
        "measured, to the digit; pass@k differs within sampling noise, since lm-eval samples "
        "from its own seeded generator: `instruct`'s pass@1 / pass@4 / pass@16 were 90.8 / "
        "96.7 / 98.0 % with the former code (commit `34d1676`, quoted), one standard error "
        "of pass@16 on 100 problems being about 1.7 points.",
        "- **Short and long sequences are batched apart** (`train.batch_loss`): worked "
        "solutions are three times as long as plain facts, and padding every batch to the "
        "longest would triple the cost of pre-training; the loss is the token-weighted "
        "mean over the two buckets, the same number as one padded batch.",
        f"- **Checkpoints are rebuilt, not committed.** The family is {megabytes / 1e6:.1f} MB "
        "in float32 (the budget for committed files is ~10 MB) and rebuilds deterministically; "
        "trained members are cached in the work folder (`toy-work/`, git-ignored) under a "
        "key of their recipe, so a rerun only merges and evaluates.",
        "- **`demo` uses the trained family when asked** (`mergekit-weightlevel demo DIR "
        "--family toy-work/models`), not silently: the quickstart's commands refer to the "
        "demo's own folder, and a default that depended on what an earlier run left in the "
        "current folder would make the quickstart's output depend on history.",
        "- **One torch thread by default** (`--threads N`): on 2 shared cores two threads were "
        "up to 13x slower per step; on a quiet machine only ~23 % faster.",
        "- **Timings are those of a shared machine**: the 2 cores were shared with other "
        "jobs (see the load average above); a quiet machine is faster.",
        "",
    ]

"""One command: train the toy family, merge it with every method, evaluate, write the report.

    python -m mergekit_weightlevel.toy [--work toy-work] [--doc docs/toy-replication.md]

Trained members are cached under ``--work`` (a rerun only merges and evaluates). Every
merge goes through mergekit's YAML path (``merging.merge_yaml``). The report has one
table per paper, the machine, the date, the timings and the exact command; each
"Reading" paragraph is written from the numbers, so it stays true when they change.
"""

from __future__ import annotations

import datetime
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from mergekit_weightlevel.toy import merges
from mergekit_weightlevel.toy.evaluate import Summary, evaluate, pass_at_ks, plain_accuracy
from mergekit_weightlevel.toy.family import Data, Recipe, build_toy_family
from mergekit_weightlevel.toy.train import load_model

INTERP_LAMBDAS = tuple(round(0.1 * i, 1) for i in range(11))
TIMBER_LAMBDAS = (0.0, 0.2, 0.5)
PASS_KS = (1, 4, 16)


@dataclass(frozen=True)
class Settings:
    recipe: Recipe = field(default_factory=Recipe)
    interp_lambdas: Sequence[float] = INTERP_LAMBDAS
    timber_lambdas: Sequence[float] = TIMBER_LAMBDAS
    pass_problems: int = 100
    pass_samples: int = 16
    pass_ks: Sequence[int] = PASS_KS
    temperature: float = 1.0
    threads: int = 1
    analyze_metrics: tuple[str, ...] = ("sigma", "erank", "structure")
    #: Evaluate on at most this many problems per set (None: all); the smoke run caps it.
    eval_limit: int | None = None


@dataclass
class Section:
    title: str
    paper: str
    table: list[list[str]]
    reading: list[str]
    extra: str = ""
    #: One sentence for the closing summary (default: the last reading sentence).
    verdict: str = ""

    def markdown(self) -> str:
        header, *rows = self.table
        lines = [f"## {self.title}", "", f"**Paper:** {self.paper}", ""]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        if self.extra:
            lines += ["", self.extra]
        lines += ["", "**Reading.** " + " ".join(self.reading), ""]
        return "\n".join(lines)


def pct(x: float) -> str:
    return f"{100 * x:.1f} %"


class Evaluator:
    """Loads models once and caches their scores on the named problem sets."""

    def __init__(self, data: Data, limit: int | None = None) -> None:
        self.data = data
        sets = {
            "add2": data.add2,
            "sub": data.sub,
            "add3": data.add3_test,
            "mul": data.mul_new,
            "mod": data.mod,
        }
        self.sets = {name: problems[:limit] for name, problems in sets.items()}
        self.cache: dict[tuple[str, str], Summary] = {}

    def __call__(self, model_path: Path, task: str, model=None) -> Summary:
        key = (str(model_path), task)
        if key not in self.cache:
            model = model if model is not None else load_model(model_path)
            self.cache[key] = evaluate(model, self.sets[task], max_new_tokens=_budget(task))
        return self.cache[key]


def _budget(task: str) -> int:
    # Room for the longest reasoning ("[9+9=18,18+9=27]27" is 18 characters) and some slack.
    return 28 if task == "add3" else 20


def machine_description(threads: int) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import mergekit
    import transformers

    load = " / ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return (
        f"{cpu}, {os.cpu_count()} logical CPUs, torch threads {threads}, load average "
        f"{load} (1 / 5 / 15 min, at the end: other jobs slow the timings); "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}, "
        f"torch {torch.__version__}, transformers {transformers.__version__}, "
        f"mergekit {getattr(mergekit, '__version__', '0.1.5')}"
    )


# ---------------------------------------------------------------- the family at a glance


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
    )


# ---------------------------------------------------------------- ParamΔ


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


# ---------------------------------------------------------------- Shadow-FT


def merged_lora(model_path: Path, adapter: Path):
    """``model_path`` with a PEFT adapter merged in memory (PEFT's own merge_and_unload)."""
    from peft import PeftModel

    return PeftModel.from_pretrained(load_model(model_path), str(adapter)).merge_and_unload()


def shadow_section(
    paths: dict[str, Path], ev: Evaluator, grafted_full: Path, grafted_lora: Path
) -> Section:
    direct_lora = paths["instruct_lora"].parent / "instruct_lora (merged in memory)"
    lora_model = merged_lora(paths["instruct"], paths["instruct_lora"])
    rows = [["model", "Q/A mod (new skill)", "Q/A add3 (kept?)", "Q/A add2", "Q/A sub"]]
    named = [
        ("`instruct` (before tuning)", paths["instruct"], None),
        ("full FT of `instruct` (usual)", paths["instruct_tuned"], None),
        ("**Shadow-FT full**: `instruct + (base_tuned − base)`", grafted_full, None),
        ("LoRA on `instruct` (usual)", direct_lora, lora_model),
        ("**Shadow-FT LoRA**: `instruct` + base's LoRA (`adapter:`)", grafted_lora, None),
        ("`base_tuned` itself", paths["base_tuned"], None),
    ]
    for label, path, model in named:
        row = [label]
        for task in ("mod", "add3", "add2", "sub"):
            row.append(pct(ev(path, task, model).accuracy))
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
    )


def _shadow_verdict(shadow, usual, shadow_l, usual_l) -> str:
    wins = sum(s[0] + s[1] > u[0] + u[1] for s, u in ((shadow, usual), (shadow_l, usual_l)))
    if wins == 2:
        return "Counting new skill plus kept skill, grafting wins in both settings, as the paper reports."
    if wins == 1:
        return "Counting new skill plus kept skill, grafting wins in one of the two settings only."
    return "Counting new skill plus kept skill, the toy does not show Shadow-FT's advantage."


# ---------------------------------------------------------------- interpolation


def interp_section(
    sweep: list[tuple[float, Path]], ev: Evaluator, plot_path: Path | None
) -> Section:
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
        _interp_reading(points),
        extra,
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
    stages = bool(low) and bool(high) and min(high) - max(low) <= 0.35
    if stages and not collapse:
        sentences.append(
            "The three stages (Instruct-like, a narrow switch, a Thinking-like plateau) are visible."
        )
    elif stages:
        sentences.append(
            "The three stages show in the behaviour (reasoning off, a narrow switch, reasoning "
            "on) but not in accuracy, which the paper sees rise through the switch."
        )
    else:
        sentences.append("The toy does not show three clean stages; see the table.")
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


# ---------------------------------------------------------------- Timber


def timber_section(
    paths: dict[str, Path],
    ev: Evaluator,
    outputs: list[tuple[float, Path]],
    settings: Settings,
    data: Data,
) -> Section:
    ks = list(settings.pass_ks)
    problems = data.add3_test[: settings.pass_problems]
    rows = [["model", "greedy add3"] + [f"pass@{k}" for k in ks] + ["σ(model, base)"]]
    from mergekit_weightlevel.demo import read_state
    from mergekit_weightlevel.numerics.metrics import sigma

    base_flat = _flat(read_state(paths["base"]))
    named = [("`instruct`", paths["instruct"])] + [
        (f"**Timber** λ = {lam:g}", path) for lam, path in outputs
    ]
    results = {}
    for label, path in named:
        passes = pass_at_ks(
            load_model(path),
            problems,
            ks,
            samples=settings.pass_samples,
            temperature=settings.temperature,
            seed=settings.recipe.seed,
            max_new_tokens=_budget("add3"),
        )
        results[label] = passes
        rows.append(
            [label, pct(ev(path, "add3").accuracy)]
            + [pct(passes[k]) for k in ks]
            + [f"{sigma(_flat(read_state(path)), base_flat):.4f}"]
        )
    inst = results["`instruct`"]
    reading = [
        f"Sampling at temperature {settings.temperature:g}, {settings.pass_samples} samples on "
        f"{len(problems)} held-out sums: `instruct` has pass@1 {pct(inst[ks[0]])} and "
        f"pass@{ks[-1]} {pct(inst[ks[-1]])}.",
        _timber_verdict(results, ks),
    ]
    return Section(
        "Timber (arXiv 2509.23595)",
        "keeping the top-eRank directions of (Instruct − Base) and attenuating the tail by λ "
        "(0.2 best) raises pass@k (exploration) while pass@1 stays about the same, training-free.",
        rows,
        reading,
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
            f"{top} raises pass@{ks[-1]} by {100 * gains[top]:.1f} points "
            f"(pass@1 {'+' if delta1 >= 0 else '−'}{abs(100 * delta1):.1f} points)."
        )
    return (
        f"No λ raises pass@{ks[-1]} above `instruct` here: the toy does not show Timber's "
        "exploration gain."
    )


def _flat(state: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.flatten().float() for t in state.values()])


# ---------------------------------------------------------------- analyze


def analyze_section(paths: dict[str, Path], metrics: tuple[str, ...]) -> Section:
    from mergekit_weightlevel.analyze import analyze_models

    names = ("base", "instruct", "thinking", "base_v2", "base_tuned")
    report = analyze_models([str(paths[n]) for n in names], metrics=metrics, quiet=True)
    structure = "structure" in metrics
    header = ["base vs", "σ (mean)", "eRank(base)", "eRank(other)", "eRank(Δ)", "rel. ‖Δ‖_F"]
    if structure:
        header += ["α", "cv", "alignment", "rotation gap"]
    rows = [header]
    summaries = {}
    for name in names[1:]:
        summary = report.pair(str(paths["base"]), str(paths[name])).summary
        summaries[name] = summary
        means = summary["means"]
        row = [
            f"`{name}`",
            f"{summary['sigma_mean']:.4f}",
            _num(means.get("erank_a")),
            _num(means.get("erank_b")),
            _num(means.get("erank_delta")),
            _num(means.get("rel_frobenius"), 3),
        ]
        if structure:
            row += [_num(means.get(c), 3) for c in ("alpha", "cv", "alignment", "consistency_gap")]
        rows.append(row)
    inst = summaries["instruct"]["means"]
    ratio = inst["erank_b"] / inst["erank_a"] if inst.get("erank_a") else float("nan")
    sigmas = [s["sigma_mean"] for s in summaries.values()]
    reading = [
        f"σ between `base` and its descendants is {min(sigmas):.3f}–{max(sigmas):.3f} "
        f"(the papers measure 0.004–0.06 between real Base/Instruct checkpoints)"
        + (
            ": small, as in the papers."
            if max(sigmas) <= 0.06
            else ": larger than in the papers, "
            "since these models are small and post-trained hard relative to pre-training."
        ),
        f"eRank(instruct)/eRank(base) = {ratio:.3f} per matrix on average "
        f"({'≈ 1, as Timber reports' if abs(ratio - 1) < 0.05 else 'not ≈ 1'}), while the delta "
        f"itself has eRank {inst['erank_delta']:.1f} of a full rank up to "
        f"{_max_rank(report, paths)}.",
    ]
    if structure:
        reading.append(
            f"Structure (instruct): α = {inst['alpha']:.3f} (overall singular-value scale), "
            f"alignment {inst['alignment']:.3f} (1 = singular vectors unmoved)."
        )
    verdict = " ".join(reading[:2])
    return Section(
        "analyze on the family (Shadow-FT σ, Timber eRank, structure)",
        "post-training barely moves the weights: σ(Base, Instruct) is small (0.004–0.06) and "
        "the effective rank of each weight matrix is almost unchanged (Timber), so post-training "
        "mostly rescales and slightly rotates the spectrum.",
        rows,
        reading,
        verdict=verdict,
    )


def _num(value, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _max_rank(report, paths) -> int:
    pair = report.pair(str(paths["base"]), str(paths["instruct"]))
    return max(r.rank for r in pair.tensors if r.rank is not None)


# ---------------------------------------------------------------- orchestration


@dataclass
class Replication:
    sections: list[Section]
    timings: dict[str, float]
    doc: Path


def replicate(
    work: str | Path = "toy-work",
    doc: str | Path = "docs/toy-replication.md",
    settings: Settings | None = None,
    *,
    command: str = "python -m mergekit_weightlevel.toy",
    log: Callable[[str], None] = print,
) -> Replication:
    """Train (or reuse) the family under ``work``, run every merge and evaluation, write ``doc``."""
    settings = settings or Settings()
    torch.set_num_threads(settings.threads)
    work, doc = Path(work).resolve(), Path(doc)
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    start = clock

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[stage] = now - clock
        clock = now
        log(f"{stage}: {timings[stage]:.0f} s")

    log(f"training the family under {work / 'models'}")
    members = build_toy_family(work / "models", settings.recipe, log=log)
    paths = {name: m.path for name, m in members.items()}
    data = Data.make(settings.recipe)
    ev = Evaluator(data, settings.eval_limit)
    lap("train")
    out = work / "merged"
    pd = merges.paramdelta(paths["base"], paths["instruct"], paths["base_v2"], out / "paramdelta")
    graft = merges.shadow_graft_full(
        paths["base"], paths["base_tuned"], paths["instruct"], out / "shadow_full"
    )
    graft_lora = merges.shadow_graft_adapter(
        paths["base"], paths["base_lora"], paths["instruct"], out / "shadow_lora"
    )
    sweep = [
        (
            lam,
            merges.interpolate(
                paths["instruct"], paths["thinking"], lam, out / f"interp-{lam:.1f}"
            ),
        )
        for lam in settings.interp_lambdas
    ]
    timber = [
        (lam, merges.timber(paths["base"], paths["instruct"], lam, out / f"timber-{lam:g}"))
        for lam in settings.timber_lambdas
    ]
    lap("merge")
    plot = doc.with_name(doc.stem + "-interpolation.png")
    sections = [
        family_section(paths, ev, data),
        paramdelta_section(paths, ev, pd),
        shadow_section(paths, ev, graft, graft_lora),
        interp_section(sweep, ev, plot),
    ]
    lap("evaluate")
    sections.append(timber_section(paths, ev, timber, settings, data))
    lap("timber pass@k")
    sections.append(analyze_section(paths, settings.analyze_metrics))
    lap("analyze")
    timings["total"] = time.perf_counter() - start
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(render(sections, members, settings, timings, command), encoding="utf-8")
    log(f"wrote {doc} ({timings['total']:.0f} s in all)")
    return Replication(sections, timings, doc)


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

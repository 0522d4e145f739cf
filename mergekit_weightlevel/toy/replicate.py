"""One command: train the toy family, merge it with every method, evaluate, write the report.

    python -m mergekit_weightlevel.toy [--work toy-work] [--doc docs/toy-replication.md]

Trained members are cached under ``--work`` (a rerun only merges, and evaluates nothing
whose weights it evaluated before). Every merge goes through mergekit's YAML path
(``merging.merge_yaml``); every evaluation through ``evaluation.Evaluator``, lm-eval on the
toy's tasks (``evaluation/tasks/toy``), cached in ``WORK/eval-cache``. The report has one
table per paper (``toy/report/``, one module each), the machine, the date, the timings and
the exact command; each "Reading" paragraph is written from the numbers, so it stays true
when they change.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from mergekit_weightlevel.toy import merges
from mergekit_weightlevel.toy.family import build_toy_family
from mergekit_weightlevel.toy.report import family, interpolation, paramdelta, shadow_ft, timber
from mergekit_weightlevel.toy.report.evaluator import Scores
from mergekit_weightlevel.toy.report.regime import Regime, analyze_section
from mergekit_weightlevel.toy.report.render import render
from mergekit_weightlevel.toy.report.section import Section
from mergekit_weightlevel.toy.settings import Settings

__all__ = ["Replication", "Settings", "replicate"]


@dataclass
class Replication:
    sections: list[Section]
    #: analyze's distance of each compared member from ``base`` (``report.regime``).
    regime: dict[str, Regime]
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
    lap("train")
    out = work / "merged"
    pd = merges.paramdelta(paths["base"], paths["instruct"], paths["base_v2"], out / "paramdelta")
    graft = merges.shadow_graft_full(
        paths["base"], paths["base_tuned"], paths["instruct"], out / "shadow_full"
    )
    graft_lora = merges.shadow_graft_adapter(
        paths["base"], paths["base_lora"], paths["instruct"], out / "shadow_lora"
    )
    direct_lora = merges.apply_lora(paths["instruct"], paths["instruct_lora"], out / "lora_usual")
    sweep = [
        (
            lam,
            merges.interpolate(
                paths["instruct"], paths["thinking"], lam, out / f"interp-{lam:.1f}"
            ),
        )
        for lam in settings.interp_lambdas
    ]
    timber_outputs = [
        (lam, merges.timber(paths["base"], paths["instruct"], lam, out / f"timber-{lam:g}"))
        for lam in settings.timber_lambdas
    ]
    lap("merge")
    # The regime first: it is the premise of every paper's table below.
    regime_section, regime = analyze_section(paths, settings.analyze_metrics)
    lap("analyze")
    # Every model on every toy task a section reads of it, each model evaluated once.
    needs: dict[Path, set[str]] = defaultdict(set)
    for name in family.MEMBERS:
        needs[paths[name]] |= set(family.TASKS)
    for path in (paths["base_v2"], paths["instruct"], pd, paths["base_v2_sft"]):
        needs[path] |= set(paramdelta.TASKS)
    shadow_models = (paths["instruct"], paths["instruct_tuned"], graft, direct_lora, graft_lora)
    for path in (*shadow_models, paths["base_tuned"]):
        needs[path] |= set(shadow_ft.TASKS)
    for _, path in sweep:
        needs[path] |= set(interpolation.TASKS)
    for path in (paths["instruct"], *(path for _, path in timber_outputs)):
        needs[path] |= set(timber.TASKS)
    scores = Scores(
        work / "eval-cache",
        limit=settings.eval_limit,
        pass_limit=settings.pass_limit,
        batch_size=settings.batch_size,
        log=log,
    )
    scores.evaluate(needs)
    lap("evaluate")
    plot = doc.with_name(doc.stem + "-interpolation.png")
    sections = [
        family.family_section(paths, scores),
        regime_section,
        paramdelta.paramdelta_section(paths, scores, pd),
        shadow_ft.shadow_section(paths, scores, graft, graft_lora, direct_lora),
        interpolation.interp_section(sweep, scores, plot),
        timber.timber_section(paths, scores, timber_outputs),
    ]
    # What the evaluations cost when they ran (a rerun reads them from the cache).
    timings["evaluations as run"] = scores.seconds
    timings["total"] = time.perf_counter() - start
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(render(sections, regime, members, settings, timings, command), encoding="utf-8")
    log(f"wrote {doc} ({timings['total']:.0f} s in all)")
    return Replication(sections, regime, timings, doc)

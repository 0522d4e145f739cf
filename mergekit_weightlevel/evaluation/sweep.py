"""``evaluate_sweep``: every output of a sweep evaluated, the curve read, a point chosen.

The sweep runner (``mergekit-weightlevel sweep ... --eval T1,T2``) merges one output per
value of the swept parameter, then hands them here with the models at the axis' ends.
See ``evaluate_sweep`` for the contract.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mergekit_weightlevel.checks.model_folder import is_model_file
from mergekit_weightlevel.evaluation.cache import write_json_atomically
from mergekit_weightlevel.evaluation.evaluate import (
    Evaluator,
    check_model_folder,
    make_settings,
)
from mergekit_weightlevel.evaluation.record import MERGE_MARKER
from mergekit_weightlevel.evaluation.results import ModelEvaluation, metrics_table
from mergekit_weightlevel.evaluation.selection import Choice, Selection, SelectionError, choose
from mergekit_weightlevel.evaluation.sweep_page import sweep_html

KEEP = ("all", "best")


@dataclass
class SweepEvaluation:
    """What ``evaluate_sweep`` measured, chose, wrote and removed."""

    parameter: str
    tasks: list[str]
    outputs: list[tuple[float, ModelEvaluation]]
    references: dict[str, ModelEvaluation]
    selection: Selection | None
    within: float | None
    keep: str
    chosen: Choice | None
    json_path: Path
    html_path: Path
    removed: list[Path] = field(default_factory=list)
    settings_line: str = ""

    def metric_keys(self) -> list[str]:
        """Every ``task:metric`` measured, in first-seen order."""
        models = [m for _, m in self.outputs] + list(self.references.values())
        return list(dict.fromkeys(metric.key for model in models for metric in model.metrics))

    def table(self) -> str:
        outputs = [m for _, m in self.outputs] + list(self.references.values())
        return metrics_table(outputs)

    def to_dict(self) -> dict[str, Any]:
        def metrics(model: ModelEvaluation) -> dict[str, Any]:
            return {
                m.key: {
                    "score": m.value,
                    "stderr": m.stderr,
                    "higher_is_better": m.higher_is_better,
                }
                for m in model.metrics
            }

        def row(model: ModelEvaluation) -> dict[str, Any]:
            return {
                "folder": str(model.folder),
                "status": model.status,
                "error": model.error,
                "metrics": metrics(model),
                "lm_eval_results": str(model.lm_eval_results) if model.lm_eval_results else None,
            }

        return {
            "parameter": self.parameter,
            "tasks": self.tasks,
            "metrics": self.metric_keys(),
            "settings_line": self.settings_line,
            "select": self.selection.key if self.selection else None,
            "direction": self.selection.direction if self.selection else None,
            "within": self.within,
            "keep": self.keep,
            "values": [{"value": value, **row(model)} for value, model in self.outputs],
            "references": [{"name": name, **row(m)} for name, m in self.references.items()],
            "chosen": (
                {
                    "value": self.chosen.value,
                    "folder": self.chosen.folder,
                    "reason": self.chosen.reason,
                }
                if self.chosen
                else None
            ),
            "removed": [str(p) for p in self.removed],
        }


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _check_options(select: str | None, within: float | None, keep: str) -> Selection | None:
    """The choice's options, as given (before any task or folder is looked at)."""
    if keep not in KEEP:
        raise SelectionError(f"--keep must be one of {', '.join(KEEP)}, got {keep!r}")
    if keep == "best" and select is None:
        raise SelectionError("--keep best needs --select TASK:METRIC (which output is best?)")
    if within is not None and (select is None or within < 0):
        raise SelectionError("--within X needs --select TASK:METRIC and X ≥ 0")
    return Selection.parse(select) if select is not None else None


def _check_folders(outputs: Sequence[tuple[float, Path]], references: Mapping[str, Path]) -> None:
    if not outputs:
        raise SelectionError("a sweep evaluation needs at least one output")
    values = [value for value, _ in outputs]
    if len(set(values)) != len(values):
        raise SelectionError(f"the swept values repeat: {values}")
    for name, reference in references.items():
        for _, output in outputs:
            if _inside(output.resolve(), reference.resolve()) or _inside(
                reference.resolve(), output.resolve()
            ):
                raise SelectionError(
                    f"output {output} and reference {name} ({reference}) are the same folder or "
                    "one holds the other; a reference must be an input of the sweep"
                )
    for _, folder in outputs:
        check_model_folder(folder)
    for folder in references.values():
        check_model_folder(folder)


@dataclass
class PreparedSweepEvaluation:
    """A sweep evaluation checked as far as it can be without its folders: the options, the
    tasks and their data, the selected metric. ``prepare_sweep_evaluation`` makes it."""

    evaluator: Evaluator
    selection: Selection | None
    within: float | None
    keep: str


def prepare_sweep_evaluation(
    tasks: Sequence[str] | str,
    *,
    select: str | None = None,
    within: float | None = None,
    keep: str = "all",
    include_path: str | Path | Sequence[str | Path] | None = None,
    limit: int | float | None = None,
    num_fewshot: int | None = None,
    device: str | None = None,
    batch_size: int | str | None = None,
    model_args: dict[str, Any] | None = None,
    apply_chat_template: bool = False,
    cache_dir: str | Path | None = None,
    log: Callable[[str], None] = print,
) -> PreparedSweepEvaluation:
    """Every check of ``evaluate_sweep`` that needs no model folder, for a sweep to run before
    it merges anything: a typo in a task or in ``--select`` fails in seconds, not after hours
    of merging. The arguments are ``evaluate_sweep``'s."""
    selection = _check_options(select, within, keep)
    settings = make_settings(
        tasks,
        include_path=include_path,
        limit=limit,
        num_fewshot=num_fewshot,
        device=device,
        batch_size=batch_size,
        model_args=model_args,
        apply_chat_template=apply_chat_template,
    )
    evaluator = Evaluator(settings, cache_dir=Path(cache_dir) if cache_dir else None, log=log)
    catalog = evaluator.prepare()
    if selection is not None:
        selection = selection.resolve(catalog.metrics)
    return PreparedSweepEvaluation(evaluator, selection, within, keep)


def _remove_all_but(
    chosen: Choice | None, outputs: Sequence[tuple[float, Path]], log: Callable[[str], None]
) -> list[Path]:
    """``--keep best``: remove every output folder but the chosen one (merge outputs only)."""
    if chosen is None:
        log("--keep best: nothing was chosen, every output is kept")
        return []
    removed = []
    for _, folder in outputs:
        if str(folder.resolve()) == str(Path(chosen.folder).resolve()):
            continue
        if not (folder / MERGE_MARKER).is_file():
            log(f"--keep best: {folder} is kept: it has no {MERGE_MARKER}, so no merge wrote it")
            continue
        left = remove_model(folder)
        if left:
            log(f"--keep best: removed the model from {folder}, kept what the merge did not "
                f"write there: {', '.join(left)}")  # fmt: skip
        removed.append(folder)
    return removed


def remove_model(folder: Path) -> list[str]:
    """Remove the model in ``folder`` (``checks.model_folder.is_model_file``: weights, configs,
    tokenizer, card, results), and the folder if nothing else is in it; return the names of
    what is left there (a user's notes, a moved-aside card: never ours to delete)."""
    # A folder's name ends in "/", as is_model_file names MODEL_FOLDERS.
    names = {entry: entry.name + ("/" if entry.is_dir() else "") for entry in folder.iterdir()}
    ours = {entry for entry, name in names.items() if is_model_file(name, folder)}
    for entry in ours:
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    left = sorted(name for entry, name in names.items() if entry not in ours)
    if not left:
        folder.rmdir()
    return left


def evaluate_sweep(
    parameter: str,
    outputs: Sequence[tuple[float, str | Path]],
    references: Mapping[str, str | Path],
    tasks: Sequence[str] | str,
    out_prefix: str | Path,
    *,
    select: str | None = None,
    within: float | None = None,
    keep: str = "all",
    include_path: str | Path | Sequence[str | Path] | None = None,
    limit: int | float | None = None,
    num_fewshot: int | None = None,
    device: str | None = None,
    batch_size: int | str | None = None,
    model_args: dict[str, Any] | None = None,
    apply_chat_template: bool = False,
    cache_dir: str | Path | None = None,
    log: Callable[[str], None] = print,
) -> SweepEvaluation:
    """Evaluate a sweep's outputs and its reference models, choose a value, write the report.

    Contract (what the sweep runner passes and gets):

    - ``parameter``: the swept parameter's name as the page shows it (``"lambda"``).
    - ``outputs``: ``[(value, folder)]``, one merged folder per swept value, already written.
    - ``references``: ``{name: folder}``, the models at the axis' ends, drawn as reference
      lines (the interpolation: ``{"Instruct": ..., "Thinking": ...}``; Timber:
      ``{"Instruct": ...}``). They are evaluated like the outputs and never written into
      nor removed.
    - ``tasks`` and ``include_path``, ``limit``, ``num_fewshot``, ``device``,
      ``batch_size``, ``model_args``, ``apply_chat_template``: as ``evaluate_folders``.
    - ``select``: ``"TASK:METRIC[:max|min]"``; ``within``: X points (see ``selection``);
      ``keep``: ``"all"``, or ``"best"`` to remove every other output folder once all are
      evaluated (only folders holding ``mergekit_config.yml``; the report lists them).

    Checked before any evaluation (one error naming the problem): the folders are models,
    the tasks exist and their data can be had, ``select`` names a metric the tasks produce
    (the error lists those they do), ``keep``/``within`` make sense, no output is a
    reference. Each folder's evaluation is cached by its content (weights, config,
    tokenizer) and the settings: a rerun, or a rerun after an interruption, evaluates
    nothing already evaluated. An output whose evaluation fails is recorded as failed, with
    the reason, and the others go on.

    Writes ``OUT_PREFIX-sweep.json`` (each value: folder, status, every metric with its
    stderr; the references; the chosen value and why) and ``OUT_PREFIX-sweep.html`` (the
    table and one plot per metric over ``parameter``, reference lines, the chosen point
    marked). Returns a ``SweepEvaluation`` (``.table()`` for the terminal).
    """
    prepared = prepare_sweep_evaluation(
        tasks,
        select=select,
        within=within,
        keep=keep,
        include_path=include_path,
        limit=limit,
        num_fewshot=num_fewshot,
        device=device,
        batch_size=batch_size,
        model_args=model_args,
        apply_chat_template=apply_chat_template,
        cache_dir=cache_dir,
        log=log,
    )
    return evaluate_prepared_sweep(prepared, parameter, outputs, references, out_prefix)


def evaluate_prepared_sweep(
    prepared: PreparedSweepEvaluation,
    parameter: str,
    outputs: Sequence[tuple[float, str | Path]],
    references: Mapping[str, str | Path],
    out_prefix: str | Path,
) -> SweepEvaluation:
    """``evaluate_sweep`` once ``prepare_sweep_evaluation`` has checked its options and tasks."""
    pairs = [(float(value), Path(folder)) for value, folder in outputs]
    named = {name: Path(folder) for name, folder in references.items()}
    _check_folders(pairs, named)
    evaluator, selection = prepared.evaluator, prepared.selection
    within, keep, log = prepared.within, prepared.keep, prepared.evaluator.log
    catalog, settings = evaluator.prepare(), evaluator.settings
    evaluated = [
        (value, evaluator.evaluate_or_fail(folder, f"{parameter} {value:g}"))
        for value, folder in pairs
    ]
    reference_results = {
        name: evaluator.evaluate_or_fail(folder, name, record=False)
        for name, folder in named.items()
    }
    chosen = None
    if selection is not None:
        reference_scores = [
            found.value
            for model in reference_results.values()
            if (found := model.metric(selection.task, selection.metric)) and found.value is not None
        ]
        chosen = choose(parameter, evaluated, selection, within, reference_scores)
    prefix = Path(out_prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    report = SweepEvaluation(
        parameter=parameter,
        tasks=catalog.names,
        outputs=evaluated,
        references=reference_results,
        selection=selection,
        within=within,
        keep=keep,
        chosen=chosen,
        json_path=prefix.with_name(prefix.name + "-sweep.json"),
        html_path=prefix.with_name(prefix.name + "-sweep.html"),
        settings_line=_settings_line(settings.shown()),
    )
    if keep == "best":
        report.removed = _remove_all_but(chosen, pairs, log)
    write_json_atomically(report.json_path, report.to_dict())
    temporary = report.html_path.with_name(f".{report.html_path.name}.tmp")
    temporary.write_text(sweep_html(report.to_dict()), encoding="utf-8")
    temporary.replace(report.html_path)
    return report


def _settings_line(settings: dict[str, Any]) -> str:
    parts = [f"lm-eval tasks {', '.join(settings['tasks'])}"]
    if settings["limit"] is not None:
        parts.append(f"limit {settings['limit']:g} documents per task")
    if settings["num_fewshot"] is not None:
        parts.append(f"{settings['num_fewshot']}-shot")
    parts.append(f"device {settings['device'] or 'default'}")
    parts.append(f"batch size {settings['batch_size'] or 1}")
    return "; ".join(parts)

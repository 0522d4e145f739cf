"""A merged folder's evaluation results on its model card, in the Hub's two formats.

``evaluate`` stores what it measured in ``FOLDER/evaluation.json`` (``evaluation.record``);
the card reads it:

- ``model-index`` in the front matter: one huggingface_hub ``EvalResult`` per task and
  metric (task, dataset, metric, value, n-shot, source), through
  ``ModelCardData(eval_results=..., model_name=...)``;
- ``.eval_results/<task>.yaml`` (the Hub's newer format, "work in progress" in its docs)
  for a task whose dataset the Hub registers as a benchmark (``HUB_BENCHMARKS``) and that
  was run in full (no ``--limit``): a part of a benchmark is not its score;
- an "Evaluation" section: the table with stderrs, and a sentence saying which tasks, how
  many documents and samples, the temperature, the date and the package versions.

Nothing here imports lm-eval: the card of an evaluated folder is written without it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from huggingface_hub import EvalResult

from mergekit_weightlevel.checks.model_folder import EVAL_RESULTS_DIR
from mergekit_weightlevel.evaluation.record import RECORD, read_record

#: The first line of the ``.eval_results`` files written here (so a rewrite knows its own).
WRITTEN_HERE = "# written by mergekit-weightlevel from evaluation.json"
SOURCE_NAME = "lm-evaluation-harness (mergekit-weightlevel evaluate)"
SOURCE_URL = "https://github.com/EleutherAI/lm-evaluation-harness"

#: Hub datasets the Hub registers as benchmarks, by lm-eval's (dataset_path, dataset_name):
#: (benchmark dataset id, its task id). Only those the Hub's eval-results documentation
#: names; add others here as the Hub registers them.
HUB_BENCHMARKS: dict[tuple[str, str | None], tuple[str, str]] = {
    ("Idavidrein/gpqa", "gpqa_diamond"): ("Idavidrein/gpqa", "gpqa_diamond"),
    ("cais/hle", None): ("cais/hle", "hle"),
}


@dataclass
class CardEvaluation:
    """What the card takes from ``evaluation.json`` (empty where there is none)."""

    eval_results: list[EvalResult] = field(default_factory=list)
    section: list[str] = field(default_factory=list)
    #: ``.eval_results`` file name -> its entries (the Hub's YAML list).
    benchmark_files: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def _metric_label(metric: dict[str, Any]) -> str:
    name = metric["metric"]
    return name if metric["filter"] == "none" else f"{name} ({metric['filter']})"


def _dataset_text(facts: dict[str, Any]) -> str:
    if facts.get("dataset"):
        config = f", config {facts['dataset_config']}" if facts.get("dataset_config") else ""
        return f"Hub dataset {facts['dataset']}{config}, split {facts.get('split')}"
    return "local data"


def _documents_text(facts: dict[str, Any]) -> str:
    done, total = facts.get("documents"), facts.get("documents_in_task")
    text = f"{done} documents" if done == total or total is None else f"{done} of {total} documents"
    if facts.get("samples", 1) > 1:
        text += f", {facts['samples']} samples each"
    if facts.get("do_sample"):
        text += f" at temperature {facts.get('temperature'):g}"
    else:
        text += ", greedy" if facts.get("output_type") == "generate_until" else ""
    return text + f", {facts.get('num_fewshot') or 0}-shot"


def _eval_result(task: str, entry: dict[str, Any], metric: dict[str, Any]) -> EvalResult:
    facts = entry["facts"]
    return EvalResult(
        task_type="text-generation",
        task_name=task,
        dataset_type=facts.get("dataset") or task,
        dataset_name=task if facts.get("dataset") else f"{task} (local lm-eval task)",
        dataset_config=facts.get("dataset_config"),
        dataset_split=facts.get("split"),
        dataset_args={"num_few_shot": facts.get("num_fewshot") or 0},
        metric_type=metric["metric"],
        metric_name=_metric_label(metric),
        metric_value=metric["value"],
        source_name=SOURCE_NAME,
        source_url=SOURCE_URL,
    )


def _benchmark_entry(entry: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """The ``.eval_results`` entry of a full run on a Hub benchmark (its first metric)."""
    facts = entry["facts"]
    known = HUB_BENCHMARKS.get((facts.get("dataset"), facts.get("dataset_config"))) or (
        HUB_BENCHMARKS.get((facts.get("dataset"), None))
    )
    complete = facts.get("documents") == facts.get("documents_in_task")
    if known is None or not complete or not entry["metrics"]:
        return None
    metric = entry["metrics"][0]
    if metric["value"] is None:
        return None
    value = metric["value"] * 100 if 0 <= metric["value"] <= 1 else metric["value"]
    dataset_id, task_id = known
    notes = f"lm-eval {_metric_label(metric)}; {_documents_text(facts)}"
    return task_id, {
        "dataset": {"id": dataset_id, "task_id": task_id},
        "value": round(value, 4),
        "date": entry["date"],
        "source": {"url": SOURCE_URL, "name": SOURCE_NAME},
        "notes": notes,
    }


def card_evaluation(folder: Path) -> CardEvaluation:
    """The card's evaluation parts for ``folder`` (empty without ``evaluation.json``)."""
    record = read_record(folder)
    if not record or not record.get("tasks"):
        return CardEvaluation()
    evaluation = CardEvaluation()
    rows = ["| task | metric | value | stderr |", "|---|---|---|---|"]
    described = []
    for task, entry in sorted(record["tasks"].items()):
        for metric in entry["metrics"]:
            if metric["value"] is None:
                continue
            evaluation.eval_results.append(_eval_result(task, entry, metric))
            stderr = "" if metric["stderr"] is None else f"± {metric['stderr']:.4f}"
            rows.append(f"| {task} | {_metric_label(metric)} | {metric['value']:.4f} | {stderr} |")
        described.append(
            f"{task} ({_dataset_text(entry['facts'])}; {_documents_text(entry['facts'])})"
        )
        benchmark = _benchmark_entry(entry)
        if benchmark is not None:
            evaluation.benchmark_files[f"{task}.yaml"] = [benchmark[1]]
    latest = max(entry["date"] for entry in record["tasks"].values())
    versions = next(iter(record["tasks"].values()))["versions"]
    shown_versions = ", ".join(f"{name} {version}" for name, version in versions.items())
    evaluation.section = [
        "## Evaluation",
        "",
        f"Measured with lm-evaluation-harness through `mergekit-weightlevel evaluate` "
        f"(latest run {latest[:10]}; {shown_versions}) on " + "; ".join(described) + ".",
        "",
        *rows,
        "",
    ]
    return evaluation


def write_benchmark_files(folder: Path, evaluation: CardEvaluation) -> list[Path]:
    """Write ``FOLDER/.eval_results/*.yaml``; remove those written here before that are no
    longer current (files written by others are left alone). Returns the files written."""
    directory = Path(folder) / EVAL_RESULTS_DIR
    if directory.is_dir():
        for stale in directory.glob("*.yaml"):
            if stale.name not in evaluation.benchmark_files and _written_here(stale):
                stale.unlink()
    written = []
    for name, entries in evaluation.benchmark_files.items():
        directory.mkdir(exist_ok=True)
        path = directory / name
        if path.exists() and not _written_here(path):
            continue  # someone else's result for this benchmark: theirs to change
        text = WRITTEN_HERE + "\n" + yaml.safe_dump(entries, sort_keys=False, allow_unicode=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def _written_here(path: Path) -> bool:
    return path.read_text(encoding="utf-8").startswith(WRITTEN_HERE)


def forget_evaluations(folder: Path) -> list[str]:
    """Remove the folder's ``evaluation.json`` and the ``.eval_results`` files written from
    it, before a merge replaces the weights they measured (the card and ``publish`` would
    show them as the new weights' results). Files written by others stay. Returns the
    names removed; the evaluation cache keeps the numbers, by the old weights' content."""
    folder = Path(folder)
    removed = []
    if read_record(folder) is not None:
        (folder / RECORD).unlink()
        removed.append(RECORD)
    directory = folder / EVAL_RESULTS_DIR
    if directory.is_dir():
        for ours in (path for path in directory.glob("*.yaml") if _written_here(path)):
            ours.unlink()
            removed.append(f"{EVAL_RESULTS_DIR}/{ours.name}")
    return removed

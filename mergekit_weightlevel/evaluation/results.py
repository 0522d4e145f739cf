"""What an evaluation measured, read out of lm-eval's results: metrics and per-task facts.

lm-eval's results (the dict ``simple_evaluate`` returns, which its command line writes as
``results_*.json``) keep each task's numbers under ``results[task]["metric,filter"]`` and
``"metric_stderr,filter"``, and the task's settings under ``configs[task]``. ``read_metrics``
and ``read_task_facts`` turn them into the plain records this package stores, prints and
puts on a model card; the numbers themselves are lm-eval's, unchanged.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

#: lm-eval's name of the filter that keeps the model's answer as it is.
NO_FILTER = "none"
#: The metric the shipped tasks and ``task_metrics.generated_tokens`` report lengths under.
LENGTH_METRIC = "gen_length"


def _number(value: Any) -> float | None:
    """lm-eval writes "N/A" (or nothing) where a stderr does not exist."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


@dataclass(frozen=True)
class MetricValue:
    """One number of one task: lm-eval's ``results[task]["metric,filter"]`` and its stderr."""

    task: str
    metric: str
    filter: str
    value: float | None
    stderr: float | None
    higher_is_better: bool | None

    @property
    def name(self) -> str:
        """``metric`` where the filter is lm-eval's default, else lm-eval's ``metric,filter``."""
        return self.metric if self.filter == NO_FILTER else f"{self.metric},{self.filter}"

    @property
    def key(self) -> str:
        """``task:name``, as ``--select`` names it."""
        return f"{self.task}:{self.name}"


def read_metrics(results: dict[str, Any]) -> list[MetricValue]:
    """Every metric of every task (and group) in lm-eval's results, in their order."""
    higher = results.get("higher_is_better") or {}
    found: list[MetricValue] = []
    sections = {**(results.get("results") or {}), **(results.get("groups") or {})}
    for task, numbers in sections.items():
        for key, value in numbers.items():
            if "," not in key or "_stderr," in key:
                continue
            metric, filter_name = key.split(",", 1)
            found.append(
                MetricValue(
                    task=task,
                    metric=metric,
                    filter=filter_name,
                    value=_number(value),
                    stderr=_number(numbers.get(f"{metric}_stderr,{filter_name}")),
                    higher_is_better=(higher.get(task) or {}).get(metric),
                )
            )
    return found


@dataclass(frozen=True)
class TaskFacts:
    """How one task was run: what the card's sentence and the Hub's formats need."""

    task: str
    version: Any
    num_fewshot: int | None
    #: Documents evaluated (after ``--limit``) and in the task.
    documents: int | None
    documents_in_task: int | None
    #: Answers sampled per document (lm-eval's ``repeats``).
    samples: int
    do_sample: bool
    temperature: float | None
    output_type: str | None
    #: A Hub dataset (``dataset_path``, e.g. ``openai/gsm8k``), None for local data.
    dataset: str | None
    dataset_config: str | None
    split: str | None


#: lm-eval's loaders of local files (``dataset_path: json`` with ``data_files``).
LOCAL_LOADERS = {"json", "csv", "parquet", "text", "arrow", "pandas"}


def hub_dataset_of(config: dict[str, Any]) -> tuple[str, str | None] | None:
    """The Hub dataset (path, config name) a task's config reads, None for local data:
    ``dataset_path``, or the ``path`` of ``task_utils.hub_dataset``'s ``dataset_kwargs``."""
    if config.get("custom_dataset"):
        kwargs = config.get("dataset_kwargs") or {}
        path, name = kwargs.get("path"), kwargs.get("name")
    else:
        path, name = config.get("dataset_path"), config.get("dataset_name")
    if not isinstance(path, str) or path in LOCAL_LOADERS:
        return None
    return path, name


def read_task_facts(results: dict[str, Any]) -> dict[str, TaskFacts]:
    """Each task's settings, from lm-eval's ``configs``, ``n-shot`` and ``n-samples``."""
    facts = {}
    for task, config in (results.get("configs") or {}).items():
        generation = config.get("generation_kwargs") or {}
        do_sample = bool(generation.get("do_sample", False))
        counts = (results.get("n-samples") or {}).get(task) or {}
        hub = hub_dataset_of(config)
        facts[task] = TaskFacts(
            task=task,
            version=(results.get("versions") or {}).get(task),
            num_fewshot=(results.get("n-shot") or {}).get(task),
            documents=counts.get("effective"),
            documents_in_task=counts.get("original"),
            samples=int(config.get("repeats") or 1),
            do_sample=do_sample,
            temperature=float(generation.get("temperature", 1.0)) if do_sample else None,
            output_type=config.get("output_type"),
            dataset=hub[0] if hub else None,
            dataset_config=hub[1] if hub else None,
            split=config.get("test_split") or config.get("validation_split"),
        )
    return facts


@dataclass
class ModelEvaluation:
    """One folder's evaluation: its numbers, or why there are none."""

    folder: Path
    label: str
    #: "evaluated" (run now), "cached" (a finished run on the same content and settings),
    #: "failed" (``error`` says why).
    status: str
    digest: str | None = None
    error: str | None = None
    metrics: list[MetricValue] = field(default_factory=list)
    tasks: dict[str, TaskFacts] = field(default_factory=dict)
    #: lm-eval's own results file for this folder (in the cache).
    lm_eval_results: Path | None = None
    date: str | None = None
    seconds: float | None = None
    versions: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status != "failed"

    def metric(self, task: str, name: str) -> MetricValue | None:
        return next((m for m in self.metrics if m.task == task and m.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "folder": str(self.folder),
            "label": self.label,
            "status": self.status,
            "error": self.error,
            "digest": self.digest,
            "date": self.date,
            "seconds": self.seconds,
            "lm_eval_results": str(self.lm_eval_results) if self.lm_eval_results else None,
            "versions": self.versions,
            "tasks": {name: asdict(facts) for name, facts in self.tasks.items()},
            "metrics": [asdict(m) | {"name": m.name} for m in self.metrics],
        }


def format_number(value: float | None) -> str:
    return "–" if value is None else f"{value:.4f}"


def metrics_table(models: list[ModelEvaluation]) -> str:
    """One text table: model × task × metric, value ± stderr; failed models say why."""
    rows = [("model", "task", "metric", "value", "stderr")]
    for model in models:
        if not model.ok:
            rows.append((model.label, "–", "–", "failed", model.error or ""))
            continue
        for metric in model.metrics:
            arrow = {True: " ↑", False: " ↓"}.get(metric.higher_is_better, "")
            rows.append(
                (
                    model.label,
                    metric.task,
                    metric.name + arrow,
                    format_number(metric.value),
                    "" if metric.stderr is None else "± " + format_number(metric.stderr),
                )
            )
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = []
    for number, row in enumerate(rows):
        cells = [row[i].ljust(widths[i]) if i < 3 else row[i].rjust(widths[i]) for i in range(4)]
        lines.append("  ".join(cells) + ("  " + row[4] if row[4] else ""))
        if number == 0:
            lines.append("  ".join("-" * w for w in widths) + "  ------")
    return "\n".join(line.rstrip() for line in lines)

"""Choosing a point on a sweep's curve: the best value, or the smallest one nearly as good.

``--select TASK:METRIC[:max|min]`` names the metric (lm-eval's ``metric`` or
``metric,filter``; a bare metric name is enough where one filter reports it) and its
direction (default: lm-eval's ``higher_is_better`` for it). Two readings:

- the **best**: the value whose output scores best (ties: the smaller value);
- ``--within X``: among the values within X points of the best, the one with the
  **shortest generations** where the selected task reports a length (``gen_length``), else
  the **smallest value** (ties: the smaller value). This is the interpolation paper's
  efficiency reading: accuracy saturates while length keeps growing, so the efficient λ is
  the first one on the plateau. A point is a percentage point for metrics in [0, 1]
  (accuracies, pass@k: X = 2 means 0.02), the metric's own unit otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mergekit_weightlevel.errors import WeightLevelInputError
from mergekit_weightlevel.evaluation.results import LENGTH_METRIC, NO_FILTER, ModelEvaluation


class SelectionError(WeightLevelInputError):
    """A ``--select`` that names no metric the tasks produce, or a bad ``--within``/``--keep``."""


@dataclass(frozen=True)
class Selection:
    task: str
    metric: str
    #: "max", "min", or None for lm-eval's higher_is_better.
    direction: str | None = None

    @property
    def key(self) -> str:
        return f"{self.task}:{self.metric}"

    @classmethod
    def parse(cls, text: str) -> Selection:
        parts = text.split(":")
        if len(parts) == 3 and parts[2] in ("max", "min"):
            return cls(parts[0], parts[1], parts[2])
        if len(parts) == 2 and all(parts):
            return cls(parts[0], parts[1])
        raise SelectionError(
            f"--select {text!r}: write TASK:METRIC or TASK:METRIC:max|min, e.g. "
            "toy_qa_add3:acc or gsm8k:exact_match,strict-match:max"
        )

    def resolve(self, produced: dict[str, list[str]]) -> Selection:
        """This selection with lm-eval's exact metric name, checked against what the tasks
        produce (``TaskCatalog.metrics``); raises ``SelectionError`` listing those."""
        if self.task not in produced:
            raise SelectionError(
                f"--select {self.key}: task {self.task!r} is not evaluated; the tasks are "
                + ", ".join(sorted(produced))
            )
        names = produced[self.task]
        if self.metric in names:
            return self
        # A bare metric name stands for the one filter that reports it.
        matching = [n for n in names if n.split(",", 1)[0] == self.metric]
        if len(matching) == 1:
            return Selection(self.task, matching[0], self.direction)
        listing = "; ".join(f"{task}: {', '.join(metrics)}" for task, metrics in produced.items())
        why = (
            f"is reported under several filters ({', '.join(matching)})"
            if matching
            else ("is not produced")
        )
        raise SelectionError(
            f"--select {self.key}: metric {self.metric!r} {why}; the tasks produce {listing}"
        )


def _bare(name: str) -> tuple[str, str]:
    metric, _, filter_name = name.partition(",")
    return metric, filter_name or NO_FILTER


@dataclass(frozen=True)
class Choice:
    """The chosen value, its folder, and the sentence saying why."""

    value: float
    folder: str
    reason: str
    score: float


def _score(model: ModelEvaluation, selection: Selection) -> float | None:
    found = model.metric(selection.task, selection.metric)
    return None if found is None else found.value


def _higher_is_better(models: Sequence[ModelEvaluation], selection: Selection) -> bool:
    if selection.direction is not None:
        return selection.direction == "max"
    for model in models:
        found = model.metric(selection.task, selection.metric)
        if found is not None and found.higher_is_better is not None:
            return found.higher_is_better
    return True


def points_scale(values: Sequence[float]) -> float:
    """One "point" of a metric: 0.01 where every value lies in [0, 1], else 1."""
    return 0.01 if all(0.0 <= v <= 1.0 for v in values) else 1.0


def _length_name(selection: Selection) -> str:
    _, filter_name = _bare(selection.metric)
    return LENGTH_METRIC if filter_name == NO_FILTER else f"{LENGTH_METRIC},{filter_name}"


def choose(
    parameter: str,
    points: Sequence[tuple[float, ModelEvaluation]],
    selection: Selection,
    within: float | None = None,
    references: Sequence[float] = (),
) -> Choice | None:
    """The chosen (value, output); None when no output has the metric (all failed).

    ``references`` are the reference models' scores, counted only to decide what a point
    is (``points_scale``).
    """
    scored = [(v, m, s) for v, m in points if m.ok and (s := _score(m, selection)) is not None]
    if not scored:
        return None
    higher = _higher_is_better([m for _, m, _ in scored], selection)
    best_value, best_model, best_score = min(
        scored, key=lambda item: (-item[2] if higher else item[2], item[0])
    )
    best = f"{'highest' if higher else 'lowest'} {selection.key}"
    if within is None:
        return Choice(
            best_value,
            str(best_model.folder),
            f"the {best}: {best_score:.4f} at {parameter} = {best_value:g}",
            best_score,
        )
    scale = points_scale([s for *_, s in scored] + list(references))
    margin = within * scale
    near = [(v, m, s) for v, m, s in scored if abs(s - best_score) <= margin + 1e-12]
    unit = "points" if scale == 0.01 else "(the metric's units)"
    lengths = {
        v: found.value
        for v, m, _ in near
        if (found := m.metric(selection.task, _length_name(selection)))
    }
    if lengths and all(value is not None for value in lengths.values()):
        value, model, score = min(near, key=lambda item: (lengths[item[0]], item[0]))
        how = f"the shortest generations ({_length_name(selection)} {lengths[value]:.4g})"
    else:
        value, model, score = min(near, key=lambda item: item[0])
        how = f"the smallest {parameter}"
    return Choice(
        value,
        str(model.folder),
        f"{how} among the values within {within:g} {unit} of the {best} ({best_score:.4f} at "
        f"{parameter} = {best_value:g}): {parameter} = {value:g}, {selection.metric} {score:.4f}",
        score,
    )

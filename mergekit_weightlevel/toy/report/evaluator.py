"""The family's members and merges evaluated with ``evaluate`` on the toy's lm-eval tasks.

Each model is evaluated once, on every toy task a section asks of it
(``Scores.evaluate(needs)``), through ``evaluation.Evaluator``: lm-eval's own generation
and scoring on the shipped tasks (``evaluation/tasks/toy``), cached by content in the work
folder, so a rerun evaluates nothing again. The sections then read ``Summary`` objects
(``scores(path, "add3")``), plain-format accuracy and pass@k.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from mergekit_weightlevel.evaluation.evaluate import Evaluator, make_settings
from mergekit_weightlevel.evaluation.results import ModelEvaluation, TaskFacts
from mergekit_weightlevel.toy.eval_tasks import PASS_TASK, PLAIN_TASK, QA_TASKS

#: The toy's task names: the Q/A sets by their short name, plain add3, pass@k on add3.
TASK_NAMES = {**QA_TASKS, "plain": PLAIN_TASK, "pass": PASS_TASK}


@dataclass(frozen=True)
class Summary:
    """Scores of a model on a Q/A task: shares in [0, 1], mean length in tokens."""

    accuracy: float
    format_followed: float
    reasoning_share: float
    mean_length: float
    count: int


class Scores:
    """Each model's evaluations, by path; ``evaluate`` first, then read."""

    def __init__(
        self,
        cache_dir: Path,
        *,
        limit: int | None = None,
        pass_limit: int | None = None,
        batch_size: int = 512,
        log: Callable[[str], None] = print,
    ) -> None:
        self.cache_dir = cache_dir
        self.limit = limit
        self.pass_limit = pass_limit
        self.batch_size = batch_size
        self.log = log
        self.results: dict[tuple[Path, str], ModelEvaluation] = {}
        #: Seconds the evaluations took when they ran (cached ones included).
        self.seconds = 0.0

    def _evaluator(self, tasks: tuple[str, ...], limit: int | None) -> Evaluator:
        settings = make_settings(
            [TASK_NAMES[t] for t in tasks], limit=limit, device="cpu", batch_size=self.batch_size
        )
        return Evaluator(settings, cache_dir=self.cache_dir, log=self.log)

    def evaluate(self, needs: dict[Path, Iterable[str]]) -> None:
        """Evaluate every model on the tasks it needs (short names: add3, plain, pass, ...).

        Models needing the same tasks share one evaluator; pass@k (sampled, the costly one)
        runs apart, with its own limit.
        """
        groups: dict[tuple[str, ...], list[Path]] = defaultdict(list)
        for path, tasks in needs.items():
            wanted = set(tasks)
            if "pass" in wanted:
                groups[("pass",)].append(path)
            greedy = tuple(sorted(wanted - {"pass"}))
            if greedy:
                groups[greedy].append(path)
        for tasks, paths in groups.items():
            limit = self.pass_limit if tasks == ("pass",) else self.limit
            evaluator = self._evaluator(tasks, limit)
            for path in paths:
                evaluation = evaluator.evaluate(path, path.name)
                self.seconds += evaluation.seconds or 0.0
                for task in tasks:
                    self.results[(Path(path), task)] = evaluation

    def evaluation(self, path: Path, task: str) -> ModelEvaluation:
        """The whole evaluation of ``path`` that covered ``task`` (every metric, as lm-eval
        reported them)."""
        try:
            return self.results[(Path(path), task)]
        except KeyError:
            raise KeyError(f"{path} was not evaluated on {task}: add it to the needs") from None

    def _value(self, path: Path, task: str, metric: str) -> float:
        found = self.evaluation(path, task).metric(TASK_NAMES[task], metric)
        if found is None or found.value is None:
            raise KeyError(f"{path}: no {metric} on {TASK_NAMES[task]}")
        return found.value

    def __call__(self, path: Path, task: str) -> Summary:
        """The Q/A scores of ``path`` on ``task`` (add3, add2, sub, mul, mod)."""
        facts = self.facts(path, task)
        return Summary(
            accuracy=self._value(path, task, "acc"),
            format_followed=self._value(path, task, "format"),
            reasoning_share=self._value(path, task, "reasoning"),
            mean_length=self._value(path, task, "gen_length"),
            count=facts.documents or 0,
        )

    def plain(self, path: Path) -> float:
        """Accuracy in the pre-training format (``3+5+8=`` → ``16.``) on held-out add3."""
        return self._value(path, "plain", "acc")

    def pass_at(self, path: Path) -> dict[int, float]:
        """pass@k on held-out add3 by k (the task's sampled answers)."""
        evaluation = self.evaluation(path, "pass")
        return {
            int(m.metric.removeprefix("pass@")): m.value
            for m in evaluation.metrics
            if m.task == PASS_TASK and m.metric.startswith("pass@") and m.value is not None
        }

    def facts(self, path: Path, task: str) -> TaskFacts:
        return self.evaluation(path, task).tasks[TASK_NAMES[task]]

"""The toy's lm-eval tasks: their data files, written from the toy's own problem sets.

The tasks live in ``mergekit_weightlevel/evaluation/tasks/toy/`` (YAML, ``utils.py``,
``data/*.jsonl``) and run under ``lm_eval`` and ``mergekit-weightlevel evaluate`` alike.
Their data is committed; ``write_task_data`` rewrites it from ``Data.make(Recipe())`` (the
default recipe's held-out sums), and a test checks the two agree.
"""

from __future__ import annotations

import json
from pathlib import Path

from mergekit_weightlevel.evaluation.shipped import TOY_TASKS
from mergekit_weightlevel.toy.family import Data, Recipe
from mergekit_weightlevel.toy.tasks import Problem

#: The greedy question-and-answer tasks, by the problem set each asks about.
QA_TASKS = {
    "add3": "toy_qa_add3",
    "add2": "toy_qa_add2",
    "sub": "toy_qa_sub",
    "mul": "toy_qa_mul",
    "mod": "toy_qa_mod",
}
PLAIN_TASK = "toy_plain_add3"
PASS_TASK = "toy_pass_add3"
#: Problems of the pass@k task (the first of the held-out sums).
PASS_PROBLEMS = 100


def task_documents(recipe: Recipe | None = None) -> dict[str, list[dict]]:
    """Each data file's documents (``{"expression": "3+5+8", "answer": 16}``), by file stem."""
    data = Data.make(recipe or Recipe())

    def documents(problems: list[Problem]) -> list[dict]:
        return [{"expression": p.expression, "answer": p.answer} for p in problems]

    return {
        "add3_held_out": documents(data.add3_test),
        "add3_pass": documents(data.add3_test[:PASS_PROBLEMS]),
        "add2": documents(data.add2),
        "sub": documents(data.sub),
        "mul_new": documents(data.mul_new),
        "mod": documents(data.mod),
    }


def write_task_data(folder: Path = TOY_TASKS / "data") -> list[Path]:
    """Write every data file as JSON lines; return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for stem, documents in task_documents().items():
        path = folder / f"{stem}.jsonl"
        path.write_text("".join(json.dumps(d) + "\n" for d in documents), encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write_task_data():
        print(path)

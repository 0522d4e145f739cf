"""The lm-eval tasks shipped with the package (``evaluation/tasks/``): always on the task path.

- ``toy/``: the toy family's arithmetic (``toy_qa_add3`` … ``toy_pass_add3``, tag ``toy_qa``);
- ``demo/``: the demo's random tiny family (``demo_choice``, ``demo_continue``): numbers
  without meaning, for trying the workflow in seconds.
"""

from __future__ import annotations

from pathlib import Path

TASKS_DIR = Path(__file__).resolve().parent / "tasks"
TOY_TASKS = TASKS_DIR / "toy"
DEMO_TASKS = TASKS_DIR / "demo"

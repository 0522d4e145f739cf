"""Evaluation with lm-evaluation-harness: evaluate folders, read a sweep's curve, choose.

    from mergekit_weightlevel.evaluation import evaluate_folders, evaluate_sweep

Importing this package needs neither lm-eval nor torch (the model card reads results
through ``evaluation.record``); the functions import lm-eval when they run (the ``[eval]``
extra). See docs/evaluation.md.
"""

from __future__ import annotations

from typing import Any

__all__ = ["evaluate_folders", "evaluate_sweep"]


def __getattr__(name: str) -> Any:
    # Lazy: `evaluate_folders` pulls in the cache and lm-eval glue, not needed by the card.
    if name == "evaluate_folders":
        from mergekit_weightlevel.evaluation.evaluate import evaluate_folders

        return evaluate_folders
    if name == "evaluate_sweep":
        from mergekit_weightlevel.evaluation.sweep import evaluate_sweep

        return evaluate_sweep
    raise AttributeError(name)

"""Scoring of ``demo_continue``: the first generated word against the target, and the length."""

from __future__ import annotations

from mergekit_weightlevel.evaluation.task_metrics import exact_match, generated_tokens


def score_continuation(doc: dict, results: list[str]) -> dict[str, float]:
    text = results[0]
    words = text.split()
    target = doc["choices"][doc["label"]]
    return {
        "exact_match": exact_match(words[0] if words else "", target),
        "gen_length": float(generated_tokens(text, doc)),
    }

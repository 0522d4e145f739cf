"""Scoring of ``example_sums``: every metric of mergekit_weightlevel.evaluation.task_metrics."""

from __future__ import annotations

from mergekit_weightlevel.evaluation.task_metrics import (
    exact_match,
    extract_answer,
    follows_format,
    generated_tokens,
    pass_at_ks,
    reasons_in_steps,
)

#: An answer: optional worked steps in brackets, then the number.
ANSWER = r"(?:\[[^\]]*\])?(?P<answer>-?\d+)"
#: One worked step, e.g. ``3+5=8``.
STEP = r"\d+\+\d+=\d+"


def process_results(doc: dict, results: list[list[str]]) -> dict[str, float]:
    samples = results[0]  # the 4 sampled answers to this question
    correct = [exact_match(extract_answer(s, ANSWER), str(doc["answer"])) == 1.0 for s in samples]
    first = samples[0]
    return {
        "exact_match": float(correct[0]),
        **pass_at_ks(correct, (1, 4)),
        "format": float(follows_format(first, ANSWER)),
        "reasoning": float(reasons_in_steps(first, STEP, min_steps=1, think_block=None)),
        "gen_length": float(generated_tokens(first, doc)),
    }

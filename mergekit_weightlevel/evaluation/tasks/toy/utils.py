"""Scoring of the toy's tasks (the toy family: mergekit_weightlevel/toy/), for lm-eval.

A completion is read as the toy report always read it:

- format followed: a bare integer, or ``expression=integer``, or ``[steps]`` then the
  integer, and nothing else;
- reasoning: the completion starts with a bracketed ``x+y=z`` step;
- accuracy: the integer is the right answer and the format is followed;
- length: the generated tokens (one per character in the toy's tokenizer).
"""

from __future__ import annotations

import re

from mergekit_weightlevel.evaluation.task_metrics import (
    follows_format,
    generated_tokens,
    pass_at_ks,
    reasons_in_steps,
)

STEP = r"\d+[-+*%]\d+=\d+"
#: A whole completion: optional ``[step,step,...]``, an optional restated expression, the answer.
COMPLETION = re.compile(
    rf"(?P<reasoning>\[{STEP}(?:,{STEP})*\])?(?:\d+(?:[-+*%]\d+)+=)?(?P<answer>-?\d+)"
)
#: Reasoning shows as a first bracketed step.
FIRST_STEP = rf"^\[{STEP}"
PASS_KS = (1, 4, 16)


def is_correct(text: str, answer: int) -> bool:
    match = COMPLETION.fullmatch(text)
    return match is not None and int(match.group("answer")) == answer


def score_answer(doc: dict, results: list[str]) -> dict[str, float]:
    """Accuracy, format, reasoning and length of one greedy completion."""
    text = results[0]
    return {
        "acc": float(is_correct(text, doc["answer"])),
        "format": float(follows_format(text, COMPLETION)),
        "reasoning": float(reasons_in_steps(text, FIRST_STEP, min_steps=1, think_block=None)),
        "gen_length": float(generated_tokens(text, doc)),
    }


def score_plain(doc: dict, results: list[str]) -> dict[str, float]:
    """The pre-training format: the completion is exactly ``answer.``."""
    return {"acc": float(results[0] == f"{doc['answer']}.")}


def score_samples(doc: dict, results: list[list[str]]) -> dict[str, float]:
    """pass@k (unbiased) of one problem from its sampled completions."""
    samples = results[0]
    return pass_at_ks([is_correct(text, doc["answer"]) for text in samples], PASS_KS)

"""The papers' metrics, as plain functions for an lm-eval task's ``process_results``.

An lm-eval task scores each document with a ``process_results(doc, results)`` function (a
``utils.py`` beside the task's YAML, ``process_results: !function utils.process_results``)
that returns one number per metric; lm-eval averages them and computes their stderr. The
functions here are the pieces such a function needs for the four papers' readings:

- ``pass_at_k``, ``pass_at_ks``: the unbiased estimator of Chen et al. (2021) from n sampled
  answers (Timber reads pass@k on MATH and GPQA from 4 samples; the task sets ``repeats: n``);
- ``generated_tokens``: the length of a generation in the model's own tokens (the
  interpolation paper's efficiency reading);
- ``follows_format``, ``reasons_in_steps``, ``extract_answer``: whether the answer has the
  expected form, and whether it shows its reasoning as steps;
- ``normalize_answer``, ``exact_match``: exact match after the usual normalisation.

Nothing here imports lm-eval: the functions are tested on their own, and a task's
``utils.py`` imports them (``from mergekit_weightlevel.evaluation.task_metrics import ...``).
The toy's tasks (``evaluation/tasks/toy/utils.py``) and the worked example in
``examples/eval_task/`` use every one of them.
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any

#: The document field ``task_utils.local_dataset`` fills with the tokenizer lm-eval was given
#: (the model folder): ``generated_tokens`` counts in it.
TOKENIZER_FIELD = "_tokenizer"

#: Steps written as lines "Step 1: ..." or "1. ..." / "1) ..." (a common chain-of-thought form).
NUMBERED_STEP = r"(?im)^\s*(?:step\s*\d+\s*[:.)]|\d+\s*[.)])\s+\S"
#: Reasoning models' explicit thinking block (Qwen3, DeepSeek-R1): ``<think> ... </think>``.
THINK_BLOCK = r"(?s)<think>.*?</think>"


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from ``n`` samples of which ``c`` are correct: 1 − C(n−c, k) / C(n, k).

    Defined for 1 ≤ k ≤ n (Chen et al., 2021, "Evaluating Large Language Models Trained on
    Code", eq. 1).
    """
    if not 1 <= k <= n:
        raise ValueError(f"pass@{k} needs 1 ≤ k ≤ n = {n} samples")
    if not 0 <= c <= n:
        raise ValueError(f"{c} correct answers out of {n} samples")
    if n - c < k:
        return 1.0
    # 1 − Π_{i=n−c+1}^{n} (1 − k/i): the product form, stable where the binomials overflow.
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def pass_at_ks(correct: Sequence[bool], ks: Iterable[int]) -> dict[str, float]:
    """``{"pass@k": value}`` for each k ≤ len(correct), from one problem's sampled answers."""
    n, c = len(correct), sum(bool(x) for x in correct)
    return {f"pass@{k}": pass_at_k(n, c, k) for k in ks if k <= n}


def extract_answer(text: str, pattern: str | re.Pattern[str]) -> str | None:
    """The ``answer`` group (else the whole match) of the last match of ``pattern``; None if none."""
    compiled = re.compile(pattern)
    matches = list(compiled.finditer(text))
    if not matches:
        return None
    last = matches[-1]
    return last.group("answer") if "answer" in compiled.groupindex else last.group(0)


def follows_format(text: str, pattern: str | re.Pattern[str]) -> bool:
    """Whether the whole generation (surrounding whitespace aside) matches ``pattern``."""
    return re.fullmatch(pattern, text.strip()) is not None


def reasons_in_steps(
    text: str,
    step_pattern: str | re.Pattern[str] = NUMBERED_STEP,
    *,
    min_steps: int = 2,
    think_block: str | re.Pattern[str] | None = THINK_BLOCK,
) -> bool:
    """Whether the generation shows its reasoning: a thinking block (``<think>…</think>`` by
    default), or at least ``min_steps`` matches of ``step_pattern`` (numbered steps by
    default; the toy passes its own ``[3+5=8,...]`` form with ``min_steps=1``)."""
    if think_block is not None and re.search(think_block, text):
        return True
    return len(re.findall(step_pattern, text)) >= min_steps


_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[-+]?\d+)?")
_ARTICLES = re.compile(r"\b(?:a|an|the)\b")


def normalize_answer(text: str) -> str:
    """The usual normalisation before exact match.

    A number (after removing ``$``, thousands separators and a final period) becomes its
    canonical form (``"1,000.0"`` → ``"1000"``, ``"-3."`` → ``"-3"``); any other text is
    lower-cased, stripped of punctuation and of the articles a / an / the, and its whitespace
    collapsed (the SQuAD normalisation, which GSM8K- and MATH-style scorers start from).
    """
    stripped = text.strip().replace("$", "").replace(",", "").rstrip(".").strip()
    if _NUMBER.fullmatch(stripped):
        value = float(stripped)
        if math.isfinite(value) and value == int(value) and abs(value) < 2**63:
            return str(int(value))
        return repr(value)
    lowered = text.lower()
    no_punctuation = "".join(ch for ch in lowered if ch not in string.punctuation)
    return " ".join(_ARTICLES.sub(" ", no_punctuation).split())


def exact_match(prediction: str | None, references: str | Sequence[str]) -> float:
    """1.0 if the normalised prediction equals a normalised reference, else 0.0."""
    if prediction is None:
        return 0.0
    if isinstance(references, str):
        references = [references]
    target = normalize_answer(prediction)
    return float(any(normalize_answer(str(r)) == target for r in references))


def tokenizer_name(metadata: Mapping[str, Any]) -> str | None:
    """The tokenizer lm-eval's model arguments name: ``tokenizer``, else ``pretrained``.

    lm-eval hands a task's dataset loader its model arguments as metadata (the command line
    and ``simple_evaluate`` both do); RULER's tasks read their tokenizer the same way.
    """
    for key in ("tokenizer", "pretrained"):
        value = metadata.get(key)
        if isinstance(value, str) and value:
            return value
    return None


@lru_cache(maxsize=8)
def _tokenizer(name: str) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(name)


def generated_tokens(text: str, doc: Mapping[str, Any]) -> int:
    """The number of tokens of ``text`` in the evaluated model's tokenizer (no special tokens).

    The tokenizer is the one ``task_utils.local_dataset`` recorded in the document
    (``doc["_tokenizer"]``): a task that reports lengths loads its documents through it
    (``custom_dataset: !function mergekit_weightlevel.evaluation.task_utils.local_dataset``).
    """
    name = doc.get(TOKENIZER_FIELD)
    if not name:
        raise ValueError(
            "generated_tokens: the document names no tokenizer; load the task's documents with "
            "`custom_dataset: !function mergekit_weightlevel.evaluation.task_utils.local_dataset` "
            "(it records the model's tokenizer), or pass --metadata tokenizer=NAME to lm_eval"
        )
    return len(_tokenizer(str(name))(text, add_special_tokens=False)["input_ids"])

"""The evaluation harness: batched decoding and the scores the replication tables use.

For every completion of a prompt ``Q:<expression>?A:`` the harness reads:

- format followed: the completion is ``expression=answer`` or a bare integer (Q/A format),
  or ``[steps]`` followed by an integer (reasoning format), and nothing else;
- reasoning: the completion starts with a bracketed list of at least one ``x+y=z`` step;
- the answer: the integer after the reasoning (if any); accuracy is answer == truth with
  the format followed;
- length: the number of generated tokens (characters) before EOS.

pass@k uses the unbiased estimator of Chen et al. (2021): 1 − C(n−c, k) / C(n, k).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from mergekit_weightlevel.toy.tasks import Problem
from mergekit_weightlevel.toy.tokenizer import BOS_ID, EOS_ID, PAD_ID, CharCodec

STEP = r"\d+[-+*%]\d+=\d+"
#: A whole completion in the expected format: optional ``[step,step,...]``, an optional
#: restated expression with ``=``, then the integer answer.
COMPLETION = re.compile(
    rf"^(?P<reasoning>\[{STEP}(?:,{STEP})*\])?(?:\d+(?:[-+*%]\d+)+=)?(?P<answer>-?\d+)$"
)


@dataclass(frozen=True)
class Scored:
    """One completion, read."""

    text: str
    format_ok: bool
    reasoning: bool
    answer: int | None
    correct: bool
    length: int


def score(completion: str, truth: int, *, length: int | None = None) -> Scored:
    """Read one completion (the text generated after the prompt, EOS excluded)."""
    match = COMPLETION.match(completion)
    reasoning = match is not None and match.group("reasoning") is not None
    if match is None:
        # Still credit visible reasoning: a bracketed step list at the start.
        reasoning = re.match(rf"^\[{STEP}", completion) is not None
    answer = int(match.group("answer")) if match else None
    return Scored(
        text=completion,
        format_ok=match is not None,
        reasoning=reasoning,
        answer=answer,
        correct=answer == truth,
        length=len(completion) if length is None else length,
    )


@dataclass(frozen=True)
class Summary:
    """Scores of a model on a problem set: shares in [0, 1], mean length in tokens."""

    accuracy: float
    format_followed: float
    reasoning_share: float
    mean_length: float
    count: int


def summarize(scored: Sequence[Scored]) -> Summary:
    n = len(scored)
    return Summary(
        accuracy=sum(s.correct for s in scored) / n,
        format_followed=sum(s.format_ok for s in scored) / n,
        reasoning_share=sum(s.reasoning for s in scored) / n,
        mean_length=sum(s.length for s in scored) / n,
        count=n,
    )


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from ``n`` samples of which ``c`` are correct (Chen et al., 2021)."""
    if n - c < k:
        return 1.0
    # 1 − Π_{i=n−c+1}^{n} (1 − k/i): the numerically stable product form.
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


@torch.no_grad()
def generate(
    model,
    prompts: Sequence[str],
    *,
    max_new_tokens: int = 24,
    temperature: float = 0.0,
    seed: int = 0,
    batch_size: int = 512,
) -> list[tuple[str, int]]:
    """Complete each prompt; greedy at temperature 0, else sampled. Returns (text, tokens)."""
    out: list[tuple[str, int]] = []
    generator = torch.Generator().manual_seed(seed)
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start : start + batch_size]
        out += _generate_batch(model, chunk, max_new_tokens, temperature, generator)
    return out


def _generate_batch(model, prompts, max_new_tokens, temperature, generator):
    codec = CharCodec()
    rows = [[BOS_ID, *codec.encode(p)] for p in prompts]
    width = max(len(r) for r in rows)
    # Left padding, so every row's next token is at the last position.
    ids = torch.full((len(rows), width), PAD_ID)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, width - len(row) :] = torch.tensor(row)
        mask[i, width - len(row) :] = 1
    done = torch.zeros(len(rows), dtype=torch.bool)
    generated = []
    model.eval()
    for _ in range(max_new_tokens):
        positions = (mask.cumsum(-1) - 1).clamp_min(0)
        logits = model(input_ids=ids, attention_mask=mask, position_ids=positions).logits[:, -1]
        if temperature > 0:
            probs = torch.softmax(logits.float() / temperature, dim=-1)
            token = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
        else:
            token = logits.argmax(-1)
        token = torch.where(done, torch.full_like(token, PAD_ID), token)
        generated.append(token)
        done |= token == EOS_ID
        ids = torch.cat([ids, token[:, None]], dim=1)
        mask = torch.cat([mask, (~done | (token == EOS_ID)).long()[:, None]], dim=1)
        if bool(done.all()):
            break
    tokens = torch.stack(generated, dim=1).tolist()
    results = []
    for row in tokens:
        length = row.index(EOS_ID) if EOS_ID in row else len(row)
        results.append((codec.decode(row), length))
    return results


def evaluate(model, problems: Sequence[Problem], *, max_new_tokens: int = 24) -> Summary:
    """Greedy accuracy, format, reasoning share and length on the Q/A prompts of ``problems``."""
    completions = generate(model, [p.prompt() for p in problems], max_new_tokens=max_new_tokens)
    return summarize(
        [score(text, p.answer, length=n) for (text, n), p in zip(completions, problems)]
    )


def pass_at_ks(
    model,
    problems: Sequence[Problem],
    ks: Sequence[int],
    *,
    samples: int,
    temperature: float = 1.0,
    seed: int = 0,
    max_new_tokens: int = 24,
) -> dict[int, float]:
    """Mean unbiased pass@k over ``problems`` from ``samples`` sampled completions each."""
    prompts = [p.prompt() for p in problems for _ in range(samples)]
    completions = generate(
        model, prompts, max_new_tokens=max_new_tokens, temperature=temperature, seed=seed
    )
    correct = [0] * len(problems)
    for index, (text, _) in enumerate(completions):
        problem = problems[index // samples]
        correct[index // samples] += score(text, problem.answer).correct
    return {k: sum(pass_at_k(samples, c, k) for c in correct) / len(problems) for k in ks}


def plain_accuracy(model, problems: Sequence[Problem]) -> float:
    """Knowledge in the pre-training format: does ``3+5+8=`` continue with ``16.``?"""
    completions = generate(model, [f"{p.expression}=" for p in problems], max_new_tokens=6)
    return sum(text == f"{p.answer}." for (text, _), p in zip(completions, problems)) / len(
        problems
    )

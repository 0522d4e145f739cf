"""The toy world's synthetic data: small arithmetic facts in three text formats.

Facts (all exhaustive lists, in a fixed order):

- ``add2``: a+b for a in 0..19, b in 0..9 (200) — the base's core knowledge;
- ``sub``: a-b for a in 0..19, b in 0..9, a >= b (155) — base knowledge too;
- ``add3``: a+b+c for a, b, c in 0..9 (1000) — only some seen in pre-training; the rest
  must be computed, which is hard in one shot and easy by steps;
- ``mul``: a*b for a, b in 0..9 (100) — the new knowledge of ``base_v2``;
- ``mod``: a%b for a in 0..19, b in 1..9 (180) — the new skill of Shadow-FT.

Formats of one fact:

- plain (pre-training): ``3+5+8=16.``
- Q/A (instruct):      prompt ``Q:3+5+8?A:``  completion ``16``
- thinking:            prompt ``Q:3+5+8?A:``  completion ``[3+5=8,8+8=16]16``

Pre-training also sees the two Q/A formats now and then as whole documents
(``qa_documents``, ``thinking_documents``: every token in the loss), as web text holds
pages of questions and answers; the SFTs then amplify a format the base has seen.

Every thinking step is an ``add2`` fact, so a model that knows ``add2`` well can answer
``add3`` by steps even where it cannot answer it in one shot.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

OPERATIONS = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "%": lambda a, b: a % b,
}


@dataclass(frozen=True)
class Problem:
    """One arithmetic fact: operands combined left to right with ``op``."""

    operands: tuple[int, ...]
    op: str

    @property
    def expression(self) -> str:
        return self.op.join(str(x) for x in self.operands)

    @property
    def answer(self) -> int:
        value = self.operands[0]
        for operand in self.operands[1:]:
            value = OPERATIONS[self.op](value, operand)
        return value

    def steps(self) -> list[str]:
        """Left-to-right partial results, e.g. ``["3+5=8", "8+8=16"]``."""
        value, out = self.operands[0], []
        for operand in self.operands[1:]:
            new = OPERATIONS[self.op](value, operand)
            out.append(f"{value}{self.op}{operand}={new}")
            value = new
        return out

    # The three text formats.
    def plain(self) -> str:
        return f"{self.expression}={self.answer}."

    def prompt(self) -> str:
        return f"Q:{self.expression}?A:"

    def direct_completion(self) -> str:
        return str(self.answer)

    def thinking_completion(self) -> str:
        return f"[{','.join(self.steps())}]{self.answer}"


def add2() -> list[Problem]:
    return [Problem((a, b), "+") for a in range(20) for b in range(10)]


def add2_high() -> list[Problem]:
    """a+b for a in 20..39, b in 0..9 (200): numbers the base never saw (base_v2's new facts)."""
    return [Problem((a, b), "+") for a in range(20, 40) for b in range(10)]


def add3() -> list[Problem]:
    return [Problem((a, b, c), "+") for a in range(10) for b in range(10) for c in range(10)]


def mul() -> list[Problem]:
    return [Problem((a, b), "*") for a in range(10) for b in range(10)]


def sub() -> list[Problem]:
    return [Problem((a, b), "-") for a in range(20) for b in range(10) if a >= b]


def mod() -> list[Problem]:
    return [Problem((a, b), "%") for a in range(20) for b in range(1, 10)]


TASKS = {
    "add2": add2,
    "sub": sub,
    "add3": add3,
    "add2_high": add2_high,
    "mul": mul,
    "mod": mod,
}


def split(problems: list[Problem], held_out: int, seed: int) -> tuple[list[Problem], list[Problem]]:
    """A deterministic (train, held-out) split: ``held_out`` problems set aside."""
    order = list(problems)
    random.Random(seed).shuffle(order)
    return order[held_out:], order[:held_out]


@dataclass(frozen=True)
class Example:
    """A training sequence: the loss is taken on ``completion`` (and EOS) only if ``prompt``."""

    prompt: str
    completion: str


def plain_examples(problems: list[Problem]) -> list[Example]:
    return [Example("", p.plain()) for p in problems]


def qa_examples(problems: list[Problem]) -> list[Example]:
    return [Example(p.prompt(), p.direct_completion()) for p in problems]


def thinking_examples(problems: list[Problem]) -> list[Example]:
    return [Example(p.prompt(), p.thinking_completion()) for p in problems]


def qa_documents(problems: list[Problem]) -> list[Example]:
    """Q/A text as pre-training sees it (web pages with questions and answers): every token
    in the loss, the question included."""
    return [Example("", p.prompt() + p.direct_completion()) for p in problems]


def thinking_documents(problems: list[Problem]) -> list[Example]:
    """Worked solutions as pre-training sees them: question, steps and answer, all in the loss."""
    return [Example("", p.prompt() + p.thinking_completion()) for p in problems]

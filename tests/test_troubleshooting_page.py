"""docs/troubleshooting.md quotes the messages a user sees: every one is in the code that prints
it (issue 29, item 7).

Each table row starts with the message, quoted in backticks (by its start; `…` and `<method>`
stand for what varies, examples in backticks or quotes for the values). The test takes each
run of words the page quotes between those, and looks for it in the string literals of the
code that can print it: this package, the start-up hook, and the libraries whose messages the
page names (mergekit, click). A message reworded in the code, or quoted wrongly on the page,
fails here with the run that is not found.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "troubleshooting.md"

#: Messages the page quotes that no Python source prints (with why), matched by their start.
NOT_IN_SOURCE = {
    # pydantic's own wording, from its compiled core
    "validation error for MergeConfiguration": "pydantic-core (Rust)",
    # the Hub's answer to a card it refuses, relayed by huggingface_hub
    "Invalid metadata in README.md.": "the Hub server",
}

#: Where a run of the page ends: what varies between one message and the next.
VARYING = re.compile(
    r"…|\.\.\."  # an elision
    r"|<[^<>]*>"  # a placeholder: <method>, <path>
    r"|`[^`]*`"  # a value in backticks: `lamda`, `role: target`
    r"|'[^']*'|\"[^\"]*\""  # a value in quotes: 'heavy'
    r"|\S*[/.=]\S*"  # a path, a file, a tensor or an option with a value: model.safetensors
    r"|\b[A-Z][A-Z0-9_]*\b"  # a placeholder in capitals: FOLDER, M, N, REPO_ID
    r"|\b\d[\d.,]*\b"  # a number
    r"|--\S+"  # an option: --out-shard-size
    r"|[:;()\[\]]"  # where a message joins its parts: `X: why (details)`
)
#: A run this short could be anywhere: only runs of at least this many words are looked for.
MIN_WORDS = 3


def _cells(line: str) -> list[str]:
    """A Markdown table row's cells, with `\\|` kept inside them."""
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip().strip("|"))]


def _spans(cell: str) -> list[str]:
    """The code spans of a cell (`\\`` inside one is a literal backtick)."""
    spans, current, inside, index = [], [], False, 0
    while index < len(cell):
        char = cell[index]
        if char == "\\" and index + 1 < len(cell) and cell[index + 1] in "`|":
            current.append(cell[index + 1])
            index += 2
            continue
        if char == "`":
            if inside:
                spans.append("".join(current))
            current, inside = [], not inside
        elif inside:
            current.append(char)
        index += 1
    return spans


def quoted_messages() -> Iterator[tuple[int, str]]:
    """(line number, message) for every message the page's tables quote."""
    for number, line in enumerate(PAGE.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.startswith("|") or set(line) <= set("|-: "):
            continue
        first = _cells(line)[0]
        if first in ("message", "entry", "note", "message ends with"):
            continue
        for span in _spans(first):
            yield number, span


def _words(text: str) -> str:
    return " ".join(text.split())


def runs(message: str) -> list[str]:
    """The runs of a quoted message that every printing of it contains, word for word."""
    pieces = (_words(piece) for piece in VARYING.split(message))
    return [piece for piece in pieces if len(piece.split()) >= MIN_WORDS]


def found(run: str, printed: list[str]) -> bool:
    """Whether some printed text holds ``run``, or ``run`` is where two printed texts meet at
    a field (`could not {what}` then `wrap mergekit.merge.run_merge`): one ends with the run's
    first words, the next starts with the rest."""
    if any(run in piece for piece in printed):
        return True
    words = run.split()
    return any(
        any(piece.endswith(" ".join(words[:cut])) for piece in printed)
        and any(piece.startswith(" ".join(words[cut:])) for piece in printed)
        for cut in range(1, len(words))
    )


def _literal_pieces(node: ast.AST) -> Iterator[str]:
    """The fixed text of a string literal (an f-string's text between its fields)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        yield node.value
    elif isinstance(node, ast.JoinedStr):
        yield "\x00".join(
            part.value if isinstance(part, ast.Constant) else "" for part in node.values
        )


def _sources() -> list[Path]:
    import click
    import mergekit

    package = ROOT / "mergekit_weightlevel"
    return [
        *package.rglob("*.py"),
        ROOT / "hook" / "mergekit_weightlevel_hook.py",
        *Path(mergekit.__file__).parent.rglob("*.py"),
        *Path(click.__file__).parent.rglob("*.py"),
        *(ROOT / "tests").glob("*.py"),  # a skip reason the page lists
    ]


@pytest.fixture(scope="module")
def printed() -> list[str]:
    """Every fixed piece of text the code can print, whitespace collapsed."""
    pieces = []
    for path in _sources():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            for literal in _literal_pieces(node):
                # logging's %-placeholders and f-string fields both end a piece of fixed text
                for piece in re.split(r"\x00|%[-.\d]*[sdrgf]", literal):
                    pieces.append(_words(piece))
    return pieces


def test_the_page_quotes_messages():
    messages = list(quoted_messages())
    assert len(messages) > 100
    assert sum(len(runs(m)) for _, m in messages) > 150  # most messages are checked


@pytest.mark.parametrize("line, message", list(quoted_messages()))
def test_every_message_on_the_page_is_one_the_code_prints(line, message, printed):
    if any(message.startswith(start) for start in NOT_IN_SOURCE):
        return
    missing = [run for run in runs(message) if not found(run, printed)]
    assert not missing, f"docs/troubleshooting.md:{line} quotes {missing} of {message!r}"

"""What a merge method declares about itself, beside its mergekit spec and its kernel.

Each method's home (``paramdelta.py``, ``timber/``, ...) holds one ``MethodDeclaration``:
its name and display name, the names users reach for (aliases), its paper, how its inputs
are called (roles), which input the output's non-weight files come from, how one merge is
described in a sentence, and the axis a sweep varies. The registry, the model card, the
output-file policy, the name suggestions, ``mergekit-weightlevel methods`` and ``sweep``
read it from there; no module outside ``methods/`` names a method.

This module is plain data and text: it imports nothing heavy.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

#: The model with ``role: target`` (receives a delta), and every other non-base model.
TARGET = "target"
OTHER = "other"


@dataclass(frozen=True)
class Paper:
    """A method's paper: what the card links, tags and cites."""

    arxiv_id: str
    title: str
    tag: str  # the short tag the card adds next to the method name
    bibtex: str

    @property
    def url(self) -> str:
        return f"https://arxiv.org/abs/{self.arxiv_id}"


@dataclass(frozen=True)
class Role:
    """How the method calls one kind of input: its symbol and a few words on what it is."""

    symbol: str  # e.g. "Θ_post", "W_B"
    description: str  # e.g. "the post-trained model whose delta is transplanted"


@dataclass(frozen=True)
class Roles:
    """The method's inputs: ``base_model``, the ``role: target`` model (methods that take
    one), every other model, and an input given as a parameter (Shadow-FT's ``adapter``)."""

    base: Role
    other: Role
    target: Role | None = None
    #: (parameter, role) for an input the config names through a shared parameter
    parameter_input: tuple[str, Role] | None = None


@dataclass(frozen=True)
class FileOrigin:
    """Which input a kind of non-weight file comes from by default, and why (for messages)."""

    input: Literal["target", "other"]  # TARGET: the `role: target` model; OTHER: the first other
    reason: str


@dataclass(frozen=True)
class SweepAxis:
    """The parameter a sweep varies by default, and the values it tries when none are given.

    A per-donor axis (``per_donor``) is a per-model parameter: a sweep value applies to
    every donor (every model but the base and the ``role: target`` model).
    """

    parameter: str
    symbol: str  # how the card and messages write it: λ, α, weight
    grid: tuple[float, ...]
    per_donor: bool = False
    #: the inputs that stand at the axis' ends, as (name, input kind): what an evaluated
    #: sweep draws as reference lines (the interpolation: the Instruct and the Thinking model)
    ends: tuple[tuple[str, Literal["base", "target", "other"]], ...] = ()


@dataclass(frozen=True)
class InputView:
    """One input as a description sees it: its short name, its kind and its parameters."""

    name: str
    kind: Literal["base", "target", "other", "parameter"]
    parameters: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class MergeView:
    """What a description of one merge reads: the inputs in config order, and the shared
    parameters (the config's, with the method's defaults where it sets none)."""

    inputs: Sequence[InputView]
    parameters: Mapping[str, Any]
    #: the config has slices: mergekit runs a layer gradient anew over each slice's layers
    per_slice: bool = False

    def text(self, symbol: str, setting: Any, *, default: Any = None) -> str:
        """A setting of this merge in words after its symbol (``setting_text``)."""
        return setting_text(symbol, setting, default=default, per_slice=self.per_slice)

    def first(self, kind: str) -> InputView | None:
        return next((i for i in self.inputs if i.kind == kind), None)

    def all(self, kind: str) -> list[InputView]:
        return [i for i in self.inputs if i.kind == kind]


@dataclass(frozen=True)
class MethodDeclaration:
    """Everything this package knows about one merge method, in the method's own home."""

    name: str
    display_name: str
    paper: Paper
    roles: Roles
    #: where ``config.json`` and the tokenizer / chat template / generation config come from
    config_from: FileOrigin
    tokenizer_from: FileOrigin
    sweep: SweepAxis
    #: one sentence, in the method's terms, for the card: what this merge did
    describe: Callable[[MergeView], str]
    #: names users reach for that mean this method (for "did you mean")
    aliases: tuple[str, ...] = ()
    #: a note for the card's "How to use", where the paper decodes merged models specially
    decoding_note: str | None = None


# --------------------------------------------------------------------------- parameter text


def is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _plain(value: Any) -> Any:
    """A mergekit parameter setting as plain data: ``ConditionalParameter`` objects (what
    ``MergeConfiguration`` parses ``{filter, value}`` entries into) become dicts."""
    if hasattr(value, "model_dump"):
        return _plain(value.model_dump())
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _number(value: Any) -> str:
    return f"{value:g}" if is_number(value) else str(value)


def _gradient_text(values: list[Any], *, per_slice: bool = False, everywhere: bool = True) -> str:
    """A layer gradient in words. mergekit interpolates the list over the layers of each
    slice (a config's ``models:`` are one slice of every layer) and gives the tensors outside
    the layers (embeddings, final norm, lm_head) the first value (t = 0); ``everywhere``:
    the gradient is not limited by a filter, so those tensors are named."""
    if len(values) == 1:
        return _number(values[0])
    last = "the last of each slice" if per_slice else "the last"
    inner = ", ".join(_number(v) for v in values[1:-1])
    through = f" through {inner}" if inner else ""
    words = (
        f"from {_number(values[0])} at the first layer{through} to {_number(values[-1])} at {last}"
    )
    if everywhere:
        words += f", and {_number(values[0])} on the embeddings, final norm and lm_head"
    return words


def _value_words(value: Any, *, per_slice: bool = False, everywhere: bool = True) -> str:
    """A scalar or a layer gradient in words, without the symbol."""
    if isinstance(value, list):
        return _gradient_text(value, per_slice=per_slice, everywhere=everywhere)
    return _number(value)


def setting_words(setting: Any, *, default: Any = None, per_slice: bool = False) -> str:
    """Any form of a mergekit parameter, truthfully in words, without its symbol.

    ``0.8``; a layer gradient ``from 0 at the first layer to 1 at the last, and 0 on the
    embeddings, final norm and lm_head``; filters ``0 on self_attn, 0.8 elsewhere`` (mergekit
    takes the first entry whose filter is in the tensor name; an entry without a filter
    applies to the rest); nested forms combine both. ``default`` is what tensors no entry
    matches get (the method's default); ``per_slice``: the config has slices, over each of
    which mergekit runs a gradient anew.
    """
    setting = _plain(setting)
    if isinstance(setting, dict):
        setting = [setting]
    if isinstance(setting, list) and setting and all(isinstance(e, dict) for e in setting):
        parts: list[str] = []
        rest = None
        for entry in setting:
            where = entry.get("filter")
            filtered = where not in (None, "*")
            words = _value_words(entry.get("value"), per_slice=per_slice, everywhere=not filtered)
            if not filtered:
                rest = words
                break  # mergekit never looks past an entry without a filter
            parts.append(f"{words} on {where}")
        if rest is None and default is not None:
            rest = f"{_value_words(default, per_slice=per_slice)} (the default)"
        if rest is not None:
            parts.append(f"elsewhere {rest}" if rest.startswith("from ") else f"{rest} elsewhere")
        nested = any(isinstance(entry.get("value"), list) for entry in setting)
        return ("; " if nested else ", ").join(parts)
    if isinstance(setting, list) and len(setting) == 1:
        setting = setting[0]
    return _value_words(setting, per_slice=per_slice)


def setting_text(symbol: str, setting: Any, *, default: Any = None, per_slice: bool = False) -> str:
    """``λ = 0.8``, ``λ from 0 at the first layer to 1 at the last, …``, ``λ = 0 on
    self_attn, 0.8 elsewhere``: ``setting_words`` after the parameter's symbol."""
    words = setting_words(setting, default=default, per_slice=per_slice)
    return f"{symbol} {words}" if words.startswith("from ") else f"{symbol} = {words}"


def is_plain_number(setting: Any, number: float | None = None) -> bool:
    """Whether a setting is one number (and, given ``number``, that number)."""
    setting = _plain(setting)
    if isinstance(setting, list) and len(setting) == 1:
        setting = setting[0]
    return is_number(setting) and (number is None or setting == number)

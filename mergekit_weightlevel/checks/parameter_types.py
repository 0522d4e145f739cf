"""Parameter types of the merge methods, whose validators run when mergekit plans a merge.

mergekit validates every resolved parameter value with pydantic before any tensor is
loaded or written. These types add the checks and messages of this package: ranges and
allowed strings named with the method and the parameter, required parameters that say how
to set them; ``describe_type`` reads them back for `mergekit-weightlevel methods`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, get_args, get_origin

from pydantic import AfterValidator


@dataclass(frozen=True)
class Range:
    """Metadata on a bounded float parameter type, read by ``describe_type``."""

    ge: float | None = None
    le: float | None = None

    def __str__(self) -> str:
        low = "(-inf" if self.ge is None else f"[{self.ge:g}"
        high = "inf)" if self.le is None else f"{self.le:g}]"
        return f"float in {low}, {high}"


@dataclass(frozen=True)
class Choices:
    """Metadata on a string parameter type limited to a few values."""

    allowed: tuple[str | None, ...]

    def __str__(self) -> str:
        return " | ".join("(none)" if a is None else a for a in self.allowed)


def bounded_float(
    method: str, parameter: str, *, ge: float | None = None, le: float | None = None
) -> Any:
    """A float parameter type whose range is checked when mergekit plans the merge.

    mergekit validates every resolved parameter value with pydantic before any tensor
    is loaded or written, so a bad ``lambda`` fails in seconds, not after the merge.
    """

    bounds = Range(ge, le)

    def check(value: float) -> float:
        low_ok = ge is None or value >= ge
        high_ok = le is None or value <= le
        if not (low_ok and high_ok and math.isfinite(value)):  # NaN and ±inf: never a weight
            raise ValueError(
                f"{method}: parameter `{parameter}` must be a {bounds}, got {value!r}. "
                f"Set `{parameter}` in the `parameters:` of your merge config to a value in range."
            )
        return value

    return Annotated[float, AfterValidator(check), bounds]


@dataclass(frozen=True)
class Required:
    """Metadata on a parameter type that must be given although its spec default is None."""


def required_bounded_float(method: str, parameter: str, *, ge: float, le: float) -> Any:
    """A float parameter with no default, checked (presence and range) when mergekit plans.

    mergekit's own "required" parameters fail with a message that does not name the merge
    method. This type is declared with ``default=None`` instead, so mergekit hands the
    missing value to our validator, which names the method and the parameter.
    """
    bounds = Range(ge, le)
    in_range = bounded_float(method, parameter, ge=ge, le=le)

    def check_given(value: float | None) -> float | None:
        if value is None:
            raise ValueError(
                f"{method}: parameter `{parameter}` is required (a {bounds}) and no value "
                f"applies to this tensor. Set `{parameter}` in the `parameters:` of your merge "
                "config; with filters, end the list with a catch-all `- value: ...`."
            )
        return value

    return Annotated[in_range | None, AfterValidator(check_given), bounds, Required()]


def is_required(value_type: Any) -> bool:
    """Whether a parameter type carries the `Required` marker of `required_bounded_float`."""
    return get_origin(value_type) is Annotated and any(
        isinstance(meta, Required) for meta in get_args(value_type)[1:]
    )


def choice(method: str, parameter: str, allowed: Sequence[str | None]) -> Any:
    """A string parameter limited to ``allowed``, with a message naming method and parameter."""
    shown = ", ".join(repr(a) for a in allowed if a is not None)
    if None in allowed:
        shown += " (or left unset)"

    def check(value: str | None) -> str | None:
        if value not in allowed:
            raise ValueError(
                f"{method}: parameter `{parameter}` must be one of {shown}, got {value!r}."
            )
        return value

    return Annotated[str | None, AfterValidator(check), Choices(tuple(allowed))]


def describe_type(value_type: Any) -> str:
    """A short human reading of a parameter's type, for `mergekit-weightlevel methods`."""
    origin = get_origin(value_type)
    if origin is Annotated:
        for meta in get_args(value_type)[1:]:
            if isinstance(meta, (Range, Choices)):
                return str(meta)
        return describe_type(get_args(value_type)[0])
    if origin is Literal:
        return " | ".join(str(a) for a in get_args(value_type))
    if origin is not None:
        args = [describe_type(a) for a in get_args(value_type) if a is not type(None)]
        return " | ".join(args) + (" (optional)" if type(None) in get_args(value_type) else "")
    return getattr(value_type, "__name__", str(value_type))


def is_numeric(value_type: Any) -> bool:
    """Whether a parameter takes a number (a float, or a bounded float of this module)."""
    if value_type in (float, int):
        return True
    if get_origin(value_type) is Annotated:
        meta = get_args(value_type)[1:]
        return any(isinstance(m, Range) for m in meta) or is_numeric(get_args(value_type)[0])
    return False

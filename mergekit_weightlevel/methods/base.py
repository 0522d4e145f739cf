"""What the four merge methods share: error messages, parameter checks, roles, dtypes.

Each method is a mergekit ``GroupMergeMethod`` with a declarative ``MergeMethodSpec``
(see ``paramdelta.py`` for the smallest one). This module keeps the parts that would
otherwise be written four times.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, get_args, get_origin

import torch
from mergekit.merge_methods.base import (
    GroupMergeMethod,
    MergeMethodSpec,
    PerInputValues,
    TensorEntry,
    TensorGroup,
)
from pydantic import AfterValidator


@dataclass(frozen=True)
class Range:
    """Metadata on a bounded float parameter type, read by ``describe_type``."""

    ge: float | None = None
    le: float | None = None

    def __str__(self) -> str:
        low = "-inf" if self.ge is None else f"{self.ge:g}"
        high = "inf" if self.le is None else f"{self.le:g}"
        return f"float in [{low}, {high}]"


@dataclass(frozen=True)
class Choices:
    """Metadata on a string parameter type limited to a few values."""

    allowed: tuple[str | None, ...]

    def __str__(self) -> str:
        return " | ".join("(none)" if a is None else a for a in self.allowed)


class WeightLevelConfigError(ValueError):
    """A merge configuration this package cannot run; the message says how to fix it."""


def model_label(model_id: Hashable) -> str:
    """How a model is named in messages: the path / Hub id mergekit was given."""
    return str(model_id)


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
        if not (low_ok and high_ok and value == value):  # value == value rejects NaN
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


@dataclass(frozen=True)
class RoleSplit:
    """A tensor group sorted by role: the base, the model receiving deltas, the donors."""

    base: TensorEntry
    target: TensorEntry
    donors: tuple[TensorEntry, ...]


ROLE_TARGET = "target"
ROLE_DONOR = "donor"
ROLES = (None, ROLE_TARGET, ROLE_DONOR)


def split_roles(group: TensorGroup, role: PerInputValues, *, method: str, usage: str) -> RoleSplit:
    """Sort a group into base / target / donors, or explain what is wrong with the roles.

    ``role`` is a per-input parameter (the base included, so that a role put on the
    base by mistake is seen instead of silently ignored). ``usage`` is one line that
    says how the method expects its models to be configured.
    """
    base = group.base
    tensor = group.metadata.name or "<tensor>"
    if base is None:
        raise WeightLevelConfigError(f"{method}: no base_model for tensor {tensor}. {usage}")
    if role.get(base.id) is not None:
        raise WeightLevelConfigError(
            f"{method}: the base model {model_label(base.id)} has `role: {role[base.id]}`, "
            f"but the base cannot take a role. {usage}"
        )
    targets = [e for e in group.non_base if role.get(e.id) == ROLE_TARGET]
    donors = tuple(e for e in group.non_base if role.get(e.id) != ROLE_TARGET)
    if not targets:
        raise WeightLevelConfigError(
            f"{method}: no model has `role: target` (models: "
            f"{', '.join(model_label(e.id) for e in group.non_base)}). {usage}"
        )
    if len(targets) > 1:
        raise WeightLevelConfigError(
            f"{method}: {len(targets)} models have `role: target` "
            f"({', '.join(model_label(e.id) for e in targets)}); exactly one may. {usage}"
        )
    if not donors:
        raise WeightLevelConfigError(
            f"{method}: no donor model besides the target {model_label(targets[0].id)}. {usage}"
        )
    return RoleSplit(base=base, target=targets[0], donors=donors)


def compute_dtype(group: TensorGroup) -> torch.dtype:
    """float32 at least; float64 when an input is float64 (never half precision)."""
    if any(entry.tensor.dtype == torch.float64 for entry in group.entries):
        return torch.float64
    return torch.float32


class WeightLevelMethod(GroupMergeMethod):
    """A group merge method whose input-structure errors name the method and the fix."""

    spec: MergeMethodSpec
    #: One sentence on how the models must be configured, appended to every error.
    usage: str = ""

    def validate_inputs(
        self,
        input_ids: Sequence[Hashable],
        base_id: Hashable | None = None,
        *,
        group_name: str | None = None,
    ) -> None:
        try:
            super().validate_inputs(input_ids, base_id, group_name=group_name)
        except ValueError as error:
            models = ", ".join(model_label(i) for i in input_ids) or "none"
            base = model_label(base_id) if base_id is not None else "none"
            raise WeightLevelConfigError(
                f"{self.spec.name}: {error} (base_model: {base}; models: {models}). {self.usage}"
            ) from None

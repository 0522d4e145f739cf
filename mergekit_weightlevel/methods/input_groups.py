"""The groups of inputs a merge config asks mergekit to merge together, and each input's role.

mergekit merges each group on its own: the top-level ``models:`` (with ``base_model`` added
when it is not listed), each slice's sources, each module's models or slices. The methods'
whole-config checks (``WeightLevelMethod.check_config_structure``) read these groups before
any tensor is, so that a config that cannot merge fails before mergekit creates the output
folder, instead of while it plans or at its first tensor.

A per-input parameter such as ``role`` is resolved as mergekit resolves it
(``ConfigReader.parameter_sources``): the input's own entry, then the slice's, the module's
and the top-level ``parameters:``. A role set with filters or a layer gradient depends on
the tensor; it is ``PER_TENSOR`` here, and checked per tensor while merging.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

#: A parameter whose value depends on the tensor (filters, a layer gradient).
PER_TENSOR = "<set per tensor>"


@dataclass(frozen=True)
class InputGroup:
    """One group of inputs merged together, with where it is in the config (for messages)."""

    where: str
    base: Hashable | None
    #: every input of the group, the base included where the group has it
    inputs: tuple[Hashable, ...]
    #: each input's resolved `role` (None: no role; ``PER_TENSOR``: set per tensor)
    roles: Mapping[Hashable, Any]

    @property
    def non_base(self) -> list[Hashable]:
        return [model for model in self.inputs if model != self.base]


def _plain(setting: Any) -> Any:
    """A setting's value when it is one plain value; ``PER_TENSOR`` otherwise."""
    return setting if setting is None or isinstance(setting, (str, int, float)) else PER_TENSOR


def _resolved(parameter: str, scopes: list[Mapping[str, Any] | None]) -> Any:
    """The first scope (highest precedence first) that sets ``parameter``, as a plain value."""
    for scope in scopes:
        if scope and scope.get(parameter) is not None:
            return _plain(scope[parameter])
    return None


def _models_group(
    where: str, models: list[Any], base: Hashable | None, outer: list[Mapping[str, Any] | None]
) -> InputGroup:
    inputs = [entry.model for entry in models]
    roles = {entry.model: _resolved("role", [entry.parameters, *outer]) for entry in models}
    if base is not None and base not in inputs:  # mergekit adds the base (plan.py)
        inputs.append(base)
        roles[base] = _resolved("role", outer)
    return InputGroup(where, base, tuple(inputs), roles)


def _slice_groups(
    where: str, slices: list[Any], base: Hashable | None, outer: list[Mapping[str, Any] | None]
) -> Iterator[InputGroup]:
    for index, output_slice in enumerate(slices):
        scopes = [output_slice.parameters, *outer]
        inputs = tuple(source.model for source in output_slice.sources)
        roles = {s.model: _resolved("role", [s.parameters, *scopes]) for s in output_slice.sources}
        slice_base = output_slice.base_model or base
        yield InputGroup(f"{where}slice {index}", slice_base, inputs, roles)


def input_groups(merge_config: Any) -> list[InputGroup]:
    """Every group of inputs of a ``MergeConfiguration``, in the config's order."""
    base = merge_config.base_model
    top = [merge_config.parameters]
    groups: list[InputGroup] = []
    if merge_config.models:
        groups.append(_models_group("`models:`", merge_config.models, base, top))
    if merge_config.slices:
        groups += _slice_groups("", merge_config.slices, base, top)
    for name, module in (merge_config.modules or {}).items():
        outer = [module.parameters, *top]
        if module.models:
            groups.append(_models_group(f"module {name}", module.models, base, outer))
        if module.slices:
            groups += _slice_groups(f"module {name}, ", module.slices, base, outer)
    return groups

"""Parameter names and values of a whole merge config, checked before anything is loaded.

mergekit reads only the parameters a method declares: a misspelt one (``lamda: 0.5``) is
silently ignored and the default used, which writes a model nobody asked for. And a value
of the wrong type fails deep in planning with a pydantic message that names neither the
method nor the parameter. ``check_parameters`` looks at every ``parameters:`` block of a
config for one of this package's methods and reports both, naming the method, the
parameter, where it was set, and the fix.

It also refuses a shared parameter (one setting for the whole merge, such as ``lambda`` or
``include``) written under a model, where mergekit never reads it, and a required shared
parameter the config sets nowhere. It runs on every entry point (``running.config_checks``).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from typing import Any

from mergekit.config import ConditionalParameter, MergeConfiguration
from mergekit.merge_methods.base import ParameterScope
from pydantic import ValidationError

from mergekit_weightlevel.checks.parameter_types import describe_type, is_required
from mergekit_weightlevel.errors import WeightLevelConfigError

TOP_LEVEL = "the top-level `parameters:`"
#: How ``parameter_blocks`` starts the place of one model's parameters.
MODEL_BLOCK = "the parameters of model"
#: Parameters about the output folder as a whole (``output_files``): no filters, no gradients.
WHOLE_MERGE_PARAMETERS = ("config_from", "tokenizer_from")


def _slice_name(index: int, output_slice: Any) -> str:
    """``slice 0 (layers 0 to 11)``: a slice by its index and the layers it takes."""
    first, end = output_slice.sources[0].layer_range
    layers = f"layer {first}" if end - first == 1 else f"layers {first} to {end - 1}"
    return f"slice {index} ({layers})"


def parameter_blocks(config: Any, where: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """(where it is, the block) for every non-empty ``parameters:`` of a config or module."""
    prefix = f"{where}, " if where else ""
    if getattr(config, "parameters", None):
        here = f"the `parameters:` of {where}" if where else TOP_LEVEL
        yield here, config.parameters
    for model in getattr(config, "models", None) or []:
        if model.parameters:
            yield f"{prefix}{MODEL_BLOCK} {model.model}", model.parameters
    for index, output_slice in enumerate(getattr(config, "slices", None) or []):
        name = _slice_name(index, output_slice)
        if output_slice.parameters:
            yield f"{prefix}the parameters of {name}", output_slice.parameters
        for source in output_slice.sources:
            if source.parameters:
                yield f"{prefix}{MODEL_BLOCK} {source.model} in {name}", source.parameters
    for name, module in (getattr(config, "modules", None) or {}).items():
        yield from parameter_blocks(module, f"module {name}")


def is_model_block(where: str) -> bool:
    """Whether a ``parameter_blocks`` place is one model's (or slice source's) parameters."""
    return where.startswith(MODEL_BLOCK) or f", {MODEL_BLOCK}" in where


def _set_for_every_group(config: Any, parameter: str) -> bool:
    """Whether a shared parameter is set where mergekit reads it for every group of inputs:
    the top level, or every slice's (a module's) parameters."""
    if parameter in (getattr(config, "parameters", None) or {}):
        return True
    slices = getattr(config, "slices", None) or []
    modules = (getattr(config, "modules", None) or {}).values()
    if not slices and not modules:
        return False
    return all(parameter in (s.parameters or {}) for s in slices) and all(
        _set_for_every_group(module, parameter) for module in modules
    )


def leaf_values(setting: Any) -> Iterator[Any]:
    """The plain values in a setting: itself, a gradient's points, each filter's value."""
    if isinstance(setting, ConditionalParameter):
        yield from leaf_values(setting.value)
    elif isinstance(setting, list):
        for element in setting:
            yield from leaf_values(element)
    else:
        yield setting


def _reason(error: ValidationError) -> str:
    message = str(error.errors()[0].get("msg", error))
    return message.removeprefix("Value error, ")


def check_parameters(config: MergeConfiguration, method: Any) -> None:
    """Raise ``WeightLevelConfigError`` for an unknown parameter name or a value of the wrong type."""
    specs = {spec.name: spec for spec in method.spec.parameters}
    name = method.spec.name
    accepted = ", ".join(f"`{n}`" for n in specs)
    for where, block in parameter_blocks(config):
        for parameter, setting in block.items():
            spec = specs.get(parameter)
            if spec is None:
                close = difflib.get_close_matches(parameter, specs, n=1)
                hint = f"Did you mean `{close[0]}`? " if close else ""
                raise WeightLevelConfigError(
                    f"{name}: unknown parameter `{parameter}` in {where}. {hint}{name} takes "
                    f"{accepted}. (mergekit would ignore it and use the default silently.)"
                )
            if parameter in WHOLE_MERGE_PARAMETERS and (
                where != TOP_LEVEL or not isinstance(setting, str)
            ):
                raise WeightLevelConfigError(
                    f"{name}: parameter `{parameter}` in {where} must be one model name (as "
                    "written in the config) or `base`, set once in the top-level "
                    f"`parameters:`: it chooses the files of the whole output, not of a tensor."
                )
            if spec.scope == ParameterScope.SHARED and is_model_block(where):
                raise WeightLevelConfigError(
                    f"{name}: parameter `{parameter}` in {where} is one setting for the whole "
                    "merge, and mergekit never reads such a parameter from a model's "
                    "`parameters:` (it would use the top-level value or the default there). "
                    f"Move `{parameter}` to the top-level `parameters:` (or a slice's)."
                )
            for value in leaf_values(setting):
                try:
                    spec.validate(value)
                except ValidationError as error:
                    reason = _reason(error)
                    if reason.startswith(f"{name}: "):
                        raise WeightLevelConfigError(f"{reason} (set in {where})") from None
                    raise WeightLevelConfigError(
                        f"{name}: parameter `{parameter}` in {where} must be a "
                        f"{describe_type(spec.value_type)}, got {value!r} ({reason})."
                    ) from None
    for spec in method.spec.parameters:
        required = spec.required or is_required(spec.value_type)
        shared = spec.scope == ParameterScope.SHARED
        if required and shared and not _set_for_every_group(config, spec.name):
            raise WeightLevelConfigError(
                f"{name}: parameter `{spec.name}` is required (a "
                f"{describe_type(spec.value_type)}) and the config does not set it. Add "
                f"`{spec.name}: …` to the top-level `parameters:` of the merge config."
            )

"""Shadow-FT (arXiv 2505.12716): tune the Base, graft the update onto the Instruct.

Full-weight path (the official ``apply_diff.py``):

    W_I⁺ = W_I + Σ_d α_d · (W_B⁺_d − W_B)      on tensors whose name matches ``include``
    W_I⁺ = W_I                                 on every other tensor (bit-identical)

``base_model`` is W_B, the model with ``role: target`` is the Instruct W_I, every other
model is a tuned base W_B⁺ (a donor, with ``weight`` α). ``include`` is a regular
expression searched case-insensitively in the tensor name; its default selects the
weights and biases of the attention and MLP projections: on Llama-style names exactly the
seven of the official script, on GPT-2, GPT-NeoX and Starcoder2 their own names
(``tensor_names.DEFAULT_PROJECTIONS``). Before the first tensor, an ``include`` that
matches none of the target's ≥2-D tensors is an error, and one that takes some projection
kinds of a layer but not others (attention without MLP) a warning.

LoRA path (``adapter``): a PEFT LoRA adapter trained on W_B is read per tensor and
``adapter_weight · scaling · B @ A`` is added to W_I, with no donor, no merged copy of
the base and (when ``base_model`` is left out) without reading W_B at all.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Mapping
from typing import Annotated, Any

import torch
from mergekit.merge_methods.base import (
    BasePolicy,
    InputContract,
    MergeMethodSpec,
    ParameterScope,
    ParameterSpec,
    PerInputValues,
    TensorEntry,
    TensorGroup,
)
from pydantic import AfterValidator

from mergekit_weightlevel.checks.grafting import (
    check_adapter_targets,
    check_include,
    merged_tensor_names,
    warn_if_other_base,
)
from mergekit_weightlevel.checks.parameter_types import choice
from mergekit_weightlevel.errors import package_logger
from mergekit_weightlevel.methods.base import (
    ROLE_TARGET,
    ROLES,
    WeightLevelConfigError,
    WeightLevelMethod,
    compute_dtype,
    model_label,
    sort_roles,
    split_roles,
)
from mergekit_weightlevel.methods.input_groups import PER_TENSOR, InputGroup, input_groups
from mergekit_weightlevel.methods.merge_run import current_run
from mergekit_weightlevel.methods.paramdelta import paramdelta as add_deltas
from mergekit_weightlevel.methods.shadow_graft.declaration import DECLARATION, NAME
from mergekit_weightlevel.methods.shadow_graft.lora import LoraAdapter, open_adapter
from mergekit_weightlevel.tensor_names import (
    DEFAULT_PROJECTIONS,
    OFFICIAL_PROJECTIONS,
)

#: The attention and MLP projections, weights and biases: the official apply_diff.py's
#: `(q|k|v|o|gate|up|down)_proj` on Llama-style names, and the same projections under the
#: GPT-2 / GPT-NeoX / Starcoder2 / Mixtral names (docs/architectures.md).
DEFAULT_INCLUDE = DEFAULT_PROJECTIONS

logger = package_logger(__name__)


def _check_regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as error:
        raise ValueError(
            f"{NAME}: parameter `include` is not a valid regular expression ({error}): "
            f"{value!r}. Example: include: '{OFFICIAL_PROJECTIONS}', or '.*' to graft every "
            "tensor; leave it out for every attention and MLP projection."
        ) from None
    return value


def _check_adapter(value: str | None) -> str | None:
    # Opening it here makes a bad adapter fail when mergekit plans, before any tensor.
    if value is not None:
        open_adapter(value)
    return value


IncludeRegex = Annotated[str, AfterValidator(_check_regex)]
AdapterPath = Annotated[str | None, AfterValidator(_check_adapter)]


class ShadowGraftMerge(WeightLevelMethod):
    """W_I + Σ α · (W_B⁺ − W_B) on the projections: train on the Base, run on the Instruct."""

    declaration = DECLARATION

    spec = MergeMethodSpec(
        name=NAME,
        pretty_name=DECLARATION.display_name,
        reference_url=DECLARATION.paper.url,
        # The base is optional only for the `adapter` path; merge_group enforces the rest.
        contract=InputContract(base=BasePolicy.OPTIONAL, min_non_base=1),
        parameters=(
            ParameterSpec(
                "role",
                choice(NAME, "role", ROLES),
                ParameterScope.INPUT,
                default=None,
                description="`target` for the Instruct W_I (receives the update); tuned bases W_B⁺ need no role",
            ),
            ParameterSpec(
                "weight",
                float,
                ParameterScope.NON_BASE,
                default=1.0,
                description="α, scale of this tuned base's update (W_B⁺ − W_B); ignored on the target",
            ),
            ParameterSpec(
                "include",
                IncludeRegex,
                ParameterScope.SHARED,
                default=DEFAULT_INCLUDE,
                description="regex searched (case-insensitive) in tensor names: which tensors get the donors' update (default: the attention and MLP projections); '.*' for all",
            ),
            ParameterSpec(
                "adapter",
                AdapterPath,
                ParameterScope.SHARED,
                default=None,
                description="local PEFT LoRA adapter trained on the base, grafted onto the target instead of donors",
            ),
            ParameterSpec(
                "adapter_weight",
                float,
                ParameterScope.SHARED,
                default=1.0,
                description="scale of the adapter's update adapter_weight · scaling · B @ A",
            ),
        ),
    )
    usage = (
        "shadow_graft needs the Instruct W_I with `parameters: {role: target}` and either "
        "(a) `base_model:` W_B plus one or more tuned bases W_B⁺ as donor models, or "
        "(b) a shared `adapter:` (a PEFT LoRA adapter trained on W_B) and no donors; "
        "`base_model:` is optional in (b)."
    )

    def merge_group(self, group: TensorGroup, /, **parameters: Any) -> torch.Tensor:
        if parameters["adapter"] is None:
            return self._graft_donors(group, parameters)
        return self._graft_adapter(group, parameters)

    # --- the full-weight path --------------------------------------------------------

    def _graft_donors(self, group: TensorGroup, parameters: dict[str, Any]) -> torch.Tensor:
        roles = split_roles(group, parameters["role"], method=NAME, usage=self.usage)
        check_include_once(parameters["include"], roles.target.id)
        if not re.search(parameters["include"], tensor_name(group), flags=re.IGNORECASE):
            return roles.target.tensor
        weight: PerInputValues = parameters["weight"]
        return add_deltas(
            roles.target.tensor,
            roles.base.tensor,
            [(d.tensor, weight[d.id]) for d in roles.donors],
            compute_dtype=compute_dtype(group),
        )

    # --- the adapter path ------------------------------------------------------------

    def _graft_adapter(self, group: TensorGroup, parameters: dict[str, Any]) -> torch.Tensor:
        target = self._adapter_target(group, parameters["role"])
        adapter = open_adapter(parameters["adapter"])
        check_adapter_fits(adapter, target.id, group.base)
        return graft_adapter(
            target.tensor,
            adapter,
            tensor_name(group),
            adapter_weight=parameters["adapter_weight"],
            base=None if group.base is None else group.base.tensor,
            compute_dtype=compute_dtype(group),
        )

    def _adapter_target(self, group: TensorGroup, role: PerInputValues) -> TensorEntry:
        """The one model receiving the adapter (``adapter_target``)."""
        by_id = {entry.id: entry for entry in group.non_base}
        base = None if group.base is None else group.base.id
        return by_id[adapter_target(base, role, list(by_id), usage=self.usage)]

    # --- the whole-config checks (``running.config_checks``) ----------------------------

    def check_group_roles(self, group: InputGroup, merge_config: Any) -> None:
        if isinstance(_top_level(merge_config, "adapter"), str):
            adapter_target(group.base, group.roles, group.non_base, usage=self.usage)
        else:
            super().check_group_roles(group, merge_config)

    def check_config_inputs(self, merge_config: Any) -> None:
        """An `include` that matches none of a target's tensors, before the first tensor."""
        include = _top_level(merge_config, "include", DEFAULT_INCLUDE)
        if _top_level(merge_config, "adapter") is not None or not isinstance(include, str):
            return
        for group in input_groups(merge_config):
            if PER_TENSOR in group.roles.values():
                continue
            target, _ = sort_roles(
                group.base, group.roles, group.non_base, method=NAME, usage=self.usage
            )
            if getattr(target, "lora", None) is None:  # a model+adapter is built while merging
                check_include_once(include, target)


def _top_level(merge_config: Any, parameter: str, default: Any = None) -> Any:
    """A shared parameter's top-level setting (slices may override it per tensor)."""
    return (merge_config.parameters or {}).get(parameter, default)


def adapter_target(
    base: Hashable | None, role: Mapping[Hashable, Any], non_base: list[Hashable], *, usage: str
) -> Hashable:
    """The one model receiving the adapter; the adapter path takes no donors."""
    if base is not None and role.get(base) is not None:
        raise WeightLevelConfigError(
            f"{NAME}: the base model {model_label(base)} has `role: {role[base]}`, but the base "
            f"cannot take a role. {usage}"
        )
    targets = [m for m in non_base if role.get(m) == ROLE_TARGET]
    others = [m for m in non_base if role.get(m) != ROLE_TARGET]
    if len(targets) != 1:
        raise WeightLevelConfigError(
            f"{NAME}: with `adapter` set, exactly one model must have `role: target` "
            f"(the Instruct that receives the adapter); found {len(targets)} among "
            f"{', '.join(model_label(m) for m in non_base)}. {usage}"
        )
    if others:
        raise WeightLevelConfigError(
            f"{NAME}: with `adapter` set, donor models are not used, but "
            f"{', '.join(model_label(m) for m in others)} is listed as one. Remove "
            "it, or drop `adapter` to graft the donors' full-weight updates. "
            f"{usage}"
        )
    return targets[0]


def tensor_name(group: TensorGroup) -> str:
    if not group.metadata.name:
        raise WeightLevelConfigError(
            f"{NAME}: the tensor has no name, but shadow_graft selects tensors by name. "
            "Pass tensor names (e.g. merge_state_dicts, or merge_tensors(..., name=...))."
        )
    return group.metadata.name


def graft_adapter(
    target: torch.Tensor,
    adapter: LoraAdapter,
    name: str,
    *,
    adapter_weight: float = 1.0,
    base: torch.Tensor | None = None,
    compute_dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """target + adapter_weight · (scaling · B @ A [+ (full − base)]), in ``compute_dtype``.

    Tensors the adapter does not touch are returned as they are (bit-identical).
    """
    full = adapter.full_weight(name)
    if name not in adapter.modules and full is None:
        return target
    out = target.to(compute_dtype, copy=True)
    if name in adapter.modules:
        adapter.check_shape(name, tuple(target.shape))
        out.add_(adapter.delta(name, compute_dtype), alpha=adapter_weight)
    if full is not None:
        if base is None:
            raise _needs_base(adapter)
        if full.shape != target.shape:
            raise WeightLevelConfigError(
                f"{NAME}: adapter {adapter.path}: its saved {name} has shape "
                f"{list(full.shape)}, the model's {list(target.shape)}."
            )
        out.add_(full.to(compute_dtype) - base.to(compute_dtype), alpha=adapter_weight)
    return out.to(target.dtype)


def _needs_base(adapter: LoraAdapter) -> WeightLevelConfigError:
    return WeightLevelConfigError(
        f"{NAME}: adapter {adapter.path} saves whole tensors "
        f"({', '.join(sorted(adapter.full_weights))}: `modules_to_save`, embedding layers "
        "saved with `save_embedding_layers`, or `bias: all`). Their update can only be "
        "grafted as a difference against the base the adapter was trained on: set "
        "`base_model:` to that base, or re-save the adapter without them."
    )


# --- the checks before the first tensor, once per merge (``checks.grafting``) ------------


def check_adapter_fits(adapter: LoraAdapter, target_id: Hashable, base: TensorEntry | None) -> None:
    """Before the first tensor: full weights have a base to diff against; every adapted
    tensor exists in the target with the right shape; the adapter's base is the configured one."""
    if not current_run().first_time(("adapter", id(adapter), target_id, base and base.id)):
        return
    if adapter.full_weights and base is None:
        raise _needs_base(adapter)
    check_adapter_targets(adapter, target_id, method=NAME)
    if base is not None:
        warn_if_other_base(adapter, base.id, method=NAME)


def check_include_once(include: str, target_id: Hashable) -> None:
    """``checks.grafting.check_include`` against the target's tensors, before its first one."""
    if not current_run().first_time(("include", include, target_id)):
        return
    names = merged_tensor_names(target_id, method=NAME)
    if names is not None:
        check_include(include, names, model_label(target_id), method=NAME)


shadow_graft_method = ShadowGraftMerge()

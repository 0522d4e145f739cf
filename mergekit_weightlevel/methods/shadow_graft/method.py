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

import difflib
import logging
import os
import re
from collections import defaultdict
from collections.abc import Hashable
from pathlib import Path
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

from mergekit_weightlevel.checks.headers import read_headers
from mergekit_weightlevel.checks.parameter_types import choice
from mergekit_weightlevel.methods.base import (
    ROLE_TARGET,
    ROLES,
    WeightLevelConfigError,
    WeightLevelMethod,
    compute_dtype,
    model_label,
    split_roles,
)
from mergekit_weightlevel.methods.paramdelta import paramdelta as add_deltas
from mergekit_weightlevel.methods.shadow_graft.lora import LoraAdapter, open_adapter
from mergekit_weightlevel.tensor_names import (
    DEFAULT_PROJECTIONS,
    OFFICIAL_PROJECTIONS,
    PROJECTION_TYPES,
    layer_index,
    mergekit_layout,
    module_type,
    split_parameter,
)

NAME = "shadow_graft"
#: The attention and MLP projections, weights and biases: the official apply_diff.py's
#: `(q|k|v|o|gate|up|down)_proj` on Llama-style names, and the same projections under the
#: GPT-2 / GPT-NeoX / Starcoder2 / Mixtral names (docs/architectures.md).
DEFAULT_INCLUDE = DEFAULT_PROJECTIONS

logger = logging.getLogger(__name__)


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

    spec = MergeMethodSpec(
        name=NAME,
        pretty_name="Shadow-FT",
        reference_url="https://arxiv.org/abs/2505.12716",
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
        """The one model receiving the adapter; the adapter path takes no donors."""
        if group.base is not None and role.get(group.base.id) is not None:
            raise WeightLevelConfigError(
                f"{NAME}: the base model {model_label(group.base.id)} has `role: "
                f"{role[group.base.id]}`, but the base cannot take a role. {self.usage}"
            )
        targets = [e for e in group.non_base if role.get(e.id) == ROLE_TARGET]
        others = [e for e in group.non_base if role.get(e.id) != ROLE_TARGET]
        if len(targets) != 1:
            raise WeightLevelConfigError(
                f"{NAME}: with `adapter` set, exactly one model must have `role: target` "
                f"(the Instruct that receives the adapter); found {len(targets)} among "
                f"{', '.join(model_label(e.id) for e in group.non_base)}. {self.usage}"
            )
        if others:
            raise WeightLevelConfigError(
                f"{NAME}: with `adapter` set, donor models are not used, but "
                f"{', '.join(model_label(e.id) for e in others)} is listed as one. Remove "
                "it, or drop `adapter` to graft the donors' full-weight updates. "
                f"{self.usage}"
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


# --- checks of the adapter against the models, once per (adapter, target, base) ------

_checked: set[tuple[int, Hashable, Hashable]] = set()


def check_adapter_fits(adapter: LoraAdapter, target_id: Hashable, base: TensorEntry | None) -> None:
    """Before the first tensor: every adapted tensor exists in the target, shapes match,
    full weights have a base to diff against, and the adapter's base is the configured one."""
    key = (id(adapter), target_id, None if base is None else base.id)
    if key in _checked:
        return
    if adapter.full_weights and base is None:
        raise _needs_base(adapter)
    shapes = checkpoint_shapes(target_id)
    if shapes is not None:
        missing = [name for name in adapter.targets() if name not in shapes]
        if missing:
            raise WeightLevelConfigError(
                f"{NAME}: adapter {adapter.path} changes tensors that the target "
                f"{model_label(target_id)} does not have: {', '.join(missing[:8])}"
                f"{' ...' if len(missing) > 8 else ''}. Was it trained on another architecture?"
            )
        for name in adapter.modules:
            if shapes[name] is not None:
                adapter.check_shape(name, shapes[name])
    if base is not None:
        warn_if_other_base(adapter, base.id)
    _checked.add(key)


def checkpoint_shapes(model_id: Hashable) -> dict[str, tuple[int, ...] | None] | None:
    """Tensor names (and shapes, from safetensors headers) of a model mergekit is reading.

    None when the id is not a mergekit model (the in-memory API): then only the
    tensors the merge visits are checked, one at a time.
    """
    # Imported here: mergekit.common pulls in mergekit.io, which the package import must
    # not (it warns under numpy 2, and registration has to stay light).
    from mergekit.common import ModelReference
    from mergekit.io.tasks import LoaderCache

    if not isinstance(model_id, ModelReference):
        return None
    index = LoaderCache().get(model_id).index
    shapes: dict[str, tuple[int, ...] | None] = dict.fromkeys(index.tensor_paths)
    if index.is_safetensors:
        headers = read_headers(Path(index.base_path), f"{NAME}: model {model_id}")
        shapes.update({name: header.shape for name, header in headers.items()})
    return shapes


# --- does `include` select what it was meant to? (once per regex and target) -----------

_include_checked: set[tuple[str, Hashable]] = set()

#: How many tensor names an `include` error or warning shows.
SHOWN_NAMES = 5


def check_include_once(include: str, target_id: Hashable) -> None:
    """``check_include`` against the target's tensors, before its first tensor is grafted."""
    key = (include, target_id)
    if key in _include_checked:
        return
    names = merged_tensor_names(target_id)
    if names is not None:
        check_include(include, names, model_label(target_id))
    _include_checked.add(key)


def merged_tensor_names(model_id: Hashable) -> dict[str, int | None] | None:
    """Name → number of dimensions (None: unknown) of the tensors mergekit will merge.

    These are the names ``include`` is matched against: mergekit's layout
    (``tensor_names.mergekit_layout``: transformers 5's stacked experts, not the per-expert
    names of the checkpoint), or the checkpoint's own names where that cannot be found.
    None for the in-memory API.
    """
    shapes = checkpoint_shapes(model_id)
    if shapes is None:
        return None
    stored = {name: None if shape is None else len(shape) for name, shape in shapes.items()}
    try:
        from mergekit.io.tasks import LoaderCache

        trust_remote_code = LoaderCache().trust_remote_code
        config = model_id.config(trust_remote_code=trust_remote_code)
        layout = mergekit_layout(config, stored, trust_remote_code)
    except Exception:  # noqa: BLE001 - no usable config: the checkpoint's names it is
        return stored
    return {name: stored.get(name) for name in layout}  # converted (stacked): ndim unknown


def check_include(include: str, names: dict[str, int | None], model: str) -> None:
    """Raise when ``include`` matches none of the ≥2-D tensors; warn when, in some layer,
    it takes some projection kinds (module types) and leaves others out."""
    matrices = [name for name, ndim in names.items() if ndim is None or ndim >= 2]
    matched = [name for name in matrices if re.search(include, name, flags=re.IGNORECASE)]
    if matrices and not matched:
        raise WeightLevelConfigError(
            f"{NAME}: parameter `include` ({include!r}) matches none of the "
            f"{len(matrices)} ≥2-D tensors that mergekit merges for the target {model} "
            "(by mergekit's names: MoE experts are stacked, e.g. `mlp.experts.gate_up_proj`), "
            "so nothing would be grafted. Tensors it could have meant: "
            f"{', '.join(_close_names(include, matrices))}. "
            "Fix the regex (it is searched, case-insensitive, in each tensor name), or leave "
            "`include` out to graft every attention and MLP projection."
        )
    kinds: dict[int, set[str]] = defaultdict(set)
    taken: dict[int, set[str]] = defaultdict(set)
    examples: dict[str, str] = {}
    for name in matrices:
        kind, layer = module_type(name), layer_index(name)
        if layer is None or kind not in PROJECTION_TYPES:
            continue
        kinds[layer].add(kind)
        examples.setdefault(kind, name)
        if re.search(include, name, flags=re.IGNORECASE):
            taken[layer].add(kind)
    left_out = sorted({k for layer in taken for k in kinds[layer] - taken[layer] if taken[layer]})
    if left_out:
        grafted = sorted(set().union(*taken.values()))
        logger.warning(
            "%s: `include` %r grafts the %s projections of the target %s's layers but leaves "
            "out their %s projections (e.g. %s), which keep the target's weights. If that is "
            "what you want, ignore this; otherwise widen the regex, or leave `include` out "
            "for every attention and MLP projection.",
            NAME,
            include,
            ", ".join(grafted),
            model,
            ", ".join(left_out),
            ", ".join(examples[k] for k in left_out[:SHOWN_NAMES]),
        )


def _close_names(include: str, names: list[str]) -> list[str]:
    """A few tensor names nearest to the regex text: the module names it resembles first."""
    components: dict[str, str] = {}
    for name in names:
        components.setdefault(split_parameter(name)[0][-1], name)  # the module's own name
    close = difflib.get_close_matches(include, list(components), n=SHOWN_NAMES, cutoff=0.3)
    chosen = [components[c] for c in close]
    for name in names:  # fill up with the projections of the first layer, then anything
        if len(chosen) >= SHOWN_NAMES:
            break
        if name not in chosen and module_type(name) in PROJECTION_TYPES:
            chosen.append(name)
    return chosen or names[:SHOWN_NAMES]


def warn_if_other_base(adapter: LoraAdapter, base_id: Hashable) -> None:
    from mergekit.common import ModelReference

    trained_on = adapter.base_model_name
    configured = base_id.model.path if isinstance(base_id, ModelReference) else str(base_id)
    if trained_on and not same_model(trained_on, configured):
        logger.warning(
            "%s: adapter %s was trained on %s (its base_model_name_or_path), but base_model is %s. "
            "The graft assumes the adapter's base is the Instruct's base; check the pairing.",
            NAME,
            adapter.path,
            trained_on,
            configured,
        )


def same_model(a: str, b: str) -> bool:
    if os.path.exists(a) and os.path.exists(b):
        return os.path.samefile(a, b)
    return a.rstrip("/") == b.rstrip("/")


shadow_graft_method = ShadowGraftMerge()

"""What a tensor name says, for every architecture this package supports: the one place.

Everything that decides by name goes through here: ``shadow_graft``'s default ``include``
(the attention and MLP projections), Timber's ``scope: linear`` (embeddings keep W_I),
the vocabulary preflight, ``analyze``'s module types, layers and expert matrices, and the
check that an ``include`` regex selects what it was meant to.

Naming schemes (docs/architectures.md has the table):

- Llama / Mistral / Qwen2 / Qwen3 / Gemma2 / OLMo2 / Starcoder2 attention:
  ``model.layers.<n>.self_attn.{q,k,v,o}_proj``; MLP ``mlp.{gate,up,down}_proj``.
- Phi-3: fused ``self_attn.qkv_proj`` and ``mlp.gate_up_proj``.
- GPT-2: ``transformer.h.<n>.attn.c_attn`` (fused q, k, v; Conv1D, stored in × out),
  ``attn.c_proj``, ``mlp.c_fc``, ``mlp.c_proj``, ``wte`` / ``wpe`` embeddings.
- Starcoder2 MLP: ``mlp.c_fc`` (up) and ``mlp.c_proj`` (down), Linear layout.
- GPT-NeoX / Pythia: ``gpt_neox.layers.<n>.attention.query_key_value``, ``attention.dense``
  (the output projection), ``mlp.dense_h_to_4h`` / ``dense_4h_to_h``, ``embed_in`` /
  ``embed_out``.
- Mixture of experts. On disk (transformers 4 and 5 ``save_pretrained``) one matrix per
  expert: ``mlp.experts.<e>.{gate,up,down}_proj.weight`` (Qwen2/3-MoE) or
  ``block_sparse_moe.experts.<e>.w{1,3,2}.weight`` (Mixtral). mergekit 0.1.5 reads them
  through transformers 5's conversion and hands methods, and writes, stacked tensors:
  ``mlp.experts.gate_up_proj`` [E, 2I, H] (gate rows, then up rows, per expert) and
  ``mlp.experts.down_proj`` [E, H, I]. The router is ``mlp.gate.weight`` [E, H]; Qwen2-MoE
  adds ``mlp.shared_expert.*`` (a dense MLP) and ``mlp.shared_expert_gate.weight`` [1, H].
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

# ----------------------------------------------------------------------------- module types

#: Module types in the order tables and heatmaps show them; unknown types follow, sorted.
MODULE_ORDER = (
    "embed",
    "q",
    "k",
    "v",
    "qkv",
    "o",
    "gate",
    "up",
    "gate_up",
    "down",
    "router",
    "shared_expert_gate",
    "expert.gate",
    "expert.up",
    "expert.gate_up",
    "expert.down",
    "norms",
    "lm_head",
)

#: The module component of a name (the one before ``.weight`` / ``.bias``) → module type.
COMPONENT_TYPES = {
    "q_proj": "q",
    "k_proj": "k",
    "v_proj": "v",
    "o_proj": "o",
    "out_proj": "o",
    "gate_proj": "gate",
    "up_proj": "up",
    "down_proj": "down",
    "qkv_proj": "qkv",
    "query_key_value": "qkv",  # GPT-NeoX
    "c_attn": "qkv",  # GPT-2: q, k and v fused in one Conv1D
    "gate_up_proj": "gate_up",
    "c_fc": "up",  # GPT-2 / Starcoder2 MLP input
    "dense_h_to_4h": "up",  # GPT-NeoX
    "dense_4h_to_h": "down",
    "embed_tokens": "embed",
    "embed_in": "embed",  # GPT-NeoX
    "wte": "embed",  # GPT-2 token embeddings
    "wpe": "embed",  # GPT-2 position embeddings
    "word_embeddings": "embed",
    "embed_positions": "embed",  # OPT-style learned positions
    "position_embeddings": "embed",  # BERT-style
    "lm_head": "lm_head",
    "embed_out": "lm_head",  # GPT-NeoX
    "shared_expert_gate": "shared_expert_gate",  # Qwen2-MoE: [1, H] gate of the shared expert
    "router": "router",
}

#: Components whose type depends on their parent module: (parent, component) → type.
PARENT_COMPONENT_TYPES = {
    ("attn", "c_proj"): "o",  # GPT-2 attention output
    ("mlp", "c_proj"): "down",  # GPT-2 and Starcoder2 MLP output
    ("attention", "dense"): "o",  # GPT-NeoX attention output
    ("self_attention", "dense"): "o",  # Falcon
    # The router of a mixture of experts: a Linear named `gate` in the MoE block.
    ("mlp", "gate"): "router",
    ("block_sparse_moe", "gate"): "router",  # Mixtral's checkpoint names
    ("feed_forward", "router"): "router",  # Llama 4
}

#: One expert's projection → its kind (Qwen-MoE names, Mixtral's w1 / w3 / w2).
EXPERT_PROJECTIONS = {
    "gate_proj": "gate",
    "w1": "gate",
    "up_proj": "up",
    "w3": "up",
    "down_proj": "down",
    "w2": "down",
    "gate_up_proj": "gate_up",
}

PARAMETER_SUFFIXES = ("weight", "bias")

#: Module types of the attention projections and of the MLP / expert projections.
ATTENTION_TYPES = frozenset({"q", "k", "v", "qkv", "o"})
MLP_TYPES = frozenset(
    {"gate", "up", "gate_up", "down", "expert.gate", "expert.up", "expert.gate_up", "expert.down"}
)
PROJECTION_TYPES = ATTENTION_TYPES | MLP_TYPES


def split_parameter(name: str) -> tuple[list[str], str | None]:
    """The module path components and the parameter kind (``weight``, ``bias`` or None)."""
    parts = name.split(".")
    if len(parts) > 1 and parts[-1] in PARAMETER_SUFFIXES:
        return parts[:-1], parts[-1]
    return parts, None


def _is_norm(component: str) -> bool:
    return "norm" in component or component.startswith("ln_")


def _expert_kind(parts: list[str]) -> str | None:
    """``expert.<kind>`` for a routed expert's matrix (per-expert or stacked), else None."""
    component = parts[-1]
    if component not in EXPERT_PROJECTIONS or len(parts) < 2:
        return None
    if parts[-2] == "experts":  # stacked: mlp.experts.gate_up_proj
        return f"expert.{EXPERT_PROJECTIONS[component]}"
    if len(parts) >= 3 and parts[-3] == "experts" and parts[-2].isdigit():  # experts.<e>.w1
        return f"expert.{EXPERT_PROJECTIONS[component]}"
    return None


def module_type(name: str) -> str:
    """q, k, v, o, gate, up, down, norms, embed, lm_head, qkv / gate_up (fused layers),
    router, shared_expert_gate and expert.gate / expert.up / expert.down (MoE).

    Biases get their own type, ``<type>.bias`` (``q.bias`` on Qwen2), so that per-module
    means do not mix a bias with its weight matrix. Unknown names fall back to their last
    module component.
    """
    parts, parameter = split_parameter(name)
    component = parts[-1]
    parent = parts[-2] if len(parts) > 1 else ""
    expert = _expert_kind(parts)
    if expert is not None:
        kind = expert
    elif (parent, component) in PARENT_COMPONENT_TYPES:
        kind = PARENT_COMPONENT_TYPES[(parent, component)]
    elif component in COMPONENT_TYPES:
        kind = COMPONENT_TYPES[component]
    elif _is_norm(component):
        kind = "norms"
    else:
        kind = component
    return f"{kind}.bias" if parameter == "bias" else kind


def module_sort_key(kind: str) -> tuple[int, str]:
    """Known module types in ``MODULE_ORDER`` (their biases right after), then the rest by name."""
    base = kind[: -len(".bias")] if kind.endswith(".bias") else kind
    if base in MODULE_ORDER:
        return (2 * MODULE_ORDER.index(base) + (1 if base != kind else 0), kind)
    return (2 * len(MODULE_ORDER), kind)


def is_projection(name: str) -> bool:
    """Whether the tensor is an attention or MLP (expert) projection, weight or bias.

    The module-type reading of ``DEFAULT_PROJECTIONS`` (the tests check they agree on every
    supported architecture's names)."""
    kind = module_type(name)
    return kind.removesuffix(".bias") in PROJECTION_TYPES


# ----------------------------------------------------------------------------- layers

#: ``layers.<n>`` (Llama, Qwen, Mistral, GPT-NeoX), ``h.<n>`` (GPT-2), ``blocks.<n>``.
LAYER_PATTERN = re.compile(r"(?:^|\.)(?:layers|h|blocks)\.(\d+)(?:\.|$)")

#: The tensors Shadow-FT's ``sigma_v2.py`` averages over (``re.search`` on the name).
SHADOW_FT_LAYER_PATTERN = re.compile(r"model\.layers\.(\d+)\.")


def layer_index(name: str) -> int | None:
    """The decoder layer a tensor belongs to, or None (embeddings, final norm, lm_head)."""
    match = LAYER_PATTERN.search(name)
    return int(match.group(1)) if match else None


def in_shadow_ft_mean(name: str) -> bool:
    """Whether Shadow-FT's model σ (``sigma_v2.py``) includes this tensor: ``model.layers.<n>.``."""
    return SHADOW_FT_LAYER_PATTERN.search(name) is not None


# ----------------------------------------------------------------------------- vocabulary

#: Module names of tensors with a vocabulary axis (Llama/Qwen, GPT-2, GPT-NeoX, BERT-style).
VOCABULARY_MODULES = ("embed_tokens", "lm_head", "wte", "embed_in", "embed_out", "word_embeddings")
# A whole dotted component, so that e.g. a `lm_head_norm` module is not taken for one.
_VOCABULARY_TENSOR = re.compile(r"(^|\.)(" + "|".join(VOCABULARY_MODULES) + r")(\.|$)")


def is_vocabulary_tensor(name: str) -> bool:
    """Whether ``name`` is an embedding / output matrix over the vocabulary, by its module name.

    The one list of such names: preflight's vocabulary check and Timber's ``scope: linear``
    (when mergekit gives no ``vocabulary_axis``) both use it.
    """
    return bool(_VOCABULARY_TENSOR.search(name))


def is_embedding(name: str) -> bool:
    """Token or position embeddings and the output head: not linear projections of a layer.

    Timber's ``scope: linear`` keeps these at W_I (GPT-2's ``wpe`` has no vocabulary axis
    but is an embedding table all the same).
    """
    return is_vocabulary_tensor(name) or module_type(name) in ("embed", "lm_head")


# ----------------------------------------------------------------------------- projections

#: What the official Shadow-FT ``apply_diff.py`` grafts (``re.search``, case-insensitive):
#: weights and biases of the seven Llama-style projections.
OFFICIAL_PROJECTIONS = r"(q|k|v|o|gate|up|down)_proj"
#: The same projections under GPT-2, Starcoder2, GPT-NeoX / Pythia, Falcon and Mixtral
#: (per-expert checkpoint) names.
OTHER_PROJECTIONS = (
    r"(^|\.)(c_attn|c_fc|query_key_value|dense_h_to_4h|dense_4h_to_h)(\.|$)"
    r"|(^|\.)(attn|mlp)\.c_proj(\.|$)"
    r"|(^|\.)(attention|self_attention)\.dense(\.|$)"
    r"|\.experts\.\d+\.w[123](\.|$)"
)
#: ``shadow_graft``'s default ``include``: the official selection on Llama-style names, and
#: the attention and MLP projections of the other architectures (docs/architectures.md).
DEFAULT_PROJECTIONS = f"{OFFICIAL_PROJECTIONS}|{OTHER_PROJECTIONS}"


# ----------------------------------------------------------------------------- experts


@dataclass(frozen=True)
class ExpertMatrix:
    """One weight matrix inside a stacked-experts tensor.

    ``index`` selects it from the stacked tensor (``tensor[index]`` is 2-D, oriented as the
    per-expert checkpoint's matrix); ``name`` is that matrix's per-expert name.
    """

    index: tuple[int | slice, ...]
    expert: int
    projection: str  # gate, up or down
    name: str


#: Stacked routed experts in mergekit's (transformers 5's) layout: ``...experts.<proj>``.
_STACKED_EXPERTS = re.compile(
    r"^(?P<prefix>.*\.experts)\.(?P<proj>gate_up_proj|down_proj|up_proj)$"
)


def expert_matrices(name: str, shape: tuple[int, ...]) -> list[ExpertMatrix] | None:
    """Each expert's matrix in a stacked-experts tensor (gate and up separately), else None.

    ``gate_up_proj`` [E, 2I, H] is gate rows then up rows (transformers 5 concatenates
    ``gate_proj`` and ``up_proj`` on axis 1); Llama 4's ``feed_forward.experts.gate_up_proj``
    [E, H, 2I] is split on its last axis (the halves are the transposed matrices, which have
    the same singular values and are decomposed the same way).
    """
    match = _STACKED_EXPERTS.match(name)
    if match is None or len(shape) != 3:
        return None
    prefix, projection = match.group("prefix"), match.group("proj")
    experts = shape[0]
    matrices: list[ExpertMatrix] = []
    for expert in range(experts):
        if projection == "gate_up_proj":
            axis = 2 if ".feed_forward.experts" in f".{prefix}" else 1
            half = shape[axis] // 2
            if shape[axis] != 2 * half:
                return None
            for kind, part in (("gate", slice(0, half)), ("up", slice(half, 2 * half))):
                index: tuple[int | slice, ...] = (
                    (expert, part) if axis == 1 else (expert, slice(None), part)
                )
                matrices.append(
                    ExpertMatrix(index, expert, kind, f"{prefix}.{expert}.{kind}_proj.weight")
                )
        else:
            kind = "down" if projection == "down_proj" else "up"
            matrices.append(
                ExpertMatrix((expert,), expert, kind, f"{prefix}.{expert}.{projection}.weight")
            )
    return matrices


def stacked_expert_names(name: str, experts: int) -> list[str] | None:
    """The per-expert matrix names ``expert_matrices`` gives a stacked tensor of ``experts``
    experts, known from its name alone; None when ``name`` is not a stacked-experts tensor."""
    match = _STACKED_EXPERTS.match(name)
    if match is None:
        return None
    prefix, projection = match.group("prefix"), match.group("proj")
    kinds = ("gate_proj", "up_proj") if projection == "gate_up_proj" else (projection,)
    return [f"{prefix}.{expert}.{kind}.weight" for expert in range(experts) for kind in kinds]


#: config.json keys that give the number of routed experts.
EXPERT_COUNT_KEYS = ("num_local_experts", "num_experts", "n_routed_experts")


def expert_count(config: dict) -> int | None:
    """The number of routed experts a config.json declares (also under ``text_config``)."""
    for section in (config, config.get("text_config") or {}):
        for key in EXPERT_COUNT_KEYS:
            value = section.get(key)
            if isinstance(value, int) and value > 0:
                return value
    return None


_PER_EXPERT = re.compile(r"\.experts\.\d+\.")


def expert_index(name: str) -> int | None:
    """The routed expert a per-expert matrix name belongs to (``experts.<e>.``), or None."""
    match = _PER_EXPERT.search(name)
    return int(match.group(0).split(".")[2]) if match else None


def has_per_expert_names(names: Iterable[str]) -> bool:
    """Whether a checkpoint stores routed experts one matrix each (``experts.<e>.``)."""
    return any(_PER_EXPERT.search(name) for name in names)


def expert_layout(names: Iterable[str]) -> str | None:
    """``per-expert`` (as the Hub stores MoE checkpoints), ``stacked`` (as mergekit writes
    them) or None (no routed experts)."""
    names = list(names)
    if has_per_expert_names(names):
        return "per-expert"
    if any(_STACKED_EXPERTS.match(name) for name in names):
        return "stacked"
    return None


def in_expert_layout(name: str) -> bool:
    """Whether the name of this tensor depends on the expert layout: an expert matrix (either
    layout), or a router (Mixtral's ``block_sparse_moe.gate`` is ``mlp.gate`` once converted)."""
    return bool(
        _PER_EXPERT.search(name)
        or _STACKED_EXPERTS.match(name)
        or ".block_sparse_moe." in f".{name}"
        or module_type(name) == "router"
    )


# ----------------------------------------------------------------------------- mergekit's layout


def mergekit_layout(
    config: Any, stored: Iterable[str], trust_remote_code: bool = False
) -> list[str]:
    """The tensor names mergekit merges a checkpoint by: what a merge reads and writes.

    ``config`` is the model's transformers config, ``stored`` the checkpoint's tensor names.
    The candidate names are mergekit's JSON architecture definition for the model, else (as
    mergekit's ``infer_architecture_info``) the transformers model's own names, built on the
    meta device; each is kept where the checkpoint stores it or mergekit's checkpoint
    conversion can build it (transformers 5: per-expert matrices → stacked experts). Raises
    whatever transformers raises when it cannot build the model.
    """
    import torch
    from mergekit.architecture import arch_info_for_config
    from mergekit.architecture.conversion import can_convert_checkpoint_keys
    from transformers import AutoModelForCausalLM

    architecture = arch_info_for_config(config)
    if architecture is not None:
        candidates = [weight.name for weight in architecture.all_weights(config)]
    else:
        with torch.device("meta"):
            skeleton = AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)
        candidates = list(skeleton.state_dict())
    stored = set(stored)
    return [
        name
        for name in candidates
        if name in stored or can_convert_checkpoint_keys(config.model_type, stored, name)
    ]

"""What a tensor name says: its module type, its layer, and whether Shadow-FT's σ counts it.

Recognised naming schemes: Llama / Mistral / Qwen2 / Qwen3 (``model.layers.<n>.self_attn.q_proj``,
``mlp.gate_proj``, ``input_layernorm``, ``q_norm`` ...), GPT-2 (``h.<n>.attn.c_attn``,
``attn.c_proj``, ``mlp.c_fc``, ``mlp.c_proj``, ``ln_1``, ``wte``, ``wpe``) and a few fused
or GPT-NeoX names. Anything else falls back to the last name component.
"""

from __future__ import annotations

import re

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
    "c_fc": "up",  # GPT-2 MLP input
    "dense_h_to_4h": "up",
    "dense_4h_to_h": "down",
    "embed_tokens": "embed",
    "wte": "embed",  # GPT-2 token embeddings
    "wpe": "embed",  # GPT-2 position embeddings
    "lm_head": "lm_head",
    "embed_out": "lm_head",
}

#: GPT-2 uses ``c_proj`` twice: the attention output and the MLP output.
C_PROJ_PARENT_TYPES = {"attn": "o", "mlp": "down"}

PARAMETER_SUFFIXES = ("weight", "bias")

#: ``layers.<n>`` (Llama, Qwen, Mistral), ``h.<n>`` (GPT-2), ``blocks.<n>``.
LAYER_PATTERN = re.compile(r"(?:^|\.)(?:layers|h|blocks)\.(\d+)(?:\.|$)")

#: The tensors Shadow-FT's ``sigma_v2.py`` averages over (``re.search`` on the name).
SHADOW_FT_LAYER_PATTERN = re.compile(r"model\.layers\.(\d+)\.")


def split_parameter(name: str) -> tuple[list[str], str | None]:
    """The module path components and the parameter kind (``weight``, ``bias`` or None)."""
    parts = name.split(".")
    if len(parts) > 1 and parts[-1] in PARAMETER_SUFFIXES:
        return parts[:-1], parts[-1]
    return parts, None


def _is_norm(component: str) -> bool:
    return "norm" in component or component.startswith("ln_")


def module_type(name: str) -> str:
    """q, k, v, o, gate, up, down, norms, embed, lm_head (plus qkv, gate_up for fused layers).

    Biases get their own type, ``<type>.bias`` (``q.bias`` on Qwen2), so that per-module
    means do not mix a bias with its weight matrix. Unknown names fall back to their last
    module component.
    """
    parts, parameter = split_parameter(name)
    component = parts[-1]
    if component == "c_proj" and len(parts) > 1 and parts[-2] in C_PROJ_PARENT_TYPES:
        kind = C_PROJ_PARENT_TYPES[parts[-2]]
    elif component in COMPONENT_TYPES:
        kind = COMPONENT_TYPES[component]
    elif _is_norm(component):
        kind = "norms"
    else:
        kind = component
    return f"{kind}.bias" if parameter == "bias" else kind


def layer_index(name: str) -> int | None:
    """The decoder layer a tensor belongs to, or None (embeddings, final norm, lm_head)."""
    match = LAYER_PATTERN.search(name)
    return int(match.group(1)) if match else None


def in_shadow_ft_mean(name: str) -> bool:
    """Whether Shadow-FT's model σ (``sigma_v2.py``) includes this tensor: ``model.layers.<n>.``."""
    return SHADOW_FT_LAYER_PATTERN.search(name) is not None


def module_sort_key(kind: str) -> tuple[int, str]:
    """Known module types in ``MODULE_ORDER`` (their biases right after), then the rest by name."""
    base, _, bias = kind.partition(".")
    if base in MODULE_ORDER:
        return (2 * MODULE_ORDER.index(base) + (1 if bias else 0), kind)
    return (2 * len(MODULE_ORDER), kind)


def parse_layers(spec: str) -> frozenset[int]:
    """``"0-11"``, ``"3"``, ``"0-3,8,10-11"`` → the set of layer indices.

    Raises ValueError with the offending part when the text is not of that form.
    """
    layers: set[int] = set()
    for part in spec.split(","):
        part = part.strip()
        match = re.fullmatch(r"(\d+)(?:\s*-\s*(\d+))?", part)
        if not match:
            raise ValueError(
                f"--layers: cannot read {part!r} in {spec!r}; use e.g. '0-11' or '0-3,8,10'"
            )
        first = int(match.group(1))
        last = int(match.group(2)) if match.group(2) is not None else first
        if last < first:
            raise ValueError(f"--layers: range {part!r} goes backwards; write it as {last}-{first}")
        layers.update(range(first, last + 1))
    return frozenset(layers)

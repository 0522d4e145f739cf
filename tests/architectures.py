"""Tiny random checkpoints of real transformers architectures, for the per-architecture tests.

Each family has three checkpoints of one architecture, saved by transformers 5's
``save_pretrained`` (so MoE experts are stored one matrix per expert, as on the Hub):
``base``, ``instruct`` (base + a post-training-like delta with a decaying spectrum) and
``tuned`` (base + another delta). Shapes are tiny (hidden 32, 2 layers, 4 experts).
Qwen2-MoE (no mergekit architecture definition: mergekit infers it) has a shared expert.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import transformers

HIDDEN = 32
COMMON = {"vocab_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4}
LLAMA_LIKE = {**COMMON, "hidden_size": HIDDEN, "intermediate_size": 48, "num_key_value_heads": 2}

#: family name → (config class name, config keyword arguments)
FAMILIES: dict[str, tuple[str, dict]] = {
    "llama": ("LlamaConfig", {**LLAMA_LIKE, "tie_word_embeddings": False}),
    "llama_tied": ("LlamaConfig", {**LLAMA_LIKE, "tie_word_embeddings": True}),
    "qwen2": ("Qwen2Config", {**LLAMA_LIKE, "tie_word_embeddings": False}),
    "qwen3": ("Qwen3Config", {**LLAMA_LIKE, "head_dim": 8, "tie_word_embeddings": False}),
    "gemma2": ("Gemma2Config", {**LLAMA_LIKE, "head_dim": 8}),
    "phi3": ("Phi3Config", {**LLAMA_LIKE, "pad_token_id": 0}),
    "gpt2": (
        "GPT2Config",
        {
            "vocab_size": 64,
            "n_layer": 2,
            "n_head": 4,
            "n_embd": HIDDEN,
            "n_positions": 32,
            "bos_token_id": 0,
            "eos_token_id": 0,
        },
    ),  # fmt: skip
    "starcoder2": ("Starcoder2Config", {**LLAMA_LIKE, "bos_token_id": 0, "eos_token_id": 0}),
    "mixtral": (
        "MixtralConfig",
        {
            **LLAMA_LIKE,
            "intermediate_size": 16,
            "num_local_experts": 4,
            "num_experts_per_tok": 2,
            "eos_token_id": 0,
        },
    ),  # fmt: skip
    "qwen3_moe": (
        "Qwen3MoeConfig",
        {
            **LLAMA_LIKE,
            "moe_intermediate_size": 16,
            "num_experts": 4,
            "num_experts_per_tok": 2,
            "head_dim": 8,
            "tie_word_embeddings": False,
        },
    ),  # fmt: skip
    "qwen2_moe": (
        "Qwen2MoeConfig",
        {
            **LLAMA_LIKE,
            "moe_intermediate_size": 16,
            "shared_expert_intermediate_size": 24,
            "num_experts": 4,
            "num_experts_per_tok": 2,
            "tie_word_embeddings": False,
        },
    ),  # fmt: skip
}

MOE_FAMILIES = ("mixtral", "qwen3_moe", "qwen2_moe")


@dataclass(frozen=True)
class ArchFamily:
    name: str
    model_type: str
    base: Path
    instruct: Path
    tuned: Path


def _delta(value: torch.Tensor, generator: torch.Generator, scale: float) -> torch.Tensor:
    """A random delta of ``scale`` × the tensor's spread, rows decaying (a spectrum with a tail)."""
    noise = torch.randn(value.shape, generator=generator)
    spread = float(value.float().std()) if value.numel() > 1 else 1.0
    if value.ndim >= 2:
        noise *= torch.linspace(1.0, 0.05, value.shape[-2]).unsqueeze(-1)
    return scale * (spread or 1.0) * noise


def build_arch_family(root: Path, name: str, seed: int = 0) -> ArchFamily:
    """Build (or reuse) the three checkpoints of family ``name`` under ``root/name``."""
    config_class, kwargs = FAMILIES[name]
    config = getattr(transformers, config_class)(**kwargs)
    folder = root / name
    paths = {role: folder / role for role in ("base", "instruct", "tuned")}
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(config)
    original = {key: value.detach().clone() for key, value in model.state_dict().items()}
    generator = torch.Generator().manual_seed(seed + 1)
    for role, scale in (("base", 0.0), ("instruct", 0.05), ("tuned", 0.03)):
        with torch.no_grad():
            for key, value in model.state_dict().items():
                if value.is_floating_point() and scale:
                    value.copy_(original[key] + _delta(original[key], generator, scale))
        model.save_pretrained(paths[role])
    return ArchFamily(name, config.model_type, paths["base"], paths["instruct"], paths["tuned"])


def timber_py_tensor(base: torch.Tensor, instruct: torch.Tensor, lam: float) -> torch.Tensor:
    """``timber.py`` on one checkpoint tensor: float64 SVD, float32 eRank on the float32 S."""
    delta = instruct.float() - base.float()
    if delta.ndim < 2:
        return instruct.double()
    u, s, vh = torch.linalg.svd(delta.reshape(delta.shape[0], -1).double(), full_matrices=False)
    s32 = s.float()
    p = s32 / torch.sum(s32)
    k = math.ceil(torch.exp(-torch.sum(p * torch.log(p + 1e-9))).item())
    scaled = s.clone()
    scaled[k:] *= lam
    return base.double() + ((u * scaled) @ vh).reshape(delta.shape)

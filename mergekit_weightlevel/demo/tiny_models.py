"""Tiny, deterministic model families for the quickstart, the examples and the tests.

A family is a randomly initialised base model plus variants whose differences from
the base look like real post-training: small (σ around 0.01–0.05, the range the
papers measure between Base and Instruct checkpoints), partly low-rank, and touching
every tensor, norms included. Nothing is downloaded; a family builds in about a second.

The members also differ in their non-weight files, as a real family's do: the
post-trained members carry a chat template and their own generation config (stop ids,
sampling defaults), the newer base a longer context and another RoPE theta. So a merge
that gives its output the wrong member's files is visible (``MEMBER_FILES``).

Architectures: ``llama`` (untied embeddings), ``qwen2`` (q/k/v biases, tied
embeddings), ``qwen3`` (q_norm / k_norm). Each folder is a normal ``transformers``
checkpoint (safetensors, single file or sharded) with a small word-level tokenizer, so
both mergekit and ``AutoModelForCausalLM.from_pretrained`` load it.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from pathlib import Path

import torch

#: Shapes shared by every tiny architecture (hidden 64, 2 layers, vocabulary 128).
TINY_SHAPE = {
    "hidden_size": 64,
    "intermediate_size": 160,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": 128,
    "max_position_embeddings": 256,
}

ARCHITECTURES = ("llama", "qwen2", "qwen3")

#: Relative size of each variant's delta: mean|Δ| / mean|W| per tensor (σ ≈ half of it).
VARIANT_SCALES = {
    "instruct": 0.05,  # post-training: Base → Instruct
    "base_v2": 0.06,  # continued pre-training: Base → a newer base
    "thinking": 0.07,  # reasoning post-training: Base → Thinking
    "base_tuned": 0.03,  # a task fine-tune of the Base (Shadow-FT's W_B⁺)
}


@dataclass(frozen=True)
class MemberFiles:
    """How one member's non-weight files differ from the base's."""

    #: config.json settings that change behaviour, not weights (context length, RoPE)
    config: dict = field(default_factory=dict)
    #: the tokenizer's chat template (Jinja), saved as chat_template.jinja
    chat_template: str | None = None
    #: generation_config.json settings (stop ids, sampling defaults)
    generation: dict | None = None


INSTRUCT_TEMPLATE = (
    "{% for message in messages %}<s>[{{ message['role'] }}] {{ message['content'] }}</s>"
    "{% endfor %}{% if add_generation_prompt %}<s>[assistant]{% endif %}"
)
THINKING_TEMPLATE = (
    "{% for message in messages %}<s>[{{ message['role'] }}] {{ message['content'] }}</s>"
    "{% endfor %}{% if add_generation_prompt %}<s>[assistant] [think]{% endif %}"
)
MEMBER_FILES = {
    # A second stop id, as Llama-3-Instruct's <|eot_id|> beside <|end_of_text|>.
    "instruct": MemberFiles(
        chat_template=INSTRUCT_TEMPLATE,
        generation={"eos_token_id": [2, 3], "do_sample": True, "temperature": 0.7, "top_p": 0.8},
    ),
    # The Thinking models' decoding settings (T 0.6, top-p 0.95).
    "thinking": MemberFiles(
        chat_template=THINKING_TEMPLATE,
        generation={"eos_token_id": [2], "do_sample": True, "temperature": 0.6, "top_p": 0.95},
    ),
    # A newer base: longer context, another RoPE theta (as Llama-3 → Llama-3.1).
    "base_v2": MemberFiles(config={"max_position_embeddings": 512, "rope_theta": 500000.0}),
}


def tiny_config(
    arch: str = "llama",
    *,
    tied: bool | None = None,
    layers: int | None = None,
    shape: dict | None = None,
    **settings,
):
    """The ``transformers`` config of a tiny model (``shape`` overrides ``TINY_SHAPE``).

    ``settings`` are further config fields that do not change the weights' shapes
    (``max_position_embeddings``, ``rope_theta``, ...).
    """
    from transformers import LlamaConfig, Qwen2Config, Qwen3Config

    shape = {**TINY_SHAPE, **(shape or {})}
    if layers is not None:
        shape["num_hidden_layers"] = layers
    common = {"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0, **shape, **settings}
    if arch == "llama":
        config = LlamaConfig(tie_word_embeddings=bool(tied), **common)
    elif arch == "qwen2":
        config = Qwen2Config(tie_word_embeddings=True if tied is None else tied, **common)
    elif arch == "qwen3":
        config = Qwen3Config(
            tie_word_embeddings=bool(tied), head_dim=shape["hidden_size"] // 4, **common
        )
    else:
        raise ValueError(f"unknown tiny architecture {arch!r}; choose one of {ARCHITECTURES}")
    return config


def _generator(seed: int, name: str) -> torch.Generator:
    # One stream per (seed, tensor name): a tensor's values do not depend on the others.
    return torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(name.encode()))


def random_base_state(config, seed: int = 0) -> dict[str, torch.Tensor]:
    """A float32 state dict for ``config``, initialised like a real (not constant) model."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    state = {}
    for name, tensor in model.state_dict().items():
        gen = _generator(seed, name)
        if tensor.ndim >= 2:
            fresh = torch.randn(tensor.shape, generator=gen) * 0.05
        elif name.endswith("norm.weight"):
            # Trained norms are not all ones; spread them so deltas are realistic.
            fresh = 1.0 + 0.1 * torch.randn(tensor.shape, generator=gen)
        else:
            fresh = 0.02 * torch.randn(tensor.shape, generator=gen)
        state[name] = fresh.float()
    return state


def post_training_delta(
    tensor: torch.Tensor, name: str, *, scale: float, seed: int, rank: int = 4
) -> torch.Tensor:
    """A delta of mean magnitude ``scale`` × mean|tensor|: half low-rank, half dense noise."""
    gen = _generator(seed, name)
    if tensor.ndim >= 2:
        rows, cols = tensor.shape[0], tensor[0].numel()
        r = min(rank, rows, cols)
        low_rank = torch.randn(rows, r, generator=gen) @ torch.randn(r, cols, generator=gen)
        low_rank = low_rank / low_rank.abs().mean()
        noise = torch.randn(rows, cols, generator=gen)
        direction = (low_rank + noise / noise.abs().mean()).reshape(tensor.shape)
    else:
        direction = torch.randn(tensor.shape, generator=gen)
    direction = direction / direction.abs().mean().clamp_min(1e-12)
    return direction * (scale * tensor.abs().mean())


def apply_variant(
    state: dict[str, torch.Tensor], *, scale: float, seed: int
) -> dict[str, torch.Tensor]:
    """``state`` plus a post-training-like delta on every tensor."""
    return {
        name: t + post_training_delta(t, name, scale=scale, seed=seed) for name, t in state.items()
    }


#: The special tokens of every tokenizer built here, in this order at ids 0-3.
SPECIAL_TOKENS = ["<pad>", "<s>", "</s>", "<unk>"]


def word_level_tokenizer(vocab: dict[str, int], pre_tokenizer, *, decoder=None, **settings):
    """A ``PreTrainedTokenizerFast`` over a fixed vocabulary holding ``SPECIAL_TOKENS``.

    ``pre_tokenizer`` splits text into vocabulary entries; ``settings`` go to the
    ``PreTrainedTokenizerFast`` (e.g. ``padding_side``).
    """
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizer
    if decoder is not None:
        backend.decoder = decoder
    pad, bos, eos, unk = SPECIAL_TOKENS
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token=pad,
        bos_token=bos,
        eos_token=eos,
        unk_token=unk,
        **settings,
    )


def build_tokenizer(vocab_size: int = TINY_SHAPE["vocab_size"]):
    """A word-level tokenizer with ``vocab_size`` entries (specials first, as the config says)."""
    from tokenizers import pre_tokenizers

    words = [f"w{i}" for i in range(vocab_size - len(SPECIAL_TOKENS))]
    vocab = {token: index for index, token in enumerate(SPECIAL_TOKENS + words)}
    return word_level_tokenizer(vocab, pre_tokenizers.Whitespace())


def save_checkpoint(
    state: dict[str, torch.Tensor],
    config,
    out_dir: str | Path,
    *,
    dtype: torch.dtype = torch.float32,
    shard_size: str | None = None,
    tokenizer: bool = True,
    files: MemberFiles | None = None,
) -> Path:
    """Save a state dict as a normal ``transformers`` checkpoint (safetensors).

    ``files`` adds a chat template to the tokenizer and replaces the generation config.
    """
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    out_dir = Path(out_dir)
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(state, strict=False)
    model.to(dtype)
    model.config.dtype = dtype
    kwargs = {"safe_serialization": True}
    if shard_size is not None:
        kwargs["max_shard_size"] = shard_size
    hf_logging.disable_progress_bar()
    try:
        model.save_pretrained(out_dir, **kwargs)
    finally:
        hf_logging.enable_progress_bar()
    files = files or MemberFiles()
    if tokenizer:
        built = build_tokenizer(config.vocab_size)
        if files.chat_template is not None:
            built.chat_template = files.chat_template
        built.save_pretrained(out_dir)
    if files.generation is not None:
        from transformers import GenerationConfig

        generation = {"bos_token_id": config.bos_token_id, "pad_token_id": config.pad_token_id}
        GenerationConfig(**{**generation, **files.generation}).save_pretrained(out_dir)
    return out_dir


@dataclass(frozen=True)
class TinyFamily:
    """Folders of one tiny model family; every variant was derived from ``base``."""

    root: Path
    arch: str
    base: Path
    instruct: Path
    base_v2: Path
    thinking: Path
    base_tuned: Path

    def paths(self) -> dict[str, Path]:
        return {
            "base": self.base,
            "instruct": self.instruct,
            "base_v2": self.base_v2,
            "thinking": self.thinking,
            "base_tuned": self.base_tuned,
        }


def build_family(
    root: str | Path,
    *,
    arch: str = "llama",
    tied: bool | None = None,
    dtype: torch.dtype = torch.float32,
    shard_size: str | None = None,
    seed: int = 0,
    layers: int | None = None,
    shape: dict | None = None,
) -> TinyFamily:
    """Write a family under ``root``: base, instruct, base_v2, thinking, base_tuned.

    ``shape`` overrides the tiny sizes (the benchmarks build a 120M-parameter family).
    """
    root = Path(root)
    config = tiny_config(arch, tied=tied, layers=layers, shape=shape)
    base = random_base_state(config, seed=seed)
    states = {"base": base}
    for offset, (variant, scale) in enumerate(VARIANT_SCALES.items(), start=1):
        states[variant] = apply_variant(base, scale=scale, seed=seed + 101 * offset)
    paths = {}
    for name, state in states.items():
        files = MEMBER_FILES.get(name, MemberFiles())
        member_config = (
            tiny_config(arch, tied=tied, layers=layers, shape=shape, **files.config)
            if files.config
            else config
        )
        paths[name] = save_checkpoint(
            state, member_config, root / name, dtype=dtype, shard_size=shard_size, files=files
        )
    return TinyFamily(root=root, arch=arch, **paths)

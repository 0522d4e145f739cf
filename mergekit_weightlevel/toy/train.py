"""A tiny, deterministic trainer: a plain torch loop over ``transformers.LlamaForCausalLM``.

Sequences are ``<s> prompt completion </s>``; the loss covers the completion and EOS
(everything, for plain-text pre-training where the prompt is empty). Batches are drawn
with a seeded generator from a weighted mixture of example lists, so a run is a pure
function of its arguments (on one machine and torch version).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from mergekit_weightlevel.toy.tasks import Example
from mergekit_weightlevel.toy.tokenizer import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    CharCodec,
    save_tokenizer,
    vocab_size,
)

IGNORE = -100


@dataclass(frozen=True)
class ModelShape:
    # 0.34 M parameters, ~40 ms a training step on one core. A 192-wide model was tried:
    # 2.3× slower per step and, in the same step budget, clearly less trained.
    hidden_size: int = 96
    intermediate_size: int = 256
    num_hidden_layers: int = 3
    num_attention_heads: int = 4
    num_key_value_heads: int = 4


def llama_config(shape: ModelShape):
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=vocab_size(),
        hidden_size=shape.hidden_size,
        intermediate_size=shape.intermediate_size,
        num_hidden_layers=shape.num_hidden_layers,
        num_attention_heads=shape.num_attention_heads,
        num_key_value_heads=shape.num_key_value_heads,
        max_position_embeddings=64,
        bos_token_id=BOS_ID,
        eos_token_id=EOS_ID,
        pad_token_id=PAD_ID,
        tie_word_embeddings=False,
    )


def new_model(shape: ModelShape, seed: int):
    from transformers import LlamaForCausalLM

    torch.manual_seed(seed)
    return LlamaForCausalLM(llama_config(shape))


def load_model(folder: str | Path):
    from transformers import LlamaForCausalLM

    return LlamaForCausalLM.from_pretrained(str(folder), dtype=torch.float32)


def save_model(model, folder: str | Path) -> Path:
    """A normal ``transformers`` checkpoint (float32 safetensors) with the tokenizer."""
    folder = Path(folder)
    model.save_pretrained(folder, safe_serialization=True)
    save_tokenizer(folder)
    return folder


def encode_batch(examples: Sequence[Example], codec: CharCodec) -> tuple[torch.Tensor, ...]:
    """Right-padded ``input_ids``, ``attention_mask`` and ``labels`` (IGNORE off the loss)."""
    rows, labels = [], []
    for example in examples:
        prompt = [BOS_ID, *codec.encode(example.prompt)]
        completion = [*codec.encode(example.completion), EOS_ID]
        rows.append(prompt + completion)
        if example.prompt:
            labels.append([IGNORE] * len(prompt) + completion)
        else:  # plain text: learn every token after BOS
            labels.append([IGNORE, *completion])
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), PAD_ID)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    target = torch.full((len(rows), width), IGNORE)
    for i, (row, label) in enumerate(zip(rows, labels)):
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
        target[i, : len(label)] = torch.tensor(label)
    return ids, mask, target


@dataclass(frozen=True)
class TrainSpec:
    steps: int
    lr: float = 3e-3
    batch_size: int = 64
    warmup: int = 20
    weight_decay: float = 0.0
    seed: int = 0


def train(
    model,
    mixture: Sequence[tuple[Sequence[Example], float]],
    spec: TrainSpec,
) -> list[float]:
    """Train ``model`` in place on batches drawn from ``mixture`` [(examples, weight)].

    Returns the loss of every step. AdamW, linear warm-up then cosine decay to 10 %.
    Only parameters with ``requires_grad`` are trained (a PEFT model trains its adapter).
    """
    codec = CharCodec()
    rng = random.Random(spec.seed)
    torch.manual_seed(spec.seed)
    pools = [list(examples) for examples, _ in mixture]
    weights = [weight for _, weight in mixture]
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=spec.lr, weight_decay=spec.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: _lr_factor(step, spec))
    model.train()
    losses = []
    for _ in range(spec.steps):
        batch = [
            rng.choice(pools[i]) for i in rng.choices(range(len(pools)), weights, k=spec.batch_size)
        ]
        loss = batch_loss(model, batch, codec)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        schedule.step()
        losses.append(float(loss.detach()))
    model.eval()
    return losses


#: Sequences up to this many tokens are run apart from longer ones (see ``batch_loss``).
SHORT = 16


def batch_loss(model, batch: Sequence[Example], codec: CharCodec) -> torch.Tensor:
    """The mean loss over the completion tokens of ``batch``, computed per length bucket.

    Short sequences (plain facts, direct answers) and long ones (worked steps) are run as
    separate sub-batches, so the short ones are not padded to the long ones' width; the
    token-weighted mean of the buckets' losses is the loss of the whole batch (right
    padding changes nothing before it under a causal mask).
    """
    buckets: dict[bool, list[Example]] = {}
    for example in batch:
        long = len(example.prompt) + len(example.completion) + 2 > SHORT
        buckets.setdefault(long, []).append(example)
    total, tokens = torch.zeros(()), 0
    for examples in buckets.values():
        ids, mask, labels = encode_batch(examples, codec)
        count = int((labels[:, 1:] != IGNORE).sum())
        total = total + count * model(input_ids=ids, attention_mask=mask, labels=labels).loss
        tokens += count
    return total / tokens


def _lr_factor(step: int, spec: TrainSpec) -> float:
    if step < spec.warmup:
        return (step + 1) / spec.warmup
    progress = (step - spec.warmup) / max(1, spec.steps - spec.warmup)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

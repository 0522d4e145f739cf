"""Stand-in for mergekit's ``tests/common.py``, which the mergekit 0.1.5 sdist does not ship.

Six of the sdist's test files import ``make_picollama``, ``make_gpt2size``,
``make_picogranite``, ``make_picoLlaVa`` and ``run_and_check_merge`` from it. This module
is written for our CI from those call sites (tiny random checkpoints; a merge into a
temporary folder followed by the checks the tests expect), so that those files run too.
``.ci/mergekit_tests.sh`` copies it next to the fetched tests.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from mergekit.architecture import arch_info_for_config
from mergekit.config import MergeConfiguration
from mergekit.io.lazy_tensor_loader import LazyTensorLoader, ShardedTensorIndex
from mergekit.merge import MergeOptions, run_merge
from transformers import AutoConfig

#: The 2-layer, 32-wide text model shared by the Llama, Granite and LLaVA (language model)
#: stand-ins.
PICO_TEXT_SHAPE = {
    "hidden_size": 32,
    "intermediate_size": 48,
    "num_attention_heads": 16,
    "num_hidden_layers": 2,
}


def _save(model, path) -> str:
    torch.manual_seed(0)
    model.save_pretrained(str(path), safe_serialization=True)
    return str(path)


def make_picollama(path, vocab_size: int = 64) -> str:
    """A 2-layer Llama with hidden size 32 (random weights)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=vocab_size, **PICO_TEXT_SHAPE)
    return _save(LlamaForCausalLM(config), path)


def make_picogranite(path, vocab_size: int = 64) -> str:
    """A 2-layer Granite (Llama-like with scaling multipliers)."""
    from transformers import GraniteConfig, GraniteForCausalLM

    config = GraniteConfig(vocab_size=vocab_size, **PICO_TEXT_SHAPE)
    return _save(GraniteForCausalLM(config), path)


def make_gpt2size(path) -> str:
    """A GPT-2 with GPT-2's 12 layers, shrunk in width (the tests stack layers 0-12)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(vocab_size=64, n_positions=64, n_embd=32, n_layer=12, n_head=4)
    return _save(GPT2LMHeadModel(config), path)


def make_picoLlaVa(path) -> str:  # noqa: N802 - the name the mergekit tests import
    """A LLaVA whose language model is a tiny Llama and whose vision tower is a tiny CLIP."""
    from transformers import (
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
    )

    vision = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=32,
        patch_size=8,
    )
    text = LlamaConfig(vocab_size=64, **PICO_TEXT_SHAPE)
    config = LlavaConfig(vision_config=vision, text_config=text, image_token_index=63)
    return _save(LlavaForConditionalGeneration(config), path)


def _check_no_nan(folder: str) -> None:
    loader = LazyTensorLoader(ShardedTensorIndex.from_disk(folder), lazy_unpickle=False)
    for name in sorted(loader.index.tensor_paths):
        assert not loader.get_tensor(name).isnan().any(), f"output tensor {name} has NaN"


def _check_all_weights(folder: str) -> None:
    """Every weight that mergekit's architecture definition requires is in the output."""
    config = AutoConfig.from_pretrained(folder)
    arch_info = arch_info_for_config(config)
    if arch_info is None:
        return  # no JSON architecture (auto-inferred): nothing to compare against
    present = set(ShardedTensorIndex.from_disk(folder).tensor_paths)
    for weight in arch_info.all_weights(config):
        if weight.name in present or weight.optional:
            continue
        if any(alias in present for alias in (weight.aliases or ())):
            continue
        if any(tied in present for tied in (weight.tied_names or ())):
            continue
        raise AssertionError(f"output is missing tensor {weight.name}")


def run_and_check_merge(
    config: MergeConfiguration,
    check_nan: bool = True,
    check_tensors: bool = True,
    validate: Callable[[str], None] | None = None,
    index_json_name: str | None = None,
    auto_arch: bool = False,
) -> None:
    """Merge into a temporary folder; check the index, config, NaNs and weights; validate."""
    with tempfile.TemporaryDirectory() as folder:
        run_merge(config, out_path=folder, options=MergeOptions())
        index = Path(folder) / (index_json_name or "model.safetensors.index.json")
        single = Path(folder) / "model.safetensors"
        assert index.exists() or single.exists(), "the merge wrote no safetensors index or file"
        assert (Path(folder) / "config.json").exists(), "the merge wrote no config.json"
        if check_nan:
            _check_no_nan(folder)
        if check_tensors and not auto_arch:
            _check_all_weights(folder)
        if validate is not None:
            validate(folder)

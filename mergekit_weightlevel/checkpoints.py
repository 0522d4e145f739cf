"""Reading a local checkpoint folder's tensors into memory: for the demo, the toy, the tests
and the benchmarks (merges and ``analyze`` stream through mergekit's loaders instead)."""

from __future__ import annotations

from pathlib import Path

import torch


def read_state(folder: str | Path, *, in_memory: bool = False) -> dict[str, torch.Tensor]:
    """Every tensor of the ``*.safetensors`` files of ``folder`` (one file or several shards).

    safetensors ≥ 0.8 maps the tensors from the file (page cache, zero-copy); ``in_memory``
    copies them into the process, as a script that loads whole models with transformers or
    ``torch.load`` holds them (the benchmarks' load-everything baselines want that cost)."""
    from safetensors.torch import load_file

    state: dict[str, torch.Tensor] = {}
    for shard in sorted(Path(folder).glob("*.safetensors")):
        state.update(load_file(shard))
    if in_memory:
        state = {name: tensor.clone() for name, tensor in state.items()}
    return state

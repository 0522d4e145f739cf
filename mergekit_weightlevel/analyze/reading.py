"""Streaming tensors through mergekit's loaders, one name at a time, in shard order.

Every model is read by a mergekit ``LazyTensorLoader``: only the current shard of each
model is open, and each tensor is read once per model. A local folder is indexed by
``LazyTensorLoader.from_disk`` directly, which is what mergekit's ``ModelReference``
does for a local path; anything else (a Hugging Face id, ``model+adapter``) goes through
``ModelReference`` and ``LoaderCache``. The split is for start-up time: importing
``mergekit.common`` pulls in transformers and peft, seconds that would dominate
``analyze --metrics sigma`` on local folders.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Union

import torch
from mergekit.io.lazy_tensor_loader import LazyTensorLoader

from mergekit_weightlevel.analyze.options import check_regex
from mergekit_weightlevel.checks.headers import read_headers
from mergekit_weightlevel.errors import WeightLevelModelError, package_logger
from mergekit_weightlevel.tensor_names import (
    expert_count,
    expert_matrices,
    has_per_expert_names,
    layer_index,
    mergekit_layout,
    stacked_expert_names,
)

if TYPE_CHECKING:
    from mergekit.options import MergeOptions

LOG = package_logger(__name__)


@dataclass(frozen=True)
class LoaderOptions:
    """The ``MergeOptions`` fields that reading uses, same names, without importing mergekit.

    The CLI passes this; ``analyze_models`` takes it or a full ``MergeOptions``.
    """

    lazy_unpickle: bool = False
    transformers_cache: str | None = None
    lora_merge_cache: str | None = None
    lora_merge_dtype: str | None = None
    trust_remote_code: bool = False


AnyLoaderOptions = Union["MergeOptions", LoaderOptions, None]


@dataclass(frozen=True)
class TensorFilter:
    """Which tensor names to analyse: ``include`` / ``exclude`` regexes (``re.search``) and layers.

    With ``layers`` set, only tensors of those decoder layers are kept (embeddings, the
    final norm and lm_head have no layer and are left out).
    """

    include: str | None = None
    exclude: str | None = None
    layers: frozenset[int] | None = None

    def __post_init__(self) -> None:
        check_regex("--include", self.include)
        check_regex("--exclude", self.exclude)

    def keeps(self, name: str) -> bool:
        if self.include is not None and not re.search(self.include, name):
            return False
        if self.exclude is not None and re.search(self.exclude, name):
            return False
        if self.layers is not None:
            layer = layer_index(name)
            return layer is not None and layer in self.layers
        return True


@dataclass(frozen=True)
class Source:
    """Where an analysed tensor comes from.

    ``tensor`` is a name in mergekit's layout: stored in the checkpoint as it is, or, with
    ``converted``, built by mergekit's checkpoint conversion (transformers 5: per-expert
    matrices stacked into ``mlp.experts.gate_up_proj``). ``matrix`` is set for one expert's
    matrix inside such a stacked tensor (``tensor_names.expert_matrices``).
    """

    tensor: str
    converted: bool = False
    matrix: str | None = None


@dataclass
class ModelTensors:
    """One model opened through mergekit: its label, its loader, the names it is analysed by.

    ``names`` are mergekit's layout (what a merge reads and writes), with stacked experts
    split into one name per expert matrix, so that a per-expert checkpoint and a merge
    output written with stacked experts compare tensor for tensor.
    """

    label: str
    loader: LazyTensorLoader
    names: list[str] = field(default_factory=list)  # in reading order
    sources: dict[str, Source] = field(default_factory=dict)  # name → source (default: itself)
    model_type: str | None = None
    _stacked: tuple[str, torch.Tensor] | None = None  # the last stacked tensor read

    def read(self, name: str, device: str = "cpu") -> torch.Tensor:
        """One analysed tensor (an expert matrix is a view of its stacked tensor)."""
        source = self.sources.get(name, Source(name))
        if source.matrix is None:
            self._stacked = None
            return self._read_source(source, device)
        if self._stacked is None or self._stacked[0] != source.tensor:
            self._stacked = (source.tensor, self._read_source(source, device))
        stacked = self._stacked[1]
        for matrix in expert_matrices(source.tensor, tuple(stacked.shape)) or []:
            if matrix.name == source.matrix:
                return stacked[matrix.index]
        raise WeightLevelModelError(
            f"analyze: model {self.label}: {source.tensor} has shape {tuple(stacked.shape)}, "
            f"which holds no expert matrix {source.matrix}; does config.json's expert count "
            "match the checkpoint? Re-download the model or fix its config.json."
        )

    def _read_source(self, source: Source, device: str) -> torch.Tensor:
        if not source.converted:
            return self._read_stored(source.tensor, device)
        from mergekit.architecture.conversion import convert_checkpoint_tensors

        stored = {
            key: (lambda key=key: self._read_stored(key, device))
            for key in self.loader.index.tensor_paths
        }
        tensor = convert_checkpoint_tensors(self.model_type, stored, source.tensor)
        if tensor is None:
            raise WeightLevelModelError(
                f"analyze: model {self.label}: mergekit could not build {source.tensor} from "
                "the checkpoint's tensors; is the checkpoint complete?"
            )
        return tensor.to(device)

    def _read_stored(self, name: str, device: str = "cpu") -> torch.Tensor:
        """One stored tensor; falls back to plain loading where ``--lazy-unpickle`` cannot read a shard."""
        try:
            return self.loader.get_tensor(name, device=device)
        except Exception as error:
            if not self.loader.lazy_unpickle:
                raise
            # mergekit's own sharded .bin output has renamed zip roots the lazy unpickler rejects.
            LOG.warning(
                "%s: --lazy-unpickle could not read %s (%s); reading this model normally",
                self.label,
                name,
                error,
            )
            self.loader.flush()
            self.loader.lazy_unpickle = False
            return self.loader.get_tensor(name, device=device)


def names_in_shard_order(loader: LazyTensorLoader) -> list[str]:
    """Every tensor name of a checkpoint, shard after shard (each shard is opened once)."""
    return [name for shard in loader.index.shards for name in shard.contained_keys]


def is_local_folder(label: str) -> bool:
    """A folder on disk, without ``+adapter``: mergekit would read it as it is."""
    return "+" not in label and os.path.isdir(label)


def check_local_shards(folder: str, label: str) -> None:
    """Read every safetensors header of a local folder (a few KB each) before any tensor.

    A truncated or corrupted shard then fails at once with ``merge``'s message, which names
    the file and says to re-download it (``preflight.read_headers``), instead of a
    deserialisation error about the folder, possibly after other shards were analysed.
    """
    path = Path(folder)
    if any(path.glob("*.safetensors")):
        read_headers(path, f"analyze: model {label}")


def open_model(label: str, options: AnyLoaderOptions = None) -> ModelTensors:
    """Index one model: a local folder directly, anything else through mergekit's ``LoaderCache``."""
    lazy_unpickle = bool(getattr(options, "lazy_unpickle", False))
    if is_local_folder(label):
        check_local_shards(label, label)
    try:
        if is_local_folder(label):
            loader = LazyTensorLoader.from_disk(label, lazy_unpickle=lazy_unpickle)
        else:
            from mergekit.common import ModelReference
            from mergekit.io.tasks import LoaderCache

            loader = LoaderCache().get(ModelReference.parse(label))
    except Exception as error:
        hint = (
            " (a LoRA adapter needs --lora-merge-cache DIR to be merged into its model)"
            if "+" in label
            else ""
        )
        raise WeightLevelModelError(
            f"analyze: cannot open model {label!r}: {error}. Give a local folder holding "
            f"*.safetensors or pytorch_model*.bin weights, a Hugging Face id, or "
            f"MODEL+ADAPTER{hint}."
        ) from error
    model = ModelTensors(label, loader, names_in_shard_order(loader))
    read_in_mergekit_layout(model, options)
    return model


def _config(model: ModelTensors) -> dict:
    """The model's config.json as a dict ({} when there is none)."""
    path = Path(model.loader.index.base_path) / "config.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def read_in_mergekit_layout(model: ModelTensors, options: AnyLoaderOptions = None) -> None:
    """Analyse ``model`` by mergekit's tensor names, stacked experts one matrix each.

    A checkpoint with per-expert names (``experts.<e>.``) is read through mergekit's
    architecture and transformers 5's checkpoint conversion, as mergekit reads it for a
    merge: its names become mergekit's (Mixtral's ``block_sparse_moe`` → ``mlp``, experts
    stacked). Every stacked-experts tensor (converted or stored so, as in a merge output)
    is then listed as its expert matrices, ``…experts.<e>.{gate,up,down}_proj.weight``.
    Checkpoints without routed experts are analysed by their stored names, as before.
    """
    config = _config(model)
    model.model_type = config.get("model_type")
    if has_per_expert_names(model.names):
        _convert_names(model, options)
    experts = expert_count(config)
    if experts is None:
        return
    names: list[str] = []
    for name in model.names:
        split = stacked_expert_names(name, experts)
        if split is None:
            names.append(name)
            continue
        source = model.sources.get(name, Source(name))
        model.sources.pop(name, None)
        for matrix in split:
            names.append(matrix)
            model.sources[matrix] = Source(source.tensor, source.converted, matrix)
    model.names = names


def _convert_names(model: ModelTensors, options: AnyLoaderOptions) -> None:
    """Replace ``model.names`` by mergekit's layout names (see ``read_in_mergekit_layout``)."""
    from transformers import AutoConfig

    trust_remote_code = bool(getattr(options, "trust_remote_code", False))
    try:
        config = AutoConfig.from_pretrained(
            model.loader.index.base_path, trust_remote_code=trust_remote_code
        )
        layout = mergekit_layout(config, model.names, trust_remote_code)
    except Exception as error:  # noqa: BLE001 - analyse the stored names instead
        LOG.warning(
            "%s: cannot find mergekit's tensor layout for it (%s); analysing its stored "
            "per-expert names, which a merge output of it (stacked experts) may not share",
            model.label,
            error,
        )
        return
    stored = set(model.names)
    for name in layout:
        if name not in stored:
            model.sources[name] = Source(name, converted=True)
    LOG.info("%s: read in mergekit's layout: %d tensors", model.label, len(layout))
    model.names = layout


def open_models(labels: list[str], options: AnyLoaderOptions = None) -> list[ModelTensors]:
    """Open every model; Hub ids and adapters first get mergekit's ``LoaderCache`` set up.

    ``options``: mergekit's ``MergeOptions`` or a ``LoaderOptions``; None: the defaults.
    """
    remote = [label for label in labels if not is_local_folder(label)]
    if remote:
        from mergekit.io.tasks import LoaderCache
        from mergekit.options import MergeOptions

        from mergekit_weightlevel.checks.hub import check_models_available

        if not isinstance(options, MergeOptions):
            options = MergeOptions(**vars(options or LoaderOptions()))
        # Every model at once and before any is read: a Hub id without network fails in seconds.
        check_models_available(remote, purpose="analyze", cache_dir=options.transformers_cache)
        LoaderCache().setup(options)
    return [open_model(label, options) for label in labels]


def close_models(models: list[ModelTensors]) -> None:
    """Let every loader drop its open shard (as mergekit's ``LoaderCache.flush_all``)."""
    for model in models:
        model.loader.flush()


def common_names(models: list[ModelTensors], tensor_filter: TensorFilter) -> list[str]:
    """Names every model holds and the filter keeps, in the reference's shard order."""
    others = [set(model.names) for model in models[1:]]
    return [
        name
        for name in models[0].names
        if tensor_filter.keeps(name) and all(name in held for held in others)
    ]

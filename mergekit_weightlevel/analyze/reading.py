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

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Union

import torch
from mergekit.io.lazy_tensor_loader import LazyTensorLoader

from mergekit_weightlevel.analyze.names import layer_index
from mergekit_weightlevel.preflight import read_headers

if TYPE_CHECKING:
    from mergekit.options import MergeOptions

LOG = logging.getLogger(__name__)


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
        for option, pattern in (("--include", self.include), ("--exclude", self.exclude)):
            if pattern is not None:
                try:
                    re.compile(pattern)
                except re.error as error:
                    raise ValueError(
                        f"{option}: {pattern!r} is not a valid regex ({error})"
                    ) from None

    def keeps(self, name: str) -> bool:
        if self.include is not None and not re.search(self.include, name):
            return False
        if self.exclude is not None and re.search(self.exclude, name):
            return False
        if self.layers is not None:
            layer = layer_index(name)
            return layer is not None and layer in self.layers
        return True


@dataclass
class ModelTensors:
    """One model opened through mergekit: its label, its loader, the names it holds."""

    label: str
    loader: LazyTensorLoader
    names: list[str] = field(default_factory=list)  # in shard order

    def read(self, name: str, device: str = "cpu") -> torch.Tensor:
        """One tensor; falls back to plain loading where ``--lazy-unpickle`` cannot read a shard."""
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
        raise RuntimeError(
            f"analyze: cannot open model {label!r}: {error}. Give a local folder holding "
            f"*.safetensors or pytorch_model*.bin weights, a Hugging Face id, or "
            f"MODEL+ADAPTER{hint}."
        ) from error
    return ModelTensors(label, loader, names_in_shard_order(loader))


def open_models(labels: list[str], options: AnyLoaderOptions = None) -> list[ModelTensors]:
    """Open every model; Hub ids and adapters first get mergekit's ``LoaderCache`` set up.

    ``options``: mergekit's ``MergeOptions`` or a ``LoaderOptions``; None: the defaults.
    """
    remote = [label for label in labels if not is_local_folder(label)]
    if remote:
        from mergekit.io.tasks import LoaderCache
        from mergekit.options import MergeOptions

        from mergekit_weightlevel.hub import check_models_available

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

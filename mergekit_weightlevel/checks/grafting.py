"""Checks of a graft before its first tensor: does the ``include`` regex select what it was
meant to, and does a LoRA adapter fit the model it is grafted onto?

Shadow-FT (``methods/shadow_graft``) calls these once per merge; each message names the
method it is given.
"""

from __future__ import annotations

import difflib
import os
import re
from collections import defaultdict
from collections.abc import Hashable
from pathlib import Path
from typing import Any

from mergekit_weightlevel.checks.headers import read_file_headers
from mergekit_weightlevel.errors import WeightLevelConfigError, package_logger
from mergekit_weightlevel.tensor_names import (
    PROJECTION_TYPES,
    layer_index,
    mergekit_layout,
    module_type,
    split_parameter,
)

logger = package_logger(__name__)

#: How many tensor names an `include` error or warning shows.
SHOWN_NAMES = 5


def checkpoint_shapes(
    model_id: Hashable, *, method: str
) -> dict[str, tuple[int, ...] | None] | None:
    """Tensor names (and shapes, from safetensors headers) of a model mergekit is reading.

    A model is a folder (or Hub id) to ``mergekit-yaml``, and one checkpoint file to
    ``mergekit-pytorch``, which reads it with ``ShardedTensorIndex.from_file``. None when
    the id is not a mergekit model (the in-memory API): then only the tensors the merge
    visits are checked, one at a time.
    """
    # Imported here: mergekit.common pulls in mergekit.io, which the package import must
    # not (it warns under numpy 2, and registration has to stay light).
    from mergekit.common import ModelReference
    from mergekit.io import ShardedTensorIndex
    from mergekit.io.tasks import LoaderCache

    if not isinstance(model_id, ModelReference):
        return None
    path = model_id.model.path
    if model_id.lora is None and os.path.isfile(path):
        index = ShardedTensorIndex.from_file(path)
    else:
        index = LoaderCache().get(model_id).index
    shapes: dict[str, tuple[int, ...] | None] = dict.fromkeys(index.tensor_paths)
    if index.is_safetensors:
        for shard in sorted(set(index.tensor_paths.values())):
            file = Path(index.base_path) / shard
            headers = read_file_headers(file, f"{method}: model {model_id}")
            shapes.update({name: header.shape for name, header in headers.items()})
    return shapes


def check_adapter_targets(adapter: Any, target_id: Hashable, *, method: str) -> None:
    """Every tensor a LoRA adapter changes exists in the target, with the adapter's shape."""
    shapes = checkpoint_shapes(target_id, method=method)
    if shapes is None:
        return
    missing = [name for name in adapter.targets() if name not in shapes]
    if missing:
        raise WeightLevelConfigError(
            f"{method}: adapter {adapter.path} changes tensors that the target "
            f"{target_id} does not have: {', '.join(missing[:8])}"
            f"{' ...' if len(missing) > 8 else ''}. Was it trained on another architecture?"
        )
    for name in adapter.modules:
        if shapes[name] is not None:
            adapter.check_shape(name, shapes[name])


def merged_tensor_names(model_id: Hashable, *, method: str) -> dict[str, int | None] | None:
    """Name → number of dimensions (None: unknown) of the tensors mergekit will merge.

    These are the names ``include`` is matched against: mergekit's layout
    (``tensor_names.mergekit_layout``: transformers 5's stacked experts, not the per-expert
    names of the checkpoint), or the checkpoint's own names where that cannot be found.
    None for the in-memory API.
    """
    shapes = checkpoint_shapes(model_id, method=method)
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


def check_include(include: str, names: dict[str, int | None], model: str, *, method: str) -> None:
    """Raise when ``include`` matches none of the ≥2-D tensors; warn when, in some layer,
    it takes some projection kinds (module types) and leaves others out."""
    matrices = [name for name, ndim in names.items() if ndim is None or ndim >= 2]
    matched = [name for name in matrices if re.search(include, name, flags=re.IGNORECASE)]
    if matrices and not matched:
        raise WeightLevelConfigError(
            f"{method}: parameter `include` ({include!r}) matches none of the "
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
            method,
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


def warn_if_other_base(adapter: Any, base_id: Hashable, *, method: str) -> None:
    """Warn when the adapter says it was trained on another model than ``base_model``."""
    from mergekit.common import ModelReference

    trained_on = adapter.base_model_name
    configured = base_id.model.path if isinstance(base_id, ModelReference) else str(base_id)
    if trained_on and not same_model(trained_on, configured):
        logger.warning(
            "%s: adapter %s was trained on %s (its base_model_name_or_path), but base_model is %s. "
            "The graft assumes the adapter's base is the Instruct's base; check the pairing.",
            method,
            adapter.path,
            trained_on,
            configured,
        )


def same_model(a: str, b: str) -> bool:
    if os.path.exists(a) and os.path.exists(b):
        return os.path.samefile(a, b)
    return a.rstrip("/") == b.rstrip("/")

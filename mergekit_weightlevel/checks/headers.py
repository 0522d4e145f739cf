"""Checks that run before a merge reads any weights: headers only, seconds even at 70B.

mergekit finds a missing tensor, a shape mismatch or a truncated shard only when it
reaches that tensor, possibly after hours, and its messages do not say which model or
file is at fault. These checks read the safetensors headers of every input (a few KB
per shard) and report every problem at once, naming the model, tensor and file.

They run from the methods' ``validate_inputs`` when mergekit plans a merge (so plain
``mergekit-yaml`` gets them too) and from ``mergekit-weightlevel merge``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path

from mergekit_weightlevel.errors import WeightLevelError, package_logger

# is_vocabulary_tensor lived here; it is imported from here too (tests, older code).
from mergekit_weightlevel.tensor_names import (
    expert_layout,
    in_expert_layout,
    is_vocabulary_tensor,
)

LOG = package_logger(__name__)

#: Tensors that a checkpoint may legitimately lack (tied to the input embeddings).
TIEABLE = ("lm_head.weight",)

TOKENIZER_HINT = (
    "Checkpoints with different vocabularies can be merged once mergekit aligns them: add\n"
    "  tokenizer:\n"
    "    source: base        # or union, or the path of one model\n"
    "to the merge config (top level)."
)


class PreflightError(WeightLevelError, ValueError):
    """The inputs cannot be merged as configured; the message lists every problem found."""


@dataclass(frozen=True)
class TensorHeader:
    shape: tuple[int, ...]
    dtype: str
    file: Path


def local_folder(model: Hashable, cache_dir: str | None = None) -> Path | None:
    """The local folder of a mergekit ``ModelReference`` (or a path), if there is one.

    Hub ids are resolved from the local Hugging Face cache only; models with a LoRA
    (``model+adapter``) are skipped because mergekit builds their weights later.
    """
    lora = getattr(model, "lora", None)
    if lora is not None:
        return None
    path_spec = getattr(model, "model", model)
    path = getattr(path_spec, "path", path_spec)
    if not isinstance(path, (str, os.PathLike)):
        return None
    if os.path.isdir(path):
        return Path(path)
    try:
        from huggingface_hub import snapshot_download

        return Path(
            snapshot_download(
                str(path),
                revision=getattr(path_spec, "revision", None),
                local_files_only=True,
                cache_dir=cache_dir,
            )
        )
    except Exception:  # noqa: BLE001 - not cached (or not an id): mergekit will fetch it
        return None


def read_headers(folder: Path, label: str) -> dict[str, TensorHeader]:
    """Name → shape / dtype / file for every tensor of a safetensors checkpoint folder.

    Raises ``PreflightError`` naming the file when an index entry points at a missing
    file or a shard's header cannot be read (a truncated or corrupted download).
    """

    index_file = folder / "model.safetensors.index.json"
    if index_file.exists():
        try:
            weight_map = json.loads(index_file.read_text())["weight_map"]
        except (ValueError, KeyError) as error:
            raise PreflightError(
                f"{label}: cannot read {index_file} ({error}); re-download the model."
            ) from None
        shards = sorted(set(weight_map.values()))
        missing = [s for s in shards if not (folder / s).exists()]
        if missing:
            raise PreflightError(
                f"{label}: {index_file.name} lists shard(s) missing from {folder}: "
                f"{', '.join(missing)}. Re-download the model or fix the index."
            )
    else:
        weight_map = None
        shards = sorted(p.name for p in folder.glob("*.safetensors"))
    headers: dict[str, TensorHeader] = {}
    for shard in shards:
        headers.update(read_file_headers(folder / shard, label))
    if weight_map is not None:
        unlisted = sorted(name for name, shard in weight_map.items() if name not in headers)
        if unlisted:
            raise PreflightError(
                f"{label}: {index_file.name} names tensor(s) that no shard contains: "
                f"{', '.join(unlisted[:5])}{' …' if len(unlisted) > 5 else ''}. "
                "Re-download the model or fix the index."
            )
    return headers


def read_file_headers(file: Path, label: str) -> dict[str, TensorHeader]:
    """Name → shape / dtype / file for every tensor of one safetensors file (its header only).

    Raises ``PreflightError`` naming the file when its header cannot be read.
    """
    from safetensors import safe_open

    headers: dict[str, TensorHeader] = {}
    try:
        with safe_open(str(file), framework="pt") as handle:
            for name in handle.keys():  # noqa: SIM118 - a safe_open handle is not iterable
                tensor_slice = handle.get_slice(name)
                headers[name] = TensorHeader(
                    tuple(tensor_slice.get_shape()), str(tensor_slice.get_dtype()), file
                )
    except Exception as error:  # noqa: BLE001 - safetensors raises its own error type
        raise PreflightError(
            f"{label}: cannot read the safetensors file {file} ({error}). The file is "
            "truncated or corrupted: re-download it (compare its size with the Hub's)."
        ) from None
    return headers


def check_inputs(
    models: Sequence[Hashable],
    *,
    method: str,
    vocabulary_aligned: bool | None = None,
) -> list[str]:
    """Compare the headers of every local safetensors input; raise on what cannot merge.

    ``models`` lists the inputs, the base first when there is one. Returns warnings.
    ``vocabulary_aligned``: True when the config aligns vocabularies (a ``tokenizer``
    section), False when it does not, None when unknown (then a vocabulary mismatch
    is a warning: mergekit stops at that tensor unless the config aligns it).
    """
    inputs = []
    for model in models:
        folder = local_folder(model)
        if folder is None or not any(folder.glob("*.safetensors")):
            continue  # .bin checkpoints, adapters, uncached Hub ids: mergekit checks later
        inputs.append((str(model), read_headers(folder, f"{method}: model {model}")))
    if len(inputs) < 2:
        return []

    reference_label, reference = inputs[0]
    problems: list[str] = []
    warnings: list[str] = []
    vocabulary: list[str] = []
    for label, headers in inputs[1:]:
        differ = set(reference) ^ set(headers)
        if expert_layout(reference) != expert_layout(headers):
            # One stores MoE experts per expert, the other stacked (a merge output): mergekit
            # reads both in its stacked layout, and its conversion names any missing expert.
            differ = {name for name in differ if not in_expert_layout(name)}
        for name in sorted(differ):
            owner, other = (
                (reference_label, label) if name in reference else (label, reference_label)
            )
            line = f"tensor {name} is in {owner} but missing from {other}"
            (warnings if name in TIEABLE else problems).append(line)
        for name in sorted(set(reference) & set(headers)):
            a, b = reference[name].shape, headers[name].shape
            if a == b:
                continue
            line = f"tensor {name}: {reference_label} has shape {a}, {label} has {b}"
            if is_vocabulary_tensor(name) and len(a) == len(b) and a[1:] == b[1:]:
                vocabulary.append(line)
            else:
                problems.append(line)
    if vocabulary and vocabulary_aligned is not True:
        text = "vocabulary sizes differ:\n  " + "\n  ".join(vocabulary) + "\n" + TOKENIZER_HINT
        if vocabulary_aligned is False:
            problems.append(text)
        else:
            warnings.append(text + "\n(without it mergekit stops at the first such tensor)")
    if problems:
        raise PreflightError(
            f"{method}: the input checkpoints do not match, so they cannot be merged "
            "tensor by tensor (are they the same architecture and size?):\n  "
            + "\n  ".join(problems[:20])
            + (f"\n  … and {len(problems) - 20} more" if len(problems) > 20 else "")
        )
    for line in warnings:
        LOG.warning("%s: %s", method, line)
    return warnings

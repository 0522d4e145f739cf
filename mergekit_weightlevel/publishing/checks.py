"""Is a folder a complete model, ready to publish? Checked before anything is sent.

- the weights: every shard the index names is present and its safetensors header readable
  (only the header is read: a few kilobytes per shard, whatever the model's size), every
  tensor the index names is in its shard, and no weight file lies there that the index does
  not name; ``.bin`` checkpoints are checked to be readable zip archives;
- ``config.json`` loads with ``transformers.AutoConfig``;
- the tokenizer loads with ``transformers.AutoTokenizer``;
  (a config or tokenizer with ``auto_map``, i.e. custom code, is only checked to be present
  and valid JSON: loading it would run that code);
- ``README.md`` is a card ``huggingface_hub.ModelCard`` parses, with valid front matter;
- the merge that wrote the folder finished (no ``MERGE_INCOMPLETE.txt``, the marker a merge of
  ours keeps in its folder until it ends).

Every problem names its file; ``check_folder`` raises one ``FolderNotReadyError`` listing them.
"""

from __future__ import annotations

import json
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mergekit_weightlevel.checks.model_folder import check_finished
from mergekit_weightlevel.errors import WeightLevelError

SAFETENSORS_INDEX = "model.safetensors.index.json"
BIN_INDEX = "pytorch_model.bin.index.json"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "tokenizer_config.json")
#: A safetensors header larger than this is not a header (the format caps it at 100 MB).
MAX_HEADER_BYTES = 100_000_000
#: Bytes per element of the safetensors dtypes (for parameter counts).
DTYPE_BYTES = {
    "F64": 8, "I64": 8, "U64": 8, "F32": 4, "I32": 4, "U32": 4, "F16": 2, "BF16": 2,
    "I16": 2, "U16": 2, "F8_E4M3": 1, "F8_E5M2": 1, "I8": 1, "U8": 1, "BOOL": 1,
}  # fmt: skip


class FolderNotReadyError(WeightLevelError, ValueError):
    """The folder is not a complete model; ``problems`` lists each file and what is wrong."""

    def __init__(self, folder: Path, problems: list[str]) -> None:
        self.folder = folder
        self.problems = problems
        super().__init__(
            f"{folder} is not ready to publish, nothing was sent: " + "; ".join(problems)
        )


def read_safetensors_header(path: Path) -> dict[str, Any]:
    """The JSON header of a safetensors file (reads only the header), checked against its size."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        prefix = handle.read(8)
        if len(prefix) < 8:
            raise ValueError("too short to be a safetensors file")
        (length,) = struct.unpack("<Q", prefix)
        if length > min(MAX_HEADER_BYTES, size - 8):
            raise ValueError(
                "its header length is larger than the file (truncated or not safetensors)"
            )
        header = json.loads(handle.read(length))
    if not isinstance(header, dict):
        raise ValueError("its header is not a JSON object")
    end = max(
        (info["data_offsets"][1] for name, info in header.items() if name != "__metadata__"),
        default=0,
    )
    if 8 + length + end > size:
        raise ValueError(
            f"truncated: the header needs {8 + length + end} bytes, the file has {size}"
        )
    return header


@dataclass(frozen=True)
class WeightsSummary:
    """What the headers say about the weights: files, tensor and parameter counts, dtypes."""

    files: tuple[str, ...]
    tensors: int
    parameters: int
    dtypes: tuple[str, ...]


def _weight_files(folder: Path) -> tuple[str | None, list[str], dict[str, str]]:
    """(index file or None, weight files, tensor -> file from the index)."""
    for index_name in (SAFETENSORS_INDEX, BIN_INDEX):
        index = folder / index_name
        if index.is_file():
            weight_map = json.loads(index.read_text(encoding="utf-8")).get("weight_map")
            if not isinstance(weight_map, dict) or not weight_map:
                raise ValueError(f"{index_name}: has no weight_map")
            return index_name, sorted(set(weight_map.values())), dict(weight_map)
    for single in ("model.safetensors", "pytorch_model.bin"):
        if (folder / single).is_file():
            return None, [single], {}
    return None, [], {}


def check_weights(folder: Path) -> tuple[list[str], WeightsSummary | None]:
    """Problems with the weights (each naming its file) and, if none, what they hold."""
    try:
        index_name, files, weight_map = _weight_files(folder)
    except (ValueError, OSError) as error:
        return [f"{error} (rewrite the index, or merge again)"], None
    if not files:
        return [
            f"no weights: neither {SAFETENSORS_INDEX} nor model.safetensors "
            "(nor pytorch_model.bin) in the folder; publish the folder mergekit-yaml wrote"
        ], None
    problems: list[str] = []
    tensors: dict[str, dict[str, Any]] = {}
    for name in files:
        path = folder / name
        where = f" (named by {index_name})" if index_name else ""
        if not path.is_file():
            problems.append(f"{name}: missing{where}; copy it back or merge again")
            continue
        if name.endswith(".bin"):
            if not zipfile.is_zipfile(path):
                problems.append(f"{name}: not a readable torch checkpoint (zip archive)")
            continue
        try:
            header = read_safetensors_header(path)
        except (ValueError, OSError) as error:
            problems.append(f"{name}: unreadable safetensors header ({error})")
            continue
        for tensor, info in header.items():
            if tensor != "__metadata__":
                tensors[tensor] = {**info, "file": name}
    for tensor, name in weight_map.items():
        if (
            (folder / name).is_file()
            and name.endswith(".safetensors")
            and tensors.get(tensor, {}).get("file") != name
        ):
            problems.append(f"{name}: lacks tensor {tensor!r} that {index_name} places there")
    stray = sorted(
        p.name
        for p in folder.iterdir()
        if p.suffix in (".safetensors", ".bin") and p.name not in files
    )
    for name in stray:
        problems.append(
            f"{name}: a weight file that {index_name or 'the checkpoint'} does not name "
            "(left from another merge?); delete it, or it would be uploaded too"
        )
    if problems:
        return problems, None
    parameters = 0
    for info in tensors.values():
        count = 1
        for dim in info["shape"]:
            count *= dim
        parameters += count
    summary = WeightsSummary(
        files=tuple(files),
        tensors=len(tensors),
        parameters=parameters,
        dtypes=tuple(sorted({str(info["dtype"]) for info in tensors.values()})),
    )
    return problems, summary


def check_config(folder: Path) -> list[str]:
    if not (folder / "config.json").is_file():
        return ["config.json: missing; mergekit-yaml writes it, merge again"]
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        return [f"config.json: transformers cannot load it (not JSON: {error})"]
    if isinstance(config, dict) and "auto_map" in config:
        return []  # custom code: loading it would run that code, which a check must not do
    from transformers import AutoConfig

    try:
        AutoConfig.from_pretrained(folder, local_files_only=True)
    except Exception as error:  # noqa: BLE001 - whatever transformers raises, it does not load
        return [f"config.json: transformers cannot load it ({type(error).__name__}: {error})"]
    return []


def check_tokenizer(folder: Path) -> list[str]:
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        return [
            f"no tokenizer ({', '.join(TOKENIZER_FILES)} all missing): merge without "
            "--no-copy-tokenizer, or copy the tokenizer files of the input it comes from"
        ]
    tokenizer_config = folder / "tokenizer_config.json"
    if tokenizer_config.is_file() and '"auto_map"' in tokenizer_config.read_text(encoding="utf-8"):
        return []  # custom tokenizer code: not run by a check
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        AutoTokenizer.from_pretrained(folder, local_files_only=True)
    except Exception as error:  # noqa: BLE001
        return [f"tokenizer: transformers cannot load it ({type(error).__name__}: {error})"]
    finally:
        hf_logging.set_verbosity(verbosity)
    return []


def check_card(folder: Path) -> list[str]:
    """README.md parses as a model card with front matter ``ModelCardData`` accepts."""
    readme = folder / "README.md"
    if not readme.is_file():
        return ["README.md: missing; write it with `mergekit-weightlevel card FOLDER`"]
    from huggingface_hub import ModelCard, ModelCardData

    try:
        card = ModelCard.load(readme)
        data = card.data.to_dict()
        ModelCardData(ignore_metadata_errors=False, **data)
    except Exception as error:  # noqa: BLE001 - any parse error makes the card invalid
        return [f"README.md: not a valid model card ({type(error).__name__}: {error})"]
    if not data:
        return [
            "README.md: has no front matter (--- yaml ---); write it with `mergekit-weightlevel card`"
        ]
    return []


def folder_files(folder: Path) -> list[tuple[str, int]]:
    """Every file ``upload_folder`` sends (relative path, bytes), with the client's own filter."""
    from huggingface_hub.utils import DEFAULT_IGNORE_PATTERNS, filter_repo_objects

    sizes = {
        path.relative_to(folder).as_posix(): path.stat().st_size
        for path in sorted(folder.glob("**/*"))
        if path.is_file()
    }
    kept = filter_repo_objects(sizes, ignore_patterns=list(DEFAULT_IGNORE_PATTERNS))
    return [(name, sizes[name]) for name in kept]


def check_folder(folder: Path, *, card: bool = True) -> WeightsSummary:
    """Raise ``FolderNotReadyError`` unless ``folder`` is a complete model; return its weights."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FolderNotReadyError(folder, [f"{folder}: not a folder"])
    unfinished = check_finished(folder)
    if unfinished:  # its weights are a part of a model: nothing else is worth reporting
        raise FolderNotReadyError(folder, unfinished)
    problems, summary = check_weights(folder)
    problems += check_config(folder)
    problems += check_tokenizer(folder)
    if card:
        problems += check_card(folder)
    if problems or summary is None:
        raise FolderNotReadyError(folder, problems)
    return summary

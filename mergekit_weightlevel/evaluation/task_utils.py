"""lm-eval glue for local tasks: documents read from files beside the task's YAML.

A task YAML names this loader as its ``custom_dataset``::

    custom_dataset: !function mergekit_weightlevel.evaluation.task_utils.local_dataset
    dataset_kwargs:
      data_files: {test: data/problems.jsonl}   # relative to this YAML
    test_split: test

lm-eval calls it with the task's ``dataset_kwargs`` and its metadata, which holds the YAML's
own path (``config_source``) and the model arguments (``pretrained=FOLDER``). So, unlike
``dataset_path: json`` (whose relative paths are taken from the current directory), the task
runs from any directory, offline, the same under ``lm_eval`` and ``mergekit-weightlevel
evaluate``; and each document records the model's tokenizer, for ``generated_tokens``.

``hub_dataset`` does the same for a dataset on the Hugging Face Hub (``dataset_kwargs:
{path: openai/gsm8k, name: main}``), so a Hub benchmark can report lengths in tokens too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mergekit_weightlevel.evaluation.task_metrics import TOKENIZER_FIELD, tokenizer_name


def read_documents(path: Path) -> list[dict[str, Any]]:
    """The documents of a ``.jsonl`` file (one object a line) or a ``.json`` list."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        documents = json.loads(text)
    else:
        documents = [json.loads(line) for line in text.splitlines() if line.strip()]
    if not isinstance(documents, list) or not all(isinstance(d, dict) for d in documents):
        raise ValueError(f"{path}: expected JSON objects, one per document")
    return documents


def local_dataset(data_files: dict[str, str] | str, **metadata: Any) -> Any:
    """A ``datasets.DatasetDict`` of the ``data_files`` (one split each; a single file is
    ``test``), paths taken relative to the task's YAML; each document gets the model's
    tokenizer under ``"_tokenizer"`` when lm-eval's model arguments name one."""
    import datasets

    source = metadata.get("config_source")
    root = Path(source).parent if source and source != "inline" else Path.cwd()
    files = {"test": data_files} if isinstance(data_files, str) else dict(data_files)
    tokenizer = tokenizer_name(metadata)
    splits = {}
    for split, name in files.items():
        path = Path(name) if Path(name).is_absolute() else root / name
        if not path.is_file():
            raise FileNotFoundError(f"task data {path} (split {split!r}) does not exist")
        documents = read_documents(path)
        if tokenizer is not None:
            documents = [{**doc, TOKENIZER_FIELD: tokenizer} for doc in documents]
        splits[split] = datasets.Dataset.from_list(documents)
    return datasets.DatasetDict(splits)


def hub_dataset(path: str, name: str | None = None, **metadata: Any) -> Any:
    """A Hub dataset (``datasets.load_dataset(path, name)``, the offline switches respected)
    with the model's tokenizer recorded in each document, as ``local_dataset`` does."""
    import datasets

    loaded = datasets.load_dataset(path, name)
    tokenizer = tokenizer_name(metadata)
    if tokenizer is None:
        return loaded
    return datasets.DatasetDict(
        {
            split: part.add_column(TOKENIZER_FIELD, [tokenizer] * len(part))
            for split, part in loaded.items()
        }
    )

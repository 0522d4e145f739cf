"""Model references that are not local folders: find them, or say at once why not.

Without network, mergekit and transformers retry a Hugging Face download for half a minute
and then report a connection error that names no model. Before a merge or an analysis
reads anything, ``check_models_available`` resolves every model reference in seconds:

1. a path that exists locally: fine (mergekit reads it);
2. a Hugging Face id already in the local cache (``try_to_load_from_cache``): fine;
3. ``HF_HUB_OFFLINE`` set: error, the model cannot be fetched;
4. otherwise one metadata request to the Hub, with a short timeout and no retries:
   it answers → fine (mergekit downloads the files as usual); it does not → error.

Every error names the model, says it could not be fetched and why, and how to point at
a local folder instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mergekit_weightlevel.errors import WeightLevelError

#: Seconds the reachability request may take (it is one small JSON request).
PROBE_TIMEOUT_S = 10.0
_TRUE = ("1", "true", "yes", "on")


class ModelNotAvailableError(WeightLevelError, FileNotFoundError):
    """A model reference that is neither a local folder nor fetchable from the Hub."""


def hub_offline() -> bool:
    """``HF_HUB_OFFLINE`` as huggingface_hub reads it (checked at call time, not import)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE


def _model_paths(reference: Any) -> list[tuple[str, str | None, str]]:
    """(path, revision, kind) for a ``ModelReference`` (its model and LoRA) or a string."""
    from mergekit.common import ModelReference

    if not isinstance(reference, ModelReference):
        reference = ModelReference.parse(str(reference))
    paths = [(reference.model.path, reference.model.revision, "model")]
    if reference.lora is not None:
        paths.append((reference.lora.path, reference.lora.revision, "LoRA adapter"))
    return paths


def _in_cache(repo_id: str, revision: str | None, kind: str, cache_dir: str | None) -> bool:
    from huggingface_hub import try_to_load_from_cache

    marker = "adapter_config.json" if kind == "LoRA adapter" else "config.json"
    found = try_to_load_from_cache(repo_id, marker, cache_dir=cache_dir, revision=revision)
    return isinstance(found, str)


def _probe_hub(repo_id: str, revision: str | None) -> str | None:
    """None when the Hub answers for ``repo_id``; otherwise why it cannot be fetched."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import (
        GatedRepoError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        HfApi().model_info(repo_id, revision=revision, timeout=PROBE_TIMEOUT_S)
    except GatedRepoError:
        return "it is a gated repository: accept its terms on huggingface.co and log in (`hf auth login`)"
    except RevisionNotFoundError:
        return f"the Hub has no revision {revision!r} of it"
    except RepositoryNotFoundError:
        return "the Hub has no such repository (or it is private: log in with `hf auth login`)"
    except Exception as error:  # noqa: BLE001 - any transport error means "not reachable"
        return f"the Hugging Face Hub could not be reached ({type(error).__name__}: {error})"
    return None


def _unavailable(path: str, kind: str, why: str, purpose: str) -> ModelNotAvailableError:
    local = Path(path).expanduser().absolute()
    return ModelNotAvailableError(
        f"{purpose}: {kind} {path!r} could not be fetched: it is not a local folder "
        f"({local} does not exist), not in the local Hugging Face cache, and {why}. "
        f"Download it where there is network (`hf download {path} --local-dir DIR`) and give "
        f"the folder's path instead of the id (in a merge config: `model: /path/to/DIR`); "
        "if you meant a local folder, check the path."
    )


def check_models_available(
    references: Iterable[Any],
    *,
    purpose: str,
    cache_dir: str | None = None,
    probe: bool = True,
) -> None:
    """Raise ``ModelNotAvailableError`` for the first reference that cannot be read or fetched.

    ``references``: mergekit ``ModelReference`` objects or strings (``model+adapter``,
    ``id@revision``). ``purpose`` starts the message (e.g. ``merge``, ``analyze``).
    ``probe=False`` skips the network request (then only offline mode fails).
    """
    from huggingface_hub.errors import HFValidationError

    for reference in references:
        for path, revision, kind in _model_paths(reference):
            if os.path.exists(path):
                continue
            try:
                if _in_cache(path, revision, kind, cache_dir):
                    continue
            except HFValidationError:
                raise ModelNotAvailableError(
                    f"{purpose}: {kind} {path!r} is not a local folder "
                    f"({Path(path).expanduser().absolute()} does not exist) and not a valid "
                    "Hugging Face id (`name` or `org/name`). Check the path."
                ) from None
            if hub_offline():
                raise _unavailable(path, kind, "HF_HUB_OFFLINE is set", purpose)
            why = _probe_hub(path, revision) if probe else None
            if why is not None:
                raise _unavailable(path, kind, why, purpose)

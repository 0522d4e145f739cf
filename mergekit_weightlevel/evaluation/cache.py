"""Evaluations cached by what was evaluated: the model's content and the settings, not paths.

A model folder's digest is a SHA-256 over the files that decide what an evaluation sees:
weights, ``config.json``, the tokenizer, the generation config (``CONTENT_SUFFIXES``), each
by name and content. The card (``README.md``), the merge config and this package's own
records are left out: rewriting a card does not change the model. Hashing 16 GB takes
about a minute, so each file's digest is remembered by (path, size, modification time) in
``file-digests.json``: a rerun on unchanged files reads no weights.

An entry ``evaluations/<model digest>/<settings digest>/`` holds lm-eval's own results
file (as its command line writes it) and ``summary.json``. It is written under a temporary
name and renamed when complete, so an interrupted evaluation leaves no entry that looks
finished.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import uuid
from pathlib import Path
from typing import Any

from mergekit_weightlevel.checks.model_folder import EVALUATION_RECORD

#: Files whose content decides what an evaluation measures (weights, config, tokenizer).
CONTENT_SUFFIXES = (".safetensors", ".bin", ".json", ".model", ".txt", ".jinja", ".tiktoken")
#: Files with those suffixes that do not: records of results, not of the model.
NOT_CONTENT = (EVALUATION_RECORD,)
SUMMARY = "summary.json"
CHUNK = 16 * 1024 * 1024


def default_cache_dir() -> Path:
    """``$MERGEKIT_WEIGHTLEVEL_CACHE``, else ``$XDG_CACHE_HOME/mergekit-weightlevel``, else
    ``~/.cache/mergekit-weightlevel``."""
    if os.environ.get("MERGEKIT_WEIGHTLEVEL_CACHE"):
        return Path(os.environ["MERGEKIT_WEIGHTLEVEL_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mergekit-weightlevel"


def content_files(folder: Path) -> list[Path]:
    """The files of ``folder`` (top level) that its digest covers, sorted by name."""
    return sorted(
        path
        for path in folder.iterdir()
        if path.is_file() and path.suffix in CONTENT_SUFFIXES and path.name not in NOT_CONTENT
    )


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def unique_suffix() -> str:
    """A name part no other writer uses at the same time, on any machine sharing the folder
    (process ids repeat across the nodes of a cluster)."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def write_json_atomically(path: Path, value: Any) -> None:
    """Write JSON to a temporary file beside ``path`` and rename it: never half-written."""
    temporary = path.with_name(f".{path.name}.{unique_suffix()}.tmp")
    temporary.write_text(json.dumps(value, indent=1, ensure_ascii=False), encoding="utf-8")
    os.replace(temporary, path)


class DigestMemo:
    """Remembered file digests, keyed by absolute path, size and modification time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.known: dict[str, dict] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            self.known = {}
        self.changed = False

    def digest(self, file: Path) -> str:
        stat = file.stat()
        key = str(file.resolve())
        stamp = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
        entry = self.known.get(key)
        if entry is not None and {k: entry.get(k) for k in stamp} == stamp:
            return entry["sha256"]
        value = _file_sha256(file)
        self.known[key] = {**stamp, "sha256": value}
        self.changed = True
        return value

    def save(self) -> None:
        if self.changed:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_json_atomically(self.path, self.known)
            self.changed = False


def folder_digest(folder: Path, memo: DigestMemo) -> str:
    """SHA-256 over the names and digests of ``content_files(folder)``."""
    combined = hashlib.sha256()
    for file in content_files(folder):
        combined.update(f"{file.name}\0{memo.digest(file)}\n".encode())
    memo.save()
    return combined.hexdigest()


def tree_digest(roots: list[Path]) -> str:
    """SHA-256 over every file under ``roots`` (task YAMLs, their code and data)."""
    combined = hashlib.sha256()
    for root in roots:
        for file in sorted(p for p in root.rglob("*") if p.is_file()):
            if "__pycache__" in file.parts:
                continue
            combined.update(f"{file.relative_to(root)}\0{_file_sha256(file)}\n".encode())
    return combined.hexdigest()


def settings_digest(settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


class ResultCache:
    """Finished evaluations under ``root/evaluations``, one folder per (model, settings)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.memo = DigestMemo(self.root / "file-digests.json")

    def entry(self, model_digest: str, settings_key: str) -> Path:
        return self.root / "evaluations" / model_digest[:24] / settings_key[:24]

    def load(self, model_digest: str, settings_key: str) -> dict | None:
        """The summary of a finished evaluation, or None."""
        summary = self.entry(model_digest, settings_key) / SUMMARY
        try:
            return json.loads(summary.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def staging(self, model_digest: str, settings_key: str) -> Path:
        """An empty folder to write an entry into before ``commit``."""
        final = self.entry(model_digest, settings_key)
        staging = final.with_name(f"{final.name}.partial-{unique_suffix()}")
        staging.mkdir(parents=True)
        return staging

    def commit(self, staging: Path, summary: dict) -> Path:
        """Write ``summary`` into ``staging`` and move it into place; return the entry.

        Where another process has just committed the same evaluation (two copies of one
        model evaluated side by side), its entry stays and this one is dropped: both
        measured the same content with the same settings."""
        final = staging.with_name(staging.name.split(".partial-")[0])
        write_json_atomically(staging / SUMMARY, summary)
        if not (final / SUMMARY).is_file():
            shutil.rmtree(final, ignore_errors=True)  # an unfinished leftover, if any
            try:
                os.replace(staging, final)
                return final
            except OSError:
                if not (final / SUMMARY).is_file():
                    raise
        shutil.rmtree(staging, ignore_errors=True)
        return final

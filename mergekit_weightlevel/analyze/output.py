"""Writing ``analyze``'s files: check a destination before the run, write it atomically after.

Kept apart from ``report`` so that every renderer (plots, HTML, Markdown) can write files
without importing the report module (no import cycles in this package).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from mergekit_weightlevel.errors import WeightLevelError


class OutputNotWritableError(WeightLevelError, OSError):
    """An output path of ``analyze`` that cannot be written; the message names it."""


def check_writable(path: str | Path, *, option: str, folder: bool = False) -> None:
    """Fail before the analysis (not after it) when ``path`` cannot be written.

    Creates nothing: the nearest existing ancestor of the destination folder must be a
    writable folder, and a file destination must not be an existing folder.
    """
    path = Path(path)
    destination = path if folder else path.parent
    problem = None
    if not folder and path.is_dir():
        problem = f"{path} is a folder; give a file name"
    else:
        existing = destination.absolute()
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir():
            problem = f"{existing} is a file, so the folder {destination} cannot be created"
        elif not os.access(existing, os.W_OK | os.X_OK):
            problem = f"the folder {existing} is not writable (permissions)"
    if problem:
        raise OutputNotWritableError(
            f"analyze: cannot write {option} {path}: {problem}. Choose another path, or fix "
            "the folder's permissions. Nothing was analyzed or written."
        )


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def write_atomically(path: str | Path, text: str | bytes) -> Path:
    """Write a file through a temporary sibling and ``os.replace``: never a half-written file."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(
            dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
        )
    except OSError as error:
        raise OutputNotWritableError(
            f"analyze: cannot write {path} ({error.strerror or error}): choose another path "
            "or fix the folder's permissions."
        ) from error
    try:
        # mkstemp creates the file 0600; the result gets a normal file's mode (umask).
        os.chmod(temporary, 0o666 & ~_umask())
        with os.fdopen(handle, "wb") as stream:
            stream.write(text.encode("utf-8") if isinstance(text, str) else text)
        os.replace(temporary, path)
    except BaseException as error:
        Path(temporary).unlink(missing_ok=True)
        if isinstance(error, OSError):  # e.g. the disk filled up: name the file
            raise OutputNotWritableError(
                f"analyze: writing {path} failed ({error.strerror or error}); nothing was "
                "left at that path."
            ) from error
        raise
    return path

"""Units for the Ray tests, importable by name on the Ray workers (``ray_instance``)."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path


def square(number: int) -> int:
    return number * number


def die(attempts_file: str) -> None:
    """Count this attempt in ``attempts_file``, then end the worker as an OOM kill would."""
    path = Path(attempts_file)
    attempts = int(path.read_text()) if path.exists() else 0
    path.write_text(str(attempts + 1))
    os._exit(1)


def refuse(message: str) -> None:
    raise ValueError(message)


def sleep_long(pid_file: str) -> None:
    """Say which process runs this, then wait to be cancelled."""
    Path(pid_file).write_text(str(os.getpid()))
    time.sleep(600)


def weights_digests(outputs: list) -> list[tuple[int, str]]:
    """An ``evaluate`` hook: (the task's process id, a digest of each output's weights)."""
    return [(os.getpid(), weights_digest(output.folder)) for output in outputs]


def weights_digest(folder: str | Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(Path(folder).glob("*.safetensors")):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def die_on_value(value: float, attempts_file: str, outputs: list) -> list[str]:
    """An ``evaluate`` hook whose worker dies for the group holding ``value``."""
    if any(output.value == value for output in outputs):
        die(attempts_file)
    return [weights_digest(output.folder) for output in outputs]


def die_mid_merge_on_value(value: float, attempts_file: str, outputs: list) -> list[str]:
    """``die_on_value``, but the folder first left as a merge killed while writing leaves
    it: ``MERGE_INCOMPLETE.txt``, no weights (the state of a worker killed mid-merge)."""
    for output in outputs:
        if output.value == value:
            for weights in Path(output.folder).glob("*.safetensors"):
                weights.unlink()
            (Path(output.folder) / "MERGE_INCOMPLETE.txt").write_text("killed\n")
            die(attempts_file)
    return [weights_digest(output.folder) for output in outputs]

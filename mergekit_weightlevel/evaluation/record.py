"""``FOLDER/evaluation.json``: the evaluations of a merged folder, kept beside its weights.

``evaluate`` writes it into every folder it evaluates that a merge wrote (one holding
``mergekit_config.yml``); the model card reads it (``publishing/eval_results.py``) and
``publish`` uploads it with the folder. Input models (a reference, a Hub snapshot) are
never written into: their results stay in the cache and in ``--json``.

One entry per task, the latest evaluation of that task winning; entries measured on other
weights (the folder's content digest changed since) are dropped. Plain JSON, readable
without lm-eval::

    {"schema": 1, "written_by": "mergekit-weightlevel 0.x", "digest": "<sha256>",
     "tasks": {"toy_qa_add3": {"date": "...", "versions": {...}, "settings": {...},
                               "facts": {...TaskFacts}, "metrics": [{...MetricValue}]}}}
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from mergekit_weightlevel.checks.model_folder import EVALUATION_RECORD

RECORD = EVALUATION_RECORD
SCHEMA = 1
#: Only folders a merge wrote get a record (the card and ``publish`` are for those).
MERGE_MARKER = "mergekit_config.yml"


def read_record(folder: Path) -> dict[str, Any] | None:
    """The folder's record, or None (absent, unreadable, or of another schema)."""
    try:
        record = json.loads((Path(folder) / RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("schema") != SCHEMA:
        return None
    return record


def write_record(
    folder: Path, evaluation: Any, settings: dict[str, Any], writer: str
) -> Path | None:
    """Add ``evaluation``'s tasks (a ``ModelEvaluation``) to the folder's record.

    Returns the record's path, or None where the folder is not a merge output.
    """
    from mergekit_weightlevel.evaluation.cache import write_json_atomically

    folder = Path(folder)
    if not (folder / MERGE_MARKER).is_file():
        return None
    previous = read_record(folder)
    kept = previous["tasks"] if previous and previous.get("digest") == evaluation.digest else {}
    tasks = dict(kept)
    for name, facts in evaluation.tasks.items():
        tasks[name] = {
            "date": evaluation.date,
            "versions": evaluation.versions,
            "settings": settings,
            "facts": asdict(facts),
            "metrics": [asdict(m) for m in evaluation.metrics if m.task == name],
        }
    record = {"schema": SCHEMA, "written_by": writer, "digest": evaluation.digest, "tasks": tasks}
    path = folder / RECORD
    write_json_atomically(path, record)
    return path

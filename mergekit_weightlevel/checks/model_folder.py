"""What a model folder holds: whether its merge finished, and which files are part of the model.

Shared by everything that acts on a merged folder: the merge that marks it (``running``),
``evaluate``, ``--keep best`` (``evaluation``), ``card`` and ``publish`` (``publishing``).
"""

from __future__ import annotations

from pathlib import Path

#: Kept in an output folder by a merge of ours from its start to its end (``running.output_folder``).
INCOMPLETE_MARKER = "MERGE_INCOMPLETE.txt"
#: What the marker says when nothing more is known: the merge was interrupted, or failed.
INTERRUPTED = (
    "The merge into this folder started but did not finish (interrupted, or it failed before "
    "its end): its weights are incomplete. Run the merge again; it replaces them and removes "
    "this file.\n"
)
UNFINISHED = "the merge into this folder did not finish: run it again"


def incomplete_reason(folder: Path) -> str | None:
    """Why the folder's merge did not finish (the marker's text), or None if it did."""
    marker = Path(folder) / INCOMPLETE_MARKER
    return marker.read_text(encoding="utf-8").strip() if marker.is_file() else None


def check_finished(folder: Path) -> list[str]:
    """The folder's merge finished; otherwise say so, and to run it again.

    Two signs: our marker (a merge of ours keeps it from its start to its end; a failed
    sweep value writes its reason in it), or weights without ``config.json``, which mergekit
    writes after the last tensor (a merge run without our wrapper, interrupted).
    """
    reason = incomplete_reason(folder)
    if reason is not None:
        why = "" if reason == INTERRUPTED.strip() else f": {reason}"
        return [f"{UNFINISHED} ({INCOMPLETE_MARKER} marks it{why})"]
    weights = [p for p in Path(folder).glob("*") if p.suffix in (".safetensors", ".bin")]
    if weights and not (Path(folder) / "config.json").is_file():
        return [
            f"{UNFINISHED} (it holds {len(weights)} weight file(s) but no config.json, which "
            "mergekit writes after the last tensor)"
        ]
    return []


#: ``evaluate``'s results beside a merged folder (``evaluation.record``), and the Hub's
#: eval-results files written from them (``publishing.eval_results``): uploaded with the model.
EVALUATION_RECORD = "evaluation.json"
EVAL_RESULTS_DIR = ".eval_results"

#: Files of a model folder besides its weights: what mergekit writes or copies (its config,
#: card and YAML, the tokenizer files of ``_copy_tokenizer``, processors), the card's figures
#: and the evaluation results.
MODEL_FILES = frozenset(
    {
        "config.json", "generation_config.json", "README.md", "mergekit_config.yml",
        "tokenizer.json", "tokenizer.model", "tokenizer_config.json", "special_tokens_map.json",
        "added_tokens.json", "merges.txt", "vocab.json", "vocab.txt", "chat_template.jinja",
        "chat_template.json", "preprocessor_config.json", "processor_config.json",
        "video_preprocessor_config.json", ".gitattributes", EVALUATION_RECORD,
    }
)  # fmt: skip
#: Folders of a model folder that belong to it (``card --report``'s figures, the results).
MODEL_FOLDERS = ("weight_level/", f"{EVAL_RESULTS_DIR}/")


def is_model_file(name: str, folder: Path) -> bool:
    """Whether ``name`` (relative to ``folder``) is part of the model, not a file left there.

    Weights and their index, the files mergekit writes or copies, the card's figures, and
    the Python files of a model with custom code (``auto_map`` in ``config.json``).
    """
    if name in MODEL_FILES or name.startswith(MODEL_FOLDERS):
        return True
    if "/" not in name and name.endswith((".safetensors", ".bin", ".index.json")):
        return True
    if name.endswith(".py") and "/" not in name:
        config = folder / "config.json"
        return config.is_file() and '"auto_map"' in config.read_text(encoding="utf-8")
    return False

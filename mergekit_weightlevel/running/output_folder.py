"""The output folder of a merge: what it holds when the merge ends, and how an unfinished
one is recognised.

- A marker file (``checks.model_folder.INCOMPLETE_MARKER``) is written into the folder before
  mergekit writes anything and removed when the merge has finished; a folder that still has
  it was interrupted, or its merge failed (the marker says why). ``card`` and ``publish``
  refuse it.
- Weight files or indexes this merge did not write (an earlier or interrupted run's) are
  removed at the end, so they are never uploaded beside the new weights.
- The method's model card replaces mergekit's generic one; a ``README.md`` written by hand
  is moved to ``README.user.md`` before mergekit would overwrite it.
"""

from __future__ import annotations

import os
from pathlib import Path

from mergekit.options import MergeOptions

from mergekit_weightlevel.checks.model_folder import INCOMPLETE_MARKER, INTERRUPTED
from mergekit_weightlevel.errors import package_logger
from mergekit_weightlevel.running.file_donors import (
    FileDecisions,
    align_generation_config,
    copy_missing_generation_config,
)

LOG = package_logger(__name__)

#: What counts as a weight file or index in an output folder.
WEIGHT_SUFFIXES = (".safetensors", ".safetensors.index.json", ".bin.index.json")
WEIGHT_BIN_PREFIXES = ("pytorch_model", "model")


def is_weight_file(name: str) -> bool:
    if name.endswith(WEIGHT_SUFFIXES):
        return True
    return name.endswith(".bin") and name.startswith(WEIGHT_BIN_PREFIXES)


def weight_files(folder: str | os.PathLike) -> dict[str, tuple[int, int, int]]:
    """Name → (inode, mtime, size) of every weight file directly in ``folder``."""
    folder = Path(folder)
    if not folder.is_dir():
        return {}
    found = {}
    for item in folder.iterdir():
        if item.is_file() and is_weight_file(item.name):
            stat = item.stat()
            found[item.name] = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
    return found


def remove_stale_weights(
    folder: str | os.PathLike, before: dict[str, tuple[int, int, int]]
) -> list[str]:
    """Delete the weight files this merge did not write (unchanged since ``before``).

    A leftover of an earlier or interrupted run beside the new weights would be uploaded
    with them, and a loader may pick a stale index. Returns the names removed.
    """
    stale = sorted(name for name, stat in weight_files(folder).items() if before.get(name) == stat)
    for name in stale:
        (Path(folder) / name).unlink()
    if stale:
        LOG.warning(
            "removed %d weight file(s) in %s that this merge did not write (left by an "
            "earlier or interrupted run): %s",
            len(stale),
            folder,
            ", ".join(stale),
        )
    return stale


def remove_new_weights(folder: str | os.PathLike, before: dict[str, tuple[int, int, int]]) -> None:
    """Delete the weight files written since ``before`` (a failed output's partial weights)."""
    for name, stat in weight_files(folder).items():
        if before.get(name) != stat:
            (Path(folder) / name).unlink()


def mark_incomplete(folder: str | os.PathLike, why: str = INTERRUPTED) -> None:
    """Write the marker (creating the folder): the folder's merge has not finished."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    (Path(folder) / INCOMPLETE_MARKER).write_text(why, encoding="utf-8")


def prepare_output(folder: str | os.PathLike, options: MergeOptions) -> None:
    """Before mergekit writes into ``folder``: a card written by hand is moved aside (the
    merge writes its own ``README.md``), what described the weights this merge replaces is
    removed, and the folder is marked unfinished."""
    if options.write_model_card:
        from mergekit_weightlevel.publishing.card import keep_users_card

        keep_users_card(Path(folder))
    forget_previous_merge(folder)
    mark_incomplete(folder)


def forget_previous_merge(folder: str | os.PathLike) -> None:
    """Remove an earlier merge's ``mergekit_config.yml`` and evaluation results.

    mergekit writes ``mergekit_config.yml`` only with the card (``--no-write-model-card``
    leaves the old one), and a rerun reuses a folder whose recorded config matches
    (``is_current``): a stale one would pass other weights off as that config's merge. The
    results of ``evaluate`` measured the old weights: the new card must not show them.
    """
    from mergekit_weightlevel.publishing.eval_results import forget_evaluations

    folder = Path(folder)
    if not folder.is_dir():
        return
    (folder / "mergekit_config.yml").unlink(missing_ok=True)
    removed = forget_evaluations(folder)
    if removed:
        LOG.info(
            "removed %s from %s: they measured the weights this merge replaces (the "
            "evaluation cache keeps them)",
            ", ".join(removed),
            folder,
        )


def mark_complete(folder: str | os.PathLike) -> None:
    (Path(folder) / INCOMPLETE_MARKER).unlink(missing_ok=True)


def write_method_card(folder: str | os.PathLike, options: MergeOptions) -> None:
    """Our model card in place of mergekit's generic one (``publishing.card``).

    mergekit's card says "merged using X using BASE as a base", which misdescribes ParamΔ,
    Shadow-FT and Timber. Written offline (no Hub look-ups inside a merge); ``card`` or
    ``publish`` rewrite it with the inputs' licenses later. A card that cannot be built
    never fails the finished merge: mergekit's stays, with a warning.
    """
    if not options.write_model_card:
        return
    from mergekit_weightlevel.publishing.card import write_card

    try:
        write_card(Path(folder), lookup=False)
    except Exception as error:  # noqa: BLE001 - the weights are written; keep mergekit's card
        LOG.warning(
            "could not write the method's model card in %s (%s); mergekit's card is kept. "
            "`mergekit-weightlevel card %s` retries.",
            folder,
            error,
            folder,
        )


def complete_output(
    decisions: FileDecisions,
    folder: str | os.PathLike,
    options: MergeOptions,
    before: dict[str, tuple[int, int, int]],
) -> None:
    """After mergekit has written an output of ours: the generation config its tokenizer did
    not bring (its token ids those of the output's tokenizer), no weight file this merge did
    not write, no marker, then the method's card."""
    copy_missing_generation_config(decisions, folder, options)
    align_generation_config(decisions, folder, options)
    remove_stale_weights(folder, before)
    mark_complete(folder)
    write_method_card(folder, options)


def is_current(
    folder: str | os.PathLike, config_text: str, input_folders: list[Path | None]
) -> bool:
    """Whether ``folder`` already holds this merge, written completely after its inputs last
    changed: no marker, the same ``mergekit_config.yml``, weights newer than every input's.

    A sweep run again (after an interruption, or to add values) reuses such outputs instead
    of merging them again. An input that is not a local folder cannot be dated: never reused.
    Weights whose files do not hold what their headers and index say (truncated, a shard
    missing or left over) are merged again, as ``publish`` would refuse them.
    """
    from mergekit_weightlevel.publishing.checks import check_weights

    folder = Path(folder)
    recorded = folder / "mergekit_config.yml"
    if (folder / INCOMPLETE_MARKER).exists() or not recorded.is_file():
        return False
    if recorded.read_text(encoding="utf-8") != config_text:
        return False
    written = [stat[1] for stat in weight_files(folder).values()]
    if not written or None in input_folders or not (folder / "config.json").is_file():
        return False
    newest_input = max(
        (item.stat().st_mtime_ns for source in input_folders for item in source.iterdir()),
        default=0,
    )
    if min(written) <= newest_input:
        return False
    problems, _summary = check_weights(folder)
    return not problems

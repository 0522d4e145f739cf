"""Which input gives the merged folder its tokenizer and generation config, while it is written.

``methods.output_files`` decides from the config (each method's declaration); here the
decision meets the disk: the chosen input may have no tokenizer or no
``generation_config.json``, and then the next input that has one gives it (one warning).
``FileDecisions`` is what one output's merge decided; ``stock_merge``'s wrappers of
mergekit's ``_get_donor_model`` / ``_model_out_config`` read it.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from mergekit.common import ModelReference
from mergekit.config import MergeConfiguration
from mergekit.options import MergeOptions

from mergekit_weightlevel.methods.output_files import (
    GENERATION_CONFIG,
    FileSources,
    first_with,
    has_tokenizer,
    models_in_order,
)

LOG = logging.getLogger(__name__)


@dataclass
class FileDecisions:
    """What one output's merge decided about its non-weight files."""

    config: MergeConfiguration
    sources: FileSources
    tokenizer_donor: ModelReference | None = None


def local_folder_of(model: ModelReference, options: MergeOptions) -> Path | None:
    """A model's local folder (its base model's for ``model+adapter``), without network;
    Hub ids from the cache mergekit downloads them to (``--transformers-cache``)."""
    from mergekit_weightlevel.checks.headers import local_folder

    return local_folder(ModelReference(model=model.model), cache_dir=options.transformers_cache)


def tokenizer_donor(decisions: FileDecisions, options: MergeOptions) -> ModelReference:
    """The chosen tokenizer model, or the next input that has a tokenizer (one warning)."""
    if decisions.tokenizer_donor is not None:
        return decisions.tokenizer_donor
    chosen = decisions.sources.tokenizer
    found = first_with(
        chosen,
        models_in_order(decisions.config),
        lambda m: local_folder_of(m, options),
        has_tokenizer,
    )
    donor = chosen if found is None else found[0]  # none has one: mergekit's message says so
    if donor != chosen:
        LOG.warning(
            "%s: %s (%s) has no tokenizer; the output's tokenizer, chat template and "
            "generation config come from %s instead.",
            decisions.config.merge_method,
            chosen,
            decisions.sources.tokenizer_reason,
            donor,
        )
    decisions.tokenizer_donor = donor
    return donor


def copy_missing_generation_config(
    decisions: FileDecisions, out_path: str | Path, options: MergeOptions
) -> None:
    """A generation config the copied tokenizer did not bring: from the donor, else the next."""
    if not options.copy_tokenizer or (Path(out_path) / GENERATION_CONFIG).exists():
        return
    chosen = decisions.tokenizer_donor or decisions.sources.tokenizer
    found = first_with(
        chosen,
        models_in_order(decisions.config),
        lambda m: local_folder_of(m, options),
        lambda folder: (folder / GENERATION_CONFIG).exists(),
    )
    if found is None:
        return
    donor, folder = found
    shutil.copy(folder / GENERATION_CONFIG, Path(out_path))
    if donor != chosen:
        LOG.warning(
            "%s: %s has no %s; the output's comes from %s.",
            decisions.config.merge_method,
            chosen,
            GENERATION_CONFIG,
            donor,
        )

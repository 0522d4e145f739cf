"""Which input gives the merged folder its tokenizer and generation config, while it is written.

``methods.output_files`` decides from the config (each method's declaration); here the
decision meets the disk: the chosen input may have no tokenizer or no
``generation_config.json``, and then the next input that has one gives it (one warning).
Where mergekit builds the tokenizer (``tokenizer:`` / ``tokenizer_source``, from
``base_model``'s), the chosen input still gives the chat template (``config_for_mergekit``)
and the generation config, whose token ids are renumbered to the built tokenizer
(``align_generation_config``). ``FileDecisions`` is what one output's merge decided;
``stock_merge``'s wrappers of mergekit's ``_get_donor_model`` / ``_model_out_config`` read it.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mergekit.common import ModelReference
from mergekit.config import MergeConfiguration
from mergekit.options import MergeOptions

from mergekit_weightlevel.errors import package_logger
from mergekit_weightlevel.methods.output_files import (
    GENERATION_CONFIG,
    FileSources,
    first_with,
    has_tokenizer,
    models_in_order,
)

LOG = package_logger(__name__)


@dataclass
class FileDecisions:
    """What one output's merge decided about its non-weight files."""

    config: MergeConfiguration
    sources: FileSources
    tokenizer_donor: ModelReference | None = None
    #: the input ``generation_config.json`` was copied from, where we copied it
    generation_donor: ModelReference | None = None


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
    decisions.generation_donor = donor
    if donor != chosen:
        LOG.warning(
            "%s: %s has no %s; the output's comes from %s.",
            decisions.config.merge_method,
            chosen,
            GENERATION_CONFIG,
            donor,
        )


# --------------------------------------------- a tokenizer mergekit builds (`tokenizer:` settings)


def builds_tokenizer(merge_config: MergeConfiguration) -> bool:
    """Whether mergekit builds the output's tokenizer instead of copying one (``tokenizer:``
    or ``tokenizer_source``): from ``base_model``'s, for `base` and `union`."""
    return merge_config.tokenizer is not None or merge_config.tokenizer_source is not None


def _load_tokenizer(folder: Path, options: MergeOptions) -> Any:
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        return AutoTokenizer.from_pretrained(
            folder, trust_remote_code=options.trust_remote_code, local_files_only=True
        )
    except Exception:  # noqa: BLE001 - no usable tokenizer there: nothing to take from it
        return None
    finally:
        hf_logging.set_verbosity(verbosity)


def chat_template_of(model: ModelReference, options: MergeOptions) -> str | None:
    """A model's chat template (its default one, where it has several), if it has one."""
    folder = local_folder_of(model, options)
    tokenizer = None if folder is None else _load_tokenizer(folder, options)
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, dict):  # named templates: the default, as mergekit's `auto` takes
        template = template.get("default")
    return template if isinstance(template, str) and template.strip() else None


def config_for_mergekit(decisions: FileDecisions, options: MergeOptions) -> MergeConfiguration:
    """The config mergekit runs: where it builds the tokenizer and the config sets no
    ``chat_template``, the chat template of the input the method gives the output's tokenizer
    files (``tokenizer_from``; its fallback where it has no tokenizer).

    mergekit builds that tokenizer from ``base_model``'s (`base`, `union`), so without this a
    Timber or ParamΔ output would get the Base's template (usually none) and an interpolation
    the Instruct's, while the generation config comes from the chosen input. The decisions
    then hold the returned config, which mergekit's wrapped helpers are called with.
    """
    merge_config = decisions.config
    if merge_config.chat_template or not builds_tokenizer(merge_config):
        return merge_config
    template = chat_template_of(tokenizer_donor(decisions, options), options)
    if template is None:
        return merge_config
    decisions.config = merge_config.model_copy(update={"chat_template": template})
    return decisions.config


#: The generation config's fields that hold token ids.
TOKEN_ID_FIELDS = ("eos_token_id", "bos_token_id", "pad_token_id", "decoder_start_token_id")


def align_generation_config(
    decisions: FileDecisions, out_path: str | Path, options: MergeOptions
) -> None:
    """The generation config's token ids name, in the output's tokenizer, the tokens they
    name in the input the generation config comes from.

    Only where the two tokenizers can differ: mergekit built the output's (``tokenizer:``),
    or the generation config came from another input than the tokenizer. An id whose token
    moved is rewritten; one whose token the output's tokenizer lacks is removed, with one
    warning naming both; and a warning where the tokenizer's own eos token is none of the
    generation config's.
    """
    out = Path(out_path)
    donor = decisions.generation_donor or decisions.tokenizer_donor or decisions.sources.tokenizer
    same_files = not builds_tokenizer(decisions.config) and donor == decisions.tokenizer_donor
    if same_files or not (out / GENERATION_CONFIG).is_file():
        return
    folder = local_folder_of(donor, options)
    source = None if folder is None else _load_tokenizer(folder, options)
    output = _load_tokenizer(out, options)
    if source is None or output is None:
        return
    generation = json.loads((out / GENERATION_CONFIG).read_text(encoding="utf-8"))
    vocabulary = output.get_vocab()
    method = decisions.config.merge_method
    built = _tokenizer_words(decisions.config)
    changed = False
    for field in TOKEN_ID_FIELDS:
        value = generation.get(field)
        if value is None:
            continue
        ids = value if isinstance(value, list) else [value]
        kept = []
        for token_id in ids:
            token = source.convert_ids_to_tokens(token_id)
            if token in vocabulary:
                kept.append(vocabulary[token])
                continue
            LOG.warning(
                "%s: the generation config (from %s) has %s %r (id %s there), a token the "
                "output's tokenizer (%s) does not have: removed from the output's %s. Give the "
                "output that token (e.g. `tokenizer: {source: union}`), or choose the input the "
                "files come from with `tokenizer_from`.",
                method, donor, field, token, token_id, built, GENERATION_CONFIG,
            )  # fmt: skip
        new_value: Any = kept if isinstance(value, list) else next(iter(kept), None)
        if new_value != value:
            generation[field] = new_value
            changed = True
    if changed:
        (out / GENERATION_CONFIG).write_text(json.dumps(generation, indent=2) + "\n")
    _warn_if_eos_disagrees(method, output, generation, donor, built)


def _tokenizer_words(merge_config: MergeConfiguration) -> str:
    """How messages name the output's tokenizer."""
    if not builds_tokenizer(merge_config):
        return "copied from another input"
    source = (
        merge_config.tokenizer.source if merge_config.tokenizer else merge_config.tokenizer_source
    )
    return f"built by mergekit from `tokenizer: source: {source}`"


def _warn_if_eos_disagrees(
    method: str, tokenizer: Any, generation: dict[str, Any], donor: ModelReference, built: str
) -> None:
    eos = generation.get("eos_token_id")
    stops = set(eos if isinstance(eos, list) else [] if eos is None else [eos])
    if tokenizer.eos_token_id is None or not stops or tokenizer.eos_token_id in stops:
        return
    LOG.warning(
        "%s: the output's tokenizer (%s) ends text with %r, which is none of the generation "
        "config's eos tokens (from %s: %s). Generation stops at those; check that they are the "
        "ones the chat template ends a turn with.",
        method, built, tokenizer.eos_token, donor,
        ", ".join(repr(tokenizer.convert_ids_to_tokens(i)) for i in sorted(stops)),
    )  # fmt: skip

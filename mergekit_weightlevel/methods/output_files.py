"""Which input a merged folder's non-weight files come from, for each of our methods.

mergekit copies ``config.json``, the tokenizer files, the chat template and
``generation_config.json`` from ``base_model``. For none of this package's methods is the
base the model the output stands for, so a Timber merge of an Instruct model would get the
Base's files: no chat template, the Base's eos ids. The official scripts copy them from the
model the output really is; so do we (``../shared/spec/methods.md``, last section):

=========================  =====================  ==========================================
method                     ``config.json``        tokenizer, chat template, generation config
=========================  =====================  ==========================================
timber_spectral            W_I (``models:``)      W_I
shadow_graft               the ``role: target``   the ``role: target``
instruct_thinking_interp   Thinking (``models:``) Thinking
paramdelta                 the ``role: target``   the first donor Θ_post
=========================  =====================  ==========================================

Each method declares its two choices (``MethodDeclaration.config_from`` / ``tokenizer_from``:
the ``role: target`` model or the first other model) in its own module; this module applies
them to a config.

A merge can choose otherwise with the shared parameters ``config_from`` and
``tokenizer_from`` (a model of the config, as written, or ``base``). mergekit's own
``tokenizer:`` / ``tokenizer_source`` / ``chat_template`` settings keep their meaning.

This module only decides; ``stock_merge`` applies the decision to mergekit's run.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mergekit.common import ModelReference
from mergekit.config import MergeConfiguration

from mergekit_weightlevel.errors import WeightLevelConfigError, package_logger
from mergekit_weightlevel.methods.base import ROLE_TARGET
from mergekit_weightlevel.methods.declaration import TARGET, FileOrigin
from mergekit_weightlevel.registry import declaration_of

LOG = package_logger(__name__)

#: The shared parameters that override the choice; `base` means mergekit's donor.
CONFIG_FROM = "config_from"
TOKENIZER_FROM = "tokenizer_from"
FROM_BASE = "base"

#: Files that make a folder's tokenizer loadable (mergekit's own test in `_copy_tokenizer`).
TOKENIZER_CONFIG = "tokenizer_config.json"
TOKENIZER_VOCABULARY = ("tokenizer.json", "tokenizer.model")
GENERATION_CONFIG = "generation_config.json"

#: config.json fields that change how a model behaves when served: where the inputs
#: disagree, the user is told which value the output gets.
BEHAVIOUR_FIELDS = (
    "vocab_size",
    "max_position_embeddings",
    "rope_theta",
    "rope_scaling",
    "rope_parameters",
    "bos_token_id",
    "eos_token_id",
    "pad_token_id",
    "tie_word_embeddings",
    "sliding_window",
    "use_sliding_window",
    "max_window_layers",
    "partial_rotary_factor",
    "rms_norm_eps",
    "layer_norm_eps",
    "hidden_act",
    "attention_bias",
)


@dataclass(frozen=True)
class FileSources:
    """The inputs a merged folder's non-weight files come from, and why."""

    #: the model whose ``config.json`` the output gets
    config: ModelReference
    #: the model whose tokenizer files, chat template and ``generation_config.json`` it gets
    tokenizer: ModelReference
    #: one phrase per choice, for messages and the model card
    config_reason: str
    tokenizer_reason: str


def models_in_order(merge_config: MergeConfiguration) -> list[ModelReference]:
    """Every input of a config once, in the order the YAML names them (the base first).

    ``MergeConfiguration.referenced_models()`` returns them in set order, which is not
    stable between runs; a fallback "next input" must be.
    """
    seen: list[ModelReference] = []
    for model, _ in model_entries(merge_config):
        if model not in seen:
            seen.append(model)
    base = merge_config.base_model
    if base is not None:
        seen = [base] + [m for m in seen if m != base]
    return seen


def model_entries(config: Any) -> Iterator[tuple[ModelReference, dict[str, Any]]]:
    """(model, its parameters) for every ``models:`` entry and slice source of a config."""
    for model in getattr(config, "models", None) or []:
        yield model.model, dict(model.parameters or {})
    for output_slice in getattr(config, "slices", None) or []:
        for source in output_slice.sources:
            yield source.model, dict(source.parameters or {})
    for module in (getattr(config, "modules", None) or {}).values():
        yield from model_entries(module)


def _non_base(merge_config: MergeConfiguration) -> list[ModelReference]:
    return [m for m in models_in_order(merge_config) if m != merge_config.base_model]


def _with_role(merge_config: MergeConfiguration, role: str) -> list[ModelReference]:
    found: list[ModelReference] = []
    for model, parameters in model_entries(merge_config):
        if parameters.get("role") == role and model not in found:
            found.append(model)
    return found


def _default_source(
    merge_config: MergeConfiguration, origin: FileOrigin
) -> tuple[ModelReference, str]:
    """(model, reason) of a method's declared default, before ``config_from`` /
    ``tokenizer_from``: the ``role: target`` model, or the first other non-base model."""
    others = _non_base(merge_config)
    if not others:  # the method's own checks report this at planning time
        return merge_config.base_model, "the base model"
    targets = _with_role(merge_config, ROLE_TARGET)
    candidates = targets if origin.input == TARGET else [m for m in others if m not in targets]
    if not candidates:
        return others[0], "the first non-base model"
    return candidates[0], origin.reason


def _override(merge_config: MergeConfiguration, parameter: str) -> ModelReference | None:
    """The model a ``config_from`` / ``tokenizer_from`` parameter names, if it is set."""
    value = (merge_config.parameters or {}).get(parameter)
    if value is None:
        return None
    if value == FROM_BASE:
        if merge_config.base_model is None:
            raise WeightLevelConfigError(
                f"{merge_config.merge_method}: `{parameter}: base` but the config has no "
                "base_model. Name one of the config's models instead."
            )
        return merge_config.base_model
    models = models_in_order(merge_config)
    for model in models:
        if str(value) in (str(model), str(model.model)):
            return model
    raise WeightLevelConfigError(
        f"{merge_config.merge_method}: `{parameter}: {value}` is not a model of this config. "
        f"Give one of {', '.join(str(m) for m in models)}, or `{FROM_BASE}`."
    )


def file_sources(merge_config: MergeConfiguration) -> FileSources | None:
    """Where the output's non-weight files come from; None for methods not of this package.

    For mergekit's own methods mergekit's rule applies unchanged (base_model, else the
    first model).
    """
    declaration = declaration_of(merge_config.merge_method)
    if declaration is None:
        return None
    config_model, config_reason = _default_source(merge_config, declaration.config_from)
    tokenizer_model, tokenizer_reason = _default_source(merge_config, declaration.tokenizer_from)
    override = _override(merge_config, CONFIG_FROM)
    if override is not None:
        config_model, config_reason = override, f"`{CONFIG_FROM}`"
    override = _override(merge_config, TOKENIZER_FROM)
    if override is not None:
        tokenizer_model, tokenizer_reason = override, f"`{TOKENIZER_FROM}`"
    return FileSources(config_model, tokenizer_model, config_reason, tokenizer_reason)


def has_tokenizer(folder: Path) -> bool:
    """Whether a folder holds a tokenizer mergekit copies file by file."""
    return (folder / TOKENIZER_CONFIG).exists() and any(
        (folder / name).exists() for name in TOKENIZER_VOCABULARY
    )


def first_with(
    preferred: ModelReference,
    candidates: list[ModelReference],
    folder_of: Any,
    has_file: Any,
) -> tuple[ModelReference, Path] | None:
    """``preferred`` and its folder if that has the file(s), else the next candidate that
    does; None when none does.

    ``folder_of(model)`` gives a model's local folder (or None); ``has_file(folder)``
    says whether the folder qualifies.
    """
    for model in [preferred] + [m for m in candidates if m != preferred]:
        folder = folder_of(model)
        if folder is not None and has_file(Path(folder)):
            return model, Path(folder)
    return None


def config_disagreements(
    configs: dict[ModelReference, dict[str, Any]], chosen: ModelReference
) -> list[str]:
    """One line per behaviour field on which the inputs' ``config.json`` differ.

    Each line gives every model's value and the one the output gets (``chosen``'s).
    """
    lines = []
    for field in BEHAVIOUR_FIELDS:
        values = {model: config.get(field) for model, config in configs.items()}
        if len({json.dumps(v, sort_keys=True, default=str) for v in values.values()}) < 2:
            continue
        shown = ", ".join(f"{model}: {value!r}" for model, value in values.items())
        lines.append(f"{field}: {shown} -> the output gets {values.get(chosen)!r} ({chosen})")
    return lines

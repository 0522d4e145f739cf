"""Everything that can be known wrong about a merge config before a tensor is read.

``check_config`` runs for every config of one of this package's methods, on every entry
point (``stock_merge`` wraps mergekit's ``run_merge``; ``sweep`` calls it before planning):
a device that cannot be used (``checks.device``), unknown or mistyped parameters,
unavailable models, the checkpoints' headers (knowing
whether the config aligns vocabularies), ``config_from`` / ``tokenizer_from``; and one
warning where the inputs' ``config.json`` disagree on a field that changes how the model
behaves. ``suggest_method`` turns an unknown method name close to one of ours into the
right name.
"""

from __future__ import annotations

import difflib
from typing import Any

from mergekit.common import ModelReference
from mergekit.config import MergeConfiguration
from mergekit.options import MergeOptions

from mergekit_weightlevel.checks.device import check_merge_device
from mergekit_weightlevel.errors import WeightLevelConfigError, package_logger
from mergekit_weightlevel.methods.merge_run import current_run
from mergekit_weightlevel.methods.output_files import (
    FileSources,
    config_disagreements,
    file_sources,
    models_in_order,
)
from mergekit_weightlevel.registry import DECLARATIONS, METHOD_NAMES

LOG = package_logger(__name__)


def _normal(name: str) -> str:
    return name.strip().lower().replace("-", "_").replace(" ", "_")


def suggest_method(name: str) -> None:
    """Raise with the right name when ``name`` is not registered but means one of ours."""
    from mergekit import merge_methods

    known = {method.spec.name for method in merge_methods.registered_methods()}
    if name in known:
        return
    aliases = {
        _normal(alias): declaration.name
        for declaration in DECLARATIONS.values()
        for alias in declaration.aliases
    }
    normal = _normal(name)
    close = difflib.get_close_matches(normal, [*METHOD_NAMES, *aliases], n=1)
    meant = aliases.get(normal) or next(iter(close), None)
    if meant is None:
        return  # not ours: mergekit's own message
    meant = aliases.get(meant, meant)
    raise WeightLevelConfigError(
        f"unknown merge_method `{name}`. Did you mean `merge_method: {meant}`? "
        f"(mergekit-weightlevel's methods: {', '.join(METHOD_NAMES)}; "
        "`mergekit-weightlevel methods` lists their parameters.)"
    )


def check_config(merge_config: MergeConfiguration, options: MergeOptions) -> FileSources:
    """Every whole-config check, before any tensor is read and before mergekit creates the
    output folder; returns the file sources.

    The header check is recorded in the merge in progress (``methods.merge_run``), so the
    method's own per-tensor check does not repeat it with less knowledge.
    """
    from mergekit import merge_methods
    from mergekit.io.tasks import LoaderCache

    from mergekit_weightlevel.checks.headers import check_inputs
    from mergekit_weightlevel.checks.hub import check_models_available
    from mergekit_weightlevel.checks.parameters import check_parameters
    from mergekit_weightlevel.methods.base import WeightLevelMethod, preflight_key

    check_merge_device(options)  # --cuda / --device this torch and machine cannot run
    method = merge_methods.get(merge_config.merge_method)
    check_parameters(merge_config, method)
    if isinstance(method, WeightLevelMethod):
        method.check_config_structure(merge_config)
    sources = file_sources(merge_config)
    check_models_available(
        merge_config.referenced_models(),
        purpose=f"merge ({merge_config.merge_method})",
        cache_dir=options.transformers_cache,
    )
    # Only here is the whole config known, so only here is a vocabulary mismatch without a
    # `tokenizer:` section (or mergekit's --unsafe-truncate-embeddings) an error, and one
    # with it no warning at all.
    ordered = models_in_order(merge_config)
    aligned = (
        merge_config.tokenizer is not None
        or merge_config.tokenizer_source is not None
        or options.unsafe_truncate_embeddings
    )
    check_inputs(ordered, method=merge_config.merge_method, vocabulary_aligned=aligned)
    current_run().checked.add(preflight_key(merge_config.merge_method, ordered))
    if isinstance(method, WeightLevelMethod):
        LoaderCache().setup(options=options)  # as run_merge does first: the method may read
        method.check_config_inputs(merge_config)
    warn_config_disagreements(merge_config, sources, options)
    return sources


def warn_config_disagreements(
    merge_config: MergeConfiguration, sources: FileSources, options: MergeOptions
) -> None:
    """One warning listing the behaviour fields on which the inputs' configs differ."""
    configs: dict[ModelReference, dict[str, Any]] = {}
    for model in models_in_order(merge_config):
        try:
            configs[model] = model.config(trust_remote_code=options.trust_remote_code).to_dict()
        except Exception:  # noqa: BLE001 - mergekit reports an unreadable config itself
            continue
    lines = config_disagreements(configs, sources.config)
    if lines:
        LOG.warning(
            "%s: the inputs' config.json differ in fields that change how the model behaves; "
            "the output's config.json comes from %s (%s; set `config_from` to choose another):"
            "\n  %s",
            merge_config.merge_method,
            sources.config,
            sources.config_reason,
            "\n  ".join(lines),
        )

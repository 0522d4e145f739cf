"""Run a mergekit YAML merge in-process, with this package's methods registered.

This is what ``mergekit-weightlevel merge`` and ``demo`` call. It is mergekit's own
``mergekit-yaml`` path (``MergeConfiguration`` + ``run_merge``), nothing more: the
fallback for interpreters where the ``.pth`` start-up hook does not run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from mergekit.config import MergeConfiguration
from mergekit.merge import run_merge
from mergekit.options import MergeOptions

from mergekit_weightlevel.hub import check_models_available
from mergekit_weightlevel.preflight import check_inputs
from mergekit_weightlevel.registry import METHOD_NAMES, register_methods


def load_config(config_file: str | Path) -> tuple[MergeConfiguration, str]:
    """Parse a mergekit YAML file; return the configuration and its verbatim text."""
    source = Path(config_file).read_text(encoding="utf-8")
    try:
        parsed = yaml.safe_load(source)
    except yaml.YAMLError as error:
        raise ValueError(f"{config_file} is not valid YAML: {error}") from None
    return MergeConfiguration.model_validate(parsed), source


def merge_yaml(
    config: str | Path | dict[str, Any] | MergeConfiguration,
    out_path: str | Path,
    options: MergeOptions | None = None,
) -> Path:
    """Run a mergekit merge from a YAML path, a dict or a ``MergeConfiguration``.

    The YAML text is kept verbatim in the output's ``mergekit_config.yml``, as
    ``mergekit-yaml`` does.
    """
    register_methods()
    source = None
    if isinstance(config, (str, Path)):
        merge_config, source = load_config(config)
    elif isinstance(config, dict):
        source = yaml.safe_dump(config, sort_keys=False)
        merge_config = MergeConfiguration.model_validate(config)
    else:
        merge_config = config
    options = options or MergeOptions()
    # Before mergekit reads any model config: a Hub id that cannot be fetched fails in
    # seconds with its name, instead of after half a minute of retries without it.
    check_models_available(
        merge_config.referenced_models(),
        purpose=f"merge ({merge_config.merge_method})",
        cache_dir=options.transformers_cache,
    )
    preflight(merge_config)
    run_merge(merge_config, str(out_path), options=options, config_source=source)
    return Path(out_path)


def preflight(merge_config: MergeConfiguration) -> None:
    """Header-level checks of a config's inputs, knowing whether it aligns vocabularies.

    The methods run the same checks when mergekit plans the merge, but only here is
    the whole config known, so only here is a vocabulary mismatch without a
    ``tokenizer:`` section an error before anything is loaded.
    """
    if merge_config.merge_method not in METHOD_NAMES:
        return
    from mergekit import merge_methods

    from mergekit_weightlevel.config_check import check_parameters

    check_parameters(merge_config, merge_methods.get(merge_config.merge_method))
    models = list(merge_config.referenced_models())
    base = merge_config.base_model
    ordered = ([base] if base in models else []) + [m for m in models if m != base]
    aligned = merge_config.tokenizer is not None or merge_config.tokenizer_source is not None
    check_inputs(ordered, method=merge_config.merge_method, vocabulary_aligned=aligned)

"""Run a mergekit YAML merge in-process, with this package's methods registered.

This is what ``mergekit-weightlevel merge``, ``sweep`` and ``demo`` call. It is mergekit's
own ``mergekit-yaml`` path (``MergeConfiguration`` + ``run_merge``), nothing more: the
fallback for interpreters where the ``.pth`` start-up hook does not run. The checks and
the output-file policy live in ``stock_merge``, which wraps ``run_merge`` for every entry
point alike.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mergekit.merge
import yaml
from mergekit.config import MergeConfiguration
from mergekit.options import MergeOptions

from mergekit_weightlevel.checks.hub import check_models_available
from mergekit_weightlevel.errors import WeightLevelConfigError
from mergekit_weightlevel.registry import register_methods
from mergekit_weightlevel.running import stock_merge


def load_config(config_file: str | Path) -> tuple[MergeConfiguration, str]:
    """Parse a mergekit YAML file; return the configuration and its verbatim text."""
    source = Path(config_file).read_text(encoding="utf-8")
    try:
        parsed = yaml.safe_load(source)
    except yaml.YAMLError as error:
        raise WeightLevelConfigError(f"{config_file} is not valid YAML: {error}") from None
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
    stock_merge.install()  # where no start-up hook ran (python -S, --target installs)
    source = None
    if isinstance(config, (str, Path)):
        merge_config, source = load_config(config)
    elif isinstance(config, dict):
        source = yaml.safe_dump(config, sort_keys=False)
        merge_config = MergeConfiguration.model_validate(config)
    else:
        merge_config = config
    options = options or MergeOptions()
    if not stock_merge.is_ours(merge_config):
        # Before mergekit reads any model config: a Hub id that cannot be fetched fails in
        # seconds with its name (the wrapper does this, and more, for our own methods).
        check_models_available(
            merge_config.referenced_models(),
            purpose=f"merge ({merge_config.merge_method})",
            cache_dir=options.transformers_cache,
        )
    mergekit.merge.run_merge(merge_config, str(out_path), options=options, config_source=source)
    return Path(out_path)

"""Small helpers for the tests: run merges through mergekit, read checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from mergekit.config import MergeConfiguration
from mergekit.merge import run_merge
from mergekit.options import MergeOptions

from mergekit_weightlevel.demo import read_state

__all__ = ["read_state", "run_yaml_merge", "write_config"]


def write_config(path: Path, config: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def run_yaml_merge(config: dict[str, Any], out_path: Path, **options: Any) -> dict:
    """Merge through mergekit's own YAML path (what `mergekit-yaml` runs) and read the output."""
    merge_config = MergeConfiguration.model_validate(config)
    run_merge(
        merge_config,
        str(out_path),
        options=MergeOptions(quiet=True, copy_tokenizer=False, **options),
        config_source=yaml.safe_dump(config, sort_keys=False),
    )
    return read_state(out_path)

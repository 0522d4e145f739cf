"""The toy family merged with this package's methods, through mergekit's YAML path.

Each merge is a plain mergekit configuration (a dict, kept verbatim as the output's
``mergekit_config.yml``) run by ``merging.merge_yaml`` — the same code path as
``mergekit-yaml``. Every function returns the merged model's folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mergekit.options import MergeOptions

from mergekit_weightlevel.running.merging import merge_yaml


def _run(config: dict[str, Any], out: Path) -> Path:
    config = {**config, "dtype": "float32"}
    return merge_yaml(config, out, MergeOptions(quiet=True, copy_tokenizer=True))


def paramdelta(base: Path, post: Path, new_base: Path, out: Path) -> Path:
    """base_v2 + (instruct − base)."""
    return _run(
        {
            "merge_method": "paramdelta",
            "base_model": str(base),
            "models": [
                {"model": str(post)},
                {"model": str(new_base), "parameters": {"role": "target"}},
            ],
        },
        out,
    )


def shadow_graft_full(base: Path, tuned: Path, target: Path, out: Path) -> Path:
    """instruct + (base_tuned − base) on the projections (Shadow-FT's default include)."""
    return _run(
        {
            "merge_method": "shadow_graft",
            "base_model": str(base),
            "models": [
                {"model": str(tuned)},
                {"model": str(target), "parameters": {"role": "target"}},
            ],
        },
        out,
    )


def shadow_graft_adapter(base: Path, adapter: Path, target: Path, out: Path) -> Path:
    """instruct + (α/r)·B@A of a LoRA adapter trained on base (the ``adapter:`` route)."""
    return _run(
        {
            "merge_method": "shadow_graft",
            "base_model": str(base),
            "models": [{"model": str(target), "parameters": {"role": "target"}}],
            "parameters": {"adapter": str(adapter)},
        },
        out,
    )


def interpolate(instruct: Path, thinking: Path, lam: float, out: Path) -> Path:
    """λ·thinking + (1 − λ)·instruct."""
    return _run(
        {
            "merge_method": "instruct_thinking_interp",
            "base_model": str(instruct),
            "models": [{"model": str(thinking)}],
            "parameters": {"lambda": lam},
        },
        out,
    )


def timber(base: Path, instruct: Path, lam: float, out: Path) -> Path:
    """base + top-⌈eRank⌉ directions of (instruct − base) + λ × the rest, per matrix."""
    return _run(
        {
            "merge_method": "timber_spectral",
            "base_model": str(base),
            "models": [{"model": str(instruct)}],
            "parameters": {"lambda": lam},
        },
        out,
    )

"""The toy family merged with this package's methods, through mergekit's YAML path.

Each merge is a plain mergekit configuration (a dict, kept verbatim as the output's
``mergekit_config.yml``) run by ``merging.merge_yaml`` — the same code path as
``mergekit-yaml``. Every function returns the merged model's folder.
"""

from __future__ import annotations

from pathlib import Path

from mergekit.options import MergeOptions

from mergekit_weightlevel.method_configs import (
    Config,
    interp_config,
    paramdelta_config,
    shadow_graft_adapter_config,
    shadow_graft_config,
    timber_config,
)
from mergekit_weightlevel.running.merging import merge_yaml

#: Every toy merge runs in float32, whatever the checkpoints' dtype.
DTYPE = "float32"


def _run(config: Config, out: Path) -> Path:
    return merge_yaml(config, out, MergeOptions(quiet=True, copy_tokenizer=True))


def paramdelta(base: Path, post: Path, new_base: Path, out: Path) -> Path:
    """base_v2 + (instruct − base)."""
    return _run(paramdelta_config(base, post, new_base, dtype=DTYPE), out)


def shadow_graft_full(base: Path, tuned: Path, target: Path, out: Path) -> Path:
    """instruct + (base_tuned − base) on the projections (Shadow-FT's default include)."""
    return _run(shadow_graft_config(base, tuned, target, dtype=DTYPE), out)


def shadow_graft_adapter(base: Path, adapter: Path, target: Path, out: Path) -> Path:
    """instruct + (α/r)·B@A of a LoRA adapter trained on base (the ``adapter:`` route)."""
    return _run(shadow_graft_adapter_config(adapter, target, base=base, dtype=DTYPE), out)


def interpolate(instruct: Path, thinking: Path, lam: float, out: Path) -> Path:
    """λ·thinking + (1 − λ)·instruct."""
    return _run(interp_config(instruct, thinking, lam, dtype=DTYPE), out)


def timber(base: Path, instruct: Path, lam: float, out: Path) -> Path:
    """base + top-⌈eRank⌉ directions of (instruct − base) + λ × the rest, per matrix."""
    return _run(timber_config(base, instruct, lam, dtype=DTYPE), out)


def apply_lora(model: Path, adapter: Path, out: Path) -> Path:
    """``model`` with a PEFT adapter merged by PEFT itself (``merge_and_unload``), saved with
    the toy's tokenizer: the usual way of using a LoRA, to compare with Shadow-FT's graft."""
    from peft import PeftModel

    from mergekit_weightlevel.toy.train import load_model, save_model

    merged = PeftModel.from_pretrained(load_model(model), str(adapter)).merge_and_unload()
    return save_model(merged, out)

"""Small helpers for the tests: run merges through mergekit, read checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import yaml
from mergekit.config import MergeConfiguration
from mergekit.merge import run_merge
from mergekit.options import MergeOptions

from mergekit_weightlevel.checkpoints import read_state

__all__ = ["load_example", "read_state", "rewrite_demo_paths", "run_yaml_merge", "write_config"]


def write_config(path: Path, config: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def run_yaml_merge(config: dict[str, Any], out_path: Path, **options: Any) -> dict:
    """Merge through mergekit's own YAML path (what `mergekit-yaml` runs) and read the output."""
    merge_config = MergeConfiguration.model_validate(config)
    run_merge(
        merge_config,
        str(out_path),
        options=MergeOptions(**{"quiet": True, "copy_tokenizer": False, **options}),
        config_source=yaml.safe_dump(config, sort_keys=False),
    )
    return read_state(out_path)


EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples"
#: The folder `mergekit-weightlevel demo` writes, which every example config refers to.
DEMO_PREFIX = "weightlevel-demo/"


def rewrite_demo_paths(node: Any, demo_parent: Path) -> Any:
    """``node`` (a parsed YAML config) with every `weightlevel-demo/...` path under ``demo_parent``.

    Paths may be joined with `+` (a model and its LoRA adapter); each part is rewritten.
    """
    if isinstance(node, dict):
        return {key: rewrite_demo_paths(value, demo_parent) for key, value in node.items()}
    if isinstance(node, list):
        return [rewrite_demo_paths(value, demo_parent) for value in node]
    if isinstance(node, str) and node.startswith(DEMO_PREFIX):
        return "+".join(
            str(demo_parent / part) if part.startswith(DEMO_PREFIX) else part
            for part in node.split("+")
        )
    return node


def demo_paths(node: Any, demo_parent: Path) -> list[Path]:
    """Every path under ``demo_parent`` that a rewritten config refers to."""
    if isinstance(node, dict):
        return [p for value in node.values() for p in demo_paths(value, demo_parent)]
    if isinstance(node, list):
        return [p for value in node for p in demo_paths(value, demo_parent)]
    if isinstance(node, str):
        return [Path(part) for part in node.split("+") if part.startswith(str(demo_parent))]
    return []


def load_example(name: str, demo_parent: Path) -> dict[str, Any]:
    """``examples/<name>`` parsed, its demo-family paths pointing under ``demo_parent``."""
    config = yaml.safe_load((EXAMPLES_DIR / name).read_text(encoding="utf-8"))
    return rewrite_demo_paths(config, demo_parent)


def numpy_structure(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Every field as docs/analyze.md defines it, from numpy float64 SVDs, every matrix formed."""
    u_a, s_a, vh_a = np.linalg.svd(a, full_matrices=False)
    u_b, s_b, vh_b = np.linalg.svd(b, full_matrices=False)
    kept = s_a > 1e-6 * s_a[0]
    ratios = s_b[kept] / s_a[kept]
    alpha = float(s_b[kept] @ s_a[kept] / (s_a[kept] @ s_a[kept]))
    q_u, q_v = u_a.T @ u_b, vh_a @ vh_b.T
    x, _, yh = np.linalg.svd((q_u + q_v) / 2)
    rotation = x @ yh
    w_hat = (u_a @ rotation) @ np.diag(alpha * s_a) @ (vh_a.T @ rotation).T
    return {
        "alpha": alpha,
        "cv": float(ratios.std() / ratios.mean()),
        "median_ratio": float(np.median(ratios)),
        "p5_ratio": float(np.percentile(ratios, 5)),
        "p95_ratio": float(np.percentile(ratios, 95)),
        "consistency_gap": float(np.linalg.norm(q_u - q_v) / np.linalg.norm(q_u)),
        "alignment": float(np.abs(np.diag(q_u)).mean()),
        "reconstruction_error": float(np.linalg.norm(b - w_hat) / np.linalg.norm(b)),
    }


def with_extra_tokens(
    source: Path, dest: Path, tokens: list[str], *, generation: dict | None = None
) -> Path:
    """A copy of a tiny checkpoint whose vocabulary ends with ``tokens`` (special, in order), as
    a Thinking model adds `<think>`, `</think>` and its own end-of-turn token: embedding and
    lm_head rows, the tokenizer, ``vocab_size``; ``generation`` updates its generation config."""
    import json
    import shutil

    import torch
    from safetensors.torch import save_file
    from transformers import AutoTokenizer

    shutil.copytree(source, dest)
    state = read_state(source)
    generator = torch.Generator().manual_seed(len(tokens))
    for name in ("model.embed_tokens.weight", "lm_head.weight"):
        if name in state:
            rows = 0.02 * torch.randn(len(tokens), state[name].shape[1], generator=generator)
            state[name] = torch.cat([state[name], rows.to(state[name].dtype)])
    for file in dest.glob("*.safetensors*"):
        file.unlink()
    save_file({k: v.contiguous() for k, v in state.items()}, str(dest / "model.safetensors"))
    tokenizer = AutoTokenizer.from_pretrained(source)
    tokenizer.add_tokens(tokens, special_tokens=True)
    tokenizer.save_pretrained(dest)
    config = json.loads((dest / "config.json").read_text(encoding="utf-8"))
    config["vocab_size"] = len(tokenizer)
    (dest / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    if generation is not None:
        path = dest / "generation_config.json"
        current = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
        path.write_text(json.dumps({**current, **generation}, indent=2), encoding="utf-8")
    return dest

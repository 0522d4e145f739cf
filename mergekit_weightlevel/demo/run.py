"""The offline quickstart: a tiny model family, real merges through mergekit, and what came out.

``run_demo(directory)`` builds a tiny local family (a base, its post-trained version,
a newer base, ...), writes one YAML config per merge method under ``directory``,
runs each through mergekit exactly as ``mergekit-yaml`` would, and checks how the
output relates to its inputs with an independent float64 re-computation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from mergekit.options import MergeOptions

import mergekit_weightlevel.reference as reference
from mergekit_weightlevel.analyze import AnalysisReport, analyze_models
from mergekit_weightlevel.checkpoints import read_state
from mergekit_weightlevel.demo.tiny_models import TinyFamily, build_family
from mergekit_weightlevel.errors import ModelFolderError
from mergekit_weightlevel.method_configs import (
    interp_config,
    paramdelta_config,
    shadow_graft_adapter_config,
    shadow_graft_config,
    timber_config,
)
from mergekit_weightlevel.numerics.pair_statistics import sigma
from mergekit_weightlevel.running.merging import merge_yaml


@dataclass
class MergeResult:
    """One demo merge: its config, output folder, and how the output relates to the inputs."""

    method: str
    formula: str
    config_path: Path
    output: Path
    max_abs_error: float
    sigmas: dict[str, float] = field(default_factory=dict)
    #: which members' non-weight files the output carries (read back from the folder)
    files: str = ""


@dataclass
class DemoReport:
    family: TinyFamily
    merges: list[MergeResult]
    #: ``analyze`` of the family (base against instruct, thinking, base_v2), rendered last.
    analysis: AnalysisReport | None = None

    def render(self) -> str:
        lines = [
            f"Tiny {self.family.arch} model family in {self.family.root}:",
            *(f"  {name:<11} {path}" for name, path in self.family.paths().items()),
            "",
        ]
        for merge in self.merges:
            lines += [
                f"{merge.method}: {merge.formula}",
                f"  config  {merge.config_path}",
                f"  output  {merge.output}",
                f"  max |output − float64 re-computation| = {merge.max_abs_error:.2e}",
                f"  files   {merge.files}",
                *(f"  σ({pair}) = {value:.4f}" for pair, value in merge.sigmas.items()),
                "",
            ]
        lines.append(
            "σ is the relative weight gap Σ|A−B| / (Σ|A|+Σ|B|). Re-run any merge with:\n"
            f"  mergekit-yaml {self.merges[0].config_path} OUT_DIR"
        )
        if self.analysis is not None:
            models = " ".join(self.analysis.models)
            lines += [
                "",
                f"$ mergekit-weightlevel analyze {models} --metrics {','.join(self.analysis.metrics)}",
                self.analysis.summary_text(),
            ]
        return "\n".join(lines)


def _write_and_merge(
    config: dict[str, Any], name: str, directory: Path, options: MergeOptions
) -> tuple[Path, Path]:
    """Write DIRECTORY/NAME.yml (the config the report shows) and merge it into merged-NAME."""
    config_path = directory / f"{name}.yml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return config_path, merge_yaml(config_path, directory / f"merged-{name}", options)


def _paramdelta_demo(family: TinyFamily, directory: Path, options: MergeOptions) -> MergeResult:
    config = paramdelta_config(family.base, family.instruct, family.base_v2, dtype="float32")
    config_path, output = _write_and_merge(config, "paramdelta", directory, options)

    base, post, new_base = (read_state(p) for p in (family.base, family.instruct, family.base_v2))
    merged = read_state(output)
    expected = reference.paramdelta_state(base, post, new_base)
    return MergeResult(
        method="paramdelta",
        formula="output = base_v2 + (instruct − base)   [ParamΔ, arXiv 2504.21023]",
        config_path=config_path,
        output=output,
        max_abs_error=_max_error(merged, expected),
        sigmas={
            "output, base_v2": sigma(_flat(merged), _flat(new_base)),
            "output, instruct": sigma(_flat(merged), _flat(post)),
        },
    )


def _max_error(merged: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> float:
    return max(float((merged[n].double() - expected[n]).abs().max()) for n in merged)


def _flat(state: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.flatten() for t in state.values()])


def _shadow_graft_demo(family: TinyFamily, directory: Path, options: MergeOptions) -> MergeResult:
    from mergekit_weightlevel.methods.shadow_graft.method import DEFAULT_INCLUDE

    config = shadow_graft_config(family.base, family.base_tuned, family.instruct, dtype="float32")
    config_path, output = _write_and_merge(config, "shadow_graft", directory, options)

    base, tuned, instruct = (
        read_state(p) for p in (family.base, family.base_tuned, family.instruct)
    )
    merged = read_state(output)
    expected = reference.shadow_graft_state(base, tuned, instruct, DEFAULT_INCLUDE)
    return MergeResult(
        method="shadow_graft",
        formula=(
            "output = instruct + (base_tuned − base) on q/k/v/o/gate/up/down_proj, "
            "instruct elsewhere   [Shadow-FT, arXiv 2505.12716]"
        ),
        config_path=config_path,
        output=output,
        max_abs_error=_max_error(merged, expected),
        sigmas={
            "base_tuned, base": sigma(_flat(tuned), _flat(base)),
            "output, instruct": sigma(_flat(merged), _flat(instruct)),
        },
    )


def _interp_demo(family: TinyFamily, directory: Path, options: MergeOptions) -> MergeResult:
    lam = 0.8  # the paper's best setting on Qwen3-4B
    config = interp_config(family.instruct, family.thinking, lam, dtype="float32")
    config_path, output = _write_and_merge(config, "instruct_thinking_interp", directory, options)

    instruct, thinking = (read_state(p) for p in (family.instruct, family.thinking))
    merged = read_state(output)
    error = _max_error(merged, reference.interp_state(instruct, thinking, lam))
    flat = {
        name: torch.cat([t.flatten() for t in state.values()])
        for name, state in {"output": merged, "instruct": instruct, "thinking": thinking}.items()
    }
    return MergeResult(
        method="instruct_thinking_interp",
        formula=f"output = {lam}·thinking + {1 - lam:.1f}·instruct   [model interpolation, arXiv 2510.10977]",
        config_path=config_path,
        output=output,
        max_abs_error=error,
        sigmas={
            "output, instruct": sigma(flat["output"], flat["instruct"]),
            "output, thinking": sigma(flat["output"], flat["thinking"]),
        },
    )


def demo_lora_adapter(family: TinyFamily, folder: Path, *, rank: int = 4) -> Path:
    """A small PEFT LoRA adapter "trained" on the base (random A, B on the attention projections)."""
    from mergekit_weightlevel.methods.shadow_graft.lora import save_lora_adapter

    base = read_state(family.base)
    gen = torch.Generator().manual_seed(2505_12716)
    matrices = {}
    for name, weight in base.items():
        if re.search(r"self_attn\.(q|k|v|o)_proj\.weight$", name):
            out_dim, in_dim = weight.shape
            matrices[name.removesuffix(".weight")] = (
                torch.randn(rank, in_dim, generator=gen) * 0.05,
                torch.randn(out_dim, rank, generator=gen) * 0.05,
            )
    return save_lora_adapter(
        folder, matrices, base_model_name_or_path=str(family.base), lora_alpha=2 * rank
    )


def _shadow_graft_lora_demo(
    family: TinyFamily, directory: Path, options: MergeOptions
) -> MergeResult:
    from mergekit_weightlevel.methods.shadow_graft.lora import open_adapter

    adapter_path = family.root / "base_lora"
    if not (adapter_path / "adapter_config.json").exists():  # a trained one (toy family) wins
        adapter_path = demo_lora_adapter(family, adapter_path)
    config = shadow_graft_adapter_config(adapter_path, family.instruct, dtype="float32")
    config_path, output = _write_and_merge(config, "shadow_graft_lora", directory, options)

    from safetensors import safe_open

    instruct, merged = read_state(family.instruct), read_state(output)
    adapter = open_adapter(adapter_path)
    expected = {name: t.double() for name, t in instruct.items()}
    with safe_open(str(adapter_path / "adapter_model.safetensors"), framework="pt") as file:
        for name, module in adapter.modules.items():
            a, b = (file.get_tensor(k).double() for k in (module.a_key, module.b_key))
            expected[name] += (adapter.config["lora_alpha"] / a.shape[0]) * (b @ a)
    return MergeResult(
        method="shadow_graft (LoRA adapter)",
        formula=(
            "output = instruct + (α/r)·B@A of a LoRA adapter trained on base, read per tensor"
            "   [Shadow-FT LoRA, arXiv 2505.12716]"
        ),
        config_path=config_path,
        output=output,
        max_abs_error=_max_error(merged, expected),
        sigmas={"output, instruct": sigma(_flat(merged), _flat(instruct))},
    )


def _timber_demo(family: TinyFamily, directory: Path, options: MergeOptions) -> MergeResult:
    lam = 0.2
    config = timber_config(family.base, family.instruct, lam, dtype="float32")
    config_path, output = _write_and_merge(config, "timber_spectral", directory, options)

    base, instruct = read_state(family.base), read_state(family.instruct)
    merged = read_state(output)
    error = _max_error(merged, reference.timber_state(base, instruct, lam))
    flat = {
        name: torch.cat([t.flatten() for t in state.values()])
        for name, state in {"output": merged, "base": base, "instruct": instruct}.items()
    }
    return MergeResult(
        method="timber_spectral",
        formula=(
            f"output = base + top-⌈eRank⌉ directions of (instruct − base) + {lam} × the rest"
            "   [Timber, arXiv 2509.23595]"
        ),
        config_path=config_path,
        output=output,
        max_abs_error=error,
        sigmas={
            "output, base": sigma(flat["output"], flat["base"]),
            "output, instruct": sigma(flat["output"], flat["instruct"]),
            "instruct, base": sigma(flat["instruct"], flat["base"]),
        },
    )


def run_demo(
    directory: str | Path,
    *,
    arch: str = "llama",
    quiet: bool = True,
    family_root: str | Path | None = None,
) -> DemoReport:
    """Build the tiny family under ``directory`` and run every demo merge.

    ``family_root``: use an existing trained family instead (the toy family that
    ``python -m mergekit_weightlevel.toy`` writes to ``toy-work/models``).
    """
    directory = Path(directory).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    if family_root is not None:
        family = existing_family(family_root)
    else:
        family = build_family(directory / "models", arch=arch)
    # Absolute paths, no Hub look-ups: the model card is written offline.
    options = MergeOptions(quiet=quiet)
    merges = [
        _paramdelta_demo(family, directory, options),
        _shadow_graft_demo(family, directory, options),
        _shadow_graft_lora_demo(family, directory, options),
        _interp_demo(family, directory, options),
        _timber_demo(family, directory, options),
    ]
    for merge in merges:
        merge.files = files_from(merge.output, family)
    return DemoReport(family=family, merges=merges, analysis=_family_analysis(family, quiet))


def _file_signature(folder: Path, kind: str) -> Any:
    """What distinguishes the members' non-weight files of one kind (None: no such file)."""
    import json

    def read(name: str) -> dict | None:
        path = folder / name
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None

    if kind == "config.json":
        config = read("config.json") or {}
        return json.dumps([config.get(k) for k in ("max_position_embeddings", "rope_parameters")])
    if kind == "chat template":
        template = folder / "chat_template.jinja"
        return template.read_text(encoding="utf-8") if template.exists() else None
    generation = read("generation_config.json") or {}
    return json.dumps([generation.get(k) for k in ("eos_token_id", "temperature", "top_p")])


def files_from(output: Path, family: TinyFamily) -> str:
    """Which members' config.json, chat template and generation config the output matches."""
    parts = []
    for kind in ("config.json", "chat template", "generation config"):
        ours = _file_signature(output, kind)
        if ours is None:
            parts.append(f"no {kind}")
            continue
        same = [n for n, p in family.paths().items() if _file_signature(p, kind) == ours]
        parts.append(f"{kind} of {' = '.join(same) or 'none of the inputs'}")
    return "; ".join(parts)


def existing_family(root: str | Path) -> TinyFamily:
    """A family already on disk: ``root`` holds base, instruct, base_v2, thinking, base_tuned."""
    import json

    root = Path(root).resolve()
    paths = {
        name: root / name for name in ("base", "instruct", "base_v2", "thinking", "base_tuned")
    }
    missing = [name for name, path in paths.items() if not (path / "config.json").exists()]
    if missing:
        raise ModelFolderError(
            f"demo: {root} is not a model family: no checkpoint for {', '.join(missing)}. "
            "Build the toy family with `python -m mergekit_weightlevel.toy` (it writes "
            "toy-work/models), or leave out the family folder to use random tiny models."
        )
    arch = json.loads((paths["base"] / "config.json").read_text())["model_type"]
    return TinyFamily(root=root, arch=arch, **paths)


def _family_analysis(family: TinyFamily, quiet: bool) -> AnalysisReport:
    """The cheap ``analyze`` of the family: σ and eRank of each variant against the base."""
    models = [family.base, family.instruct, family.thinking, family.base_v2]
    return analyze_models(models, metrics=("sigma", "erank"), quiet=quiet)

"""The offline quickstart: a tiny model family, real merges through mergekit, and what came out.

``run_demo(directory)`` builds a tiny local family (a base, its post-trained version,
a newer base, ...), writes one YAML config per merge method under ``directory``,
runs each through mergekit exactly as ``mergekit-yaml`` would, and checks how the
output relates to its inputs with an independent float64 re-computation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from mergekit.options import MergeOptions

from mergekit_weightlevel.analyze import AnalysisReport, analyze_models
from mergekit_weightlevel.merging import merge_yaml
from mergekit_weightlevel.metrics import sigma
from mergekit_weightlevel.tiny_models import TinyFamily, build_family


def read_state(folder: str | Path) -> dict[str, torch.Tensor]:
    """Every tensor of a (small) safetensors checkpoint; for the demo and tests only."""
    from safetensors.torch import load_file

    state: dict[str, torch.Tensor] = {}
    for shard in sorted(Path(folder).glob("*.safetensors")):
        state.update(load_file(shard))
    return state


@dataclass
class MergeResult:
    """One demo merge: its config, output folder, and how the output relates to the inputs."""

    method: str
    formula: str
    config_path: Path
    output: Path
    max_abs_error: float
    sigmas: dict[str, float] = field(default_factory=dict)


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


def _paramdelta_demo(family: TinyFamily, directory: Path, options: MergeOptions) -> MergeResult:
    config: dict[str, Any] = {
        "merge_method": "paramdelta",
        "base_model": str(family.base),
        "models": [
            {"model": str(family.instruct)},
            {"model": str(family.base_v2), "parameters": {"role": "target"}},
        ],
        "dtype": "float32",
    }
    config_path = directory / "paramdelta.yml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    output = merge_yaml(config_path, directory / "merged-paramdelta", options)

    base, post, new_base = (read_state(p) for p in (family.base, family.instruct, family.base_v2))
    merged = read_state(output)
    error = max(
        float(
            (
                merged[name].double()
                - (new_base[name].double() + post[name].double() - base[name].double())
            )
            .abs()
            .max()
        )
        for name in merged
    )
    flat = {
        name: torch.cat([t.flatten() for t in state.values()])
        for name, state in {"output": merged, "instruct": post, "base_v2": new_base}.items()
    }
    return MergeResult(
        method="paramdelta",
        formula="output = base_v2 + (instruct − base)   [ParamΔ, arXiv 2504.21023]",
        config_path=config_path,
        output=output,
        max_abs_error=error,
        sigmas={
            "output, base_v2": sigma(flat["output"], flat["base_v2"]),
            "output, instruct": sigma(flat["output"], flat["instruct"]),
        },
    )


def run_demo(directory: str | Path, *, arch: str = "llama", quiet: bool = True) -> DemoReport:
    """Build the tiny family under ``directory`` and run every demo merge."""
    directory = Path(directory).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    family = build_family(directory / "models", arch=arch)
    # Absolute paths, no Hub look-ups: the model card is written offline.
    options = MergeOptions(quiet=quiet)
    merges = [_paramdelta_demo(family, directory, options)]
    return DemoReport(family=family, merges=merges, analysis=_family_analysis(family, quiet))


def _family_analysis(family: TinyFamily, quiet: bool) -> AnalysisReport:
    """The cheap ``analyze`` of the family: σ and eRank of each variant against the base."""
    models = [family.base, family.instruct, family.thinking, family.base_v2]
    return analyze_models(models, metrics=("sigma", "erank"), quiet=quiet)

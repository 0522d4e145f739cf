"""PNG figures of an ``AnalysisReport`` (matplotlib, the optional ``plots`` extra).

Per pair (A, B): layer × module heatmaps of σ, of eRank(ΔW) / rank and of α; the
distribution of per-tensor σ. With more than two models: the σ matrix of every pair.
"""

from __future__ import annotations

import io
import math
import re
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

from mergekit_weightlevel.analyze.names import module_sort_key
from mergekit_weightlevel.analyze.report import write_atomically

if TYPE_CHECKING:
    from mergekit_weightlevel.analyze.report import AnalysisReport, PairReport

#: Annotate heatmap cells with their value when there are at most this many.
MAX_ANNOTATED_CELLS = 160


class PlotsUnavailable(RuntimeError, ImportError):
    """matplotlib is not installed (a RuntimeError too, so the CLI reports it without a traceback)."""


def require_matplotlib() -> None:
    """Fail early, before a long analysis, when ``--plots`` cannot be honoured."""
    _figure_class()


def _figure_class():
    """matplotlib's ``Figure``: used without pyplot, so no backend or global state is touched."""
    try:
        from matplotlib.figure import Figure
    except ImportError as error:
        raise PlotsUnavailable(
            "analyze --plots needs matplotlib, which is not installed: "
            "pip install 'mergekit-weightlevel[plots]' (or pip install matplotlib)"
        ) from error
    return Figure


def _slug(label: str) -> str:
    tail = Path(label.split("+")[0].rstrip("/")).name or label
    return re.sub(r"[^A-Za-z0-9._-]+", "_", tail)[:60]


def _save(figure, path: Path) -> Path:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return write_atomically(path, buffer.getvalue())


def layer_module_grid(pair: PairReport, value) -> tuple[list[int], list[str], list[list[float]]]:
    """Mean of ``value(record)`` per (layer, module type); NaN where nothing was measured."""
    cells: dict[tuple[int, str], list[float]] = defaultdict(list)
    for record in pair.tensors:
        measured = value(record)
        if record.layer is not None and measured is not None and math.isfinite(measured):
            cells[(record.layer, record.module_type)].append(measured)
    layers = sorted({layer for layer, _ in cells})
    kinds = sorted({kind for _, kind in cells}, key=module_sort_key)
    grid = [
        [
            sum(cells[(layer, kind)]) / len(cells[(layer, kind)])
            if cells.get((layer, kind))
            else math.nan
            for kind in kinds
        ]
        for layer in layers
    ]
    return layers, kinds, grid


def _heatmap(
    figure_class: type, title: str, layers, kinds, grid, colorbar: str, path: Path
) -> Path:
    figure = figure_class(
        figsize=(1.0 + 0.75 * len(kinds), 1.5 + 0.3 * len(layers)), layout="constrained"
    )
    axes = figure.subplots()
    image = axes.imshow(grid, aspect="auto", cmap="viridis", interpolation="nearest")
    axes.set_xticks(range(len(kinds)), kinds, rotation=45, ha="right")
    axes.set_yticks(range(len(layers)), [str(layer) for layer in layers])
    axes.set_xlabel("module type")
    axes.set_ylabel("layer")
    axes.set_title(title, fontsize=9)
    figure.colorbar(image, ax=axes, label=colorbar)
    if len(layers) * len(kinds) <= MAX_ANNOTATED_CELLS:
        for row, values in enumerate(grid):
            for column, cell in enumerate(values):
                if not math.isnan(cell):
                    axes.text(
                        column, row, f"{cell:.3g}", ha="center", va="center", fontsize=6, color="w"
                    )
    return _save(figure, path)


def _sigma_histogram(figure_class: type, pair: PairReport, path: Path) -> Path:
    figure = figure_class(figsize=(6, 3.5), layout="constrained")
    axes = figure.subplots()
    groups: dict[str, list[float]] = defaultdict(list)
    for record in pair.tensors:
        groups[record.module_type].append(record.sigma)
    kinds = sorted(groups, key=module_sort_key)
    axes.hist([groups[k] for k in kinds], bins=30, stacked=True, label=kinds)
    axes.set_xlabel("per-tensor σ = Σ|A−B| / (Σ|A|+Σ|B|)")
    axes.set_ylabel("tensors")
    axes.set_title(f"σ per tensor: {_slug(pair.b)} vs {_slug(pair.a)}", fontsize=9)
    axes.legend(fontsize=6, ncol=2)
    return _save(figure, path)


def _sigma_matrix(figure_class: type, report: AnalysisReport, path: Path) -> Path:
    matrix = [[math.nan if v is None else v for v in row] for row in report.sigma_matrix()]
    names = [_slug(label) for label in report.models]
    figure = figure_class(
        figsize=(2 + 0.9 * len(names), 1.5 + 0.8 * len(names)), layout="constrained"
    )
    axes = figure.subplots()
    image = axes.imshow(matrix, cmap="viridis")
    axes.set_xticks(range(len(names)), names, rotation=45, ha="right")
    axes.set_yticks(range(len(names)), names)
    for i, row in enumerate(matrix):
        for j, value in enumerate(row):
            if not math.isnan(value):
                axes.text(j, i, f"{value:.4f}", ha="center", va="center", fontsize=7, color="w")
    axes.set_title("model σ (Shadow-FT mean) between every pair", fontsize=9)
    figure.colorbar(image, ax=axes, label="σ")
    return _save(figure, path)


def plot_report(report: AnalysisReport, directory: Path) -> list[Path]:
    """Write every figure that applies to ``report`` into ``directory``; return their paths."""
    figure_class = _figure_class()
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for number, pair in enumerate(report.pairs, start=1):
        stem = f"pair{number}_{_slug(pair.b)}_vs_{_slug(pair.a)}"
        heatmaps = [("sigma", "σ", lambda r: r.sigma)]
        if "erank" in pair.metrics:
            heatmaps.append(
                (
                    "erank_delta_ratio",
                    "eRank(ΔW) / rank",
                    lambda r: (r.erank_ratio or {}).get("delta"),
                )
            )
        if "structure" in pair.metrics:
            heatmaps.append(
                ("alpha", "α (singular-value scale)", lambda r: (r.structure or {}).get("alpha"))
            )
        for key, label, value in heatmaps:
            layers, kinds, grid = layer_module_grid(pair, value)
            if layers:
                title = f"{label}: {_slug(pair.b)} vs {_slug(pair.a)}"
                written.append(
                    _heatmap(
                        figure_class,
                        title,
                        layers,
                        kinds,
                        grid,
                        label,
                        directory / f"{stem}_{key}_heatmap.png",
                    )
                )
        written.append(_sigma_histogram(figure_class, pair, directory / f"{stem}_sigma_hist.png"))
    if len(report.models) > 2:
        written.append(_sigma_matrix(figure_class, report, directory / "sigma_matrix.png"))
    return written

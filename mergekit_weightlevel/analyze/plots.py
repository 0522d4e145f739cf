"""PNG figures of an analysis report (matplotlib, the optional ``plots`` extra).

Per pair (A, B): layer × module heatmaps of σ, of eRank(ΔW) / rank and of α; the
distribution of per-tensor σ. With more than two models: the σ matrix of every pair.
Colour ranges come from ``scales`` (σ from 0, eRank / rank over 0–1, α diverging around
1) and are stated on each figure, so that noise does not look like structure.
"""

from __future__ import annotations

import io
import math
from collections import defaultdict
from pathlib import Path

from mergekit_weightlevel.analyze.columns import COLUMNS, SIGMA
from mergekit_weightlevel.analyze.heatmaps import Heatmap, pair_heatmaps
from mergekit_weightlevel.analyze.labels import display_names, short_labels, slug
from mergekit_weightlevel.analyze.names import module_sort_key
from mergekit_weightlevel.analyze.output import write_atomically
from mergekit_weightlevel.analyze.pair import PairReport, ReportData
from mergekit_weightlevel.analyze.scales import from_zero
from mergekit_weightlevel.errors import WeightLevelError

#: Annotate heatmap cells with their value when there are at most this many (a 40-layer,
#: 10-type model still is; the cells stay tall enough for the font).
MAX_ANNOTATED_CELLS = 400
#: Font sizes in points: legible at the default 110 dpi.
CELL_FONT = 7.5
LABEL_FONT = 9
TITLE_FONT = 10


class PlotsUnavailable(WeightLevelError, RuntimeError, ImportError):
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


def _save(figure, path: Path) -> Path:
    """The figure as a 256-colour PNG (a third of the size; Pillow comes with matplotlib)."""
    from PIL import Image

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    buffer.seek(0)
    with Image.open(buffer) as image:
        palette = image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    small = io.BytesIO()
    palette.save(small, format="PNG", optimize=True)
    return write_atomically(path, small.getvalue())


def _heatmap(figure_class: type, title: str, heatmap: Heatmap, path: Path) -> Path:
    layers, kinds, grid, scale = heatmap.layers, heatmap.kinds, heatmap.grid, heatmap.scale
    figure = figure_class(
        figsize=(2.2 + 0.8 * len(kinds), 1.7 + 0.28 * len(layers)), layout="constrained"
    )
    axes = figure.subplots()
    image = axes.imshow(
        grid,
        aspect="auto",
        cmap=scale.matplotlib_cmap,
        vmin=scale.low,
        vmax=scale.high,
        interpolation="nearest",
    )
    axes.set_xticks(range(len(kinds)), kinds, rotation=45, ha="right", fontsize=LABEL_FONT)
    axes.set_yticks(range(len(layers)), [str(layer) for layer in layers], fontsize=LABEL_FONT)
    axes.set_xlabel("module type", fontsize=LABEL_FONT)
    axes.set_ylabel("layer", fontsize=LABEL_FONT)
    axes.set_title(f"{title}\n{scale.explanation}", fontsize=TITLE_FONT)
    bar = figure.colorbar(image, ax=axes)
    bar.set_label(heatmap.label, fontsize=LABEL_FONT)
    bar.ax.tick_params(labelsize=LABEL_FONT - 1)
    column = COLUMNS[heatmap.key]
    if len(layers) * len(kinds) <= MAX_ANNOTATED_CELLS:
        for row, values in enumerate(grid):
            for index, cell in enumerate(values):
                if not math.isnan(cell):
                    axes.text(
                        index,
                        row,
                        column.cell(cell),
                        ha="center",
                        va="center",
                        fontsize=CELL_FONT,
                        color=scale.text_colour(cell),
                    )
    return _save(figure, path)


def _sigma_histogram(figure_class: type, pair: PairReport, title: str, path: Path) -> Path:
    figure = figure_class(figsize=(7.5, 3.6), layout="constrained")
    axes = figure.subplots()
    groups: dict[str, list[float]] = defaultdict(list)
    for record in pair.tensors:
        groups[record.module_type].append(record.sigma)
    kinds = sorted(groups, key=module_sort_key)
    axes.hist([groups[k] for k in kinds], bins=30, stacked=True, label=kinds)
    sigmas = sorted(record.sigma for record in pair.tensors)
    middle = sigmas[len(sigmas) // 2]
    spread = (sigmas[-1] - sigmas[0]) / middle if middle > 0 else 0.0
    axes.set_xlabel(
        "per-tensor σ = Σ|A−B| / (Σ|A|+Σ|B|); all between "
        f"{SIGMA.cell(sigmas[0])} and {SIGMA.cell(sigmas[-1])} "
        f"(a spread of {100 * spread:.2g} % of the median {SIGMA.cell(middle)})",
        fontsize=LABEL_FONT,
    )
    axes.set_ylabel("tensors", fontsize=LABEL_FONT)
    axes.tick_params(labelsize=LABEL_FONT)
    axes.set_title(title, fontsize=TITLE_FONT)
    # Outside the axes: a legend inside can cover bars.
    axes.legend(
        title="module type",
        fontsize=LABEL_FONT - 1,
        title_fontsize=LABEL_FONT - 1,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        borderaxespad=0.0,
    )
    return _save(figure, path)


def _sigma_matrix(figure_class: type, report: ReportData, path: Path) -> Path:
    matrix = [[math.nan if v is None else v for v in row] for row in report.sigma_matrix()]
    shown = display_names(report.models, report.names)
    names = short_labels([shown[model] for model in report.models])
    scale = from_zero([v for row in matrix for v in row], "σ")
    figure = figure_class(
        figsize=(2.8 + 1.0 * len(names), 1.8 + 0.8 * len(names)), layout="constrained"
    )
    axes = figure.subplots()
    image = axes.imshow(matrix, cmap=scale.matplotlib_cmap, vmin=scale.low, vmax=scale.high)
    axes.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=LABEL_FONT)
    axes.set_yticks(range(len(names)), names, fontsize=LABEL_FONT)
    missing = False
    for i, row in enumerate(matrix):
        for j, value in enumerate(row):
            if math.isnan(value):
                # Pairs without the reference are compared only with --all-pairs: say so in
                # the cell rather than leave a blank that reads as a rendering fault.
                missing = True
                axes.add_patch(_not_computed_patch(i, j))
                axes.text(j, i, "not\ncomputed", ha="center", va="center", fontsize=CELL_FONT)
            else:
                axes.text(
                    j,
                    i,
                    SIGMA.cell(value),
                    ha="center",
                    va="center",
                    fontsize=CELL_FONT + 0.5,
                    color=scale.text_colour(value),
                )
    title = f"model σ (Shadow-FT mean) between every pair\n{scale.explanation}"
    if missing:
        title += f"\n{NOT_COMPUTED_NOTE}"
    axes.set_title(title, fontsize=TITLE_FONT)
    bar = figure.colorbar(image, ax=axes)
    bar.set_label("σ", fontsize=LABEL_FONT)
    bar.ax.tick_params(labelsize=LABEL_FONT - 1)
    return _save(figure, path)


#: The σ matrix's note under its title when some pairs were not compared.
NOT_COMPUTED_NOTE = "grey: pairs without the reference (A), compared only with --all-pairs"


def _not_computed_patch(row: int, column: int):
    from matplotlib.patches import Rectangle

    return Rectangle(
        (column - 0.5, row - 0.5), 1, 1, facecolor="#e0e0e0", edgecolor="#9e9e9e", hatch="//"
    )


def plot_report(report: ReportData, directory: Path) -> list[Path]:
    """Write every figure that applies to ``report`` into ``directory``; return their paths."""
    figure_class = _figure_class()
    directory.mkdir(parents=True, exist_ok=True)
    full = display_names(report.models, report.names)
    shown = dict(zip(report.models, short_labels([full[model] for model in report.models])))
    written = []
    for number, pair in enumerate(report.pairs, start=1):
        stem = f"pair{number}_{slug(pair.b)}_vs_{slug(pair.a)}"
        versus = f"{shown[pair.b]} vs {shown[pair.a]}"
        for heatmap in pair_heatmaps(pair):
            path = directory / f"{stem}_{heatmap.file_key}_heatmap.png"
            written.append(_heatmap(figure_class, f"{heatmap.label}: {versus}", heatmap, path))
        written.append(
            _sigma_histogram(
                figure_class, pair, f"σ per tensor: {versus}", directory / f"{stem}_sigma_hist.png"
            )
        )
    if len(report.models) > 2:
        written.append(_sigma_matrix(figure_class, report, directory / "sigma_matrix.png"))
    return written

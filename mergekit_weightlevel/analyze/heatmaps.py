"""The layer × module-type grids behind every heatmap (PNG plots and the HTML report)."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from mergekit_weightlevel.analyze.names import module_sort_key
from mergekit_weightlevel.analyze.pair import PairReport
from mergekit_weightlevel.analyze.records import TensorRecord
from mergekit_weightlevel.analyze.scales import ColourScale, scale_for


@dataclass(frozen=True)
class Heatmap:
    """One metric over layers (rows) × module types (columns); NaN where nothing was measured."""

    key: str  # the record column shown (``sigma``, ``erank_ratio_delta``, ``alpha``)
    file_key: str  # its part of the PNG file name
    label: str
    layers: list[int]
    kinds: list[str]
    grid: list[list[float]]
    counts: list[list[int]]  # tensors averaged in each cell
    scale: ColourScale


#: (record column, PNG file key, label, metric level needed, value of a record).
HEATMAP_SPECS: tuple[tuple[str, str, str, str, Callable[[TensorRecord], float | None]], ...] = (
    ("sigma", "sigma", "σ", "sigma", lambda r: r.sigma),
    (
        "erank_ratio_delta",
        "erank_delta_ratio",
        "eRank(ΔW) / rank",
        "erank",
        lambda r: (r.erank_ratio or {}).get("delta"),
    ),
    (
        "alpha",
        "alpha",
        "α (singular-value scale)",
        "structure",
        lambda r: (r.structure or {}).get("alpha"),
    ),
)


def layer_module_grid(
    pair: PairReport, value: Callable[[TensorRecord], float | None]
) -> tuple[list[int], list[str], list[list[float]], list[list[int]]]:
    """Mean of ``value(record)`` per (layer, module type), NaN where nothing was measured."""
    cells: dict[tuple[int, str], list[float]] = defaultdict(list)
    for record in pair.tensors:
        measured = value(record)
        if record.layer is not None and measured is not None and math.isfinite(measured):
            cells[(record.layer, record.module_type)].append(measured)
    layers = sorted({layer for layer, _ in cells})
    kinds = sorted({kind for _, kind in cells}, key=module_sort_key)
    grid = [
        [
            math.fsum(cells[(layer, kind)]) / len(cells[(layer, kind)])
            if cells.get((layer, kind))
            else math.nan
            for kind in kinds
        ]
        for layer in layers
    ]
    counts = [[len(cells.get((layer, kind), ())) for kind in kinds] for layer in layers]
    return layers, kinds, grid, counts


def pair_heatmaps(pair: PairReport) -> list[Heatmap]:
    """Every heatmap that applies to ``pair`` (σ always; eRank and α with their metrics)."""
    heatmaps = []
    for key, file_key, label, level, value in HEATMAP_SPECS:
        if level not in pair.metrics:
            continue
        layers, kinds, grid, counts = layer_module_grid(pair, value)
        if layers:
            values = [cell for row in grid for cell in row]
            heatmaps.append(
                Heatmap(key, file_key, label, layers, kinds, grid, counts, scale_for(key, values))
            )
    return heatmaps

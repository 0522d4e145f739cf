"""Colour ranges that tell the truth, shared by the PNG plots and the HTML report.

An auto-scaled colour bar stretches whatever spread the data has over the whole map, so
σ values that all read 0.025 (0.02498–0.02502) look strongly structured. Each metric
gets a range with a meaningful origin instead, stated on every figure:

- σ and the other gaps: from 0 (identical weights) to the largest value;
- ratios bounded by 1 (eRank / rank, sparsity): the fixed range 0 to 1;
- α: a diverging map centred on 1 (no rescaling), symmetric, at least ±5 % wide, so that
  noise around 1 (under 1 %, the outlier rule's floor) stays near the neutral colour.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

#: The narrowest half-width of α's colour range: |α − 1| of 1 % (the outlier rule's noise level) stays pale.
ALPHA_MIN_HALF_WIDTH = 0.05

#: matplotlib's viridis at 9 evenly spaced stops (sequential maps).
VIRIDIS = (
    (68, 1, 84),
    (71, 45, 123),
    (59, 82, 139),
    (44, 114, 142),
    (33, 145, 140),
    (40, 174, 128),
    (94, 201, 98),
    (173, 220, 48),
    (253, 231, 37),
)
#: ColorBrewer's RdBu reversed (blue below the centre, red above), 7 stops (diverging maps).
BLUE_WHITE_RED = (
    (33, 102, 172),
    (103, 169, 207),
    (209, 229, 240),
    (247, 247, 247),
    (253, 219, 199),
    (239, 138, 98),
    (178, 24, 43),
)


@dataclass(frozen=True)
class ColourScale:
    """A colour range [low, high] (``centre`` set for a diverging map) and how it was chosen."""

    low: float
    high: float
    centre: float | None
    explanation: str

    @property
    def diverging(self) -> bool:
        return self.centre is not None

    @property
    def matplotlib_cmap(self) -> str:
        return "RdBu_r" if self.diverging else "viridis"

    def position(self, value: float) -> float:
        """Where ``value`` falls in [0, 1] on the map (clipped)."""
        if self.high <= self.low:
            return 0.5 if self.diverging else 1.0
        return min(1.0, max(0.0, (value - self.low) / (self.high - self.low)))

    def colour(self, value: float) -> str:
        """The ``#rrggbb`` colour of ``value`` (the same maps as the PNG plots)."""
        stops = BLUE_WHITE_RED if self.diverging else VIRIDIS
        where = self.position(value) * (len(stops) - 1)
        index = min(int(where), len(stops) - 2)
        fraction = where - index
        rgb = [
            round(low + (high - low) * fraction)
            for low, high in zip(stops[index], stops[index + 1])
        ]
        return "#" + "".join(f"{channel:02x}" for channel in rgb)

    def text_colour(self, value: float) -> str:
        """Black or white, whichever reads better on ``colour(value)``."""
        red, green, blue = (int(self.colour(value)[i : i + 2], 16) for i in (1, 3, 5))
        luminance = 0.2126 * red + 0.7152 * green + 0.0722 * blue
        return "#000000" if luminance > 140 else "#ffffff"


def _finite(values: Iterable[float | None]) -> list[float]:
    return [v for v in values if v is not None and math.isfinite(v)]


def from_zero(values: Iterable[float | None], name: str) -> ColourScale:
    """0 to the largest value: for gaps such as σ, where 0 means identical."""
    finite = _finite(values)
    high = max(finite, default=0.0)
    if high <= 0:
        high = 1.0
    return ColourScale(0.0, high, None, f"colour from 0 (identical) to the largest {name}")


def unit_interval(name: str) -> ColourScale:
    """The fixed range 0 to 1, for shares and ratios to a maximum."""
    return ColourScale(0.0, 1.0, None, f"colour over the full range of {name}, 0 to 1")


def around_one(values: Iterable[float | None]) -> ColourScale:
    """Diverging, centred on 1, symmetric, at least ``ALPHA_MIN_HALF_WIDTH`` either side."""
    finite = _finite(values)
    half = max([abs(v - 1.0) for v in finite] + [ALPHA_MIN_HALF_WIDTH])
    return ColourScale(
        1.0 - half,
        1.0 + half,
        1.0,
        f"diverging colour centred on 1 (no rescaling), ±{half:.3g} "
        f"(at least ±{ALPHA_MIN_HALF_WIDTH:g})",
    )


def scale_for(metric: str, values: Iterable[float | None]) -> ColourScale:
    """The colour scale of a heatmap of ``metric`` (a record column key)."""
    if metric == "alpha":
        return around_one(values)
    if metric in ("sparsity",) or metric.startswith("erank_ratio"):
        return unit_interval("eRank / rank" if metric.startswith("erank") else "the share")
    return from_zero(values, "σ" if metric == "sigma" else metric)

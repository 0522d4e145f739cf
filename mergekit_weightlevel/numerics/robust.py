"""Robust outlier scores (Iglewicz & Hoaglin's modified z-score), used to flag what stands out."""

from __future__ import annotations

import torch

#: 0.6745 = Φ⁻¹(0.75): makes the MAD of a normal sample estimate its standard deviation.
MAD_TO_SIGMA = 0.6745
#: Iglewicz & Hoaglin's threshold on the modified z-score.
ROBUST_Z_THRESHOLD = 3.5


def robust_z_scores(values: list[float]) -> list[float]:
    """Modified z-scores 0.6745 (x − median) / MAD (Iglewicz & Hoaglin, 1993).

    When the MAD is 0 (more than half the values equal) the mean absolute deviation,
    scaled by 1.2533 (= √(π/2)), stands in for it; when that is 0 too, every score is 0.
    """
    if not values:
        return []
    data = torch.tensor(values, dtype=torch.float64)
    median = torch.quantile(data, 0.5)  # interpolated: the textbook median for even counts
    deviations = (data - median).abs()
    mad = float(torch.quantile(deviations, 0.5))
    if mad > 0:
        return (MAD_TO_SIGMA * (data - median) / mad).tolist()
    mean_deviation = float(deviations.mean())
    if mean_deviation > 0:
        return ((data - median) / (1.2533 * mean_deviation)).tolist()
    return [0.0] * len(values)

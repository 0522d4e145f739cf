"""``analyze``'s options, declared once: the metric levels and what each costs, the
precisions, and the checks of option values that need no model.

The CLI builds its options from these (defaults, choices, help texts) and leaves every check
to ``analyze_models``, which runs them before it opens a model. A value that is wrong on its
face raises ``OptionError``, which the CLI shows as a usage error (exit 2). Nothing heavy is
imported here: ``mergekit-weightlevel --help`` reads this module.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from mergekit_weightlevel.errors import WeightLevelInputError

if TYPE_CHECKING:
    import torch


class OptionError(WeightLevelInputError):
    """An option value wrong on its face (an unknown metric, a bad regex, unreadable layers,
    the wrong number of names), found before any model is read."""


#: Metric levels, cheapest first. ``sigma`` (with the Frobenius gap and cosine) is always computed.
METRIC_LEVELS = ("sigma", "erank", "structure")
DEFAULT_METRICS = ("sigma", "erank")

#: What each level costs, for ``--help``, the JSON report and the docs.
METRIC_COSTS = {
    "sigma": "read-bound: one pass over both tensors (also the Frobenius gap, cosine and sparsity)",
    "erank": "singular values of A, B and ΔW = B − A for every matrix (float64 Gram eigenvalues, no vectors)",
    "structure": "singular values and vectors of A and B for every matrix: float64 Gram "
    "eigendecompositions, thin SVDs where those are not accurate enough (the most expensive)",
}

#: ``--precision``: the dtype the spectral metrics run in (a torch dtype of that name).
PRECISIONS = ("float32", "float64")


def parse_metrics(metrics: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """``"sigma,erank"`` or a sequence → the requested levels in canonical order (sigma always in)."""
    requested = metrics.split(",") if isinstance(metrics, str) else list(metrics)
    chosen = {item.strip().lower() for item in requested if item.strip()}
    unknown = sorted(chosen - set(METRIC_LEVELS))
    if unknown:
        raise OptionError(
            f"--metrics: unknown metric(s) {', '.join(unknown)}; choose from "
            f"{','.join(METRIC_LEVELS)} (e.g. --metrics sigma,erank,structure)"
        )
    chosen.add("sigma")
    return tuple(level for level in METRIC_LEVELS if level in chosen)


def parse_precision(precision: str) -> torch.dtype:
    """``"float32"`` or ``"float64"`` → its torch dtype."""
    if precision not in PRECISIONS:
        raise OptionError(f"--precision must be {' or '.join(PRECISIONS)}, got {precision!r}")
    import torch  # here, not at the top: this module must stay light (see the docstring)

    return getattr(torch, precision)


def check_regex(option: str, pattern: str | None) -> None:
    """Raise ``OptionError`` naming ``option`` when ``pattern`` is not a valid regex."""
    if pattern is None:
        return
    try:
        re.compile(pattern)
    except re.error as error:
        raise OptionError(f"{option}: {pattern!r} is not a valid regex ({error})") from None

"""Names for ``analyze``: the tensor-name rules (from ``mergekit_weightlevel.tensor_names``,
re-exported here) and the ``--layers`` syntax.
"""

from __future__ import annotations

import re

from mergekit_weightlevel.analyze.options import OptionError
from mergekit_weightlevel.tensor_names import (
    LAYER_PATTERN,
    MODULE_ORDER,
    SHADOW_FT_LAYER_PATTERN,
    in_shadow_ft_mean,
    layer_index,
    module_sort_key,
    module_type,
    split_parameter,
)

__all__ = [
    "LAYER_PATTERN",
    "MODULE_ORDER",
    "SHADOW_FT_LAYER_PATTERN",
    "in_shadow_ft_mean",
    "layer_index",
    "module_sort_key",
    "module_type",
    "parse_layers",
    "split_parameter",
]


def parse_layers(spec: str) -> frozenset[int]:
    """``"0-11"``, ``"3"``, ``"0-3,8,10-11"`` → the set of layer indices.

    Raises ValueError with the offending part when the text is not of that form.
    """
    layers: set[int] = set()
    for part in spec.split(","):
        part = part.strip()
        match = re.fullmatch(r"(\d+)(?:\s*-\s*(\d+))?", part)
        if not match:
            raise OptionError(
                f"--layers: cannot read {part!r} in {spec!r}; use e.g. '0-11' or '0-3,8,10'"
            )
        first = int(match.group(1))
        last = int(match.group(2)) if match.group(2) is not None else first
        if last < first:
            raise OptionError(
                f"--layers: range {part!r} goes backwards; write it as {last}-{first}"
            )
        layers.update(range(first, last + 1))
    return frozenset(layers)

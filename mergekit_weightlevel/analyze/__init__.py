"""Weight-level diagnostics of post-training: ``analyze_models`` and its report.

    from mergekit_weightlevel.analyze import analyze_models
    report = analyze_models(["org/Base", "org/Instruct"], metrics="sigma,erank")
    print(report.summary_text())
    report.to_json("analysis.json")
    report.to_html("analysis.html")
    report.to_markdown("card-section.md", names=["Base", "Instruct"])

The CLI ``mergekit-weightlevel analyze`` is a thin layer over this. Metric definitions and
the JSON schema are documented in docs/analyze.md.

The names below are imported from their modules on first use (PEP 562), so that importing a
light module of this package (``analyze.options``, which ``mergekit-weightlevel --help``
reads) does not import torch and mergekit's loaders.
"""

from __future__ import annotations

import importlib
from typing import Any

#: Each public name and the module of this package that defines it.
_EXPORTS = {
    "NothingComparableError": "core",
    "analyze_models": "core",
    "cuda_hint": "core",
    "resolve_device": "core",
    "display_names": "labels",
    "hub_id": "labels",
    "markdown_section": "markdown",
    "layer_index": "names",
    "module_type": "names",
    "parse_layers": "names",
    "DEFAULT_METRICS": "options",
    "METRIC_COSTS": "options",
    "METRIC_LEVELS": "options",
    "OptionError": "options",
    "parse_metrics": "options",
    "LoaderOptions": "reading",
    "TensorRecord": "records",
    "tensor_record": "records",
    "SCHEMA_VERSION": "report",
    "AnalysisReport": "report",
    "PairReport": "report",
    "report_schema": "schema",
    "validate_report": "schema",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])

"""Weight-level diagnostics of post-training: ``analyze_models`` and its report.

    from mergekit_weightlevel.analyze import analyze_models
    report = analyze_models(["org/Base", "org/Instruct"], metrics="sigma,erank")
    print(report.summary_text())
    report.to_json("analysis.json")
    report.to_html("analysis.html")
    report.to_markdown("card-section.md", names=["Base", "Instruct"])

The CLI ``mergekit-weightlevel analyze`` is a thin layer over this. Metric definitions and
the JSON schema are documented in docs/analyze.md.
"""

from mergekit_weightlevel.analyze.core import (
    NothingComparableError,
    analyze_models,
    cuda_hint,
    resolve_device,
)
from mergekit_weightlevel.analyze.labels import display_names, hub_id
from mergekit_weightlevel.analyze.markdown import markdown_section
from mergekit_weightlevel.analyze.names import layer_index, module_type, parse_layers
from mergekit_weightlevel.analyze.reading import LoaderOptions
from mergekit_weightlevel.analyze.records import (
    DEFAULT_METRICS,
    METRIC_COSTS,
    METRIC_LEVELS,
    TensorRecord,
    parse_metrics,
    tensor_record,
)
from mergekit_weightlevel.analyze.report import SCHEMA_VERSION, AnalysisReport, PairReport
from mergekit_weightlevel.analyze.schema import report_schema, validate_report

__all__ = [
    "DEFAULT_METRICS",
    "METRIC_COSTS",
    "METRIC_LEVELS",
    "SCHEMA_VERSION",
    "AnalysisReport",
    "LoaderOptions",
    "NothingComparableError",
    "PairReport",
    "TensorRecord",
    "analyze_models",
    "cuda_hint",
    "display_names",
    "hub_id",
    "layer_index",
    "markdown_section",
    "module_type",
    "parse_layers",
    "parse_metrics",
    "report_schema",
    "resolve_device",
    "tensor_record",
    "validate_report",
]

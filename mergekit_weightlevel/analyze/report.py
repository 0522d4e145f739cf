"""The report ``analyze`` returns: per-pair records and summaries, and every output format.

``AnalysisReport`` holds the data and writes the machine-readable formats (JSON, CSV, a
pandas frame) and the stdout summary itself; the Markdown card section, the HTML report
and the PNG plots are rendered by ``markdown``, ``html_page`` and ``plots``, which read the
report but never import this module.
"""

from __future__ import annotations

import csv
import io
import json
import math
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mergekit_weightlevel.analyze.columns import (
    METRIC_DEFINITIONS,
    SIGMA,
    SPARSITY,
    table_columns,
    text_table,
)
from mergekit_weightlevel.analyze.html_page import html_report
from mergekit_weightlevel.analyze.labels import DisplayNames, display_names, short_labels
from mergekit_weightlevel.analyze.markdown import markdown_section
from mergekit_weightlevel.analyze.options import METRIC_COSTS
from mergekit_weightlevel.analyze.output import (
    OutputNotWritableError,
    check_writable,
    write_atomically,
)
from mergekit_weightlevel.analyze.pair import PairReport
from mergekit_weightlevel.analyze.records import RECORD_COLUMNS

__all__ = [
    "METRIC_DEFINITIONS",
    "SCHEMA_VERSION",
    "AnalysisReport",
    "OutputNotWritableError",
    "PairReport",
    "check_writable",
    "short_labels",
    "write_atomically",
]

#: Bump when a field of the JSON report is renamed, removed or added (1.1: sparsity;
#: 1.2: the Reading, per-tensor norms and Timber's split).
SCHEMA_VERSION = "1.2"
#: The stdout summary's Reading is wrapped at this width.
SUMMARY_WIDTH = 100


def reading_lines(pair: PairReport) -> list[str]:
    """The stdout summary's Reading of ``pair``: one wrapped bullet per statement."""
    lines = ["  Reading (the figures against the papers; docs/analyze.md, 'The Reading'):"]
    for statement in pair.reading.statements:
        sources = "; ".join(source.text() for source in statement.sources)
        text = statement.text + (f" [{sources}]" if sources else "")
        lines += textwrap.wrap(
            text,
            width=SUMMARY_WIDTH,
            initial_indent="  - ",
            subsequent_indent="    ",
            break_on_hyphens=False,  # "post-training" stays one word
            break_long_words=False,  # so do tensor names
        )
    return lines


def _finite_or_none(value: Any) -> Any:
    """JSON has no inf / NaN: they become null (the schema allows it)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite_or_none(v) for v in value]
    return value


@dataclass
class AnalysisReport:
    """What ``analyze_models`` returns and ``mergekit-weightlevel analyze`` prints and writes.

    ``names`` maps a model (as given) to the name readers see in the Markdown and HTML
    reports; models it does not name are shown as given (Hub ids for Hub cache folders).
    """

    models: list[str]
    metrics: tuple[str, ...]
    pairs: list[PairReport]
    settings: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)

    @property
    def reference(self) -> str:
        return self.models[0]

    def display_names(self, names: DisplayNames = None) -> dict[str, str]:
        """{model as given: display name}: ``names`` over the report's own ``names``."""
        if names is None:
            return display_names(self.models, self.names)
        if isinstance(names, Mapping):
            display_names(self.models, names)  # names no model it does not hold
            return display_names(self.models, {**self.names, **names})
        return display_names(self.models, names)

    def pair(self, a: str, b: str) -> PairReport:
        """The comparison of ``a`` and ``b`` (as given); KeyError if it was not computed."""
        for pair in self.pairs:
            if (pair.a, pair.b) in ((a, b), (b, a)):
                return pair
        raise KeyError(f"no pair ({a}, {b}) in this report; pass all_pairs=True for every pair")

    def sigma_matrix(self, aggregate: str = "sigma_mean") -> list[list[float | None]]:
        """Symmetric matrix of model σ (``sigma_mean`` or ``sigma_global``); None if not computed."""
        index = {label: i for i, label in enumerate(self.models)}
        size = len(self.models)
        matrix: list[list[float | None]] = [
            [0.0 if i == j else None for j in range(size)] for i in range(size)
        ]
        for pair in self.pairs:
            i, j = index[pair.a], index[pair.b]
            matrix[i][j] = matrix[j][i] = pair.summary[aggregate]
        return matrix

    # ---------------------------------------------------------------- machine-readable

    def to_dict(self) -> dict[str, Any]:
        return _finite_or_none(
            {
                "schema_version": SCHEMA_VERSION,
                "tool": "mergekit-weightlevel analyze",
                "versions": self.versions,
                "models": self.models,
                "model_names": self.display_names(),
                "reference": self.reference,
                "metrics": list(self.metrics),
                "metric_costs": {m: METRIC_COSTS[m] for m in self.metrics},
                "definitions": METRIC_DEFINITIONS,
                "settings": self.settings,
                "sigma_matrix": {
                    "models": self.models,
                    "sigma_mean": self.sigma_matrix("sigma_mean"),
                    "sigma_global": self.sigma_matrix("sigma_global"),
                },
                "pairs": [pair.to_dict() for pair in self.pairs],
            }
        )

    def to_json(self, path: str | Path | None = None, *, indent: int = 2) -> str:
        """The versioned JSON report (schema: ``mergekit_weightlevel/analyze/schema.json``)."""
        text = json.dumps(self.to_dict(), indent=indent, ensure_ascii=False) + "\n"
        if path is not None:
            write_atomically(path, text)
        return text

    def rows(self) -> list[dict[str, Any]]:
        """One flat row per tensor and pair (what the CSV and the data frame hold)."""
        rows = []
        for pair in self.pairs:
            for record in pair.tensors:
                rows.append(
                    {
                        "a": pair.a,
                        "b": pair.b,
                        "name": record.name,
                        "module_type": record.module_type,
                        "layer": record.layer,
                        "shape": "x".join(str(d) for d in record.shape),
                        **record.flat(),
                    }
                )
        return rows

    def to_csv(self, path: str | Path | None = None) -> str:
        columns = ["a", "b", "name", "module_type", "layer", "shape", *RECORD_COLUMNS]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in self.rows():
            writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
        text = buffer.getvalue()
        if path is not None:
            write_atomically(path, text)
        return text

    def to_dataframe(self):
        """The CSV rows as a pandas DataFrame (needs pandas: the ``dataframe`` extra)."""
        try:
            import pandas
        except ImportError as error:
            raise ImportError(
                "AnalysisReport.to_dataframe needs pandas, which is not installed: "
                "pip install 'mergekit-weightlevel[dataframe]' (or pip install pandas)"
            ) from error
        return pandas.DataFrame(self.rows())

    # ---------------------------------------------------------------- human-readable

    def summary_text(self) -> str:
        """The stdout summary: model-level σ and sparsity, per-module means, α outliers."""
        shown = self._summary_names()
        lines = [
            f"Weight-level analysis, reference A = {shown[self.reference]}",
            "σ = Σ|A−B| / (Σ|A|+Σ|B|), the relative weight gap (not WeightWatcher's sigma); "
            f"metrics: {', '.join(self.metrics)}",
        ]
        for pair in self.pairs:
            lines += ["", *self._pair_text(pair, shown)]
        if len(self.models) > 2 and self.settings.get("all_pairs"):
            lines += ["", "σ matrix (Shadow-FT mean):", *self._matrix_lines("sigma_mean")]
        return "\n".join(lines)

    def _summary_names(self) -> dict[str, str]:
        """{model: its display name, followed by the model as given when they differ}."""
        return {
            model: name if name == model else f"{name} ({model})"
            for model, name in self.display_names().items()
        }

    def _pair_text(self, pair: PairReport, shown: dict[str, str]) -> list[str]:
        s = pair.summary
        lines = [
            f"A = {shown[pair.a]}",
            f"B = {shown[pair.b]}",
            f"  {s['tensors']} tensors compared ({s['matrices']} matrices with spectral metrics)",
            f"  σ mean over {s['sigma_mean_scope']} tensors (Shadow-FT, {s['sigma_mean_tensors']} "
            f"tensors): {SIGMA.cell(s['sigma_mean'])}",
            f"  σ global ratio of sums over all tensors: {SIGMA.cell(s['sigma_global'])}",
            f"  unchanged elements (|A−B| < 1e-5, Timber's sparsity ratio), all tensors: "
            f"{SPARSITY.cell(s['sparsity_global'])}",
        ]
        means = s["means"]
        if "erank_ratio_a" in means:
            lines.append(
                f"  eRank / rank (mean over matrices): A {means['erank_ratio_a']:.3f}, "
                f"B {means['erank_ratio_b']:.3f}, ΔW {means['erank_ratio_delta']:.3f}"
            )
        lines += [f"  {line}" for line in self._module_table(pair)]
        if pair.skipped:
            lines.append(f"  skipped: {len(pair.skipped)} tensors (see the JSON 'skipped' list)")
        if pair.only_in_a or pair.only_in_b:
            lines.append(
                f"  not in both: {len(pair.only_in_a)} only in A, {len(pair.only_in_b)} only in B"
            )
        if "structure" in pair.metrics:
            lines += ["  α outliers (|robust z| > 3.5):", *self._outlier_lines(pair)]
        return lines + reading_lines(pair)

    @staticmethod
    def _module_table(pair: PairReport) -> list[str]:
        columns = table_columns(pair.metrics)
        header = ["module", "tensors", *(column.title for column in columns)]
        body = [
            [
                kind,
                str(stats["tensors"]),
                *(column.cell(stats.get(column.key)) for column in columns),
            ]
            for kind, stats in pair.summary["by_module"].items()
        ]
        return text_table(header, body)

    @staticmethod
    def _outlier_lines(pair: PairReport) -> list[str]:
        outliers = pair.summary["alpha_outliers"]
        if not outliers:
            return ["    none"]
        return [
            f"    {o['module_type']:<8} {o['name']}: α = {o['alpha']:.4f} "
            f"(z model {o['z_model']:+.1f}"
            + (f", z {o['module_type']} {o['z_module_type']:+.1f}" if o["z_module_type"] else "")
            + ")"
            for o in outliers
        ]

    def _matrix_lines(self, aggregate: str) -> list[str]:
        matrix = self.sigma_matrix(aggregate)
        shown = self.display_names()
        names = short_labels([shown[model] for model in self.models])
        header = ["", *names]
        body = [[label, *(SIGMA.cell(v) for v in row)] for label, row in zip(names, matrix)]
        return text_table(header, body)

    def to_markdown(
        self,
        path: str | Path | None = None,
        *,
        names: DisplayNames = None,
        heading_level: int = 2,
        reading: bool = True,
    ) -> str:
        """A section for a Hugging Face model card (see ``markdown.markdown_section``).

        ``names``: display names (one per model in order, or {model as given: name}) over
        the report's own; ``heading_level``: 2 gives a ``## Weight-level analysis`` section;
        ``reading``: False leaves each pair's Reading out.
        """
        text = markdown_section(
            self, names=self.display_names(names), heading_level=heading_level, reading=reading
        )
        if path is not None:
            write_atomically(path, text)
        return text

    def to_html(self, path: str | Path | None = None, *, names: DisplayNames = None) -> str:
        """One self-contained HTML page (no network needed; see ``html_page.html_report``)."""
        text = html_report(self, names=self.display_names(names))
        if path is not None:
            write_atomically(path, text)
        return text

    def plot(self, directory: str | Path) -> list[Path]:
        """PNG heatmaps and distributions into ``directory`` (needs matplotlib)."""
        from mergekit_weightlevel.analyze.plots import plot_report

        return plot_report(self, Path(directory))

"""The report ``analyze`` returns: per-pair records and summaries, and every output format."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from mergekit_weightlevel.analyze.aggregate import pair_summary
from mergekit_weightlevel.analyze.records import METRIC_COSTS, RECORD_COLUMNS, TensorRecord

#: Bump when a field of the JSON report is renamed or removed (adding fields does not).
SCHEMA_VERSION = "1.0"

#: The definitions written into every JSON report, so a file explains itself.
METRIC_DEFINITIONS = {
    "sigma": "Σ|A − B| / (Σ|A| + Σ|B|), accumulated in float64: the relative weight gap of "
    "the Shadow-FT paper (arXiv 2505.12716). Not WeightWatcher's 'sigma' (a power-law fit error).",
    "rel_frobenius": "‖B − A‖_F / ‖A‖_F",
    "cosine": "⟨A, B⟩ / (‖A‖_F ‖B‖_F) over the flattened tensors",
    "rank": "min(m, n) of the tensor seen as shape[0] × (the rest)",
    "erank": "Roy & Vetterli effective rank exp(−Σ p_i log(p_i + 1e-9)), p_i = s_i / Σ s_j, "
    "of A, B and ΔW = B − A (as the Timber code). Not WeightWatcher's 'entropy' "
    "(p = s² / Σ s², divided by log rank).",
    "erank_ratio": "erank / rank for A, B and ΔW",
    "alpha": "least-squares singular-value scale ⟨s_B, s_A⟩ / ⟨s_A, s_A⟩ (our definition after "
    "He & Cao, arXiv 2509.17866)",
    "cv": "std / mean of r_i = s_B,i / s_A,i over s_A,i > 1e-6 · s_A,0 (0 = uniform scaling)",
    "median_ratio": "median of r_i; p5_ratio / p95_ratio: its 5th / 95th percentiles",
    "consistency_gap": "‖Q_U − Q_V‖_F / ‖Q_U‖_F with Q_U = U_Aᵀ U_B, Q_V = V_Aᵀ V_B "
    "(0 = one rotation on both sides)",
    "alignment": "mean |diag(Q_U)| (1 = the left singular vectors did not move)",
    "reconstruction_error": "‖W_B − U_A Q (α Σ_A) (V_A Q)ᵀ‖_F / ‖W_B‖_F, Q the orthogonal "
    "polar factor of (Q_U + Q_V) / 2",
    "sigma_mean": "unweighted mean of per-tensor sigma over the tensors named "
    "model.layers.<n>.… (norms included), as Shadow-FT's sigma_v2.py",
    "sigma_global": "Σ_tensors Σ|A − B| / Σ_tensors (Σ|A| + Σ|B|) over all compared tensors",
    "alpha_outliers": "matrices whose modified z-score 0.6745 (α − median) / MAD exceeds 3.5 "
    "in absolute value, against the whole model or within their module type (4+ matrices), "
    "and whose α differs from that median by more than 1 %",
}


class OutputNotWritableError(OSError):
    """An output path of ``analyze`` that cannot be written; the message names it."""


def check_writable(path: str | Path, *, option: str, folder: bool = False) -> None:
    """Fail before the analysis (not after it) when ``path`` cannot be written.

    Creates nothing: the nearest existing ancestor of the destination folder must be a
    writable folder, and a file destination must not be an existing folder.
    """
    path = Path(path)
    destination = path if folder else path.parent
    problem = None
    if not folder and path.is_dir():
        problem = f"{path} is a folder; give a file name"
    else:
        existing = destination.absolute()
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir():
            problem = f"{existing} is a file, so the folder {destination} cannot be created"
        elif not os.access(existing, os.W_OK | os.X_OK):
            problem = f"the folder {existing} is not writable (permissions)"
    if problem:
        raise OutputNotWritableError(
            f"analyze: cannot write {option} {path}: {problem}. Choose another path, or fix "
            "the folder's permissions. Nothing was analyzed or written."
        )


def write_atomically(path: str | Path, text: str | bytes) -> Path:
    """Write a file through a temporary sibling and ``os.replace``: never a half-written file."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(
            dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
        )
    except OSError as error:
        raise OutputNotWritableError(
            f"analyze: cannot write {path} ({error.strerror or error}): choose another path "
            "or fix the folder's permissions."
        ) from error
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(text.encode("utf-8") if isinstance(text, str) else text)
        os.replace(temporary, path)
    except BaseException as error:
        Path(temporary).unlink(missing_ok=True)
        if isinstance(error, OSError):  # e.g. the disk filled up: name the file
            raise OutputNotWritableError(
                f"analyze: writing {path} failed ({error.strerror or error}); nothing was "
                "left at that path."
            ) from error
        raise
    return path


def _finite_or_none(value: Any) -> Any:
    """JSON has no inf / NaN: they become null (the schema allows it)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite_or_none(v) for v in value]
    return value


def _number(value: float | int | None, digits: int = 4) -> str:
    if value is None:
        return "—"
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


@dataclass
class PairReport:
    """A (reference A, model B) comparison: one record per common tensor."""

    a: str
    b: str
    metrics: tuple[str, ...]
    tensors: list[TensorRecord] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    only_in_a: list[str] = field(default_factory=list)
    only_in_b: list[str] = field(default_factory=list)

    @cached_property
    def summary(self) -> dict[str, Any]:
        return pair_summary(self.tensors)

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "metrics": list(self.metrics),
            "summary": self.summary,
            "tensors": [record.to_dict() for record in self.tensors],
            "skipped": self.skipped,
            "only_in_a": self.only_in_a,
            "only_in_b": self.only_in_b,
        }


@dataclass
class AnalysisReport:
    """What ``analyze_models`` returns and ``mergekit-weightlevel analyze`` prints and writes."""

    models: list[str]
    metrics: tuple[str, ...]
    pairs: list[PairReport]
    settings: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)

    @property
    def reference(self) -> str:
        return self.models[0]

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
        """The CSV rows as a pandas DataFrame (needs pandas)."""
        try:
            import pandas
        except ImportError as error:
            raise ImportError(
                "AnalysisReport.to_dataframe needs pandas: pip install pandas"
            ) from error
        return pandas.DataFrame(self.rows())

    # ---------------------------------------------------------------- human-readable

    def summary_text(self) -> str:
        """The stdout summary: model-level σ, per-module means, flagged α outliers."""
        lines = [
            f"Weight-level analysis, reference A = {self.reference}",
            "σ = Σ|A−B| / (Σ|A|+Σ|B|), the relative weight gap (not WeightWatcher's sigma); "
            f"metrics: {', '.join(self.metrics)}",
        ]
        for pair in self.pairs:
            lines += ["", *self._pair_text(pair)]
        if len(self.models) > 2 and self.settings.get("all_pairs"):
            lines += ["", "σ matrix (Shadow-FT mean):", *self._matrix_lines("sigma_mean")]
        return "\n".join(lines)

    def _pair_text(self, pair: PairReport) -> list[str]:
        s = pair.summary
        lines = [
            f"A = {pair.a}",
            f"B = {pair.b}",
            f"  {s['tensors']} tensors compared ({s['matrices']} matrices with spectral metrics)",
            f"  σ mean over {s['sigma_mean_scope']} tensors (Shadow-FT, {s['sigma_mean_tensors']} "
            f"tensors): {_number(s['sigma_mean'])}",
            f"  σ global ratio of sums over all tensors: {_number(s['sigma_global'])}",
        ]
        means = s["means"]
        if "erank_ratio_a" in means:
            lines.append(
                f"  eRank / rank (mean over matrices): A {means['erank_ratio_a']:.3f}, "
                f"B {means['erank_ratio_b']:.3f}, ΔW {means['erank_ratio_delta']:.3f}"
            )
        lines += [f"  {line}" for line in self._module_table(pair, markdown=False)]
        if pair.skipped:
            lines.append(f"  skipped: {len(pair.skipped)} tensors (see the JSON 'skipped' list)")
        if pair.only_in_a or pair.only_in_b:
            lines.append(
                f"  not in both: {len(pair.only_in_a)} only in A, {len(pair.only_in_b)} only in B"
            )
        if "structure" in pair.metrics:
            lines += ["  α outliers (|robust z| > 3.5):", *self._outlier_lines(pair)]
        return lines

    @staticmethod
    def _module_columns(pair: PairReport) -> list[tuple[str, str]]:
        columns = [("sigma", "σ"), ("rel_frobenius", "‖Δ‖/‖A‖"), ("cosine", "cos")]
        if "erank" in pair.metrics:
            columns += [
                ("erank_a", "eRank A"),
                ("erank_b", "eRank B"),
                ("erank_ratio_delta", "eRank ΔW/rank"),
            ]
        if "structure" in pair.metrics:
            columns += [
                ("alpha", "α"),
                ("cv", "cv"),
                ("consistency_gap", "gap"),
                ("alignment", "align"),
                ("reconstruction_error", "recon"),
            ]
        return columns

    def _module_table(self, pair: PairReport, *, markdown: bool) -> list[str]:
        columns = self._module_columns(pair)
        header = ["module", "tensors", *(title for _, title in columns)]
        body = [
            [kind, str(stats["tensors"]), *(_number(stats.get(key)) for key, _ in columns)]
            for kind, stats in pair.summary["by_module"].items()
        ]
        return _table(header, body, markdown=markdown)

    def _layer_table(self, pair: PairReport) -> list[str]:
        columns = self._module_columns(pair)
        header = ["layer", "tensors", *(title for _, title in columns)]
        body = [
            [layer, str(stats["tensors"]), *(_number(stats.get(key)) for key, _ in columns)]
            for layer, stats in pair.summary["by_layer"].items()
        ]
        return _table(header, body, markdown=True)

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

    def _matrix_lines(self, aggregate: str, *, markdown: bool = False) -> list[str]:
        matrix = self.sigma_matrix(aggregate)
        names = short_labels(self.models)
        header = ["", *names]
        body = [[label, *(_number(v) for v in row)] for label, row in zip(names, matrix)]
        return _table(header, body, markdown=markdown)

    def to_markdown(self, path: str | Path | None = None) -> str:
        """A section for a Hugging Face model card: model σ, per-module and per-layer tables."""
        lines = [
            "## Weight-level analysis",
            "",
            "Computed with `mergekit-weightlevel analyze` "
            f"(metrics: {', '.join(self.metrics)}). σ = Σ|A−B| / (Σ|A|+Σ|B|) is the relative "
            "weight gap of Shadow-FT (not WeightWatcher's sigma); eRank is the Roy & Vetterli "
            "effective rank.",
        ]
        for pair in self.pairs:
            s = pair.summary
            lines += [
                "",
                f"### `{pair.b}` against `{pair.a}`",
                "",
                *_table(
                    ["quantity", "value"],
                    [
                        [
                            f"σ, mean over {s['sigma_mean_scope']} tensors (Shadow-FT)",
                            _number(s["sigma_mean"]),
                        ],
                        ["σ, global ratio of sums", _number(s["sigma_global"])],
                        ["tensors compared", str(s["tensors"])],
                    ],
                    markdown=True,
                ),
                "",
                "Per module type (means):",
                "",
                *self._module_table(pair, markdown=True),
            ]
            if s["by_layer"]:
                lines += ["", "Per layer (means):", "", *self._layer_table(pair)]
            if "structure" in pair.metrics:
                lines += ["", "α outliers (|robust z| > 3.5):", "", *self._outlier_lines(pair)]
        if len(self.models) > 2:
            lines += ["", "### σ between every pair", ""]
            lines += self._matrix_lines("sigma_mean", markdown=True)
        text = "\n".join(lines) + "\n"
        if path is not None:
            write_atomically(path, text)
        return text

    def plot(self, directory: str | Path) -> list[Path]:
        """PNG heatmaps and distributions into ``directory`` (needs matplotlib)."""
        from mergekit_weightlevel.analyze.plots import plot_report

        return plot_report(self, Path(directory))


def short_labels(labels: list[str]) -> list[str]:
    """Folder names (``org/Model`` → ``Model``) where they tell the models apart, else the labels."""
    short = [Path(label.rstrip("/")).name or label for label in labels]
    return short if len(set(short)) == len(short) else list(labels)


def _table(header: list[str], body: list[list[str]], *, markdown: bool) -> list[str]:
    if markdown:
        escape = [[cell.replace("|", "\\|") for cell in row] for row in [header, *body]]
        return [
            "| " + " | ".join(escape[0]) + " |",
            "|" + "|".join("---" for _ in header) + "|",
            *("| " + " | ".join(row) + " |" for row in escape[1:]),
        ]
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
        for row in [header, *body]
    ]

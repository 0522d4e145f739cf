"""What every column of analyze's tables means and how it is rounded, shared by all renderers.

The stdout summary, the Markdown card section and the HTML report show the same columns
with the same titles, rounding and one-line definitions (the glossary); the JSON report
carries the longer ``METRIC_DEFINITIONS``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from mergekit_weightlevel.numerics.pair_statistics import SPARSITY_THRESHOLD

#: Source papers, cited by the glossary and the HTML report: (citation, address or None).
PAPERS: dict[str, tuple[str, str | None]] = {
    "shadow_ft": ("Shadow-FT, Wu et al.", "https://arxiv.org/abs/2505.12716"),
    "timber": ("Timber, Wu et al.", "https://arxiv.org/abs/2509.23595"),
    "roy_vetterli": ("Roy & Vetterli, The effective rank, EUSIPCO 2007", None),
    "he_cao": ("He & Cao", "https://arxiv.org/abs/2509.17866"),
    "interpolation": ("Instruct/Thinking interpolation", "https://arxiv.org/abs/2510.10977"),
}

#: The definitions written into every JSON report, so a file explains itself.
METRIC_DEFINITIONS = {
    "sigma": "Σ|A − B| / (Σ|A| + Σ|B|), accumulated in float64: the relative weight gap of "
    "the Shadow-FT paper (arXiv 2505.12716). Not WeightWatcher's 'sigma' (a power-law fit error).",
    "rel_frobenius": "‖B − A‖_F / ‖A‖_F",
    "cosine": "⟨A, B⟩ / (‖A‖_F ‖B‖_F) over the flattened tensors",
    "sparsity": f"share of the elements with |A − B| < {SPARSITY_THRESHOLD:g} (the difference "
    "formed in float32, float64 for float64 weights), as calculate_sparsity_ratio in the "
    "Timber code (arXiv 2509.23595); unchanged_elements is the count",
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
    "sparsity_global": "Σ_tensors unchanged_elements / Σ_tensors elements over all compared tensors",
    "alpha_outliers": "matrices whose modified z-score 0.6745 (α − median) / MAD exceeds 3.5 "
    "in absolute value, against the whole model or within their module type (4+ matrices), "
    "and whose α differs from that median by more than 1 %",
}


def significant(value: float, digits: int) -> str:
    """``value`` with ``digits`` significant digits in fixed notation (scientific below 1e-6)."""
    if value == 0 or not math.isfinite(value):
        return "0" if value == 0 else str(value)
    magnitude = math.floor(math.log10(abs(value)))
    if magnitude < -6:
        return f"{value:.{digits - 1}e}"
    return f"{value:.{max(0, digits - 1 - magnitude)}f}"


def fixed(decimals: int) -> Callable[[float], str]:
    return lambda value: f"{value:.{decimals}f}"


def percent(value: float) -> str:
    """A share as a percentage: 2 decimals, 2 significant digits below 0.1 % (0.012 %)."""
    share = 100 * value
    if 0 < share < 0.1:
        return f"{significant(share, 2)} %"
    return f"{share:.2f} %"


@dataclass(frozen=True)
class Column:
    """One metric column: its key in the records and summaries, title, rounding and meaning."""

    key: str
    title: str
    format: Callable[[float], str]
    glossary: str
    paper: str | None = None  # a key of PAPERS
    definition: str | None = None  # its key in METRIC_DEFINITIONS, when not ``key``

    @property
    def definition_text(self) -> str:
        """The longer definition the JSON report carries for this column."""
        return METRIC_DEFINITIONS[self.definition or self.key]

    def cell(self, value: float | int | None) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "—"
        return self.format(float(value))


SIGMA = Column(
    "sigma",
    "σ",
    lambda v: significant(v, 4),
    "relative weight gap Σ|A−B| / (Σ|A|+Σ|B|): 0 = identical, 1 at most "
    "(not WeightWatcher's sigma)",
    "shadow_ft",
)
REL_FROBENIUS = Column(
    "rel_frobenius", "‖Δ‖/‖A‖", lambda v: significant(v, 3), "relative Frobenius gap ‖B−A‖ / ‖A‖"
)
COSINE = Column("cosine", "cos", fixed(5), "cosine of A and B as flat vectors (1 = same direction)")
SPARSITY = Column(
    "sparsity",
    "unchanged",
    percent,
    f"share of elements with |A−B| < {SPARSITY_THRESHOLD:g} (sparsity ratio of the delta)",
    "timber",
)
ERANK_A = Column(
    "erank_a",
    "eRank A",
    fixed(1),
    "effective rank exp(entropy of s / Σs) of A",
    "roy_vetterli",
    "erank",
)
ERANK_B = Column("erank_b", "eRank B", fixed(1), "effective rank of B", "roy_vetterli", "erank")
ERANK_DELTA_RATIO = Column(
    "erank_ratio_delta",
    "eRank ΔW/rank",
    fixed(3),
    "effective rank of ΔW = B−A over its full rank min(m, n): low = a few directions, "
    "1 = spread over all",
    "timber",
    "erank_ratio",
)
ALPHA = Column(
    "alpha",
    "α",
    fixed(4),
    "singular-value scale ⟨s_B, s_A⟩ / ⟨s_A, s_A⟩: 1 = no overall rescaling",
    "he_cao",
)
CV = Column(
    "cv",
    "cv",
    lambda v: significant(v, 3),
    "spread (std / mean) of the ratios s_B,i / s_A,i: 0 = uniform scaling",
    "he_cao",
)
GAP = Column(
    "consistency_gap",
    "gap",
    fixed(3),
    "‖Q_U − Q_V‖ / ‖Q_U‖: 0 = the same rotation of left and right singular vectors",
    "he_cao",
)
ALIGNMENT = Column(
    "alignment", "align", fixed(3), "mean |diag(U_Aᵀ U_B)|: 1 = singular vectors unmoved", "he_cao"
)
RECONSTRUCTION = Column(
    "reconstruction_error",
    "recon",
    lambda v: significant(v, 3),
    "relative error of B rebuilt as A's spectrum scaled by α and rotated: small = "
    "'scale + rotate' describes the matrix",
    "he_cao",
)
ERANK_RATIO_A = Column(
    "erank_ratio_a", "eRank A/rank", fixed(3), "eRank(A) / rank", "timber", "erank_ratio"
)
ERANK_RATIO_B = Column(
    "erank_ratio_b", "eRank B/rank", fixed(3), "eRank(B) / rank", "timber", "erank_ratio"
)

#: Every column by key.
COLUMNS = {
    column.key: column
    for column in (
        SIGMA,
        REL_FROBENIUS,
        COSINE,
        SPARSITY,
        ERANK_A,
        ERANK_B,
        ERANK_RATIO_A,
        ERANK_RATIO_B,
        ERANK_DELTA_RATIO,
        ALPHA,
        CV,
        GAP,
        ALIGNMENT,
        RECONSTRUCTION,
    )
}


#: The table columns each metric level adds, cheapest level first: the one place that says
#: which columns belong to which level (tables, glossaries, the stdout summary).
LEVEL_COLUMNS: dict[str, tuple[Column, ...]] = {
    "sigma": (SIGMA, REL_FROBENIUS, COSINE, SPARSITY),
    "erank": (ERANK_A, ERANK_B, ERANK_DELTA_RATIO),
    "structure": (ALPHA, CV, GAP, ALIGNMENT, RECONSTRUCTION),
}


def table_columns(metrics: tuple[str, ...] | list[str]) -> list[Column]:
    """The columns of the per-module and per-layer tables (and the glossary) for the computed
    metric levels; ``sigma``'s are always there."""
    return [
        column
        for level, columns in LEVEL_COLUMNS.items()
        if level == "sigma" or level in metrics
        for column in columns
    ]


def sentence(text: str) -> str:
    """``text`` ending with exactly one full stop (definitions may end with one already)."""
    text = text.rstrip()
    return text if text.endswith(".") else text + "."


def text_table(header: list[str], body: list[list[str]]) -> list[str]:
    """Left-aligned plain-text columns (the stdout summary)."""
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
        for row in [header, *body]
    ]


def markdown_table(header: list[str], body: list[list[str]]) -> list[str]:
    """A GitHub / Hugging Face Markdown table; numeric columns right-aligned."""
    rows = [[cell.replace("|", "\\|") for cell in row] for row in [header, *body]]
    numeric = [
        all(_looks_numeric(row[i]) for row in rows[1:]) and bool(rows[1:])
        for i in range(len(header))
    ]
    return [
        "| " + " | ".join(rows[0]) + " |",
        "|" + "|".join("---:" if right else "---" for right in numeric) + "|",
        *("| " + " | ".join(row) + " |" for row in rows[1:]),
    ]


def _looks_numeric(cell: str) -> bool:
    text = cell.replace(" %", "").replace("—", "0").replace("e-", "")
    return text.lstrip("-+").replace(".", "", 1).isdigit()

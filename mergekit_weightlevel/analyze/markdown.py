"""The Markdown section of a Hugging Face model card (``AnalysisReport.to_markdown``).

Written to read well on the Hub as is: models by their display names (Hub ids linked),
per-metric rounding, a glossary of every column, the per-layer table folded in a
``<details>`` block, and plain sentences rather than code blocks.
"""

from __future__ import annotations

from mergekit_weightlevel.analyze.columns import (
    PAPERS,
    SIGMA,
    SPARSITY,
    Column,
    markdown_table,
    percent,
    sentence,
    table_columns,
)
from mergekit_weightlevel.analyze.labels import display_names, hub_id, short_labels
from mergekit_weightlevel.analyze.pair import PairReport, ReportData
from mergekit_weightlevel.analyze.references import Source
from mergekit_weightlevel.errors import WeightLevelInputError

PROJECT = "mergekit-weightlevel"


def model_link(label: str, name: str) -> str:
    """``name`` linked to its Hub page for a Hub model; a local path as code; else plain text."""
    repository = hub_id(label.split("+")[0])
    if repository:
        return f"[{_plain(name)}](https://huggingface.co/{repository})"
    return f"`{name}`" if name == label else _plain(name)


def _plain(text: str) -> str:
    """``text`` with Markdown's and HTML's special characters escaped."""
    return "".join(f"\\{char}" if char in "\\`*_[]<>|#" else char for char in text)


def markdown_section(
    report: ReportData,
    *,
    names: dict[str, str] | None = None,
    heading_level: int = 2,
    reading: bool = True,
) -> str:
    """The whole section as Markdown text, ending with a newline.

    ``names``: {model as given: display name} (missing models are shown as given);
    ``heading_level``: the level of the section's heading (its subsections are one deeper);
    ``reading``: each pair's Reading (a model card comparing a merge with its inputs may
    leave it out: its previews read A as a Base and B as its post-trained model).
    """
    if not 1 <= heading_level <= 5:
        raise WeightLevelInputError(f"heading_level must be 1 to 5, got {heading_level}")
    shown = display_names(report.models, names)
    top, sub = "#" * heading_level, "#" * (heading_level + 1)
    lines = [
        f"{top} Weight-level analysis",
        "",
        f"How far the weights moved between checkpoints, tensor by tensor, measured with "
        f"`{PROJECT} analyze` (metrics: {', '.join(report.metrics)}; reference "
        f"{model_link(report.models[0], shown[report.models[0]])}). The glossary below "
        "defines every column.",
    ]
    for pair in report.pairs:
        lines += ["", *_pair_section(pair, shown, sub, reading)]
    if len(report.models) > 2 and any(p.metrics == ("sigma",) for p in report.pairs):
        lines += ["", f"{sub} σ between every pair", "", *_sigma_matrix(report, shown)]
    lines += ["", *_glossary(report.metrics, sub)]
    return "\n".join(lines) + "\n"


def _pair_section(pair: PairReport, shown: dict[str, str], sub: str, reading: bool) -> list[str]:
    s = pair.summary
    quantities = [
        [
            f"σ, mean over the {s['sigma_mean_tensors']} tensors of scope "
            f"`{s['sigma_mean_scope']}` (Shadow-FT's model σ)",
            SIGMA.cell(s["sigma_mean"]),
        ],
        ["σ, global (ratio of sums over all compared tensors)", SIGMA.cell(s["sigma_global"])],
        [
            "unchanged elements, |A−B| < 1e-5 (all compared tensors)",
            SPARSITY.cell(s["sparsity_global"]),
        ],
    ]
    means = s["means"]
    if "erank_ratio_a" in means:
        quantities.append(
            [
                "eRank / rank, mean over matrices: A / B / ΔW",
                " / ".join(f"{means[f'erank_ratio_{side}']:.3f}" for side in ("a", "b", "delta")),
            ]
        )
    quantities.append(
        ["tensors compared (matrices with spectral metrics)", f"{s['tensors']} ({s['matrices']})"]
    )
    lines = [
        f"{sub} {model_link(pair.b, shown[pair.b])} against {model_link(pair.a, shown[pair.a])}",
        "",
        *markdown_table(["quantity", "value"], quantities),
    ]
    if reading:
        lines += ["", *_reading(pair)]
    notes = []
    if pair.skipped:
        notes.append(f"{len(pair.skipped)} common tensors could not be compared (see the JSON)")
    if pair.only_in_a or pair.only_in_b:
        notes.append(f"{len(pair.only_in_a)} tensors only in A and {len(pair.only_in_b)} only in B")
    if notes:
        lines += ["", "Not compared: " + "; ".join(notes) + "."]
    columns = table_columns(pair.metrics)
    lines += [
        "",
        "**Per module type** (means over the tensors of each type):",
        "",
        *_group_table("module", pair.summary["by_module"], columns),
    ]
    by_layer = pair.summary["by_layer"]
    if by_layer:
        lines += [
            "",
            "<details>",
            f"<summary>Per layer ({len(by_layer)} layers, means over each layer's tensors)"
            "</summary>",
            "",
            *_group_table("layer", by_layer, columns),
            "",
            "</details>",
        ]
    if "structure" in pair.metrics:
        lines += ["", *_outliers(pair)]
    return lines


def _source(source: Source) -> str:
    if source.paper is None:
        return source.text()
    citation, address = PAPERS[source.paper]
    cited = f"[{_plain(citation)}]({address})" if address else _plain(citation)
    return f"{cited}, {_plain(source.where)}"


def _reading(pair: PairReport) -> list[str]:
    """The Reading: one bullet per statement with its sources, and Timber's λ table."""
    reading = pair.reading
    lines = ["**Reading** (what the figures mean against the papers):", ""]
    for statement in reading.statements:
        sources = "; ".join(_source(source) for source in statement.sources)
        lines.append(f"- {_plain(statement.text)}" + (f" ({sources})" if sources else ""))
    timber = reading.timber
    if timber is not None:
        body = [
            [f"{lam:g}", f"{distance:.3g}"]
            for lam, distance in zip(timber.lambdas, timber.distances)
        ]
        modules = [
            [
                kind,
                str(item["matrices"]),
                f"{item['median_k_ratio']:.3f}",
                percent(item["tail_share"]),
            ]
            for kind, item in timber.by_module.items()
        ]
        lines += [
            "",
            "Timber before merging (A as Base, B as Instruct): how far each λ moves the output "
            "from B, over the compared tensors.",
            "",
            *markdown_table(["λ", "‖W_λ − B‖ / ‖B‖"], body),
            "",
            "<details>",
            "<summary>Timber per module type (k = ⌈eRank(ΔW)⌉; the tail it scales by λ)</summary>",
            "",
            *markdown_table(
                ["module type", "matrices", "median k / rank", "tail of ‖ΔW‖"], modules
            ),
            "",
            "</details>",
        ]
    return lines


def _group_table(title: str, groups: dict[str, dict], columns: list[Column]) -> list[str]:
    header = [title, "tensors", *(column.title for column in columns)]
    body = [
        [key, str(stats["tensors"]), *(column.cell(stats.get(column.key)) for column in columns)]
        for key, stats in groups.items()
    ]
    return markdown_table(header, body)


def _outliers(pair: PairReport) -> list[str]:
    outliers = pair.summary["alpha_outliers"]
    rule = (
        "a matrix is flagged when its robust z-score of α exceeds 3.5 against the whole model "
        "or its module type, and its α differs from the median by more than 1 %"
    )
    if not outliers:
        return [f"**α outliers**: none ({rule})."]
    lines = [f"**α outliers** ({rule}):", ""]
    for o in outliers:
        against = " and ".join(o["flagged_against"]).replace("module_type", "module type")
        z = f"z = {o['z_model']:+.1f} against the model"
        if o["z_module_type"] is not None:
            z += f", {o['z_module_type']:+.1f} against its module type"
        lines.append(
            f"- `{o['name']}` ({o['module_type']}): α = {o['alpha']:.4f}, {z} "
            f"(flagged against the {against})"
        )
    return lines


def _sigma_matrix(report: ReportData, shown: dict[str, str]) -> list[str]:
    labels = short_labels([shown[model] for model in report.models])
    matrix = report.sigma_matrix("sigma_mean")
    body = [[label, *(SIGMA.cell(v) for v in row)] for label, row in zip(labels, matrix)]
    return [
        "Model σ (Shadow-FT mean) of every pair, as Table 1 of the Instruct/Thinking "
        "interpolation paper:",
        "",
        *markdown_table(["", *labels], body),
    ]


def _glossary(metrics: tuple[str, ...], sub: str) -> list[str]:
    lines = [f"{sub} Glossary", ""]
    for column in table_columns(metrics):
        source = ""
        if column.paper:
            citation, address = PAPERS[column.paper]
            source = f" ({f'[{citation}]({address})' if address else citation})"
        lines.append(f"- **{column.title}**: {sentence(column.glossary + source)}")
    lines.append(
        "- A is the reference model, B the other one, ΔW = B − A; spectral columns read a "
        "tensor as the matrix shape[0] × (the rest); — = does not apply (1-D tensors)."
    )
    return lines

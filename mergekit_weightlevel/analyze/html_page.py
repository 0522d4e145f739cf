"""One self-contained HTML page of an analysis report (``AnalysisReport.to_html``).

Everything is inline: the styles, a 20-line script (the hover tooltips) and the heatmaps,
drawn as SVG by this module. It needs neither matplotlib nor a network, and a report of a
32-layer model with 7 matrices per layer stays around 200 kB (docs/analyze.md).

Each heatmap cell carries its exact value (all digits of the float) in an SVG ``<title>``:
the browser's own tooltip without scripts; with scripts, the page shows it at once in a
styled tooltip. Colour ranges are those of the PNG plots (``scales``) and are stated
under each heatmap.
"""

from __future__ import annotations

import math
from html import escape

from mergekit_weightlevel.analyze.columns import (
    COLUMNS,
    METRIC_DEFINITIONS,
    PAPERS,
    SIGMA,
    SPARSITY,
    Column,
    sentence,
    table_columns,
)
from mergekit_weightlevel.analyze.heatmaps import Heatmap, pair_heatmaps
from mergekit_weightlevel.analyze.labels import display_names, hub_id, short_labels
from mergekit_weightlevel.analyze.pair import PairReport, ReportData
from mergekit_weightlevel.analyze.references import Source
from mergekit_weightlevel.analyze.scales import from_zero

#: Heatmap cell size and margins, in CSS pixels.
CELL_WIDTH, CELL_HEIGHT = 62, 18
LEFT, TOP = 34, 20
LEGEND_HEIGHT = 34

STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1100px;padding:0 16px 40px;color:#1b1b1b}
h1{font-size:1.6em;margin:18px 0 4px}h2{margin-top:34px;border-bottom:1px solid #ddd}h3{margin:20px 0 6px}
.meta{color:#555;margin:2px 0}code{background:#f3f3f3;padding:0 3px;border-radius:3px}
table{border-collapse:collapse;margin:6px 0 10px;font-variant-numeric:tabular-nums}
th,td{border:1px solid #ddd;padding:2px 7px}th{background:#f6f6f6}th[scope=row]{text-align:left}td.n{text-align:right}
.maps{display:flex;flex-wrap:wrap;gap:22px}figure{margin:6px 0}figcaption{font-size:13px;color:#333;max-width:560px}
svg.hm text{font:11px sans-serif;text-anchor:middle;dominant-baseline:central}
svg.hm text.l{text-anchor:end}svg.hm text.axis{font-style:italic;fill:#555}svg.hm g.c:hover rect{stroke:#000;stroke-width:2}
#tip{position:fixed;pointer-events:none;background:#222;color:#fff;padding:3px 7px;border-radius:4px;font-size:12px;white-space:nowrap}
dt{font-weight:600;margin-top:8px}dd{margin-left:18px}
.reading li{margin:3px 0}.reading .src{color:#555;font-size:13px}caption{text-align:left;font-size:13px}
"""

#: Moves each cell's <title> into data-tip (no double tooltip) and shows it on hover.
SCRIPT = """
(function () {
  var tip = document.getElementById("tip");
  document.querySelectorAll("g.c > title").forEach(function (title) {
    title.parentNode.setAttribute("data-tip", title.textContent);
    title.remove();
  });
  document.addEventListener("mouseover", function (event) {
    var cell = event.target.closest && event.target.closest("[data-tip]");
    if (!cell) { tip.hidden = true; return; }
    tip.textContent = cell.getAttribute("data-tip");
    tip.style.left = (event.clientX + 12) + "px";
    tip.style.top = (event.clientY + 12) + "px";
    tip.hidden = false;
  });
  document.addEventListener("mouseout", function (event) {
    if (!event.relatedTarget || !event.relatedTarget.closest("[data-tip]")) tip.hidden = true;
  });
})();
"""


def _model(label: str, name: str) -> str:
    """A Hub model links to its page; a local path is code; a chosen name is plain text."""
    repository = hub_id(label.split("+")[0])
    shown = escape(name)
    if repository:
        return f'<a href="https://huggingface.co/{escape(repository)}">{shown}</a>'
    return (
        f"<code>{shown}</code>"
        if name == label
        else f'<span title="{escape(label)}">{shown}</span>'
    )


def _exact(value: float) -> str:
    """Every digit of a float (Python's shortest round-trip repr)."""
    return repr(float(value))


def _heatmap_svg(heatmap: Heatmap, pair_number: int) -> str:
    column = COLUMNS[heatmap.key]
    scale = heatmap.scale
    width = LEFT + CELL_WIDTH * len(heatmap.kinds) + 4
    height = TOP + CELL_HEIGHT * len(heatmap.layers) + LEGEND_HEIGHT
    parts = [
        f'<svg class="hm" data-pair="{pair_number}" data-metric="{heatmap.key}" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(heatmap.label)} by layer and module type">'
    ]
    # The corner above the row labels names the rows' axis, as a table's header cell would.
    parts.append(f'<text class="l axis" x="{LEFT - 5}" y="{TOP // 2}">layer</text>')
    for index, kind in enumerate(heatmap.kinds):
        parts.append(
            f'<text x="{LEFT + CELL_WIDTH * index + CELL_WIDTH // 2}" y="{TOP // 2}">'
            f"{escape(kind)}</text>"
        )
    for row, layer in enumerate(heatmap.layers):
        y = TOP + CELL_HEIGHT * row
        parts.append(f'<text class="l" x="{LEFT - 5}" y="{y + CELL_HEIGHT // 2}">{layer}</text>')
        for index, kind in enumerate(heatmap.kinds):
            value = heatmap.grid[row][index]
            if math.isnan(value):
                continue
            x = LEFT + CELL_WIDTH * index
            count = heatmap.counts[row][index]
            tip = f"layer {layer}, {kind}: {heatmap.label} = {_exact(value)}" + (
                f" (mean of {count} tensors)" if count > 1 else ""
            )
            parts.append(
                f'<g class="c" data-cell="{layer},{escape(kind)}"><title>{escape(tip)}</title>'
                f'<rect x="{x}" y="{y}" width="{CELL_WIDTH}" height="{CELL_HEIGHT}" '
                f'fill="{scale.colour(value)}"/><text x="{x + CELL_WIDTH // 2}" '
                f'y="{y + CELL_HEIGHT // 2}" fill="{scale.text_colour(value)}">'
                f"{column.cell(value)}</text></g>"
            )
    parts.append(_legend_svg(heatmap, column, TOP + CELL_HEIGHT * len(heatmap.layers) + 6, width))
    parts.append("</svg>")
    return "".join(parts)


def _legend_svg(heatmap: Heatmap, column: Column, y: int, width: int) -> str:
    scale = heatmap.scale
    steps = 24
    left, right = LEFT, max(LEFT + 150, width - 10)
    step = (right - left) / steps
    rects = "".join(
        f'<rect x="{left + step * i:.1f}" y="{y}" width="{step + 0.6:.1f}" height="10" '
        f'fill="{scale.colour(scale.low + (scale.high - scale.low) * (i + 0.5) / steps)}"/>'
        for i in range(steps)
    )
    labels = [(left, scale.low, "start"), (right, scale.high, "end")]
    if scale.centre is not None:
        labels.append(((left + right) / 2, scale.centre, "middle"))
    texts = "".join(
        f'<text x="{x:.1f}" y="{y + 20}" style="text-anchor:{anchor}">{column.cell(value)}</text>'
        for x, value, anchor in labels
    )
    return f'<g class="legend">{rects}{texts}</g>'


def _number_cell(column: Column, value: float | int | None) -> str:
    if value is None:
        return '<td class="n">—</td>'
    return f'<td class="n" title="{_exact(value)}">{column.cell(value)}</td>'


def _group_table(title: str, groups: dict[str, dict], columns: list[Column]) -> str:
    head = "".join(
        f'<th title="{escape(column.glossary)}">{escape(column.title)}</th>' for column in columns
    )
    rows = "".join(
        f'<tr><th scope="row">{escape(key)}</th><td class="n">{stats["tensors"]}</td>'
        + "".join(_number_cell(column, stats.get(column.key)) for column in columns)
        + "</tr>"
        for key, stats in groups.items()
    )
    return (
        f'<table class="groups"><thead><tr><th>{title}</th><th>tensors</th>{head}</tr></thead>'
        f"<tbody>{rows}</tbody></table>"
    )


def _summary_table(pair: PairReport) -> str:
    s = pair.summary
    rows = [
        (
            f"σ, mean over the {s['sigma_mean_tensors']} tensors of scope "
            f"<code>{escape(s['sigma_mean_scope'])}</code> (Shadow-FT's model σ)",
            SIGMA,
            s["sigma_mean"],
        ),
        ("σ, global (ratio of sums over all compared tensors)", SIGMA, s["sigma_global"]),
        ("unchanged elements, |A−B| < 1e-5 (all tensors)", SPARSITY, s["sparsity_global"]),
    ]
    means = s["means"]
    for side, name in (("a", "A"), ("b", "B"), ("delta", "ΔW")):
        key = f"erank_ratio_{side}"
        if key in means:
            rows.append((f"eRank / rank of {name}, mean over matrices", COLUMNS[key], means[key]))
    body = "".join(
        f"<tr><th scope='row'>{label}</th>{_number_cell(column, value)}</tr>"
        for label, column, value in rows
    )
    body += (
        f"<tr><th scope='row'>tensors compared (matrices)</th>"
        f"<td class='n'>{s['tensors']} ({s['matrices']})</td></tr>"
    )
    return f'<table class="summary">{body}</table>'


def _source(source: Source) -> str:
    if source.paper is None:
        return escape(source.text())
    citation, address = PAPERS[source.paper]
    cited = f'<a href="{escape(address)}">{escape(citation)}</a>' if address else escape(citation)
    return f"{cited}, {escape(source.where)}"


def _reading(pair: PairReport) -> str:
    """The Reading: one item per statement with its sources, and Timber's λ table."""
    reading = pair.reading
    items = "".join(
        f'<li data-topic="{escape(statement.topic)}">{escape(statement.text)}'
        + (
            f' <span class="src">({"; ".join(_source(s) for s in statement.sources)})</span>'
            if statement.sources
            else ""
        )
        + "</li>"
        for statement in reading.statements
    )
    parts = [
        '<section class="reading"><h3>Reading</h3>',
        "<p>What the figures mean against the papers; where a paper gives no range, the "
        "figure stands without a verdict.</p>",
        f"<ul>{items}</ul>",
    ]
    timber = reading.timber
    if timber is not None:
        rows = "".join(
            f'<tr><td class="n">{lam:g}</td><td class="n" title="{_exact(distance)}">'
            f"{distance:.3g}</td></tr>"
            for lam, distance in zip(timber.lambdas, timber.distances)
        )
        parts.append(
            '<table class="timber"><caption>Timber before merging (A as Base, B as Instruct): '
            "how far each λ moves the output from B</caption><thead><tr><th>λ</th>"
            f"<th>‖W_λ − B‖ / ‖B‖</th></tr></thead><tbody>{rows}</tbody></table>"
        )
    parts.append("</section>")
    return "".join(parts)


def _outliers(pair: PairReport) -> str:
    outliers = pair.summary["alpha_outliers"]
    if not outliers:
        return "<p class='outliers'>No matrix flagged.</p>"
    items = "".join(
        f"<li><code>{escape(o['name'])}</code> ({escape(o['module_type'])}): "
        f"α = {o['alpha']:.4f}, z = {o['z_model']:+.1f} against the model"
        + (
            f", {o['z_module_type']:+.1f} against its module type"
            if o["z_module_type"] is not None
            else ""
        )
        + "</li>"
        for o in outliers
    )
    return f"<ul class='outliers'>{items}</ul>"


def _pair_section(pair: PairReport, number: int, shown: dict[str, str]) -> str:
    columns = table_columns(pair.metrics)
    maps = "".join(
        f"<figure>{_heatmap_svg(heatmap, number)}<figcaption><b>{escape(heatmap.label)}</b> "
        f"per layer (rows) and module type (columns); {escape(heatmap.scale.explanation)} "
        f"({COLUMNS[heatmap.key].cell(heatmap.scale.low)} to "
        f"{COLUMNS[heatmap.key].cell(heatmap.scale.high)}). Hover a cell for its exact value."
        "</figcaption></figure>"
        for heatmap in pair_heatmaps(pair)
    )
    parts = [
        f'<section class="pair" id="pair-{number}">',
        f"<h2>{_model(pair.b, shown[pair.b])} against {_model(pair.a, shown[pair.a])}</h2>",
        _summary_table(pair),
    ]
    parts.append(_reading(pair))
    if pair.skipped or pair.only_in_a or pair.only_in_b:
        parts.append(
            f"<p>Not compared: {len(pair.skipped)} common tensors whose shapes or types differ, "
            f"{len(pair.only_in_a)} only in A, {len(pair.only_in_b)} only in B (see the JSON).</p>"
        )
    if maps:
        parts += ["<h3>Heatmaps</h3>", f'<div class="maps">{maps}</div>']
    parts += [
        "<h3>Per module type</h3>",
        _group_table("module", pair.summary["by_module"], columns),
    ]
    if pair.summary["by_layer"]:
        parts += [
            f"<details><summary>Per layer ({len(pair.summary['by_layer'])} layers)</summary>",
            _group_table("layer", pair.summary["by_layer"], columns),
            "</details>",
        ]
    if "structure" in pair.metrics:
        parts += [
            "<h3>Flagged α outliers</h3>",
            "<p>Robust z-score of α above 3.5 against the whole model or the module type, "
            "and α more than 1 % from that median.</p>",
            _outliers(pair),
        ]
    parts.append("</section>")
    return "".join(parts)


def _sigma_matrix(report: ReportData, shown: dict[str, str]) -> str:
    names = short_labels([shown[model] for model in report.models])
    matrix = report.sigma_matrix("sigma_mean")
    scale = from_zero([v for row in matrix for v in row], "σ")
    head = "".join(f"<th>{escape(name)}</th>" for name in names)
    rows = ""
    for name, row in zip(names, matrix):
        cells = ""
        for value in row:
            if value is None:
                cells += '<td class="n">—</td>'
            else:
                cells += (
                    f'<td class="n" title="{_exact(value)}" style="background:'
                    f'{scale.colour(value)};color:{scale.text_colour(value)}">'
                    f"{SIGMA.cell(value)}</td>"
                )
        rows += f'<tr><th scope="row">{escape(name)}</th>{cells}</tr>'
    return (
        '<section id="sigma-matrix"><h2>σ between every pair</h2>'
        "<p>Model σ (Shadow-FT mean) of every pair, as Table 1 of the Instruct/Thinking "
        f"interpolation paper; {escape(scale.explanation)}.</p>"
        f"<table><thead><tr><th></th>{head}</tr></thead><tbody>{rows}</tbody></table></section>"
    )


def _paper(key: str | None) -> str:
    if key is None:
        return ""
    citation, address = PAPERS[key]
    stop = "" if citation.endswith(".") else "."  # "Wu et al." ends the sentence already
    if address:
        return f' Source: <a href="{escape(address)}">{escape(citation)}</a>{stop}'
    return f" Source: {escape(citation)}{stop}"


def _glossary(metrics: tuple[str, ...]) -> str:
    items = "".join(
        f"<dt>{escape(column.title)}</dt><dd>{escape(sentence(column.glossary))} "
        f"<i>Definition:</i> {escape(sentence(column.definition_text))}"
        f"{_paper(column.paper)}</dd>"
        for column in table_columns(metrics)
    )
    aggregates = "".join(
        f"<dt>{key}</dt><dd>{escape(sentence(METRIC_DEFINITIONS[key]))}</dd>"
        for key in ("sigma_mean", "sigma_global", "sparsity_global")
    )
    return (
        '<section id="glossary"><h2>How to read the metrics</h2>'
        "<p>A is the reference model, B the other one, ΔW = B − A. Spectral metrics read a "
        "tensor as the matrix shape[0] × (the rest); 1-D tensors (norms, biases) have σ, the "
        "Frobenius gap, the cosine and the sparsity only.</p>"
        f"<dl>{items}{aggregates}</dl></section>"
    )


def html_report(report: ReportData, *, names: dict[str, str] | None = None) -> str:
    """The whole page as text. ``names``: {model as given: display name}."""
    shown = display_names(report.models, names)
    models = ", ".join(_model(model, shown[model]) for model in report.models)
    title = "Weight-level analysis: " + ", ".join(shown[model] for model in report.models)
    settings = report.settings
    meta = (
        f"metrics: {escape(', '.join(report.metrics))}; device {escape(str(settings.get('device')))}"
        f", precision {escape(str(settings.get('precision')))}"
        + (f"; created {escape(str(settings['created']))}" if settings.get("created") else "")
        + "; "
        + ", ".join(f"{escape(k)} {escape(v)}" for k, v in report.versions.items())
    )
    sections = [
        _pair_section(pair, number, shown) for number, pair in enumerate(report.pairs, start=1)
    ]
    if len(report.models) > 2 and any(p.metrics == ("sigma",) for p in report.pairs):
        sections.append(_sigma_matrix(report, shown))
    sections.append(_glossary(report.metrics))
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>"
        "<h1>Weight-level analysis</h1>"
        f'<p class="meta">Models: {models} (the first is the reference A).</p>'
        f'<p class="meta">{meta}. Made with <code>mergekit-weightlevel analyze</code>.</p>'
        + "".join(sections)
        + f'<div id="tip" role="tooltip" hidden></div><script>{SCRIPT}</script></body></html>\n'
    )

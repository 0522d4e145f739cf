"""The sweep's HTML page: the table, the choice, and one plot per metric over the swept value.

Self-contained (inline styles and SVG drawn here, no matplotlib, no network): each plot has
the outputs' values joined by a line with ±stderr bars, one dashed horizontal line per
reference model (the axis' ends: Instruct, Thinking, ...), and the chosen point ringed.
Every point carries its exact value in an SVG ``<title>`` (the browser's tooltip).
"""

from __future__ import annotations

import math
from html import escape
from typing import Any

WIDTH, HEIGHT = 500, 260
LEFT, RIGHT, TOP, BOTTOM = 58, 92, 18, 42
REFERENCE_COLOURS = ("#c0392b", "#27ae60", "#8e44ad", "#d35400", "#16a085")
LINE = "#1f5fa8"
STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1100px;padding:0 16px 40px;color:#1b1b1b}
h1{font-size:1.5em}table{border-collapse:collapse;font-variant-numeric:tabular-nums;margin:8px 0}
th,td{border:1px solid #ddd;padding:2px 8px}th{background:#f6f6f6}td.n{text-align:right}
td.failed{color:#a00}.choice{background:#eef6ee;border:1px solid #9c9;padding:8px 12px;border-radius:4px}
.plots{display:flex;flex-wrap:wrap;gap:18px}svg text{font:11px sans-serif}figure{margin:4px 0}
"""


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values (steps of 1, 2 or 5 × 10^k) covering [low, high]."""
    if high <= low:
        return [low]
    raw = (high - low) / (count - 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= 0.75 * raw)
    first = math.ceil(low / step - 1e-9) * step
    return [first + i * step for i in range(int((high - first) / step + 1e-9) + 1)]


def _spread(positions: list[float], gap: float = 12.0) -> list[float]:
    """Label positions moved apart (in order) so that no two are closer than ``gap``."""
    order = sorted(range(len(positions)), key=lambda i: positions[i])
    placed = list(positions)
    for before, after in zip(order, order[1:]):
        placed[after] = max(placed[after], placed[before] + gap)
    return placed


def _label(value: float) -> str:
    return f"{round(value, 10):g}"


def metric_svg(
    title: str,
    points: list[dict[str, Any]],
    references: list[dict[str, Any]],
    chosen: float | None,
    parameter: str,
) -> str:
    """One plot. ``points``: [{value, score, stderr}]; ``references``: [{name, score}]."""
    xs = [p["value"] for p in points]
    ys = [p["score"] for p in points]
    spans = [p["score"] + s * p["stderr"] for p in points if p["stderr"] for s in (-1, 1)]
    ys_all = ys + spans + [r["score"] for r in references]
    if not ys_all:
        return ""
    x_low, x_high = (min(xs), max(xs)) if xs else (0.0, 1.0)
    if x_high == x_low:
        x_low, x_high = x_low - 0.5, x_high + 0.5
    y_low, y_high = min(ys_all), max(ys_all)
    pad = (y_high - y_low) * 0.08 or max(abs(y_high) * 0.05, 0.01)
    y_low, y_high = y_low - pad, y_high + pad
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def px(x: float) -> float:
        return LEFT + (x - x_low) / (x_high - x_low) * plot_w

    def py(y: float) -> float:
        return TOP + (y_high - y) / (y_high - y_low) * plot_h

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'role="img" aria-label="{escape(title)}">',
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#999"/>',
    ]
    for y in _ticks(y_low, y_high):
        parts.append(
            f'<line x1="{LEFT - 4}" x2="{LEFT + plot_w}" y1="{py(y):.1f}" y2="{py(y):.1f}" '
            f'stroke="#eee"/><text x="{LEFT - 6}" y="{py(y) + 4:.1f}" text-anchor="end">'
            f"{_label(y)}</text>"
        )
    x_ticks = sorted(set(xs)) if 0 < len(set(xs)) <= 12 else _ticks(x_low, x_high)
    for x in x_ticks:
        parts.append(
            f'<text x="{px(x):.1f}" y="{TOP + plot_h + 15}" text-anchor="middle">{_label(x)}</text>'
        )
    parts.append(
        f'<text x="{LEFT + plot_w / 2:.1f}" y="{HEIGHT - 6}" text-anchor="middle">'
        f"{escape(parameter)}</text>"
    )
    label_ys = _spread([py(r["score"]) + 4 for r in references])
    for index, (reference, label_y) in enumerate(zip(references, label_ys)):
        colour = REFERENCE_COLOURS[index % len(REFERENCE_COLOURS)]
        y = py(reference["score"])
        parts.append(
            f'<g class="reference"><title>{escape(reference["name"])}: '
            f"{reference['score']!r}</title>"
            f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="{colour}" '
            f'stroke-dasharray="6 4"/><text x="{LEFT + plot_w + 6}" y="{label_y:.1f}" '
            f'fill="{colour}">{escape(reference["name"])}</text></g>'
        )
    ordered = sorted(points, key=lambda p: p["value"])
    if len(ordered) > 1:
        path = " ".join(f"{px(p['value']):.1f},{py(p['score']):.1f}" for p in ordered)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{LINE}" stroke-width="1.6"/>')
    for point in ordered:
        x, y = px(point["value"]), py(point["score"])
        stderr = point["stderr"]
        bar = ""
        if stderr:
            top, bottom = py(point["score"] + stderr), py(point["score"] - stderr)
            bar = (
                f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top:.1f}" y2="{bottom:.1f}" '
                f'stroke="{LINE}" stroke-opacity="0.5"/>'
            )
        tip = f"{parameter} = {point['value']:g}: {point['score']!r}" + (
            f" ± {stderr!r}" if stderr else ""
        )
        parts.append(
            f'<g class="point"><title>{escape(tip)}</title>{bar}'
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.2" fill="{LINE}"/></g>'
        )
        if chosen is not None and point["value"] == chosen:
            parts.append(
                f'<g class="chosen"><title>chosen: {escape(tip)}</title>'
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="8" fill="none" stroke="#e67e22" '
                f'stroke-width="2.5"/></g>'
            )
    parts.append("</svg>")
    return "".join(parts)


def sweep_html(report: dict[str, Any]) -> str:
    """The page of ``OUT_PREFIX-sweep.json``'s content (``SweepEvaluation.to_dict``)."""
    parameter = report["parameter"]
    keys = report["metrics"]
    chosen = report.get("chosen")
    rows = report["values"]
    references = report["references"]
    head = "".join(f"<th>{escape(k)}</th>" for k in keys)
    lines = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{escape(parameter)} sweep</title><style>{STYLE}</style></head><body>",
        f"<h1>Sweep of {escape(parameter)}: {escape(', '.join(report['tasks']))}</h1>",
        f"<p>{escape(report['settings_line'])}</p>",
    ]
    if chosen:
        lines.append(
            f"<p class='choice'><b>Chosen: {escape(parameter)} = {chosen['value']:g}</b> "
            f"({escape(chosen['folder'])}): {escape(chosen['reason'])}.</p>"
        )
    elif report.get("select"):
        lines.append("<p class='choice'>Nothing chosen: no output has the selected metric.</p>")
    lines.append(f"<table><tr><th>{escape(parameter)}</th><th>folder</th>{head}</tr>")
    for row in [*rows, *references]:
        label = f"{row['value']:g}" if "value" in row else f"reference: {escape(row['name'])}"
        if row["status"] == "failed":
            cells = f"<td class='failed' colspan='{len(keys)}'>failed: {escape(row['error'] or '')}</td>"
        else:
            cells = "".join(f"<td class='n'>{_cell(row['metrics'].get(k))}</td>" for k in keys)
        folder = escape(row["folder"])
        name = escape(row["folder"].rstrip("/").rsplit("/", 1)[-1])
        lines.append(f"<tr><td>{label}</td><td title='{folder}'>{name}</td>{cells}</tr>")
    lines.append("</table>")
    if report.get("removed"):
        lines.append(
            "<p>Removed after evaluation (--keep best): "
            + ", ".join(f"<code>{escape(p)}</code>" for p in report["removed"])
            + "</p>"
        )
    lines.append("<div class='plots'>")
    for key in keys:
        points = [
            {"value": r["value"], **r["metrics"][key]}
            for r in rows
            if r["status"] != "failed" and r["metrics"].get(key, {}).get("score") is not None
        ]
        refs = [
            {"name": r["name"], "score": r["metrics"][key]["score"]}
            for r in references
            if r["status"] != "failed" and r["metrics"].get(key, {}).get("score") is not None
        ]
        svg = metric_svg(key, points, refs, chosen["value"] if chosen else None, parameter)
        if svg:
            lines.append(f"<figure>{svg}<figcaption>{escape(key)}</figcaption></figure>")
    lines.append("</div></body></html>")
    return "\n".join(lines)


def _cell(metric: dict[str, Any] | None) -> str:
    if not metric or metric.get("score") is None:
        return "–"
    text = f"{metric['score']:.4f}"
    return text + (f" ± {metric['stderr']:.4f}" if metric.get("stderr") else "")

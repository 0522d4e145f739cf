"""analyze for people: sparsity, the Markdown card section, the HTML report (in Chromium),
honest colour ranges, the nothing-comparable error, the CUDA hint, no import cycles."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from helpers import read_state

from mergekit_weightlevel.analyze import analyze_models
from mergekit_weightlevel.analyze.columns import COLUMNS, SIGMA, table_columns
from mergekit_weightlevel.analyze.core import NothingComparableError
from mergekit_weightlevel.analyze.scales import ALPHA_MIN_HALF_WIDTH, scale_for
from mergekit_weightlevel.cli import main
from mergekit_weightlevel.demo.tiny_models import build_family
from mergekit_weightlevel.numerics import pair_statistics

ANALYZE_PACKAGE = Path(__file__).resolve().parent.parent / "mergekit_weightlevel" / "analyze"


def timber_sparsity(a: torch.Tensor, b: torch.Tensor) -> float:
    """Oracle written from Timber's definition: numpy, float32 copies of bf16 weights."""
    a32 = a.float().numpy() if a.dtype != torch.float64 else a.numpy()
    b32 = b.float().numpy() if b.dtype != torch.float64 else b.numpy()
    return float(np.count_nonzero(np.abs(a32 - b32) < 1e-5)) / a32.size


def sigma64(a: torch.Tensor, b: torch.Tensor) -> float:
    a64, b64 = a.double().numpy(), b.double().numpy()
    return float(np.abs(a64 - b64).sum() / (np.abs(a64).sum() + np.abs(b64).sum()))


# ------------------------------------------------------------------------------ sparsity


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
def test_sparsity_counts_elements_below_1e_5_in_the_sigma_pass(dtype, monkeypatch):
    monkeypatch.setattr(pair_statistics, "PAIR_STATISTICS_BLOCK", 7)  # many ragged blocks
    generator = torch.Generator().manual_seed(3)
    a = torch.randn(23, 19, generator=generator).to(dtype)
    b = a.clone()
    moved = torch.rand(23, 19, generator=generator) < 0.4
    b[moved] += 0.01
    # Differences right at the threshold: some just below, some just above 1e-5.
    near = torch.rand(23, 19, generator=generator) < 0.2
    b[near & ~moved] = (a[near & ~moved].double() + 0.9e-5).to(dtype)
    stats = pair_statistics.pair_statistics(a, b)
    expected = timber_sparsity(a, b)
    assert 0.3 < expected < 0.8  # the case is not trivial
    assert stats.sparsity == expected
    assert stats.unchanged == round(expected * a.numel()) and stats.elements == a.numel()
    assert stats.sigma == pytest.approx(sigma64(a, b), rel=1e-6)  # same single pass


def test_sparsity_per_tensor_module_layer_and_model(qwen3_bf16_family):
    family = qwen3_bf16_family
    report = analyze_models([family.base, family.instruct], metrics="sigma", quiet=True)
    pair = report.pairs[0]
    base, post = read_state(family.base), read_state(family.instruct)
    expected = {name: timber_sparsity(base[name], post[name]) for name in base}
    assert any(0 < value < 1 for value in expected.values())
    for record in pair.tensors:
        assert record.sparsity == expected[record.name], record.name
    q = [v for name, v in expected.items() if name.endswith("q_proj.weight")]
    assert pair.summary["by_module"]["q"]["sparsity"] == pytest.approx(np.mean(q), rel=1e-12)
    layer0 = [v for name, v in expected.items() if name.startswith("model.layers.0.")]
    assert pair.summary["by_layer"]["0"]["sparsity"] == pytest.approx(np.mean(layer0), rel=1e-12)
    total = sum(expected[n] * base[n].numel() for n in base) / sum(t.numel() for t in base.values())
    assert pair.summary["sparsity_global"] == pytest.approx(total, rel=1e-12)

    data = json.loads(report.to_json())
    assert data["schema_version"] == "1.2"
    assert "sparsity" in data["definitions"]
    first = data["pairs"][0]["tensors"][0]
    assert first["sparsity"] == expected[first["name"]]
    rows = report.to_csv().splitlines()
    header = rows[0].split(",")
    assert "sparsity" in header
    column = header.index("sparsity")
    assert float(rows[1].split(",")[column]) == pytest.approx(expected[pair.tensors[0].name])
    shown = f"{100 * pair.summary['sparsity_global']:.2f} %"
    assert f"unchanged elements (|A−B| < 1e-5, Timber's sparsity ratio), all tensors: {shown}" in (
        report.summary_text()
    )
    assert shown in report.to_markdown() and shown in report.to_html()


# ------------------------------------------------------------------------ Markdown card


def markdown_table_rows(text: str, first_header: str) -> list[list[str]]:
    """The rows (cells stripped) of the first table whose header starts with ``first_header``."""
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if line.startswith(f"| {first_header} |"):
            table = []
            for row in lines[index:]:
                if not row.startswith("|"):
                    break
                table.append([cell.strip() for cell in row.strip("|").split(" | ")])
            return table
    raise AssertionError(f"no table starting with {first_header!r}")


def test_markdown_section_reads_well_on_the_hub(llama_family, tmp_path):
    # A folder of the Hugging Face cache is shown as its Hub id, linked.
    snapshot = tmp_path / "hub" / "models--acme--Tiny-Base" / "snapshots" / "0123abc"
    shutil.copytree(llama_family.base, snapshot)
    report = analyze_models(
        [snapshot, llama_family.instruct], metrics="sigma,erank,structure", quiet=True
    )
    text = report.to_markdown(names={str(llama_family.instruct): "Tiny-Instruct"})
    assert text.startswith("## Weight-level analysis\n")
    assert (
        "### Tiny-Instruct against [acme/Tiny-Base](https://huggingface.co/acme/Tiny-Base)" in text
    )
    assert str(tmp_path) not in text  # no local path for either model

    # No rendering artefacts: no code block, no bare HTML-like text outside code spans.
    assert "```" not in text and not re.search(r"^( {4}|\t)\S", text, re.MULTILINE)
    assert "**α outliers**: none" in text
    outside_code = re.sub(r"`[^`]*`", "", text)
    tags = set(re.findall(r"</?([A-Za-z]+)[^>]*>", outside_code))
    assert tags <= {"details", "summary"}

    # The per-layer table is folded; a blank line lets the Hub render the table inside.
    assert "<details>\n<summary>Per layer (2 layers" in text
    start = text.index("<details>\n<summary>Per layer")
    folded = text[start : text.index("</details>", start)]
    assert "</summary>\n\n| layer |" in folded

    # A glossary entry for every column of the tables.
    glossary = text[text.index("### Glossary") :]
    for column in table_columns(report.metrics):
        assert f"- **{column.title}**: " in glossary, column.title

    # Rounding that fits each metric: σ with 4 significant digits, eRank with 1 decimal.
    base, post = read_state(llama_family.base), read_state(llama_family.instruct)
    q_names = [n for n in base if n.endswith("q_proj.weight")]
    expected_sigma = np.mean([sigma64(base[n], post[n]) for n in q_names])
    table = markdown_table_rows(text, "module")
    header, q_row = table[0], next(row for row in table if row[0] == "q")
    sigma_cell = q_row[header.index("σ")]
    assert sigma_cell == SIGMA.format(expected_sigma)
    assert re.fullmatch(r"0\.0\d{4}", sigma_cell)  # 0.0abcd: four significant digits
    assert re.fullmatch(r"\d+\.\d", q_row[header.index("eRank A")])
    assert re.fullmatch(r"\d\.\d{4}", q_row[header.index("α")])
    # The signature is stable and keyword-extensible (the publishing feature embeds it).
    assert report.to_markdown(heading_level=3).startswith("### Weight-level analysis\n")
    with pytest.raises(ValueError, match="2 models"):
        report.to_markdown(names=["only one"])


# ---------------------------------------------------------------------------- HTML


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


#: Appended to a copy of the page: hovers one σ cell and records what the browser shows.
PROBE = """
<script>
(function () {
  var cell = document.querySelector('#pair-1 svg[data-metric="sigma"] g.c[data-cell="1,q"]');
  var rect = cell.querySelector("rect");
  var box = rect.getBoundingClientRect();
  rect.dispatchEvent(new MouseEvent("mouseover", {bubbles: true, clientX: box.x + 3, clientY: box.y + 3}));
  var tip = document.getElementById("tip");
  var result = {
    tip: tip.textContent,
    tipShown: !tip.hidden && tip.offsetWidth > 0 && getComputedStyle(tip).display !== "none",
    titlesLeft: document.querySelectorAll("g.c > title").length,
    cellFill: getComputedStyle(rect).fill,
    cellWidth: box.width,
    cellLabel: cell.querySelector("text").textContent,
    heatmaps: Array.from(document.querySelectorAll("svg.hm")).map(function (svg) {
      return [svg.getAttribute("data-metric"), svg.getBoundingClientRect().width > 100];
    }),
    layerTableOpen: document.querySelector("#pair-1 details").open
  };
  var out = document.createElement("pre");
  out.id = "probe";
  out.textContent = JSON.stringify(result);
  document.body.appendChild(out);
})();
</script>
"""


def test_html_report_shows_exact_values_on_hover_in_chromium(llama_family, tmp_path):
    browser = chromium()
    if browser is None:
        pytest.skip("chromium is not installed (apt-get install chromium; .ci/run installs it)")
    report = analyze_models(
        [llama_family.base, llama_family.instruct],
        metrics="sigma,erank,structure",
        names=["Tiny Base", "Tiny Instruct"],
        quiet=True,
    )
    page = report.to_html(tmp_path / "report.html")
    assert (tmp_path / "report.html").read_text() == page
    probed = tmp_path / "probed.html"
    probed.write_text(page.replace("</body>", PROBE + "</body>"))
    completed = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--virtual-time-budget=2000", "--dump-dom", probed.as_uri()],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    match = re.search(r'<pre id="probe">(.*?)</pre>', completed.stdout, re.DOTALL)
    assert match, completed.stderr[-2000:]
    shown = json.loads(html.unescape(match.group(1)))

    base, post = read_state(llama_family.base), read_state(llama_family.instruct)
    name = "model.layers.1.self_attn.q_proj.weight"
    expected = sigma64(base[name], post[name])
    tip = re.fullmatch(r"layer 1, q: σ = (\S+)", shown["tip"])
    assert tip, shown["tip"]
    assert float(tip.group(1)) == pytest.approx(expected, rel=1e-7)  # all digits, not rounded
    assert len(tip.group(1)) > 10
    assert shown["tipShown"] and shown["titlesLeft"] == 0  # the script ran
    assert shown["cellLabel"] == SIGMA.format(expected)
    assert shown["cellWidth"] > 30
    # The cell's colour is that of its value on the σ scale of this heatmap (0 to the max).
    cells = [r.sigma for r in report.pairs[0].tensors if r.layer is not None]
    colour = scale_for("sigma", cells).colour(float(tip.group(1)))
    red, green, blue = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    assert shown["cellFill"] == f"rgb({red}, {green}, {blue})"
    assert shown["heatmaps"] == [
        ["sigma", True],
        ["erank_ratio_delta", True],
        ["alpha", True],
    ]
    assert shown["layerTableOpen"] is False  # folded


def test_html_report_is_self_contained_and_complete(llama_family, tmp_path):
    models = [llama_family.base, llama_family.instruct, llama_family.thinking]
    report = analyze_models(models, metrics="sigma,erank,structure", all_pairs=True, quiet=True)
    page = report.to_html()
    # Nothing fetched: no external script, style sheet, image or font.
    assert not re.search(r"<(script|img|link|iframe)[^>]+(src|href)=", page)
    assert "url(" not in page and "@import" not in page
    # Links are to the papers and the Hub only, for the reader to follow.
    for address in re.findall(r'href="([^"]+)"', page):
        assert address.startswith(("https://arxiv.org/abs/", "https://huggingface.co/")), address
    assert page.count('<svg class="hm"') == 2 * 3 + 1  # 3 per reference pair, σ for the third
    assert '<section id="sigma-matrix">' in page
    matrix = report.sigma_matrix()
    assert f'title="{matrix[1][2]!r}"' in page  # the exact σ of Instruct–Thinking
    for key in ("sigma", "sparsity", "erank_ratio_delta", "alpha", "consistency_gap"):
        assert f"<dt>{html.escape(COLUMNS[key].title)}</dt>" in page
    assert "https://arxiv.org/abs/2505.12716" in page  # Shadow-FT, the source of σ
    assert "https://arxiv.org/abs/2509.17866" in page  # He & Cao, the source of α


# ------------------------------------------------- glossaries, axes, σ matrix (issue 29)


@pytest.mark.parametrize("metrics", ["sigma", "sigma,erank", "sigma,erank,structure"])
def test_glossaries_list_each_levels_columns_once_in_sentences(llama_family, metrics):
    """One definition of which columns a level has: the tables and both glossaries agree;
    every glossary entry ends with exactly one full stop (the definitions may end with one)."""
    report = analyze_models([llama_family.base, llama_family.instruct], metrics=metrics, quiet=True)
    titles = [column.title for column in table_columns(report.metrics)]
    page = report.to_html()
    glossary = page[page.index('<section id="glossary">') :]
    listed = [html.unescape(title) for title in re.findall(r"<dt>([^<]+)</dt>", glossary)]
    assert listed[: len(titles)] == titles
    assert listed[len(titles) :] == ["sigma_mean", "sigma_global", "sparsity_global"]
    for entry in re.findall(r"<dd>(.*?)</dd>", glossary):
        text = html.unescape(re.sub(r"<[^>]+>", "", entry))
        assert ".." not in text and text.endswith("."), text
    markdown = report.to_markdown()
    entries = markdown[markdown.index("### Glossary") :].splitlines()[2:]
    assert [re.match(r"- \*\*(.+?)\*\*", line).group(1) for line in entries[:-1]] == titles
    for line in entries:
        assert ".." not in line and line.endswith("."), line


def test_html_heatmaps_name_their_row_axis(llama_family):
    report = analyze_models(
        [llama_family.base, llama_family.instruct], metrics="sigma,erank", quiet=True
    )
    page = report.to_html()
    maps = re.findall(r'<svg class="hm".*?</svg>', page)
    assert len(maps) == 2
    for svg in maps:
        # The corner above the layer numbers says what they are.
        assert re.search(r'<text class="l axis"[^>]*>layer</text>', svg), svg[:300]
    assert page.count("per layer (rows) and module type (columns)") == 2


@pytest.mark.parametrize("all_pairs", [False, True])
def test_sigma_matrix_figure_says_which_pairs_were_not_compared(
    llama_family, tmp_path, monkeypatch, all_pairs
):
    """Without --all-pairs the two non-reference models were never compared: their cells say
    so (the card's figure showed them blank, with no explanation)."""
    pytest.importorskip("matplotlib")
    from mergekit_weightlevel.analyze import plots

    figures = {}
    original = plots._save

    def keep(figure, path):
        figures[path.name] = figure
        return original(figure, path)

    models = [llama_family.base, llama_family.instruct, llama_family.thinking]
    report = analyze_models(models, metrics="sigma", all_pairs=all_pairs, quiet=True)
    monkeypatch.setattr(plots, "_save", keep)
    report.plot(tmp_path)
    axes = figures["sigma_matrix.png"].axes[0]
    cells = {
        (round(text.get_position()[1]), round(text.get_position()[0])): text.get_text()
        for text in axes.texts
    }
    matrix = report.sigma_matrix()
    if all_pairs:
        assert cells[(1, 2)] == cells[(2, 1)] == SIGMA.cell(matrix[1][2])
        assert plots.NOT_COMPUTED_NOTE not in axes.get_title()
    else:
        assert matrix[1][2] is None
        assert cells[(1, 2)] == cells[(2, 1)] == "not\ncomputed"
        assert cells[(0, 1)] == SIGMA.cell(matrix[0][1])  # computed pairs keep their value
        assert plots.NOT_COMPUTED_NOTE in axes.get_title()
        assert "--all-pairs" in plots.NOT_COMPUTED_NOTE


# ----------------------------------------------------------------------- colour ranges


def test_colour_ranges_do_not_turn_noise_into_structure():
    noise = [0.02498, 0.02502, 0.02500]
    sigma = scale_for("sigma", noise)
    assert sigma.low == 0 and sigma.high == max(noise)
    channels = [[int(sigma.colour(v)[i : i + 2], 16) for i in (1, 3, 5)] for v in noise]
    spread = max(max(c[i] for c in channels) - min(c[i] for c in channels) for i in range(3))
    assert spread <= 2  # 0.2 % apart: indistinguishable colours, as every cell reads 0.025
    ratio = scale_for("erank_ratio_delta", [0.81, 0.82])
    assert (ratio.low, ratio.high) == (0.0, 1.0)
    alpha = scale_for("alpha", [0.999, 1.001])
    assert alpha.centre == 1.0
    assert alpha.high - 1 == pytest.approx(1 - alpha.low) == pytest.approx(ALPHA_MIN_HALF_WIDTH)
    assert alpha.colour(1.0) == "#f7f7f7"  # neutral at 1
    strong = scale_for("alpha", [0.8, 1.1])
    assert strong.low == pytest.approx(0.8) and strong.high == pytest.approx(1.2)
    assert strong.colour(0.8) != strong.colour(1.2)  # below and above 1 differ in hue


def test_plots_state_their_range_and_keep_the_legend_off_the_data(
    llama_family, tmp_path, monkeypatch
):
    pytest.importorskip("matplotlib")
    from mergekit_weightlevel.analyze import plots

    figures = []
    original = plots._save

    def keep(figure, path):
        figures.append((path.name, figure))
        return original(figure, path)

    report = analyze_models(
        [llama_family.base, llama_family.instruct], metrics="sigma,structure", quiet=True
    )
    monkeypatch.setattr(plots, "_save", keep)
    report.plot(tmp_path)
    by_name = dict(figures)
    sigma_axes = by_name["pair1_instruct_vs_base_sigma_heatmap.png"].axes[0]
    image = sigma_axes.images[0]
    assert image.norm.vmin == 0.0  # from the meaningful origin
    assert "colour from 0" in sigma_axes.get_title()
    alpha_axes = by_name["pair1_instruct_vs_base_alpha_heatmap.png"].axes[0]
    low, high = alpha_axes.images[0].norm.vmin, alpha_axes.images[0].norm.vmax
    assert (low + high) / 2 == pytest.approx(1.0) and alpha_axes.images[0].cmap.name == "RdBu_r"
    for text in sigma_axes.texts:
        assert text.get_fontsize() >= 7
    histogram = by_name["pair1_instruct_vs_base_sigma_hist.png"]
    histogram.canvas.draw()
    axes = histogram.axes[0]
    legend = axes.get_legend().get_window_extent()
    assert legend.x0 >= axes.get_window_extent().x1  # outside the axes: covers no bar


# ------------------------------------------------------------- nothing comparable (16.6)


def test_models_with_nothing_comparable_fail_naming_the_shapes(tmp_path):
    wide = build_family(tmp_path / "wide", layers=1)
    narrow = build_family(
        tmp_path / "narrow", layers=1, shape={"hidden_size": 32, "intermediate_size": 64}
    )
    with pytest.raises(NothingComparableError) as caught:
        analyze_models([wide.base, narrow.base], quiet=True)
    message = str(caught.value)
    assert f"nothing to compare between {wide.base} and {narrow.base}" in message
    wide_state, narrow_state = read_state(wide.base), read_state(narrow.base)
    name = "model.embed_tokens.weight"
    assert (
        f"{name}: shapes differ: {tuple(wide_state[name].shape)} vs "
        f"{tuple(narrow_state[name].shape)}" in message
    )
    assert "different hidden sizes" in message and "one model family" in message
    result = CliRunner().invoke(main, ["analyze", str(wide.base), str(narrow.base), "--quiet"])
    assert result.exit_code == 1
    assert "error: analyze: nothing to compare" in result.output
    assert "Traceback" not in result.output and "0 tensors compared" not in result.output


# ------------------------------------------------------------------------- CUDA hint


def test_an_idle_gpu_is_pointed_out_once(llama_family, monkeypatch):
    models = [str(llama_family.base), str(llama_family.instruct)]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    hinted = CliRunner().invoke(main, ["analyze", *models, "--metrics", "sigma", "--quiet"])
    assert hinted.exit_code == 0, hinted.output
    lines = hinted.stderr.splitlines()
    assert len(lines) == 1 and "CUDA device is available" in lines[0]
    assert "--device cuda" in lines[0]
    asked = CliRunner().invoke(
        main, ["analyze", *models, "--metrics", "sigma", "--quiet", "--device", "cpu"]
    )
    assert asked.exit_code == 0 and asked.stderr == ""  # the user chose the CPU
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    plain = CliRunner().invoke(main, ["analyze", *models, "--metrics", "sigma", "--quiet"])
    assert plain.stderr == ""


def test_significant_rounding():
    from mergekit_weightlevel.analyze.columns import percent, significant

    assert significant(0.0249812, 4) == "0.02498"
    assert significant(0.00412345, 4) == "0.004123"
    assert significant(2629.44, 4) == "2629"
    assert significant(3e-9, 3) == "3.00e-09"
    assert percent(0.0035) == "0.35 %" and percent(0.0) == "0.00 %"
    assert percent(0.000123) == "0.012 %"  # small shares keep two significant digits

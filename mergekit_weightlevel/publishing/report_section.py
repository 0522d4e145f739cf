"""The card's optional weight-level section: σ and eRank of the output against each input.

Runs the package's ``analyze`` on the merged folder (the reference) and every model input
(LoRA adapters given as the shadow_graft ``adapter`` parameter are not models and are left
out), writes its figures into ``FOLDER/weight_level/`` and returns the Markdown of
``AnalysisReport.to_markdown`` (models named as the card names them) with the figures
embedded by relative path.
"""

from __future__ import annotations

from pathlib import Path

from mergekit_weightlevel.analyze import analyze_models
from mergekit_weightlevel.analyze.plots import PlotsUnavailable
from mergekit_weightlevel.publishing.inputs import InputModel

REPORT_FOLDER = "weight_level"


def _reference(model: InputModel) -> str:
    path = str(model.location.local_path or model.location.path)
    if model.lora is not None:
        path += "+" + str(model.lora.local_path or model.lora.path)
    return path


def weight_level_section(folder: Path, inputs: list[InputModel]) -> str:
    """Markdown for the card (analysis of ``folder`` against each model input)."""
    models = [model for model in inputs if model.symbol != "LoRA"]
    references = [_reference(model) for model in models]
    names = {str(folder): "this model"}
    names.update({reference: model.name for model, reference in zip(models, references)})
    report = analyze_models(
        [str(folder), *references], metrics="sigma,erank", quiet=True, names=names
    )  # named as the card names them, in the tables and in the figures' titles
    # Models named as the card names them; no Reading: its previews read A as a Base and B
    # as its post-trained model, while A is this merge and B one of its inputs.
    text = report.to_markdown(names=names, reading=False)
    try:
        figures = report.plot(folder / REPORT_FOLDER)
    except PlotsUnavailable as error:
        return text + f"\n(Figures left out: {error})\n"
    lines = [text.rstrip("\n"), ""]
    for figure in figures:
        relative = figure.relative_to(folder).as_posix()
        lines += [f"![{figure.stem}]({relative})", ""]
    return "\n".join(lines)

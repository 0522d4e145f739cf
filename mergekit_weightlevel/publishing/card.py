"""The model card of a merged folder: front matter the Hub understands, a body in the method's terms.

    from mergekit_weightlevel.publishing import write_card
    write_card(Path("merged"), hub_ids={"/models/llama-base": "meta-llama/Llama-3.1-8B"})

``build_card`` reads the folder (``mergekit_config.yml``, the weights' safetensors headers,
``config.json``) and the inputs' own cards (local ``README.md``; the Hub for Hub ids, with a
short timeout) and returns a ``huggingface_hub.ModelCard``; ``write_card`` writes it to
``FOLDER/README.md``. Nothing here reads tensor data unless ``report=True`` (the
weight-level section runs ``analyze`` on the output and its inputs).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from huggingface_hub import ModelCard, ModelCardData
from mergekit.config import MergeConfiguration

from mergekit_weightlevel.about import __version__
from mergekit_weightlevel.checks.model_folder import check_finished
from mergekit_weightlevel.checks.parameters import TOP_LEVEL, parameter_blocks
from mergekit_weightlevel.errors import package_logger
from mergekit_weightlevel.methods.declaration import (
    InputView,
    MergeView,
    MethodDeclaration,
    Paper,
    is_plain_number,
    setting_words,
)
from mergekit_weightlevel.methods.output_files import (
    GENERATION_CONFIG,
    TOKENIZER_CONFIG,
    TOKENIZER_VOCABULARY,
    file_sources,
)
from mergekit_weightlevel.publishing.checks import WeightsSummary, check_weights
from mergekit_weightlevel.publishing.eval_results import card_evaluation, write_benchmark_files
from mergekit_weightlevel.publishing.inputs import (
    CONFIG_FILE,
    CardFacts,
    CardInputError,
    CardReader,
    InputModel,
    check_repo_id,
    describe_inputs,
    folder_name,
    hide_local_paths,
    read_json,
    read_merge_config,
    shown_names,
)
from mergekit_weightlevel.registry import declaration_of

#: The first line of every card this module writes (how `publish` tells ours from others').
CARD_MARKER = "<!-- model card written by mergekit-weightlevel"
#: The sentence mergekit's generic card starts with (mergekit/card.py, 0.1.5).
MERGEKIT_CARD_SENTENCE = "This is a merge of pre-trained language models created using [mergekit]"
PROJECT_URL = "https://github.com/arcee-ai/mergekit"

LOG = package_logger(__name__)


#: How the card records the ``--hub-id`` mapping it was built with, so a rewrite keeps it.
HUB_IDS_LINE = "<!-- hub ids given for local inputs: "


def recorded_hub_ids(text: str) -> dict[str, str]:
    """The ``hub_ids`` an earlier card of ours recorded (empty if none, or not ours)."""
    for line in text.splitlines():
        if line.startswith(HUB_IDS_LINE) and line.endswith(" -->"):
            try:
                value = json.loads(line[len(HUB_IDS_LINE) : -len(" -->")])
            except ValueError:
                return {}
            if isinstance(value, dict):
                return {str(k): str(v) for k, v in value.items()}
    return {}


def is_generated_card(text: str) -> bool:
    """Whether a README.md is one a tool wrote (ours or mergekit's), safe to rewrite."""
    return CARD_MARKER in text or MERGEKIT_CARD_SENTENCE in text


#: Where a card written by hand goes when a model card is written in its place.
USER_CARD = "README.user.md"


def keep_users_card(folder: Path) -> Path | None:
    """Move a ``README.md`` that neither mergekit nor we wrote out of the way; return where.

    The card about to be written would replace it. It is moved, never merged: its front
    matter may state a license or base models the generated card decides otherwise, and a
    silent blend could publish terms its author did not choose. Moved to ``README.user.md``
    (``README.user-2.md``, … when taken), with one warning naming both.
    """
    readme = Path(folder) / "README.md"
    if not readme.is_file() or is_generated_card(readme.read_text(encoding="utf-8")):
        return None
    kept = readme.with_name(USER_CARD)
    number = 1
    while kept.exists():
        number += 1
        kept = readme.with_name(f"README.user-{number}.md")
    os.replace(readme, kept)
    LOG.warning(
        "%s was not written by mergekit or mergekit-weightlevel: moved to %s, so that the model "
        "card written in its place does not destroy it. Copy what still applies (its license, "
        "its text) into the new README.md.",
        readme,
        kept,
    )
    return kept


@dataclass(frozen=True)
class LicenseDecision:
    """The card's license (None: left out) and the sentence explaining it."""

    license: str | None
    license_name: str | None
    license_link: str | None
    explanation: str


def decide_license(inputs: list[InputModel], facts: list[CardFacts]) -> LicenseDecision:
    """The license every readable input card agrees on; otherwise none, and why."""
    readable = [(i, f) for i, f in zip(inputs, facts) if f.readable]
    unread = [(i, f) for i, f in zip(inputs, facts) if not f.readable]
    unread_text = "; ".join(f"{i.name}: {f.why_unreadable}" for i, f in unread)
    found = {f.license_key for _, f in readable if f.license_key is not None}
    silent = [i.name for i, f in readable if f.license_key is None]
    if not readable:
        return LicenseDecision(
            None, None, None,
            "No input's card could be read, so no license is set: check the inputs' licenses "
            f"and add `license:` to this card yourself ({unread_text}).",
        )  # fmt: skip
    if len(found) > 1:
        listing = ", ".join(f"{i.name}: {f.license}" for i, f in readable if f.license)
        return LicenseDecision(
            None, None, None,
            f"The inputs' licenses differ ({listing}), so no license is set: choose the license "
            "this merge may be released under (the most restrictive terms apply) and add "
            "`license:` to this card yourself.",
        )  # fmt: skip
    if not found:
        return LicenseDecision(
            None, None, None,
            "No input's card names a license, so none is set: check the inputs' terms and add "
            "`license:` to this card yourself.",
        )  # fmt: skip
    chosen, name, link = next(iter(found))
    shown = name or chosen
    text = f"`{shown}`, the license every input card that could be read names"
    if silent:
        text += f" (these name none: {', '.join(silent)})"
    if unread:
        text += f"; not checked, their card could not be read: {unread_text}"
    return LicenseDecision(chosen, name, link, text + ".")


def _short(name: str) -> str:
    return name.rstrip("/").split("/")[-1]


def _value_text(value: Any, *, per_slice: bool = False) -> str:
    """A parameter's value for the card's tables: a number or word as is, any other form of a
    mergekit parameter (a layer gradient, filters) in words (``declaration.setting_words``)."""
    if is_plain_number(value) or isinstance(value, str) or value is None:
        return f"`{setting_words(value)}`" if value is not None else "`None`"
    return setting_words(value, per_slice=per_slice)


def _has_slices(merge_config: MergeConfiguration) -> bool:
    """Whether mergekit runs a layer gradient over slices rather than over every layer."""
    modules = (merge_config.modules or {}).values()
    return bool(merge_config.slices) or any(module.slices for module in modules)


def _symbol(declaration: MethodDeclaration, parameter: str) -> str:
    """How the method writes a parameter (λ, α), its name where it has no symbol."""
    axis = declaration.sweep
    return axis.symbol if parameter == axis.parameter else parameter


def method_defaults(method: str) -> dict[str, Any]:
    """The method's parameters and defaults, read from its spec (empty for mergekit's methods)."""
    from mergekit_weightlevel.registry import describe_methods

    for described in describe_methods():
        if described["name"] == method:
            return {p["name"]: p for p in described["parameters"]}
    return {}


def _shared_parameters(merge_config: MergeConfiguration, defaults: dict[str, Any]) -> dict:
    """The top-level shared parameters, with the method's defaults where the config sets none."""
    shared = {n: p["default"] for n, p in defaults.items() if p["scope"] == "shared"}
    return {**shared, **(merge_config.parameters or {})}


def _overrides(merge_config: MergeConfiguration) -> list[tuple[str, str, Any]]:
    """(where, parameter, setting) for every parameter set below the top level."""
    return [
        (where, name, setting)
        for where, block in parameter_blocks(merge_config)
        if where != TOP_LEVEL
        for name, setting in block.items()
    ]


def _is_complete(view: MergeView, declaration: MethodDeclaration) -> bool:
    """Whether the inputs have every role the method's sentence names."""
    roles = declaration.roles
    has_other = bool(view.all("other")) or view.first("parameter") is not None
    has_target = roles.target is None or view.first("target") is not None
    return view.first("base") is not None and has_other and has_target


def summary_sentence(
    merge_config: MergeConfiguration, inputs: list[InputModel], defaults: dict[str, Any]
) -> str:
    """What was done, in the method's own terms (its declaration's sentence), naming the
    inputs; settings made below the top level (per slice, per model) follow it."""
    declaration = declaration_of(merge_config.merge_method)
    view = MergeView(
        inputs=[InputView(_short(i.name), i.kind, i.parameters) for i in inputs],
        parameters=_shared_parameters(merge_config, defaults),
        per_slice=_has_slices(merge_config),
    )
    if declaration is None or not _is_complete(view, declaration):
        names = ", ".join(_short(i.name) for i in inputs)
        return f"A `{merge_config.merge_method}` merge of {names}, made with mergekit."
    sentence = declaration.describe(view)
    below = [
        f"{view.text(_symbol(declaration, parameter), setting)} in "
        + where.removeprefix("the parameters of ")
        for where, parameter, setting in _overrides(merge_config)
        if defaults.get(parameter, {}).get("scope") == "shared"
    ]
    if below:
        sentence += " Set below the top level, and taking precedence there: " + "; ".join(below)
        sentence += "."
    return sentence


def _inputs_table(inputs: list[InputModel], *, per_slice: bool) -> list[str]:
    lines = ["| role | model | parameters |", "|---|---|---|"]
    for model in inputs:
        shown = {k: v for k, v in model.parameters.items() if k != "role"}
        params = ", ".join(f"{k}: {_value_text(v, per_slice=per_slice)}" for k, v in shown.items())
        lines.append(f"| {model.symbol}: {model.role} | {model.markdown()} | {params} |")
    return lines


def _parameters_table(merge_config: MergeConfiguration, defaults: dict[str, Any]) -> list[str]:
    shared = {n: p for n, p in defaults.items() if p["scope"] == "shared"}
    given = dict(merge_config.parameters or {})
    overrides = [o for o in _overrides(merge_config) if o[1] in shared]
    if not shared and not given:
        return []
    per_slice = _has_slices(merge_config)
    lines = ["| parameter | value | meaning |", "|---|---|---|"]
    for name, spec in shared.items():
        if name in given:
            value = _value_text(given.pop(name), per_slice=per_slice)
        elif spec["required"]:
            value = "(required, missing)"
        else:
            value = f"{_value_text(spec['default'])} (default)"
        lines.append(f"| `{name}` | {value} | {spec['description']} |")
    for name, value in given.items():
        lines.append(f"| `{name}` | {_value_text(value, per_slice=per_slice)} | |")
    for where, name, setting in overrides:
        shown = _value_text(setting, per_slice=per_slice)
        lines.append(f"| `{name}` | {shown} | set in {where}, taking precedence there |")
    return lines


def _weights_lines(summary: WeightsSummary | None, folder: Path) -> list[str]:
    if summary is None:
        return ["- weights: not checked (the folder's weights are incomplete or unreadable)"]
    files = summary.files
    where = f"`{files[0]}`" if len(files) == 1 else f"{len(files)} shards, `{files[0]}` …"
    config = read_json(folder / "config.json") or {}
    arch = ", ".join(config.get("architectures") or []) or "unknown architecture"
    return [
        f"- weights: {summary.parameters:,} parameters in {summary.tensors} tensors "
        f"({', '.join(summary.dtypes)}), {where}; {arch}"
    ]


CHAT_TEMPLATE = "chat_template.jinja"
#: The files mergekit copies as "the tokenizer" (its `_copy_tokenizer`), compared byte for byte.
TOKENIZER_FILES = (
    TOKENIZER_CONFIG,
    *TOKENIZER_VOCABULARY,
    "special_tokens_map.json",
    CHAT_TEMPLATE,
)


def _matching_input(
    folder: Path, names: tuple[str, ...], preferred: InputModel | None, inputs: list[InputModel]
) -> InputModel | None:
    """The input (``preferred`` first) whose copies of ``names`` equal the output's, if any.

    Only local inputs can be compared; None when none matches (or none is local). A
    ``model+adapter`` input's files are its model's (an adapter brings weights only).
    """
    present = [name for name in names if (folder / name).is_file()]
    ordered = ([preferred] if preferred else []) + [m for m in inputs if m is not preferred]
    for model in ordered:
        local = model.location.local_path
        if (
            local is not None
            and present
            and all(
                (local / name).is_file()
                and (local / name).read_bytes() == (folder / name).read_bytes()
                for name in present
            )
        ):
            return model
    return None


def _adapter_remark(model: InputModel | None) -> str:
    """For a ``model+adapter`` input: whose files these are (an adapter has none of its own)."""
    if model is None or model.lora is None:
        return ""
    return f"; a LoRA adapter brings weights only, so these are {model.location.name}'s files"


def _origin_text(
    found: InputModel | None,
    preferred: InputModel | None,
    reason: str,
    what: str,
    names: tuple[str, ...],
) -> str:
    """Where a kind of file came from: the chosen input, or the one whose copy it is."""
    if found is None or found is preferred:
        shown = preferred.markdown() if preferred else "an input"
        return f"from {shown} ({reason}{_adapter_remark(preferred)})"
    if preferred is None:
        return f"from {found.markdown()} (identical to its files)"
    local = preferred.location.local_path
    if local is not None and not any((local / name).is_file() for name in names):
        why = f"{preferred.name}, {reason}, has no {what}: the next input that has one"
    else:
        why = f"identical to its files, not to those of {preferred.name}, {reason}"
    return f"from {found.markdown()} ({why})"


def file_origins(
    merge_config: MergeConfiguration, inputs: list[InputModel], folder: Path
) -> tuple[InputModel | None, list[str]]:
    """The input the output's ``config.json`` comes from, and one card line per kind of file.

    The choice is ``output_files.file_sources`` (mergekit's own rule for its methods); where
    the inputs are local, the tokenizer and generation config are also compared byte for
    byte, so a fallback to another input (the chosen one lacking the file) is named.
    """
    by_reference = {model.reference: model for model in inputs}
    sources = file_sources(merge_config)
    if sources is None:  # mergekit's `_get_donor_model`: base_model, else the first model
        donor = merge_config.base_model or merge_config.referenced_models()[0]
        config_ref = tokenizer_ref = donor
        config_reason = tokenizer_reason = "mergekit's rule: base_model, else the first model"
    else:
        config_ref, tokenizer_ref = sources.config, sources.tokenizer
        config_reason, tokenizer_reason = sources.config_reason, sources.tokenizer_reason
    config_model = by_reference.get(str(config_ref))
    tokenizer_model = by_reference.get(str(tokenizer_ref))
    shown = config_model.markdown() if config_model else f"`{config_ref}`"
    lines = [f"- `config.json`: from {shown} ({config_reason}{_adapter_remark(config_model)})"]
    built = (
        merge_config.tokenizer.source if merge_config.tokenizer else merge_config.tokenizer_source
    )
    if built is not None:
        line = f"- tokenizer: built by mergekit from the config's tokenizer settings (source: `{built}`)"
        template = _matching_input(folder, (CHAT_TEMPLATE,), tokenizer_model, inputs)
        if template is not None and not merge_config.chat_template:
            line += "; its chat template " + _origin_text(
                template, tokenizer_model, tokenizer_reason, "chat template", (CHAT_TEMPLATE,)
            )
        lines.append(line)
    elif not any((folder / name).is_file() for name in TOKENIZER_FILES):
        lines.append("- tokenizer: none in this folder")
    else:
        found = _matching_input(folder, TOKENIZER_FILES, tokenizer_model, inputs)
        origin = _origin_text(
            found, tokenizer_model, tokenizer_reason, "tokenizer", TOKENIZER_FILES
        )
        lines.append(f"- tokenizer and chat template: {origin}")
    if merge_config.chat_template:
        lines.append(f"- chat template: `{merge_config.chat_template}`, set in the merge config")
    if (folder / GENERATION_CONFIG).is_file():
        found = _matching_input(folder, (GENERATION_CONFIG,), tokenizer_model, inputs)
        origin = _origin_text(
            found, tokenizer_model, tokenizer_reason, GENERATION_CONFIG, (GENERATION_CONFIG,)
        )
        lines.append(f"- `{GENERATION_CONFIG}` (stop ids, sampling defaults): {origin}")
    else:
        lines.append(f"- `{GENERATION_CONFIG}`: none in this folder")
    return config_model, lines


def _pipeline_tag(folder: Path, donor_facts: CardFacts | None) -> str | None:
    if donor_facts is not None and donor_facts.pipeline_tag:
        return donor_facts.pipeline_tag
    architectures = (read_json(folder / "config.json") or {}).get("architectures") or []
    if any(str(a).endswith("ForCausalLM") for a in architectures):
        return "text-generation"
    return None


def _usage_lines(model_id: str, merge_config: MergeConfiguration) -> list[str]:
    lines = [
        "```python",
        "from transformers import AutoModelForCausalLM, AutoTokenizer",
        "",
        f'model_id = "{model_id}"',
        "tokenizer = AutoTokenizer.from_pretrained(model_id)",
        'model = AutoModelForCausalLM.from_pretrained(model_id, dtype="auto")',
        "```",
    ]
    declaration = declaration_of(merge_config.merge_method)
    if declaration is not None and declaration.decoding_note:
        lines += ["", declaration.decoding_note]
    return lines


def _citation_lines(paper: Paper | None) -> list[str]:
    if paper is None:
        return []
    return ["## Citation", "", "```bibtex", paper.bibtex, "```", ""]


def build_card(
    folder: Path,
    *,
    hub_ids: dict[str, str] | None = None,
    report: bool = False,
    model_id: str | None = None,
    lookup: bool = True,
) -> ModelCard:
    """The card of the merged ``folder`` (not written; see ``write_card``).

    ``hub_ids`` maps local input paths (as written in the merge config, or any path to the
    same folder) to the Hub ids they stand for. ``model_id`` is how the usage snippet loads
    the model (default: the folder's path). ``lookup=False`` never asks the Hub about
    inputs' cards. ``report=True`` adds the weight-level section (runs ``analyze``).
    """
    folder = Path(folder)
    hub_ids = dict(hub_ids or {})
    for path, repo_id in hub_ids.items():
        check_repo_id(repo_id, what=f"hub id for {path}")
    unfinished = check_finished(folder)
    if unfinished:
        raise CardInputError(f"{folder}: " + unfinished[0])
    merge_config, config_text = read_merge_config(folder)
    method = merge_config.merge_method
    declaration = declaration_of(method)
    paper = declaration.paper if declaration is not None else None
    defaults = method_defaults(method) if declaration is not None else {}
    inputs = describe_inputs(merge_config, hub_ids)
    reader = CardReader(lookup=lookup)
    facts = [reader.facts(model.location) for model in inputs]
    licensing = decide_license(inputs, facts)
    _, summary = check_weights(folder)
    config_model, origin_lines = file_origins(merge_config, inputs, folder)
    donor_facts = facts[inputs.index(config_model)] if config_model in inputs else None

    hub_inputs = [m.location.hub_id for m in inputs] + [m.lora.hub_id for m in inputs if m.lora]
    base_model = list(dict.fromkeys(h for h in hub_inputs if h))
    tags = ["mergekit", "merge", method] + ([paper.tag] if paper else [])
    data = ModelCardData(
        base_model=base_model or None,
        base_model_relation="merge" if base_model else None,
        library_name="transformers",
        license=licensing.license,
        license_name=licensing.license_name,
        license_link=licensing.license_link,
        pipeline_tag=_pipeline_tag(folder, donor_facts),
        tags=list(dict.fromkeys(tags)),
    )
    name = _short(model_id) if model_id else folder.resolve().name
    evaluation = card_evaluation(folder)  # FOLDER/evaluation.json, written by `evaluate`
    if evaluation.eval_results:
        data.eval_results, data.model_name = evaluation.eval_results, name
    local_only = [m.name for m in inputs if m.location.hub_id is None]
    # Recorded by folder name, like everything else on the card: no local path is published.
    recorded = {folder_name(path): repo_id for path, repo_id in hub_ids.items()}
    body = [
        f"{CARD_MARKER} {__version__}; rewrite it with `mergekit-weightlevel card FOLDER` -->",
        *([HUB_IDS_LINE + json.dumps(recorded, ensure_ascii=False) + " -->"] if hub_ids else []),
        f"# {name}",
        "",
        summary_sentence(merge_config, inputs, defaults),
        "",
    ]
    if paper is not None:
        body += [
            f"Made without training by the `{method}` merge method of mergekit-weightlevel "
            f"(a plugin of [mergekit]({PROJECT_URL})), after [{paper.title}]({paper.url}) "
            f"(arXiv {paper.arxiv_id}).",
            "",
        ]
    body += ["## Inputs", "", *_inputs_table(inputs, per_slice=_has_slices(merge_config)), ""]
    if local_only:
        body += [
            "Not on the Hub (or not named as such): " + ", ".join(f"`{n}`" for n in local_only)
            + "; `mergekit-weightlevel card FOLDER --hub-id PATH=org/name` lists them in "
            "`base_model`.",
            "",
        ]  # fmt: skip
    parameters = _parameters_table(merge_config, defaults)
    if parameters:
        body += ["## Parameters", "", *parameters, ""]
    body += ["## Files", "", *_weights_lines(summary, folder), *origin_lines, ""]
    body += ["## How to use", "", *_usage_lines(model_id or name, merge_config), ""]
    body += ["## License", "", licensing.explanation, ""]
    if report:
        from mergekit_weightlevel.publishing.report_section import weight_level_section

        body += [weight_level_section(folder, inputs), ""]
    body += evaluation.section
    names = shown_names(config_text, inputs, hub_ids)
    shown = "local folders by their names, " if names else ""
    body += [
        "## Configuration",
        "",
        f"The mergekit YAML that produced this model ({shown}inputs with a Hub id by that id; "
        f"`{CONFIG_FILE}` beside the weights has it as written):" if names else
        "The mergekit YAML that produced this model:",
        "",
        "```yaml",
        config_text.rstrip("\n"),
        "```",
        "",
        *_citation_lines(paper),
    ]  # fmt: skip
    text = "---\n" + data.to_yaml() + "\n---\n\n" + hide_local_paths("\n".join(body), names)
    return ModelCard(text, ignore_metadata_errors=False)


def base_model_note(folder: Path, card_text: str) -> str | None:
    """What to say when the card (ours) lists no ``base_model``: every input is a local folder
    with no Hub id, so the Hub's model tree will not link the model to its parents."""
    card = ModelCard(card_text)
    if CARD_MARKER not in card_text or card.data.base_model:
        return None
    merge_config, _ = read_merge_config(Path(folder))
    local = [i.location.path for i in describe_inputs(merge_config, {}) if not i.location.hub_id]
    options = " ".join(f"--hub-id {path}=org/name" for path in local)
    return (
        "the card's base_model is empty: every input is a local folder, so the Hub's model "
        "tree will not link this model to the models it was merged from. Name the Hub id "
        f"each input stands for: {options}"
    )


def _input_paths_of(recorded: dict[str, str], folder: Path) -> dict[str, str]:
    """A card's recorded Hub ids, keyed by the folder names it shows, as the paths of the
    folder's inputs that have those names (an older card's recorded paths stay as they are)."""
    try:
        merge_config, _ = read_merge_config(folder)
    except CardInputError:
        return recorded  # build_card says what is wrong with the folder
    paths = [i.location.path for i in describe_inputs(merge_config, {})]
    mapped = {p: recorded[folder_name(p)] for p in paths if folder_name(p) in recorded}
    return {**{k: v for k, v in recorded.items() if "/" in k}, **mapped}


def write_card(
    folder: Path,
    *,
    hub_ids: dict[str, str] | None = None,
    report: bool = False,
    model_id: str | None = None,
    lookup: bool = True,
) -> Path:
    """Build the card of ``folder`` and write it to ``folder/README.md``; return that path.

    The ``hub_ids`` a previous card of ours recorded are kept (``hub_ids`` given here win),
    so ``card FOLDER --hub-id ...`` followed by ``publish FOLDER REPO`` keeps the mapping.
    """
    path = Path(folder) / "README.md"
    keep_users_card(Path(folder))
    previous = recorded_hub_ids(path.read_text(encoding="utf-8")) if path.is_file() else {}
    hub_ids = {**_input_paths_of(previous, Path(folder)), **(hub_ids or {})}
    card = build_card(folder, hub_ids=hub_ids, report=report, model_id=model_id, lookup=lookup)
    temporary = path.with_name(".README.md.tmp")
    temporary.write_text(str(card), encoding="utf-8")
    os.replace(temporary, path)  # never a half-written card, even if interrupted
    write_benchmark_files(folder, card_evaluation(folder))  # .eval_results/, Hub benchmarks only
    return path

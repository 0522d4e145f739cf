"""What a merged folder was made from: its merge config, its inputs and their roles, their cards.

Everything here works offline for local inputs. Inputs that are Hugging Face ids are looked up
on the Hub (license and pipeline tag of their card) only when the Hub may be reachable, with a
short timeout; the first transport failure stops further look-ups, so an offline machine
loses seconds at most.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from mergekit.common import ModelReference
from mergekit.config import MergeConfiguration

from mergekit_weightlevel.checks.hub import hub_offline
from mergekit_weightlevel.errors import WeightLevelError
from mergekit_weightlevel.methods.base import ROLE_TARGET
from mergekit_weightlevel.methods.declaration import OTHER, TARGET, MethodDeclaration, Role
from mergekit_weightlevel.methods.output_files import model_entries, models_in_order
from mergekit_weightlevel.registry import declaration_of

CONFIG_FILE = "mergekit_config.yml"
#: Seconds one Hub look-up of an input's card may take.
LOOKUP_TIMEOUT_S = 5.0


class CardInputError(WeightLevelError, ValueError):
    """The merged folder or the command line does not say what the card needs."""


def read_merge_config(folder: Path) -> tuple[MergeConfiguration, str]:
    """The folder's ``mergekit_config.yml``: parsed, and its verbatim text."""
    path = folder / CONFIG_FILE
    if not path.is_file():
        raise CardInputError(
            f"{path} is missing: the card is built from the YAML mergekit-yaml writes next to "
            "the weights. Point at the folder mergekit-yaml wrote (or copy the merge's YAML "
            f"there as {CONFIG_FILE})."
        )
    text = path.read_text(encoding="utf-8")
    try:
        return MergeConfiguration.model_validate(yaml.safe_load(text)), text
    except Exception as error:  # yaml or pydantic: either way the file is not a merge config
        raise CardInputError(f"{path} is not a valid mergekit config: {error}") from None


def parse_hub_ids(pairs: Iterable[str]) -> dict[str, str]:
    """``PATH=org/name`` strings (the CLI's ``--hub-id``) as a mapping, each id validated."""
    mapping = {}
    for pair in pairs:
        path, sep, repo_id = pair.rpartition("=")
        if not sep or not path or not repo_id:
            raise CardInputError(
                f"--hub-id {pair!r}: expected PATH=org/name (the local input's path as in the "
                "merge config, then the Hub id it was downloaded from)"
            )
        check_repo_id(repo_id, what=f"--hub-id {pair!r}")
        mapping[path] = repo_id
    return mapping


def check_repo_id(repo_id: str, *, what: str) -> None:
    """Raise ``CardInputError`` unless ``repo_id`` is a valid Hub model id (``org/name``)."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        raise CardInputError(f"{what}: {repo_id!r} is not a valid Hub id ({error})") from None


def _looks_like_repo_id(path: str) -> bool:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if path.startswith(("/", "~", ".")) or path.count("/") > 1 or "\\" in path:
        return False
    try:
        validate_repo_id(path)
    except HFValidationError:
        return False
    return True


def _hub_id_from_cache_layout(local: Path) -> str | None:
    """``org/name`` for a folder inside the Hugging Face cache (``models--org--name/snapshots/…``)."""
    for part in local.parts:
        if part.startswith("models--"):
            return part[len("models--") :].replace("--", "/")
    return None


@dataclass(frozen=True)
class ModelLocation:
    """Where one model path of the config is: a local folder, a Hub id, or both."""

    path: str  # as written in the merge config
    hub_id: str | None
    local_path: Path | None

    @property
    def name(self) -> str:
        """What the card calls it: the Hub id, else the folder's name."""
        if self.hub_id:
            return self.hub_id
        return Path(self.path.rstrip("/")).name or self.path

    def markdown(self) -> str:
        if self.hub_id:
            return f"[{self.hub_id}](https://huggingface.co/{self.hub_id})"
        return f"`{self.name}` (local folder)"


def _same_folder(a: Path, b: Path) -> bool:
    return a.exists() and a.resolve() == b.resolve()


def locate(path: str, hub_ids: dict[str, str]) -> ModelLocation:
    """Classify ``path`` without network: local folder (maybe mapped to a Hub id) or Hub id."""
    mapped = hub_ids.get(path)
    local = Path(path).expanduser()
    if mapped is None and local.exists():
        # The same folder written another way (relative, with a trailing slash, a symlink...).
        same = [v for k, v in hub_ids.items() if _same_folder(Path(k).expanduser(), local)]
        mapped = same[0] if same else None
    if local.exists():
        resolved = local.resolve()
        return ModelLocation(path, mapped or _hub_id_from_cache_layout(resolved), resolved)
    if mapped is None and _looks_like_repo_id(path):
        mapped = path
    return ModelLocation(path, mapped, None)


@dataclass(frozen=True)
class InputModel:
    """One input of the merge, in the method's terms."""

    reference: str  # the model as mergekit names it (`path`, `path@revision`, `model+adapter`)
    symbol: str  # e.g. "Θ_post", "W_B", "Thinking"
    role: str  # a few words: what the input is to the method
    location: ModelLocation
    lora: ModelLocation | None = None  # `model+adapter` in the config
    parameters: dict[str, Any] = field(default_factory=dict)
    #: base, target (`role: target`), other, or parameter (an input named by a parameter)
    kind: str = "other"

    @property
    def name(self) -> str:
        return self.location.name + (f" + {self.lora.name}" if self.lora else "")

    def markdown(self) -> str:
        text = self.location.markdown()
        return text + (f" + LoRA {self.lora.markdown()}" if self.lora else "")


def _reference_location(
    reference: ModelReference, hub_ids: dict[str, str]
) -> tuple[ModelLocation, ModelLocation | None]:
    model = locate(reference.model.path, hub_ids)
    lora = locate(reference.lora.path, hub_ids) if reference.lora is not None else None
    return model, lora


def describe_inputs(merge_config: MergeConfiguration, hub_ids: dict[str, str]) -> list[InputModel]:
    """The inputs in the order the config names them (the base first), in the method's terms
    (its declaration's roles; plain "input" for mergekit's own methods)."""
    declaration = declaration_of(merge_config.merge_method)
    parameters: dict[str, dict[str, Any]] = {}
    for model, model_parameters in model_entries(merge_config):
        parameters.setdefault(str(model), model_parameters)
    inputs: list[InputModel] = []
    for reference in models_in_order(merge_config):
        given = parameters.get(str(reference), {})
        if reference == merge_config.base_model:
            kind = "base"
        else:
            kind = TARGET if given.get("role") == ROLE_TARGET else OTHER
        role = _role(declaration, kind)
        symbol, description = (
            (role.symbol, role.description)
            if role is not None
            else ("input", "base_model" if kind == "base" else "merged model")
        )
        model, lora = _reference_location(reference, hub_ids)
        inputs.append(InputModel(str(reference), symbol, description, model, lora, given, kind))
    extra = declaration.roles.parameter_input if declaration is not None else None
    if extra is not None:
        parameter, role = extra
        value = (merge_config.parameters or {}).get(parameter)
        if isinstance(value, str):
            located = locate(value, hub_ids)
            inputs.append(
                InputModel(value, role.symbol, role.description, located, kind="parameter")
            )
    return inputs


def _role(declaration: MethodDeclaration | None, kind: str) -> Role | None:
    """The declared role of an input of this kind (a method without a target calls a
    `role: target` model like its other inputs)."""
    if declaration is None:
        return None
    roles = declaration.roles
    if kind == "base":
        return roles.base
    if kind == TARGET and roles.target is not None:
        return roles.target
    return roles.other


@dataclass(frozen=True)
class CardFacts:
    """What an input's own card says that ours needs (None: not said or not readable)."""

    license: str | None = None
    license_name: str | None = None
    license_link: str | None = None
    pipeline_tag: str | None = None
    readable: bool = False
    why_unreadable: str | None = None

    @property
    def license_key(self) -> tuple[str | None, str | None, str | None] | None:
        if self.license is None:
            return None
        return (self.license, self.license_name, self.license_link)


def _facts_from_metadata(metadata: dict[str, Any]) -> CardFacts:
    def text(key: str) -> str | None:
        value = metadata.get(key)
        return str(value) if isinstance(value, (str, int, float)) else None

    return CardFacts(
        license=text("license"),
        license_name=text("license_name"),
        license_link=text("license_link"),
        pipeline_tag=text("pipeline_tag"),
        readable=True,
    )


def _local_card_facts(folder: Path) -> CardFacts | None:
    readme = folder / "README.md"
    if not readme.is_file():
        return None
    from huggingface_hub import metadata_load

    try:
        return _facts_from_metadata(metadata_load(readme) or {})
    except Exception as error:  # noqa: BLE001 - a broken input card only loses its facts
        return CardFacts(why_unreadable=f"its README.md has no valid front matter ({error})")


class CardReader:
    """Reads the inputs' cards: local README.md first, then the Hub (once reachable)."""

    def __init__(self, *, lookup: bool = True) -> None:
        self.lookup = lookup and not hub_offline()
        self._hub_down: str | None = None if self.lookup else "Hub look-ups are off (offline)"

    def facts(self, location: ModelLocation) -> CardFacts:
        if location.local_path is not None:
            local = _local_card_facts(location.local_path)
            if local is not None or location.hub_id is None:
                return local or CardFacts(why_unreadable="its folder has no README.md")
        if location.hub_id is None:
            return CardFacts(why_unreadable="not found locally and not a Hub id")
        cached = self._cached_card(location.hub_id)
        if cached is not None:
            return cached
        if self._hub_down is not None:
            return CardFacts(why_unreadable=self._hub_down)
        return self._hub_facts(location.hub_id)

    @staticmethod
    def _cached_card(repo_id: str) -> CardFacts | None:
        from huggingface_hub import try_to_load_from_cache

        try:
            path = try_to_load_from_cache(repo_id, "README.md")
        except Exception:  # noqa: BLE001 - no cache entry is the same as none
            return None
        return _local_card_facts(Path(path).parent) if isinstance(path, str) else None

    def _hub_facts(self, repo_id: str) -> CardFacts:
        from huggingface_hub import HfApi
        from huggingface_hub.errors import HfHubHTTPError

        try:
            info = HfApi().model_info(repo_id, timeout=LOOKUP_TIMEOUT_S)
        except HfHubHTTPError as error:
            status = error.response.status_code if error.response is not None else "?"
            return CardFacts(why_unreadable=f"the Hub refused its card (HTTP {status})")
        except Exception as error:  # noqa: BLE001 - any transport error: the Hub is unreachable
            self._hub_down = f"the Hub could not be reached ({type(error).__name__})"
            return CardFacts(why_unreadable=self._hub_down)
        card = info.card_data.to_dict() if info.card_data is not None else {}
        facts = _facts_from_metadata(card)
        if facts.pipeline_tag is None and info.pipeline_tag:
            facts = CardFacts(**{**facts.__dict__, "pipeline_tag": info.pipeline_tag})
        return facts


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


# ------------------------------------------------------------ no local path on a published card


def folder_name(path: str) -> str:
    """A local path as the card names it: its last component."""
    return Path(path.rstrip("/")).name or path


def _looks_local(path: str) -> bool:
    """A path on some disk, here or where the merge ran: never a Hub id (`org/name`)."""
    return (
        path.startswith(("/", "~", "./", "../"))
        or path.count("/") > 1
        or "\\" in path
        or Path(path).expanduser().exists()
    )


def _strings(node: Any) -> Iterable[str]:
    """Every string in a parsed YAML document."""
    if isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)
    elif isinstance(node, str):
        yield node


def shown_names(
    config_text: str, inputs: list[InputModel], hub_ids: dict[str, str]
) -> dict[str, str]:
    """Every local path the card could show → what it shows instead: the Hub id the input
    stands for (``--hub-id``, the cache layout), else the folder's name.

    The inputs (as written and resolved), and any other local path in the merge's YAML (a
    `tokenizer` source, say). Two different folders of one name are told apart by their
    parent (``…/a/model``, ``…/b/model``).
    """
    locations = [m.location for m in inputs] + [m.lora for m in inputs if m.lora]
    found: dict[str, ModelLocation] = {}
    for location in locations:
        if location.local_path is not None or _looks_local(location.path):
            found[location.path] = location
            if location.local_path is not None:
                found[str(location.local_path)] = location
    try:
        parsed = yaml.safe_load(config_text)
    except yaml.YAMLError:
        parsed = None
    for text in _strings(parsed):
        for part in text.split("+"):
            path = part.split("@")[0] if not Path(part).expanduser().exists() else part
            if path and path not in found and _looks_local(path):
                found[path] = locate(path, hub_ids)
    targets: dict[str, set[Path]] = {}
    for path, location in found.items():
        if location.hub_id is None:
            targets.setdefault(location.name, set()).add(Path(path).expanduser().resolve())
    names = {}
    for path, location in found.items():
        name = location.name
        if location.hub_id is None and len(targets[name]) > 1:
            name = f"…/{Path(path).expanduser().resolve().parent.name}/{name}"
        if name != path:
            names[path] = name
    return names


def hide_local_paths(text: str, names: dict[str, str]) -> str:
    """``text`` with each local path of ``names`` replaced by its shown name (whole paths
    only: ``/m/base`` is not replaced inside ``/m/base_v2``)."""
    for path in sorted(names, key=len, reverse=True):
        pattern = rf"(?<![\w.~/-]){re.escape(path.rstrip('/'))}/?(?![\w.~/-])"
        text = re.sub(pattern, lambda _match, path=path: names[path], text)
    return text

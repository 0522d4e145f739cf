"""How models are named in reports: as the user named them, Hub ids where known.

A label is the model string as given (a Hub id, a local folder, ``model+adapter``). The
display name is what a reader sees: a name the caller chose (``names=`` / ``--names``),
else the label itself, except that a folder inside the Hugging Face cache
(``…/models--org--name/snapshots/<hash>``) is shown as its Hub id ``org/name``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from mergekit_weightlevel.analyze.options import OptionError

#: ``org/name`` as the Hub spells repository ids.
HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9._-]+$")
#: A snapshot folder of the Hugging Face cache.
HUB_CACHE_FOLDER = re.compile(r"models--([^/\\]+?)--([^/\\]+)[/\\]snapshots[/\\]")

#: What ``names=`` accepts: one name per model in order, or {label: name} for some of them.
DisplayNames = Mapping[str, str] | Sequence[str] | None


def hub_id(label: str) -> str | None:
    """The Hub repository id behind ``label`` when it is one (or a cache folder of one)."""
    cached = HUB_CACHE_FOLDER.search(label)
    if cached:
        return f"{cached.group(1)}/{cached.group(2)}"
    if HUB_ID.match(label) and not Path(label).exists():
        return label
    return None


def display_names(models: Sequence[str], names: DisplayNames = None) -> dict[str, str]:
    """{label: display name} for every model; ``names`` overrides (see the module docstring)."""
    if names is None:
        chosen: dict[str, str] = {}
    elif isinstance(names, Mapping):
        unknown = [label for label in names if label not in models]
        if unknown:
            raise OptionError(
                f"analyze: display names given for {', '.join(map(repr, unknown))}, which are not "
                f"among the models ({', '.join(map(repr, models))}); key them by the model as given"
            )
        chosen = dict(names)
    else:
        if isinstance(names, str) or len(names) != len(models):
            count = 1 if isinstance(names, str) else len(names)
            raise OptionError(
                f"analyze: {count} display name(s) for {len(models)} models; give one name per "
                "model, in the order of the models (e.g. --names Base,Instruct)"
            )
        chosen = dict(zip(models, names))
    result = {}
    for label in models:
        given = chosen.get(label)
        result[label] = given.strip() if given and given.strip() else _default_name(label)
    return result


def _default_name(label: str) -> str:
    parts = label.split("+")
    return "+".join(hub_id(part) or part for part in parts)


def short_labels(labels: list[str]) -> list[str]:
    """Folder names (``org/Model`` → ``Model``) where they tell the models apart, else the labels."""
    short = [Path(label.rstrip("/")).name or label for label in labels]
    return short if len(set(short)) == len(short) else list(labels)


def slug(label: str) -> str:
    """A file-name-safe short form of a label (plot file names)."""
    tail = Path(label.split("+")[0].rstrip("/")).name or label
    return re.sub(r"[^A-Za-z0-9._-]+", "_", tail)[:60]

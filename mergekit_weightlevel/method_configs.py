"""The standard config of each merge method, as the plain dict that mergekit's
``MergeConfiguration.model_validate`` (and ``mergekit-yaml``, once dumped) accepts.

One builder per method, with the parameter names of its spec (``methods/``): the demo, the
toy, the sweep runner, the benchmarks and the tests build their configs here instead of
writing the dicts out. Keys come in the order a hand-written config has them (the demo writes
these dicts as its YAML files): ``merge_method``, ``base_model``, ``models``, ``parameters``,
``dtype``; ``parameters`` and ``dtype`` only when given.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

Config = dict[str, Any]
PathLike = str | Path
#: One post-trained model, or several with their weights: ``[(path, weight), ...]``.
Donors = PathLike | Sequence[tuple[PathLike, float]]


def _config(
    method: str,
    base_model: PathLike | None,
    models: list[dict[str, Any]],
    parameters: dict[str, Any] | None,
    dtype: str | None,
) -> Config:
    config: Config = {"merge_method": method}
    if base_model is not None:
        config["base_model"] = str(base_model)
    config["models"] = models
    if parameters is not None:
        config["parameters"] = parameters
    if dtype is not None:
        config["dtype"] = dtype
    return config


def _model(path: PathLike, **parameters: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"model": str(path)}
    if parameters:
        entry["parameters"] = parameters
    return entry


def _with_lambda(lam: float | None, parameters: dict[str, Any] | None) -> dict[str, Any] | None:
    """``lambda`` first, then the other parameters; None when there are none at all."""
    if lam is None:
        return None if parameters is None else dict(parameters)
    return {"lambda": lam, **(parameters or {})}


def _donors(donors: Donors) -> list[dict[str, Any]]:
    """One model entry (no parameters), or one ``weight``-ed entry per (path, weight)."""
    if isinstance(donors, (str, Path)):
        return [_model(donors)]
    return [_model(path, weight=weight) for path, weight in donors]


def paramdelta_config(
    base: PathLike,
    post_trained: Donors,
    new_base: PathLike,
    *,
    parameters: dict[str, Any] | None = None,
    dtype: str | None = None,
) -> Config:
    """ParamΔ: ``new_base + Σ w·(post_trained − base)``; the new base is the ``role: target``.

    ``post_trained`` is one model (weight 1) or ``[(path, weight), ...]``."""
    models = [*_donors(post_trained), _model(new_base, role="target")]
    return _config("paramdelta", base, models, parameters, dtype)


def shadow_graft_config(
    base: PathLike,
    tuned: Donors,
    target: PathLike,
    *,
    parameters: dict[str, Any] | None = None,
    dtype: str | None = None,
) -> Config:
    """Shadow-FT: ``target + Σ w·(tuned − base)`` on the projections; ``target`` has the role.

    ``tuned`` is one model (weight 1) or ``[(path, weight), ...]``."""
    models = [*_donors(tuned), _model(target, role="target")]
    return _config("shadow_graft", base, models, parameters, dtype)


def shadow_graft_adapter_config(
    adapter: PathLike,
    target: PathLike,
    *,
    base: PathLike | None = None,
    parameters: dict[str, Any] | None = None,
    dtype: str | None = None,
) -> Config:
    """Shadow-FT with a PEFT LoRA adapter trained on the base: ``target + (α/r)·B@A``.

    ``base_model`` is optional on this route (the adapter names its base)."""
    models = [_model(target, role="target")]
    return _config(
        "shadow_graft", base, models, {"adapter": str(adapter), **(parameters or {})}, dtype
    )


def interp_config(
    instruct: PathLike,
    thinking: PathLike,
    lam: float | None = None,
    *,
    parameters: dict[str, Any] | None = None,
    dtype: str | None = None,
) -> Config:
    """Instruct-Thinking interpolation: ``λ·thinking + (1 − λ)·instruct``; the instruct
    model is the base model."""
    models = [_model(thinking)]
    return _config(
        "instruct_thinking_interp", instruct, models, _with_lambda(lam, parameters), dtype
    )


def timber_config(
    base: PathLike,
    instruct: PathLike,
    lam: float | None = None,
    *,
    parameters: dict[str, Any] | None = None,
    dtype: str | None = None,
) -> Config:
    """Timber: ``base`` + the top-⌈eRank⌉ directions of ``instruct − base`` + λ × the rest.

    ``parameters`` are the other ``timber_spectral`` parameters (``scope``,
    ``erank_exponent``, ``solver``, ...); a sweep leaves ``lam`` out and sets λ per run."""
    models = [_model(instruct)]
    return _config("timber_spectral", base, models, _with_lambda(lam, parameters), dtype)


def donor_entries(config: Config) -> list[dict[str, Any]]:
    """The config's donor entries: every model (or slice source) but the base and the model
    with ``role: target``."""
    entries = list(config.get("models") or [])
    for output_slice in config.get("slices") or []:
        entries += list(output_slice.get("sources") or [])
    base = str(config.get("base_model"))
    return [
        entry
        for entry in entries
        if str(entry.get("model")) != base
        and (entry.get("parameters") or {}).get("role") != "target"
    ]


def with_value(config: Config, parameter: str, value: float, *, per_donor: bool) -> Config:
    """A copy of ``config`` with ``parameter`` set to ``value``: in the top-level
    ``parameters`` (a shared parameter), or on every donor entry (``per_donor``)."""
    updated = copy.deepcopy(config)
    if not per_donor:
        updated["parameters"] = {**(updated.get("parameters") or {}), parameter: value}
        return updated
    for entry in donor_entries(updated):
        entry["parameters"] = {**(entry.get("parameters") or {}), parameter: value}
    return updated

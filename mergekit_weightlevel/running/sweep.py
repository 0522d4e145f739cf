"""Sweeps: one merge config at several values of one parameter, in one pass over the inputs.

    mergekit-weightlevel sweep CONFIG OUT_PREFIX --values 0.2,0.4,0.5 [--parameter NAME]

The method is the config's ``merge_method``; the parameter is the method's declared sweep
axis (``MethodDeclaration.sweep``: λ for Timber and the interpolation, the donors'
``weight`` for ParamΔ and Shadow-FT; a per-model axis takes each value on every donor),
or any other numeric parameter of the method given with ``--parameter``. Output ``i`` is
``OUT_PREFIX-<parameter><value>`` (``out/interp-lambda0.45``) and equals the merge of the
config with that value on its own: every value goes through the method's ordinary kernel,
in one pass that reads each tensor once (``one_pass``); Timber decomposes each tensor once
for all its λ. Each value is validated by the method's own parameter type, before any
tensor is read.

What grows with the number of values V: disk, V outputs; memory, one tensor's V outputs
at a time (mergekit's schedule takes one tensor name at a time), beside its inputs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from mergekit.config import MergeConfiguration
from mergekit.merge_methods.base import ParameterScope, ParameterSpec
from mergekit.options import MergeOptions
from pydantic import ValidationError

from mergekit_weightlevel.checks.parameter_types import describe_type, is_numeric
from mergekit_weightlevel.checks.parameters import TOP_LEVEL, check_parameters, parameter_blocks
from mergekit_weightlevel.errors import WeightLevelConfigError, WeightLevelError
from mergekit_weightlevel.method_configs import donor_entries, timber_config, with_value
from mergekit_weightlevel.methods.base import ROLE_TARGET, WeightLevelMethod
from mergekit_weightlevel.methods.declaration import OTHER, TARGET
from mergekit_weightlevel.methods.merge_run import merge_run
from mergekit_weightlevel.methods.output_files import model_entries, models_in_order
from mergekit_weightlevel.methods.sweep_share import SweepShare
from mergekit_weightlevel.methods.timber.declaration import NAME as TIMBER
from mergekit_weightlevel.numerics.threads import policy_for
from mergekit_weightlevel.registry import METHOD_NAMES, method_of

if TYPE_CHECKING:  # the [eval] extra: imported only by evaluated sweeps
    from mergekit_weightlevel.evaluation.sweep import PreparedSweepEvaluation, SweepEvaluation

Config = dict[str, Any]


@dataclass(frozen=True)
class SweepRequest:
    """A sweep, checked: the method, the parameter, and one config and folder per value."""

    method: WeightLevelMethod
    parameter: str
    values: tuple[float, ...]
    configs: tuple[Config, ...]
    out_dirs: tuple[Path, ...]


@dataclass(frozen=True)
class SweptOutput:
    """One value's output: its folder, and why it was not written (None: it was)."""

    value: float
    folder: Path
    error: str | None = None
    reused: bool = False  # written by an earlier run of the same sweep, kept as it was


def sweep_out_dirs(
    prefix: str | Path, values: Sequence[float], parameter: str = "lambda"
) -> list[Path]:
    """``PREFIX-lambda0.2``-style folder names, one per value."""
    return [Path(f"{prefix}-{parameter}{float(value):g}") for value in values]


def _method(config: Config) -> WeightLevelMethod:
    name = config.get("merge_method")
    method = method_of(name)
    if method is None:
        raise WeightLevelConfigError(
            f"sweep: the config's merge_method is {name!r}; a sweep runs one of "
            f"{', '.join(METHOD_NAMES)}."
        )
    return method


def sweep_parameter(method: WeightLevelMethod, parameter: str | None) -> ParameterSpec:
    """The parameter a sweep varies: ``parameter``, or the method's declared axis."""
    name = parameter or method.declaration.sweep.parameter
    numeric = [p.name for p in method.spec.parameters if is_numeric(p.value_type)]
    spec = next((p for p in method.spec.parameters if p.name == name), None)
    if spec is None or name not in numeric:
        raise WeightLevelConfigError(
            f"{method.spec.name} sweep: `{name}` is not a numeric parameter of the method; "
            f"it can sweep {', '.join(f'`{n}`' for n in numeric)} "
            f"(default: `{method.declaration.sweep.parameter}`)."
        )
    return spec


def _check_not_set_per_tensor(config: Config, spec: ParameterSpec, method: str) -> None:
    """A sweep sets the parameter itself, for every tensor: refuse a config that sets it
    where that would win (a slice, a module, filters or a layer gradient)."""
    parsed = MergeConfiguration.model_validate(config)
    for where, block in parameter_blocks(parsed):
        setting = block.get(spec.name)
        if setting is None:
            continue
        per_model = where.startswith("the parameters of model ") and "slice" not in where
        per_donor_axis = spec.scope != ParameterScope.SHARED
        plain = isinstance(setting, (int, float)) and not isinstance(setting, bool)
        if plain and (where == TOP_LEVEL or (per_model and per_donor_axis)):
            continue  # replaced by each value
        how = "per tensor (filters or a layer gradient)" if not plain else "below the top level"
        raise WeightLevelConfigError(
            f"{method} sweep: the config sets `{spec.name}` {how} in {where}, but a sweep "
            f"sets `{spec.name}` itself, one value for every tensor. Remove it from there."
        )


def _with_value(config: Config, spec: ParameterSpec, value: float, method: str) -> Config:
    """The config with ``spec`` set to ``value``: top level (shared), or on every donor."""
    per_donor = spec.scope != ParameterScope.SHARED
    if per_donor and not donor_entries(config):
        raise WeightLevelConfigError(
            f"{method} sweep: `{spec.name}` is set per donor model, and this config has no "
            "donor (every model is the base or has `role: target`). Sweep a shared "
            "parameter with `--parameter` (e.g. `adapter_weight` for an adapter graft)."
        )
    return with_value(config, spec.name, value, per_donor=per_donor)


def read_config(path: str | Path) -> Config:
    """A mergekit YAML file as a mapping, or one line saying why it is not one."""
    try:
        config = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise WeightLevelConfigError(f"{path} is not valid YAML: {error}") from None
    if not isinstance(config, dict):
        found = "nothing" if config is None else f"a YAML {type(config).__name__}"
        raise WeightLevelConfigError(
            f"{path} is not a mergekit config: it holds {found}, not a mapping with "
            "`merge_method:` and `models:`."
        )
    return config


def plan_sweep(
    config: str | Path | Config,
    values: Sequence[float] | None = None,
    *,
    out_prefix: str | Path | None = None,
    out_dirs: Sequence[str | Path] | None = None,
    parameter: str | None = None,
) -> SweepRequest:
    """Check a sweep and build its per-value configs, before anything is read or written.

    ``values`` default to the method's declared grid; the folders to ``sweep_out_dirs``
    of ``out_prefix`` (or ``out_dirs``, one per value).
    """
    if isinstance(config, (str, Path)):
        config = read_config(config)
    method = _method(config)
    name = method.spec.name
    spec = sweep_parameter(method, parameter)
    values = tuple(float(v) for v in (method.declaration.sweep.grid if values is None else values))
    if not values:
        raise WeightLevelConfigError(f"{name} sweep: give at least one value (`--values`).")
    if len(set(values)) != len(values):
        raise WeightLevelConfigError(f"{name} sweep: values repeat: {list(values)}.")
    if not all(math.isfinite(value) for value in values):
        raise WeightLevelConfigError(
            f"{name} sweep: values must be finite numbers, not {list(values)}."
        )
    if out_dirs is None:
        if out_prefix is None:
            raise WeightLevelConfigError(f"{name} sweep: give an output prefix.")
        out_dirs = sweep_out_dirs(out_prefix, values, spec.name)
    folders = tuple(Path(d).resolve() for d in out_dirs)
    if len(folders) != len(values):
        raise WeightLevelConfigError(
            f"{name} sweep: {len(values)} values but {len(folders)} output folders."
        )
    if len(set(folders)) != len(folders):
        raise WeightLevelConfigError(f"{name} sweep: output folders repeat.")
    for folder in folders:
        if folder.exists() and not folder.is_dir():
            raise WeightLevelConfigError(
                f"{name} sweep: {folder} exists and is not a folder: move it away, or choose "
                "another output prefix."
            )
    _check_not_set_per_tensor(config, spec, name)
    method.check_config_structure(MergeConfiguration.model_validate(config))  # roles first
    _check_values(values, spec, name)
    configs = tuple(_with_value(config, spec, value, name) for value in values)
    check_parameters(MergeConfiguration.model_validate(configs[0]), method)
    return SweepRequest(method, spec.name, values, configs, folders)


def _check_values(values: Sequence[float], spec: ParameterSpec, method: str) -> None:
    """Each value through the parameter's own type (its range lives there, once)."""
    bad = []
    for value in values:
        try:
            spec.validate(value)
        except ValidationError:
            bad.append(f"{value:g}")
    if bad:
        raise WeightLevelConfigError(
            f"{method} sweep: `{spec.name}` must be a {describe_type(spec.value_type)}; "
            f"not {', '.join(bad)}. Give values in range with --values."
        )


def run_sweep(
    request: SweepRequest, options: MergeOptions | None = None, *, reuse: bool = True
) -> list[SweptOutput]:
    """Merge every value of a checked sweep in one pass; one ``SweptOutput`` per value.

    A value that fails leaves the others written; its folder keeps the "incomplete" marker
    (``output_folder``) with the reason, and its ``SweptOutput.error`` says it. With
    ``reuse``, a value whose folder already holds its complete merge, written after the
    inputs last changed (``output_folder.is_current``), is not merged again.
    """
    from mergekit_weightlevel.registry import register_methods
    from mergekit_weightlevel.running import stock_merge
    from mergekit_weightlevel.running.config_checks import check_config
    from mergekit_weightlevel.running.one_pass import PlannedOutput, merge_in_one_pass

    register_methods()
    stock_merge.install()  # mergekit's helpers pick our file donors (no start-up hook ran?)
    options = options or MergeOptions()
    configs = [MergeConfiguration.model_validate(c) for c in request.configs]
    outputs = [
        PlannedOutput(
            config=parsed,
            out_path=folder,
            config_text=config_text(raw),
            label=f"{request.parameter} {value:g}",
            value=value,
        )
        for parsed, raw, folder, value in zip(
            configs, request.configs, request.out_dirs, request.values
        )
    ]
    done = finished_outputs(request) if reuse else set()
    pending = [output for output in outputs if output.out_path not in done]
    errors: dict[Path, str | None] = {}
    if pending:
        shares = request.method.sweep_shares_work_along == request.parameter
        share = SweepShare([o.value for o in pending]) if shares else None
        with merge_run() as run:
            check_config(pending[0].config, options)  # values differ in one checked parameter
            run.threads = policy_for(options.num_threads)
            outcomes = merge_in_one_pass(pending, options, share=share)
        errors = {o.out_path: outcome.message for o, outcome in zip(pending, outcomes)}
    return [
        SweptOutput(value, folder, errors.get(folder), reused=folder in done)
        for value, folder in zip(request.values, request.out_dirs)
    ]


def config_text(config: Config) -> str:
    """What a value's ``mergekit_config.yml`` records of its config."""
    return yaml.safe_dump(config, sort_keys=False)


def finished_outputs(request: SweepRequest) -> set[Path]:
    """The values' folders that already hold their complete merge, written after every
    input last changed (``output_folder.is_current``): a rerun reuses them."""
    from mergekit_weightlevel.running.output_folder import is_current

    inputs = [Path(path) if Path(path).is_dir() else None for path in input_paths(request)]
    return {
        folder
        for raw, folder in zip(request.configs, request.out_dirs)
        if is_current(folder, config_text(raw), inputs)
    }


def input_paths(request: SweepRequest) -> list[str]:
    """Every input the sweep reads, as the config names it: the models, their LoRAs, and an
    input given as a parameter (Shadow-FT's ``adapter``). Reuse dates those that are local
    folders; a Hub id cannot be dated (the Hub may hold a newer revision than the cache)."""
    from mergekit_weightlevel.checks.parameters import parameter_blocks

    config = MergeConfiguration.model_validate(request.configs[0])
    paths = []
    for reference in config.referenced_models():
        paths.append(reference.model.path)
        if reference.lora is not None:
            paths.append(reference.lora.path)
    declared = request.method.declaration.roles.parameter_input
    if declared is not None:
        for _where, block in parameter_blocks(config):
            value = block.get(declared[0])
            if isinstance(value, str):
                paths.append(str(Path(value).expanduser()))
    return list(dict.fromkeys(paths))


def sweep(
    config: str | Path | Config,
    values: Sequence[float] | None = None,
    out_prefix: str | Path | None = None,
    *,
    parameter: str | None = None,
    out_dirs: Sequence[str | Path] | None = None,
    options: MergeOptions | None = None,
) -> list[SweptOutput]:
    """``plan_sweep`` then ``run_sweep``: the Python form of ``mergekit-weightlevel sweep``."""
    request = plan_sweep(
        config, values, out_prefix=out_prefix, out_dirs=out_dirs, parameter=parameter
    )
    return run_sweep(request, options)


# --- evaluated sweeps (``sweep … --eval``: ``evaluation.sweep`` measures and chooses) ------


def axis_ends(request: SweepRequest) -> dict[str, Path]:
    """The inputs at the swept axis' ends (the method's ``SweepAxis.ends``), by name, as
    local folders: what an evaluated sweep draws as reference lines. An end that is not a
    local folder, or is a ``model+adapter``, cannot be evaluated as it is and is left out."""
    from mergekit_weightlevel.checks.headers import local_folder

    config = MergeConfiguration.model_validate(request.configs[0])
    targets = [m for m, given in model_entries(config) if given.get("role") == ROLE_TARGET]
    others = [m for m in models_in_order(config) if m != config.base_model and m not in targets]
    found = {"base": [config.base_model] if config.base_model else [], TARGET: targets}
    found[OTHER] = others
    ends = {}
    for name, kind in request.method.declaration.sweep.ends:
        model = next(iter(found[kind]), None)
        folder = local_folder(model) if model is not None and model.lora is None else None
        if folder is not None:
            ends[name] = folder
    return ends


def evaluate_swept(
    request: SweepRequest,
    outputs: Sequence[SweptOutput],
    prepared: PreparedSweepEvaluation,
    out_prefix: str | Path,
) -> SweepEvaluation:
    """Evaluate a sweep's written outputs and its axis' ends, choose a value, write
    ``OUT_PREFIX-sweep.json`` / ``.html`` (``evaluation.sweep.evaluate_prepared_sweep``)."""
    from mergekit_weightlevel.evaluation.sweep import evaluate_prepared_sweep

    written = [(output.value, output.folder) for output in outputs if output.error is None]
    if not written:
        raise SweepFailed(
            f"{request.method.spec.name} sweep: no output was written, none evaluated."
        )
    return evaluate_prepared_sweep(
        prepared, request.parameter, written, axis_ends(request), out_prefix
    )


# --- Timber's λ sweep, as it was first offered (``sweep timber``, ``timber_sweep``) ---------


class SweepFailed(WeightLevelError, RuntimeError):
    """At least one value of a sweep was not written."""


def plan_timber_sweep(
    config: str | Path | Config,
    lambdas: Sequence[float],
    *,
    out_prefix: str | Path | None = None,
    out_dirs: Sequence[str | Path] | None = None,
) -> SweepRequest:
    """``plan_sweep`` of λ, for a config that must be a Timber one."""
    if isinstance(config, (str, Path)):
        config = read_config(config)
    if config.get("merge_method") != TIMBER:
        raise WeightLevelConfigError(
            f"{TIMBER} sweep: the config's merge_method is {config.get('merge_method')!r}; "
            f"a Timber sweep needs `merge_method: {TIMBER}` (`sweep` runs any method)."
        )
    return plan_sweep(config, lambdas, out_prefix=out_prefix, out_dirs=out_dirs, parameter="lambda")


def sweep_config(
    config: str | Path | Config,
    lambdas: Sequence[float],
    out_dirs: Sequence[str | Path],
    options: MergeOptions | None = None,
) -> list[Path]:
    """Run a ``timber_spectral`` YAML config once for every λ; return the output folders.

    Raises ``SweepFailed`` after the others are written when a λ's output failed.
    """
    outputs = run_sweep(plan_timber_sweep(config, lambdas, out_dirs=out_dirs), options)
    failed = [output.error for output in outputs if output.error]
    if failed:
        raise SweepFailed("; ".join(failed))
    return [output.folder for output in outputs]


def timber_sweep(
    base: str | Path,
    instruct: str | Path,
    lambdas: Sequence[float],
    out_dirs: Sequence[str | Path],
    *,
    parameters: dict[str, Any] | None = None,
    dtype: str | None = None,
    options: MergeOptions | None = None,
) -> list[Path]:
    """Timber of ``instruct`` against ``base`` for every λ in ``lambdas``, one folder each.

    ``parameters`` are the other ``timber_spectral`` parameters (``scope``,
    ``erank_exponent``, ``solver``); ``dtype`` is mergekit's (default: the checkpoints').
    """
    config = timber_config(base, instruct, parameters=dict(parameters or {}), dtype=dtype)
    return sweep_config(config, lambdas, out_dirs, options)

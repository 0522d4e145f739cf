"""Our methods inside mergekit's own ``run_merge``, whichever command runs it.

The stock ``mergekit-yaml`` (the README's main path), ``mergekit-weightlevel merge`` and
``sweep`` all end in ``mergekit.merge.run_merge``. ``install()`` wraps it (and the two
helpers it uses to pick the donor of the non-weight files) once ``mergekit.merge`` is
loaded, so that for a config using one of this package's methods every entry point:

1. checks the whole config before any tensor is read: unknown or mistyped parameters,
   unavailable models, the checkpoints' headers (vocabulary-aware), ``config_from`` /
   ``tokenizer_from``; and warns once where the inputs' ``config.json`` disagree on a field
   that changes how the model behaves;
2. gives the output the non-weight files of the model it stands for (``output_files``),
   falling back to the next input that has a file the chosen one lacks;
3. leaves no weight file or index in the output folder that this merge did not write,
   and writes the method's model card in place of mergekit's generic one;
4. runs the kernels on the CPUs other processes leave free (``threads``).

For mergekit's own methods nothing changes, except that an unknown method name close to
one of ours gets a suggestion instead of mergekit's "Unimplemented merge method", and a
device that cannot be used (``--cuda`` without a GPU) fails before mergekit starts.
"""

from __future__ import annotations

import contextvars
import difflib
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mergekit.common import ModelReference
from mergekit.config import MergeConfiguration
from mergekit.options import MergeOptions

from mergekit_weightlevel.about import METHOD_NAMES
from mergekit_weightlevel.checks.device import check_merge_device
from mergekit_weightlevel.errors import WeightLevelConfigError, WeightLevelError
from mergekit_weightlevel.methods.output_files import (
    GENERATION_CONFIG,
    FileSources,
    config_disagreements,
    file_sources,
    first_with,
    has_tokenizer,
    models_in_order,
)
from mergekit_weightlevel.numerics import threads

LOG = logging.getLogger(__name__)

#: Names users reach for that mean one of our methods.
METHOD_ALIASES = {
    "timber": "timber_spectral",
    "shadow_ft": "shadow_graft",
    "shadowft": "shadow_graft",
    "shadow": "shadow_graft",
    "param_delta": "paramdelta",
    "paramΔ": "paramdelta",
    "mi": "instruct_thinking_interp",
    "model_interpolation": "instruct_thinking_interp",
    "thinking_interp": "instruct_thinking_interp",
}


@dataclass
class _Run:
    """What the wrapped ``run_merge`` decided for the merge in progress."""

    config: MergeConfiguration
    sources: FileSources
    tokenizer_donor: ModelReference | None = None


_current: contextvars.ContextVar[_Run | None] = contextvars.ContextVar(
    "weightlevel_run", default=None
)


def is_ours(merge_config: MergeConfiguration) -> bool:
    return merge_config.merge_method in METHOD_NAMES


def suggest_method(name: str) -> None:
    """Raise with the right name when ``name`` is not registered but means one of ours."""
    from mergekit import merge_methods

    known = {method.spec.name for method in merge_methods.registered_methods()}
    if name in known:
        return
    normal = name.strip().lower().replace("-", "_").replace(" ", "_")
    meant = METHOD_ALIASES.get(normal) or next(
        iter(difflib.get_close_matches(normal, [*METHOD_NAMES, *METHOD_ALIASES], n=1)), None
    )
    if meant is None:
        return  # not ours: mergekit's own message
    meant = METHOD_ALIASES.get(meant, meant)
    raise WeightLevelConfigError(
        f"unknown merge_method `{name}`. Did you mean `merge_method: {meant}`? "
        f"(mergekit-weightlevel's methods: {', '.join(METHOD_NAMES)}; "
        "`mergekit-weightlevel methods` lists their parameters.)"
    )


def check_config(merge_config: MergeConfiguration, options: MergeOptions) -> FileSources:
    """Every whole-config check, before any tensor is read; returns the file sources."""
    from mergekit import merge_methods

    from mergekit_weightlevel.checks.headers import check_inputs
    from mergekit_weightlevel.checks.hub import check_models_available
    from mergekit_weightlevel.checks.parameters import check_parameters
    from mergekit_weightlevel.methods.base import mark_preflight_done

    check_merge_device(options)
    check_parameters(merge_config, merge_methods.get(merge_config.merge_method))
    sources = file_sources(merge_config)
    check_models_available(
        merge_config.referenced_models(),
        purpose=f"merge ({merge_config.merge_method})",
        cache_dir=options.transformers_cache,
    )
    # Only here is the whole config known, so only here is a vocabulary mismatch without a
    # `tokenizer:` section an error, and one with it no warning at all.
    ordered = models_in_order(merge_config)
    aligned = merge_config.tokenizer is not None or merge_config.tokenizer_source is not None
    check_inputs(ordered, method=merge_config.merge_method, vocabulary_aligned=aligned)
    mark_preflight_done(merge_config.merge_method, ordered)
    warn_config_disagreements(merge_config, sources, options)
    return sources


def warn_config_disagreements(
    merge_config: MergeConfiguration, sources: FileSources, options: MergeOptions
) -> None:
    """One warning listing the behaviour fields on which the inputs' configs differ."""
    configs: dict[ModelReference, dict[str, Any]] = {}
    for model in models_in_order(merge_config):
        try:
            configs[model] = model.config(trust_remote_code=options.trust_remote_code).to_dict()
        except Exception:  # noqa: BLE001 - mergekit reports an unreadable config itself
            continue
    lines = config_disagreements(configs, sources.config)
    if lines:
        LOG.warning(
            "%s: the inputs' config.json differ in fields that change how the model behaves; "
            "the output's config.json comes from %s (%s; set `config_from` to choose another):"
            "\n  %s",
            merge_config.merge_method,
            sources.config,
            sources.config_reason,
            "\n  ".join(lines),
        )


# --- the output folder ------------------------------------------------------------------

#: What counts as a weight file or index in an output folder.
WEIGHT_SUFFIXES = (".safetensors", ".safetensors.index.json", ".bin.index.json")
WEIGHT_BIN_PREFIXES = ("pytorch_model", "model")


def is_weight_file(name: str) -> bool:
    if name.endswith(WEIGHT_SUFFIXES):
        return True
    return name.endswith(".bin") and name.startswith(WEIGHT_BIN_PREFIXES)


def weight_files(folder: str | os.PathLike) -> dict[str, tuple[int, int, int]]:
    """Name → (inode, mtime, size) of every weight file directly in ``folder``."""
    folder = Path(folder)
    if not folder.is_dir():
        return {}
    found = {}
    for item in folder.iterdir():
        if item.is_file() and is_weight_file(item.name):
            stat = item.stat()
            found[item.name] = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
    return found


def remove_stale_weights(
    folder: str | os.PathLike, before: dict[str, tuple[int, int, int]]
) -> list[str]:
    """Delete the weight files this merge did not write (unchanged since ``before``).

    A leftover of an earlier or interrupted run beside the new weights would be uploaded
    with them, and a loader may pick a stale index. Returns the names removed.
    """
    stale = sorted(name for name, stat in weight_files(folder).items() if before.get(name) == stat)
    for name in stale:
        (Path(folder) / name).unlink()
    if stale:
        LOG.warning(
            "removed %d weight file(s) in %s that this merge did not write (left by an "
            "earlier or interrupted run): %s",
            len(stale),
            folder,
            ", ".join(stale),
        )
    return stale


def local_folder_of(model: ModelReference, options: MergeOptions) -> Path | None:
    """A model's local folder (its base model's for ``model+adapter``), without network;
    Hub ids from the cache mergekit downloads them to (``--transformers-cache``)."""
    from mergekit_weightlevel.checks.headers import local_folder

    return local_folder(ModelReference(model=model.model), cache_dir=options.transformers_cache)


def tokenizer_donor(run: _Run, options: MergeOptions) -> ModelReference:
    """The chosen tokenizer model, or the next input that has a tokenizer (one warning)."""
    if run.tokenizer_donor is not None:
        return run.tokenizer_donor
    chosen = run.sources.tokenizer
    found = first_with(
        chosen,
        models_in_order(run.config),
        lambda m: local_folder_of(m, options),
        has_tokenizer,
    )
    donor = chosen if found is None else found[0]  # none has one: mergekit's message says so
    if donor != chosen:
        LOG.warning(
            "%s: %s (%s) has no tokenizer; the output's tokenizer, chat template and "
            "generation config come from %s instead.",
            run.config.merge_method,
            chosen,
            run.sources.tokenizer_reason,
            donor,
        )
    run.tokenizer_donor = donor
    return donor


def copy_missing_generation_config(run: _Run, out_path: str, options: MergeOptions) -> None:
    """A generation config the copied tokenizer did not bring: from the donor, else the next."""
    if not options.copy_tokenizer or (Path(out_path) / GENERATION_CONFIG).exists():
        return
    chosen = run.tokenizer_donor or run.sources.tokenizer
    found = first_with(
        chosen,
        models_in_order(run.config),
        lambda m: local_folder_of(m, options),
        lambda folder: (folder / GENERATION_CONFIG).exists(),
    )
    if found is None:
        return
    donor, folder = found
    shutil.copy(folder / GENERATION_CONFIG, Path(out_path))
    if donor != chosen:
        LOG.warning(
            "%s: %s has no %s; the output's comes from %s.",
            run.config.merge_method,
            chosen,
            GENERATION_CONFIG,
            donor,
        )


def write_method_card(folder: str | os.PathLike, options: MergeOptions) -> None:
    """Our model card in place of mergekit's generic one (``publishing.card``).

    mergekit's card says "merged using X using BASE as a base", which misdescribes ParamΔ,
    Shadow-FT and Timber. Written offline (no Hub look-ups inside a merge); ``card`` or
    ``publish`` rewrite it with the inputs' licenses later. A card that cannot be built
    never fails the finished merge: mergekit's stays, with a warning.
    """
    if not options.write_model_card:
        return
    from mergekit_weightlevel.publishing.card import write_card

    try:
        write_card(Path(folder), lookup=False)
    except Exception as error:  # noqa: BLE001 - the weights are written; keep mergekit's card
        LOG.warning(
            "could not write the method's model card in %s (%s); mergekit's card is kept. "
            "`mergekit-weightlevel card %s` retries.",
            folder,
            error,
            folder,
        )


# --- the wrappers -----------------------------------------------------------------------


def _wrap_run_merge(original: Callable[..., Any]) -> Callable[..., Any]:
    def run_merge(
        merge_config: MergeConfiguration,
        out_path: str,
        options: MergeOptions,
        config_source: str | None = None,
    ) -> Any:
        if not is_ours(merge_config):
            _checked(suggest_method, merge_config.merge_method)
            _checked(check_merge_device, options)  # before mergekit creates out_path
            return original(merge_config, out_path, options=options, config_source=config_source)
        sources = _checked(check_config, merge_config, options)
        run = _Run(merge_config, sources)
        before = weight_files(out_path)
        token = _current.set(run)
        threads.start(options.num_threads)
        try:
            result = original(merge_config, out_path, options=options, config_source=config_source)
            copy_missing_generation_config(run, out_path, options)
            write_method_card(out_path, options)
        finally:
            threads.stop()
            _current.reset(token)
        remove_stale_weights(out_path, before)
        return result

    run_merge.__wrapped__ = original  # type: ignore[attr-defined]
    run_merge.__doc__ = original.__doc__
    return run_merge


def _checked(check: Callable[..., Any], *args: Any) -> Any:
    """Run a check; under mergekit's own click commands its error is a one-line click error.

    ``mergekit-yaml`` would print a traceback for an exception; a config error is the
    user's to fix and its message says how (exit 1). Our own CLI and the Python API get
    the exception itself.
    """
    try:
        return check(*args)
    except WeightLevelError as error:
        import click

        context = click.get_current_context(silent=True)
        if context is None or type(context.find_root().command).__module__.startswith(
            "mergekit_weightlevel"
        ):
            raise
        raise click.ClickException(str(error)) from None


def _run_for(merge_config: MergeConfiguration) -> _Run | None:
    """The run in progress if ``merge_config`` is its config; otherwise (a caller that went
    around the wrapped ``run_merge``) a fresh decision for that config."""
    run = _current.get()
    if run is not None and run.config is merge_config:
        return run
    sources = file_sources(merge_config) if is_ours(merge_config) else None
    return None if sources is None else _Run(merge_config, sources)


def _wrap_get_donor_model(original: Callable[..., Any]) -> Callable[..., Any]:
    def _get_donor_model(merge_config: MergeConfiguration, options: MergeOptions) -> Any:
        run = _run_for(merge_config)
        if run is None:
            return original(merge_config, options)
        donor = tokenizer_donor(run, options)
        return original(merge_config.model_copy(update={"base_model": donor}), options)

    _get_donor_model.__wrapped__ = original  # type: ignore[attr-defined]
    return _get_donor_model


def _wrap_model_out_config(original: Callable[..., Any]) -> Callable[..., Any]:
    def _model_out_config(config: MergeConfiguration, *args: Any, **kwargs: Any) -> Any:
        run = _run_for(config)
        if run is None:
            return original(config, *args, **kwargs)
        chosen = config.model_copy(update={"base_model": run.sources.config})
        return original(chosen, *args, **kwargs)

    _model_out_config.__wrapped__ = original  # type: ignore[attr-defined]
    return _model_out_config


_WRAPPERS = {
    "run_merge": _wrap_run_merge,
    "_get_donor_model": _wrap_get_donor_model,
    "_model_out_config": _wrap_model_out_config,
}


def install() -> None:
    """Wrap ``mergekit.merge``'s functions (once; a second call changes nothing).

    Called by the start-up hook when ``mergekit.merge`` has finished loading, so that
    ``from mergekit.merge import run_merge`` in ``mergekit-yaml`` binds the wrapper.
    """
    import mergekit.merge as stock

    for name, wrap in _WRAPPERS.items():
        current = getattr(stock, name)
        if getattr(current, "__module__", None) != __name__:
            setattr(stock, name, wrap(current))

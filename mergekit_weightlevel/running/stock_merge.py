"""Our methods inside mergekit's own ``run_merge``, whichever command runs it.

The stock ``mergekit-yaml`` (the README's main path), ``mergekit-multi``,
``mergekit-weightlevel merge`` and the Python API all end in ``mergekit.merge.run_merge``.
``install()`` wraps it (and the two helpers it uses to pick the donor of the non-weight
files) once ``mergekit.merge`` is loaded, so that for a config using one of this package's
methods every entry point:

1. opens one ``MergeRun`` for the merge (``methods.merge_run``: its once-per-merge checks,
   its thread policy), so that two merges in one process never share what they remember;
2. checks the whole config before any tensor is read (``config_checks``);
3. marks the output folder as unfinished until the merge ends (``output_folder``), gives
   the output the non-weight files of the model it stands for (``file_donors``: its chat
   template too where mergekit builds the tokenizer), leaves no weight file this merge did
   not write, and writes the method's model card.

For mergekit's own methods nothing changes, except that an unknown method name close to
one of ours gets a suggestion instead of mergekit's "Unimplemented merge method", and a
device that cannot be used (``--cuda`` without a GPU) fails before mergekit starts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mergekit.config import MergeConfiguration
from mergekit.options import MergeOptions

from mergekit_weightlevel.checks.device import check_merge_device
from mergekit_weightlevel.errors import WeightLevelError
from mergekit_weightlevel.methods.merge_run import MergeRun, active_run, merge_run
from mergekit_weightlevel.methods.output_files import file_sources
from mergekit_weightlevel.numerics import threads
from mergekit_weightlevel.registry import declaration_of
from mergekit_weightlevel.running.config_checks import check_config, suggest_method
from mergekit_weightlevel.running.file_donors import (
    FileDecisions,
    config_for_mergekit,
    tokenizer_donor,
)
from mergekit_weightlevel.running.output_folder import (
    complete_output,
    prepare_output,
    weight_files,
)


def is_ours(merge_config: MergeConfiguration) -> bool:
    return declaration_of(merge_config.merge_method) is not None


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
            _forget_evaluations(out_path)
            return original(merge_config, out_path, options=options, config_source=config_source)
        with merge_run() as run:
            sources = _checked(check_config, merge_config, options)
            decisions = FileDecisions(merge_config, sources)
            run.runner = decisions
            run.threads = threads.policy_for(options.num_threads)
            before = weight_files(out_path)
            prepare_output(out_path, options)
            chosen = config_for_mergekit(decisions, options)
            if chosen is not merge_config and config_source is None:
                config_source = merge_config.to_yaml()  # what mergekit_config.yml records
            result = original(chosen, out_path, options=options, config_source=config_source)
            complete_output(decisions, out_path, options, before)
        return result

    run_merge.__wrapped__ = original  # type: ignore[attr-defined]
    run_merge.__doc__ = original.__doc__
    return run_merge


def _forget_evaluations(out_path: str) -> None:
    """A mergekit method's merge into a folder we evaluated: our results measured the
    weights it replaces (``output_folder.forget_previous_merge`` does this for ours)."""
    from pathlib import Path

    from mergekit_weightlevel.publishing.eval_results import forget_evaluations

    forget_evaluations(Path(out_path))


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


def decisions_for(merge_config: MergeConfiguration) -> FileDecisions | None:
    """The file decisions of the merge in progress if ``merge_config`` is its config;
    otherwise (a caller that went around the wrapped ``run_merge``) a fresh decision."""
    run: MergeRun | None = active_run()
    decisions = run.runner if run is not None else None
    if isinstance(decisions, FileDecisions) and decisions.config is merge_config:
        return decisions
    sources = file_sources(merge_config) if is_ours(merge_config) else None
    return None if sources is None else FileDecisions(merge_config, sources)


def _wrap_get_donor_model(original: Callable[..., Any]) -> Callable[..., Any]:
    def _get_donor_model(merge_config: MergeConfiguration, options: MergeOptions) -> Any:
        decisions = decisions_for(merge_config)
        if decisions is None:
            return original(merge_config, options)
        donor = tokenizer_donor(decisions, options)
        return original(merge_config.model_copy(update={"base_model": donor}), options)

    _get_donor_model.__wrapped__ = original  # type: ignore[attr-defined]
    return _get_donor_model


def _wrap_model_out_config(original: Callable[..., Any]) -> Callable[..., Any]:
    def _model_out_config(config: MergeConfiguration, *args: Any, **kwargs: Any) -> Any:
        decisions = decisions_for(config)
        if decisions is None:
            return original(config, *args, **kwargs)
        chosen = config.model_copy(update={"base_model": decisions.sources.config})
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

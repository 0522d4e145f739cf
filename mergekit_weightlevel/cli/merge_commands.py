"""``merge`` and ``sweep``: the commands that take mergekit-yaml's options."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from mergekit.options import MergeOptions, PrettyPrintHelp, add_merge_options

from mergekit_weightlevel.cli import user_errors
from mergekit_weightlevel.cli.evaluate_command import sweep_evaluation_options, sweep_run_options
from mergekit_weightlevel.cli.ray_options import ray_options
from mergekit_weightlevel.distributed.settings import RaySettings


@click.command(cls=PrettyPrintHelp)
@click.argument("config_file", type=click.Path(exists=True, dir_okay=False))
@click.argument("out_path", type=click.Path(file_okay=False))
@add_merge_options
@user_errors
def merge(merge_options: MergeOptions, config_file: str, out_path: str) -> None:
    """Run a mergekit YAML merge with this plugin's methods registered.

    Same arguments and options as `mergekit-yaml CONFIG_FILE OUT_PATH`. Use it where
    the start-up hook does not run (`python -S`, `pip install --target`, zipapps,
    embedded interpreters); elsewhere plain `mergekit-yaml` already knows the methods.
    """
    from mergekit_weightlevel.running.merging import merge_yaml

    merge_options.apply_global_options()
    merge_yaml(config_file, out_path, merge_options)


class SweepGroup(click.Group):
    """``sweep CONFIG OUT_PREFIX …`` for every method, beside ``sweep timber …`` (kept as it was):
    arguments that do not start with a subcommand's name go to the default command, and so
    does ``sweep --help`` (its options are the ones users need)."""

    default_command = "config"

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or args[0] not in self.commands:
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)


class DefaultCommandContext(click.Context):
    """The context of the default command: its usage lines and hints say ``sweep``, as the
    user typed it, not the hidden ``sweep config``."""

    @property
    def command_path(self) -> str:
        return self.parent.command_path if self.parent is not None else super().command_path


class DefaultSweepCommand(PrettyPrintHelp):
    context_class = DefaultCommandContext


@click.group(cls=SweepGroup, invoke_without_command=False)
def sweep() -> None:
    """Merge one config at several values of one parameter, in one pass over the inputs.

    \b
    mergekit-weightlevel sweep CONFIG OUT_PREFIX --values 0.2,0.4,0.5 [--parameter NAME]
    mergekit-weightlevel sweep timber CONFIG OUT_PREFIX --lambdas 0,0.2,0.4
    """


def parse_numbers(
    _ctx: click.Context, param: click.Parameter, value: str | None
) -> list[float] | None:
    if value is None:
        return None
    try:
        return [float(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise click.BadParameter(f"a comma-separated list of numbers, got {value!r}") from None


def echo_outputs(parameter: str, outputs: list) -> None:
    """One line per value: its folder, or why it was not written."""
    for output in outputs:
        failed = f"  NOT WRITTEN: {output.error}" if output.error else ""
        reused = "  (already written by an earlier run: reused)" if output.reused else ""
        click.echo(f"{parameter} {output.value:g}: {output.folder}{failed}{reused}")


values_per_task_option = click.option(
    "--values-per-task",
    type=click.IntRange(min=1),
    metavar="N",
    help="With --ray: N values per Ray task (each task reads the inputs once).  "
    "[default: as many tasks as the cluster runs at once, at most one per value]",
)


def echo_task(outcome: Any) -> None:
    """Progress on stderr as each Ray task ends (the outputs' lines come at the end)."""
    click.echo(f"task {outcome.label}: {'done' if outcome.ok else outcome.error}", err=True)


def echo_evaluation(report: Any) -> None:
    """The evaluated sweep: its table, the chosen value and why, where the report is."""
    click.echo("")
    click.echo(report.table())
    click.echo("")
    if report.chosen is not None:
        click.echo(f"chosen: {report.parameter} {report.chosen.value:g}: {report.chosen.folder}")
        click.echo(f"  {report.chosen.reason}")
    for folder in report.removed:
        click.echo(f"removed (--keep best): {folder}")
    click.echo(f"wrote {report.json_path} and {report.html_path}")


def sweep_command_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """What both sweep commands take beside their config and values: --rewrite, the
    evaluation (--eval, --select, --within, --keep and lm-eval's run options), Ray, and
    mergekit-yaml's options; the command gets them as ``SweepRun``'s fields."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        run = SweepRun(**{name: kwargs.pop(name) for name in SweepRun.__dataclass_fields__})
        return command(*args, run=run, **kwargs)

    for option in (
        user_errors,
        add_merge_options,
        ray_options,
        values_per_task_option,
        sweep_run_options,
        sweep_evaluation_options,
        rewrite_option,
    ):
        wrapper = option(wrapper)
    return wrapper


rewrite_option = click.option(
    "--rewrite",
    is_flag=True,
    help="Merge every value again, even those whose folder already holds the same merge "
    "written after its inputs last changed (by default such outputs are reused).",
)


@dataclass
class SweepRun:
    """How to run a checked sweep, as the sweep commands' options say."""

    merge_options: MergeOptions
    rewrite: bool
    eval_tasks: list[str] | None
    select: str | None
    within: float | None
    keep: str
    eval_options: dict[str, Any]
    values_per_task: int | None
    ray_settings: RaySettings | None

    def check(self) -> None:
        """What can be wrong with the options alone, before the config is read."""
        if self.values_per_task is not None and self.ray_settings is None:
            raise click.UsageError("--values-per-task applies to a run on Ray: add --ray.")
        self.merge_options.apply_global_options()

    def __call__(self, request: Any, out_prefix: str) -> None:
        """Merge (here or on Ray), evaluate and choose with --eval, print, exit 1 if a value
        was not written."""
        from mergekit_weightlevel.running.sweep import evaluate_swept, run_sweep

        self.eval_options["device"] = self.merge_options.device  # evaluated where it merges
        if self.ray_settings is not None:  # evaluations travel through a cache all nodes share
            from mergekit_weightlevel.distributed.evaluation import shared_cache_dir

            self.eval_options["cache_dir"] = shared_cache_dir(Path(out_prefix).resolve().parent)
        prepared = prepare_evaluation(
            self.eval_tasks, self.select, self.within, self.keep, self.eval_options
        )
        if self.ray_settings is None:
            try:
                outputs = run_sweep(request, self.merge_options, reuse=not self.rewrite)
                written = any(output.error is None for output in outputs)
                evaluated = prepared is not None and written  # else each value's line says why
                report = (
                    evaluate_swept(request, outputs, prepared, out_prefix) if evaluated else None
                )
            except KeyboardInterrupt:
                from mergekit_weightlevel.running.output_folder import INCOMPLETE_MARKER

                click.echo(
                    f"interrupted: the values not finished keep {INCOMPLETE_MARKER}; run the "
                    "same command again to finish them (finished outputs and evaluations are "
                    "reused)",
                    err=True,
                )
                raise click.exceptions.Exit(130) from None
        else:
            from mergekit_weightlevel.distributed.evaluation import sweep_on_ray_with_evaluation

            outputs, report = sweep_on_ray_with_evaluation(
                request, self.merge_options, prepared, out_prefix, settings=self.ray_settings,
                values_per_task=self.values_per_task, reuse=not self.rewrite, on_done=echo_task,
            )  # fmt: skip
        echo_outputs(request.parameter, outputs)
        if report is not None:
            echo_evaluation(report)
        evaluations = [model for _, model in report.outputs] if report is not None else []
        if any(output.error for output in outputs) or any(
            model.status == "failed" for model in evaluations
        ):
            raise click.exceptions.Exit(1)  # the table and the lines above say which, and why


def prepare_evaluation(
    eval_tasks: list[str] | None,
    select: str | None,
    within: float | None,
    keep: str,
    eval_options: dict[str, Any],
) -> Any:
    """The sweep's evaluation checked before any merge (tasks, data, --select); None
    without --eval, where the choice's options make no sense."""
    if eval_tasks is None:
        if select is not None or within is not None or keep != "all":
            raise click.UsageError(
                "--select, --within and --keep choose among evaluated outputs: add --eval TASKS"
            )
        return None
    from mergekit_weightlevel.evaluation.sweep import prepare_sweep_evaluation

    return prepare_sweep_evaluation(
        eval_tasks,
        select=select,
        within=within,
        keep=keep,
        log=lambda line: click.echo(line, err=True),
        **eval_options,
    )


@sweep.command(name="config", cls=DefaultSweepCommand, hidden=True)
@click.argument("config_file", type=click.Path(exists=True, dir_okay=False))
@click.argument("out_prefix", type=click.Path(file_okay=False))
@click.option(
    "--values",
    callback=parse_numbers,
    default=None,
    help="Comma-separated values, e.g. 0.2,0.4,0.5; one output OUT_PREFIX-<parameter><value> "
    "each. Default: the method's grid (`mergekit-weightlevel methods`).",
)
@click.option(
    "--parameter",
    default=None,
    help="The numeric parameter to sweep. Default: the method's axis (λ for timber_spectral "
    "and instruct_thinking_interp, the donors' weight for paramdelta and shadow_graft).",
)
@sweep_command_options
def sweep_values(
    config_file: str,
    out_prefix: str,
    values: list[float] | None,
    parameter: str | None,
    run: SweepRun,
) -> None:
    """Merge CONFIG (any of this plugin's methods) at each value, reading each tensor once.

    Each output equals a merge of CONFIG with that value on its own. Takes mergekit-yaml's
    options. With --eval, every output and the models at the axis' ends are evaluated with
    lm-evaluation-harness, a value is chosen (--select, --within) and OUT_PREFIX-sweep.json
    and OUT_PREFIX-sweep.html are written (docs/evaluation.md). With --ray, groups of values
    run as Ray tasks (docs/distributed.md).

    `sweep timber CONFIG OUT_PREFIX --lambdas …` is the same for a timber_spectral config
    (`sweep timber --help`).
    """
    from mergekit_weightlevel.running.sweep import plan_sweep

    run.check()
    run(plan_sweep(config_file, values, out_prefix=out_prefix, parameter=parameter), out_prefix)


@sweep.command(name="timber", cls=PrettyPrintHelp)
@click.argument("config_file", type=click.Path(exists=True, dir_okay=False))
@click.argument("out_prefix", type=click.Path(file_okay=False))
@click.option(
    "--lambdas",
    required=True,
    callback=parse_numbers,
    help="Comma-separated λ values, e.g. 0,0.1,0.2,0.4; one output OUT_PREFIX-lambda<λ> each.",
)
@sweep_command_options
def sweep_timber(config_file: str, out_prefix: str, lambdas: list[float], run: SweepRun) -> None:
    """Timber (timber_spectral) for every λ, decomposing each tensor once.

    CONFIG_FILE is a timber_spectral mergekit YAML; its `lambda` is replaced by each value
    of --lambdas. The same as `sweep CONFIG_FILE OUT_PREFIX --values …` on a timber_spectral
    config, with the same options but --parameter (λ is the axis here).
    """
    from mergekit_weightlevel.running.sweep import plan_timber_sweep

    run.check()
    run(plan_timber_sweep(config_file, lambdas, out_prefix=out_prefix), out_prefix)

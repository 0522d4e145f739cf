"""``merge`` and ``sweep``: the commands that take mergekit-yaml's options."""

from __future__ import annotations

import click
from mergekit.options import MergeOptions, PrettyPrintHelp, add_merge_options

from mergekit_weightlevel.cli import user_errors


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


@click.group()
def sweep() -> None:
    """Run one merge for several parameter values, sharing the expensive part."""


def parse_lambdas(_ctx: click.Context, _param: click.Parameter, value: str) -> list[float]:
    try:
        return [float(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise click.BadParameter(f"a comma-separated list of numbers, got {value!r}") from None


@sweep.command(name="timber", cls=PrettyPrintHelp)
@click.argument("config_file", type=click.Path(exists=True, dir_okay=False))
@click.argument("out_prefix", type=click.Path(file_okay=False))
@click.option(
    "--lambdas",
    required=True,
    callback=parse_lambdas,
    help="Comma-separated λ values, e.g. 0,0.1,0.2,0.4; one output OUT_PREFIX-lambda<λ> each.",
)
@add_merge_options
@user_errors
def sweep_timber(
    merge_options: MergeOptions, config_file: str, out_prefix: str, lambdas: list[float]
) -> None:
    """Timber (timber_spectral) for every λ, decomposing each tensor once.

    CONFIG_FILE is a timber_spectral mergekit YAML; its `lambda` is replaced by each value
    of --lambdas. Takes mergekit-yaml's options.
    """
    from mergekit_weightlevel.running.sweep import sweep_config, sweep_out_dirs

    merge_options.apply_global_options()
    out_dirs = sweep_out_dirs(out_prefix, lambdas)
    for lam, folder in zip(lambdas, sweep_config(config_file, lambdas, out_dirs, merge_options)):
        click.echo(f"lambda {lam:g}: {folder}")

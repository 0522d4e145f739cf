"""``mergekit-weightlevel``: a thin click layer over the package's Python API.

User errors (a bad config, a missing file, a wrong parameter) print one clear message
and exit 1 without a traceback; usage errors exit 2 (click's convention); ``--debug``
shows the traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from typing import Any

import click
from mergekit.options import MergeOptions, PrettyPrintHelp, add_merge_options

from mergekit_weightlevel import __version__

#: Errors that mean "the input is wrong", reported without a traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,
    TypeError,
    RuntimeError,
    FileNotFoundError,
    PermissionError,
    OSError,
    # Bad YAML in a merge config (yaml.YAMLError), imported lazily at the failure.
)


def _is_user_error(error: BaseException) -> bool:
    if isinstance(error, USER_ERRORS):
        return True
    import yaml

    return isinstance(error, yaml.YAMLError)


def user_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn user-facing exceptions into `error: ...` and exit code 1 (traceback with --debug)."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except Exception as error:
            ctx = click.get_current_context()
            if not _is_user_error(error) or ctx.find_root().params.get("debug"):
                raise
            click.echo(f"error: {error}", err=True)
            click.echo("(run with --debug for the traceback)", err=True)
            sys.exit(1)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mergekit-weightlevel")
@click.option("--debug", is_flag=True, help="Show Python tracebacks for errors.")
def main(debug: bool) -> None:
    """Post-training seen at the weight level, for mergekit.

    Merge methods (usable from plain `mergekit-yaml` once installed): paramdelta,
    shadow_graft, timber_spectral, instruct_thinking_interp. Run `mergekit-weightlevel
    methods` for their parameters, `mergekit-weightlevel demo DIR` for an offline tour.
    """


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the table as JSON.")
def methods(as_json: bool) -> None:
    """List the merge methods this plugin registers, their papers and parameters."""
    from mergekit_weightlevel.registry import describe_methods

    described = describe_methods()
    if as_json:
        import json

        click.echo(json.dumps(described, indent=2, ensure_ascii=False))
        return
    for method in described:
        click.echo(f"{method['name']}  ({method['pretty_name']}, {method['reference_url']})")
        if method["summary"]:
            click.echo(f"  {method['summary']}")
        for p in method["parameters"]:
            default = "required" if p["required"] else f"default {p['default']!r}"
            click.echo(f"  - {p['name']}: {p['type']}, {p['scope']}, {default}")
            if p["description"]:
                click.echo(f"      {p['description']}")
        click.echo("")


@main.command(cls=PrettyPrintHelp)
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
    from mergekit_weightlevel.merging import merge_yaml

    merge_options.apply_global_options()
    merge_yaml(config_file, out_path, merge_options)


@main.command()
@click.argument("directory", type=click.Path(file_okay=False), default="weightlevel-demo")
@click.option(
    "--arch",
    type=click.Choice(["llama", "qwen2", "qwen3"]),
    default="llama",
    show_default=True,
    help="Architecture of the tiny model family.",
)
@click.option(
    "--family",
    "family_root",
    type=click.Path(file_okay=False),
    default=None,
    help="Use a trained family folder instead of random tiny models, e.g. toy-work/models "
    "(written by `python -m mergekit_weightlevel.toy`).",
)
@user_errors
def demo(directory: str, arch: str, family_root: str | None) -> None:
    """Build a tiny local model family in DIRECTORY and merge it with every method.

    Offline and in seconds: no downloads. Prints the configs it wrote, where each
    merged model is, and how each output relates to its inputs.
    """
    from mergekit_weightlevel.demo import run_demo

    report = run_demo(directory, arch=arch, family_root=family_root)
    click.echo(report.render())


@main.group()
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
    from mergekit_weightlevel.timber_sweep import sweep_config, sweep_out_dirs

    merge_options.apply_global_options()
    out_dirs = sweep_out_dirs(out_prefix, lambdas)
    for lam, folder in zip(lambdas, sweep_config(config_file, lambdas, out_dirs, merge_options)):
        click.echo(f"lambda {lam:g}: {folder}")


def _analyze_metrics(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
    from mergekit_weightlevel.analyze import parse_metrics

    try:
        return parse_metrics(value)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


def _analyze_layers(ctx: click.Context, param: click.Parameter, value: str | None):
    from mergekit_weightlevel.analyze import parse_layers

    try:
        return None if value is None else parse_layers(value)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


def _analyze_regex(ctx: click.Context, param: click.Parameter, value: str | None):
    import re

    if value is not None:
        try:
            re.compile(value)
        except re.error as error:
            raise click.BadParameter(f"{value!r} is not a valid regex ({error})") from None
    return value


@main.command(cls=PrettyPrintHelp)
@click.argument("models", nargs=-1, required=True, metavar="MODEL_A MODEL_B [MODEL_C ...]")
@click.option(
    "--metrics",
    default="sigma,erank",
    show_default=True,
    callback=_analyze_metrics,
    help="Comma-separated levels, by cost: sigma (read-bound; with the Frobenius gap and "
    "cosine; always on), erank (singular values of A, B and ΔW per matrix), structure "
    "(full SVDs of A and B per matrix: α scaling, rotation consistency; the slowest).",
)
@click.option(
    "--all-pairs",
    is_flag=True,
    help="Also compare every pair of the non-reference models (σ, Frobenius gap, cosine): "
    "the full σ matrix.",
)
@click.option(
    "--include", callback=_analyze_regex, help="Only tensors whose name matches this regex."
)
@click.option(
    "--exclude", callback=_analyze_regex, help="Leave out tensors whose name matches this regex."
)
@click.option(
    "--layers",
    callback=_analyze_layers,
    help="Only these decoder layers, e.g. 0-11 or 0-3,8 (drops embeddings, final norm, lm_head).",
)
@click.option(
    "--precision",
    type=click.Choice(["float32", "float64"]),
    default="float32",
    show_default=True,
    help="SVD precision (float32 retries in float64 when an SVD fails).",
)
@click.option(
    "--json", "json_path", type=click.Path(dir_okay=False), help="Write the full JSON report here."
)
@click.option(
    "--csv",
    "csv_path",
    type=click.Path(dir_okay=False),
    help="Write one CSV row per tensor and pair.",
)
@click.option(
    "--markdown",
    "markdown_path",
    type=click.Path(dir_okay=False),
    help="Write a model-card section here.",
)
@click.option(
    "--plots",
    "plots_dir",
    type=click.Path(file_okay=False),
    help="Write PNG figures into this folder.",
)
@add_merge_options
@user_errors
def analyze(
    merge_options: MergeOptions,
    models: tuple[str, ...],
    metrics: tuple[str, ...],
    all_pairs: bool,
    include: str | None,
    exclude: str | None,
    layers,
    precision: str,
    json_path: str | None,
    csv_path: str | None,
    markdown_path: str | None,
    plots_dir: str | None,
) -> None:
    """Compare checkpoints tensor by tensor: how far did post-training move the weights?

    MODEL_A is the reference; every other model is compared with it. Models are local
    folders, Hugging Face ids or MODEL+ADAPTER, streamed one tensor at a time through
    mergekit's loaders. σ = Σ|A−B| / (Σ|A|+Σ|B|) is the relative weight gap (not
    WeightWatcher's sigma). Default metrics: sigma,erank; add structure for the spectral
    scale / rotation diagnostics. --device (cpu, cuda, auto) is where the SVDs run;
    --quiet hides the progress bar. See docs/analyze.md.
    """
    if len(models) < 2:
        raise click.UsageError("analyze needs at least two models: MODEL_A MODEL_B [MODEL_C ...]")
    from mergekit_weightlevel.analyze import analyze_models

    if plots_dir:
        from mergekit_weightlevel.analyze.plots import require_matplotlib

        require_matplotlib()  # before the analysis, not after it
    from mergekit_weightlevel.analyze.report import check_writable

    for option, path in (("--json", json_path), ("--csv", csv_path), ("--markdown", markdown_path)):
        if path:
            check_writable(path, option=option)
    if plots_dir:
        check_writable(plots_dir, option="--plots", folder=True)
    merge_options.apply_global_options()
    report = analyze_models(
        list(models),
        metrics=metrics,
        all_pairs=all_pairs,
        include=include,
        exclude=exclude,
        layers=sorted(layers) if layers is not None else None,
        device=merge_options.device,
        precision=precision,
        options=merge_options,
        quiet=merge_options.quiet,
    )
    click.echo(report.summary_text())
    written = []
    if json_path:
        report.to_json(json_path)
        written.append(json_path)
    if csv_path:
        report.to_csv(csv_path)
        written.append(csv_path)
    if markdown_path:
        report.to_markdown(markdown_path)
        written.append(markdown_path)
    if plots_dir:
        written += [str(path) for path in report.plot(plots_dir)]
    for path in written:
        click.echo(f"wrote {path}", err=True)


if __name__ == "__main__":
    main()

"""``analyze``: its options are declared here, so that it starts without mergekit.options.

Each option is declared once, with its default, choices and cost text from the library
(``analyze.options``); every value is checked by ``analyze_models`` before it reads a
model, and a value wrong on its face (``OptionError``) is shown as a usage error.
"""

from __future__ import annotations

import functools
from typing import Any

import click

from mergekit_weightlevel.analyze.options import DEFAULT_METRICS, METRIC_COSTS, PRECISIONS
from mergekit_weightlevel.cli import user_errors
from mergekit_weightlevel.cli.ray_options import ray_options
from mergekit_weightlevel.distributed.settings import RaySettings


def _metrics_help() -> str:
    levels = "; ".join(f"{level} ({cost})" for level, cost in METRIC_COSTS.items())
    return f"Comma-separated levels, by cost (sigma is always on): {levels}."


def _echo_pair(outcome: Any) -> None:
    """Progress on stderr as each pair's Ray task ends."""
    click.echo(f"pair {outcome.label}: {'done' if outcome.ok else outcome.error}", err=True)


@click.command()
@click.argument("models", nargs=-1, required=True, metavar="MODEL_A MODEL_B [MODEL_C ...]")
@click.option(
    "--metrics", default=",".join(DEFAULT_METRICS), show_default=True, help=_metrics_help()
)
@click.option(
    "--all-pairs",
    is_flag=True,
    help="Also compare every pair of the non-reference models (σ, Frobenius gap, cosine): "
    "the full σ matrix.",
)
@click.option("--include", help="Only tensors whose name matches this regex.")
@click.option("--exclude", help="Leave out tensors whose name matches this regex.")
@click.option(
    "--layers",
    help="Only these decoder layers, e.g. 0-11 or 0-3,8 (drops embeddings, final norm, lm_head).",
)
@click.option(
    "--precision",
    type=click.Choice(PRECISIONS),
    default=PRECISIONS[0],
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
    "--html",
    "html_path",
    type=click.Path(dir_okay=False),
    help="Write one self-contained HTML report here (opens offline; no extra needed).",
)
@click.option(
    "--names",
    help="Display names of the models in the Markdown, HTML and plots, comma-separated in "
    "the order of the models, e.g. Base,Instruct.  [default: the models as given]",
)
@click.option(
    "--plots",
    "plots_dir",
    type=click.Path(file_okay=False),
    help="Write PNG figures into this folder.",
)
# mergekit-yaml's options that mean something for reading models, same names and meaning
# (--cuda, --device, caches, --trust-remote-code, --lazy-unpickle, -j, -v, --quiet); the
# merge-only ones (--out-shard-size, --allow-crimes, ...) are not accepted.
@click.option("--device", help="Where the SVDs run: cpu, cuda, cuda:N or auto.  [default: cpu]")
@click.option("--cuda/--no-cuda", default=False, help="Same as --device cuda (mergekit's flag).")
@click.option(
    "--transformers-cache",
    type=click.Path(file_okay=False),
    help="Override storage path for downloaded models (mergekit's option).",
)
@click.option(
    "--lora-merge-cache",
    type=click.Path(file_okay=False),
    help="Where MODEL+ADAPTER is merged by mergekit before reading (mergekit's option).",
)
@click.option("--lora-merge-dtype", help="Override dtype when applying LoRAs (mergekit's option).")
@click.option(
    "--trust-remote-code/--no-trust-remote-code",
    default=False,
    help="Trust remote code from Hugging Face repos (danger; mergekit's option).",
)
@click.option(
    "--lazy-unpickle/--no-lazy-unpickle",
    default=False,
    help="mergekit's lazy unpickler for pytorch_model*.bin (lower memory).",
)
@click.option("--num-threads", "-j", type=int, help="Threads for CPU math (torch).")
@click.option("-v", "verbosity", count=True, help="Verbose logging (repeat for more).")
@click.option("--quiet/--no-quiet", default=False, help="No progress bar.")
@ray_options
@user_errors
def analyze(
    models: tuple[str, ...],
    metrics: str,
    all_pairs: bool,
    include: str | None,
    exclude: str | None,
    layers: str | None,
    precision: str,
    json_path: str | None,
    csv_path: str | None,
    markdown_path: str | None,
    html_path: str | None,
    names: str | None,
    plots_dir: str | None,
    device: str | None,
    cuda: bool,
    transformers_cache: str | None,
    lora_merge_cache: str | None,
    lora_merge_dtype: str | None,
    trust_remote_code: bool,
    lazy_unpickle: bool,
    num_threads: int | None,
    verbosity: int,
    quiet: bool,
    ray_settings: RaySettings | None,
) -> None:
    """Compare checkpoints tensor by tensor: how far did post-training move the weights?

    MODEL_A is the reference; every other model is compared with it. Models are local
    folders, Hugging Face ids or MODEL+ADAPTER, streamed one tensor at a time through
    mergekit's loaders. σ = Σ|A−B| / (Σ|A|+Σ|B|) is the relative weight gap (not
    WeightWatcher's sigma). Default metrics: sigma,erank; add structure for the spectral
    scale / rotation diagnostics. --device (cpu, cuda, auto) is where the SVDs run;
    --quiet hides the progress bar. With --ray (or --ray-address), each pair is one Ray
    task (docs/distributed.md). See docs/analyze.md.
    """
    from mergekit_weightlevel.analyze import LoaderOptions, OptionError, analyze_models
    from mergekit_weightlevel.analyze.core import cuda_hint

    if plots_dir:
        from mergekit_weightlevel.analyze.plots import require_matplotlib

        require_matplotlib()  # before the analysis, not after it
    from mergekit_weightlevel.analyze.report import check_writable

    for option, path in (
        ("--json", json_path),
        ("--csv", csv_path),
        ("--markdown", markdown_path),
        ("--html", html_path),
    ):
        if path:
            check_writable(path, option=option)
    if plots_dir:
        check_writable(plots_dir, option="--plots", folder=True)
    _apply_global_options(verbosity, num_threads)
    hint = cuda_hint(device or ("cuda" if cuda else None))
    if hint:
        click.echo(hint, err=True)
    run = analyze_models
    if ray_settings is not None:
        from mergekit_weightlevel.distributed.analyze import analyze_on_ray

        run = functools.partial(analyze_on_ray, settings=ray_settings, on_done=_echo_pair)
    try:
        report = run(
            list(models),
            metrics=metrics,
            all_pairs=all_pairs,
            include=include,
            exclude=exclude,
            layers=layers,
            device=device or ("cuda" if cuda else "cpu"),
            precision=precision,
            options=LoaderOptions(
                lazy_unpickle=lazy_unpickle,
                transformers_cache=transformers_cache,
                lora_merge_cache=lora_merge_cache,
                lora_merge_dtype=lora_merge_dtype,
                trust_remote_code=trust_remote_code,
            ),
            quiet=quiet,
            names=names.split(",") if names else None,
        )
    except OptionError as error:  # checked by the library before any model was read
        raise click.UsageError(str(error)) from None
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
    if html_path:
        report.to_html(html_path)
        written.append(html_path)
    if plots_dir:
        written += [str(path) for path in report.plot(plots_dir)]
    for path in written:
        click.echo(f"wrote {path}", err=True)


def _apply_global_options(verbosity: int, num_threads: int | None) -> None:
    """What mergekit's ``MergeOptions.apply_global_options`` does for -v and -j."""
    import logging

    levels = {0: logging.WARNING, 1: logging.INFO}
    logging.basicConfig(level=levels.get(verbosity, logging.DEBUG))
    if num_threads is not None:
        import torch

        torch.set_num_threads(num_threads)
        torch.set_num_interop_threads(num_threads)

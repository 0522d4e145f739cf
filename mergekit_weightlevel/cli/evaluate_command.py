"""``evaluate``, and the evaluation options a sweep shares with it (each declared once here).

``evaluation_options`` adds lm-eval's run options (``--include-path``, ``--limit``,
``--num-fewshot``, ``--device``, ``--batch-size``, ``--model-args``,
``--apply-chat-template``) and hands them to the
command as one ``eval_options`` dict, ready for ``evaluate_folders(**eval_options)`` or
``evaluate_sweep(**eval_options)``; ``sweep_evaluation_options`` adds ``--eval``,
``--select``, ``--within`` and ``--keep`` for a sweep that evaluates its outputs.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

import click

from mergekit_weightlevel.cli import user_errors
from mergekit_weightlevel.cli.ray_options import ray_options
from mergekit_weightlevel.distributed.settings import RaySettings


def _tasks(ctx: click.Context, param: click.Parameter, value: str | None) -> list[str] | None:
    if value is None:
        return None
    tasks = [t.strip() for t in value.split(",") if t.strip()]
    if not tasks:
        raise click.BadParameter("give one or more lm-eval task names, comma-separated")
    return tasks


def _limit(ctx: click.Context, param: click.Parameter, value: str | None) -> int | float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        raise click.BadParameter(
            f"a number of documents (or a fraction < 1), got {value!r}"
        ) from None
    if number <= 0:
        raise click.BadParameter(f"must be positive, got {value}")
    return int(number) if number >= 1 and number.is_integer() else number


def _batch_size(ctx: click.Context, param: click.Parameter, value: str | None) -> int | str | None:
    if value is None or value == "auto" or value.startswith("auto:"):
        return value
    try:
        size = int(value)
    except ValueError:
        raise click.BadParameter(f"an integer or 'auto', got {value!r}") from None
    if size < 1:
        raise click.BadParameter(f"must be at least 1, got {size}")
    return size


def _model_args(ctx: click.Context, param: click.Parameter, value: str | None) -> dict[str, str]:
    if not value:
        return {}
    pairs = {}
    for part in value.split(","):
        key, sep, item = part.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"KEY=VALUE pairs, comma-separated; got {part!r}")
        if key.strip() == "pretrained":
            raise click.BadParameter("pretrained is the FOLDER itself; leave it out")
        pairs[key.strip()] = item.strip()
    return pairs


#: lm-eval's run options, each declared once: (parameter name, its click option).
RUN_OPTIONS = {
    "include_paths": click.option(
        "--include-path",
        "include_paths",
        multiple=True,
        type=click.Path(exists=True, file_okay=False, path_type=Path),
        help="A folder of lm-eval task YAMLs (repeatable); the package's own tasks "
        "(toy_*, demo_*) are always available.",
    ),
    "limit": click.option(
        "--limit",
        callback=_limit,
        help="Documents per task (a fraction < 1: that share). Default: all.",
    ),
    "num_fewshot": click.option(
        "--num-fewshot", type=click.IntRange(min=0), help="Few-shot examples per task."
    ),
    "device": click.option(
        "--device",
        type=click.Choice(["cpu", "cuda"]),
        help="Where the model runs. Default: cuda where there is one, else cpu.",
    ),
    "batch_size": click.option(
        "--batch-size",
        callback=_batch_size,
        help="lm-eval's batch size: a number or 'auto'. Default: 1.",
    ),
    "model_args": click.option(
        "--model-args",
        callback=_model_args,
        metavar="KEY=VALUE,...",
        help="More arguments of lm-eval's hf model, e.g. dtype=bfloat16.",
    ),
    "apply_chat_template": click.option(
        "--apply-chat-template",
        is_flag=True,
        help="Send the prompts through the tokenizer's chat template (Instruct and "
        "Thinking models usually need it).",
    ),
}


def _with_run_options(func: Callable[..., Any], names: list[str]) -> Callable[..., Any]:
    """``func`` taking the run options ``names`` as one ``eval_options`` dict."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        given = {name: kwargs.pop(name) for name in names}
        eval_options = {
            "include_path": list(given.pop("include_paths")),
            **given,
        }
        return func(*args, eval_options=eval_options, **kwargs)

    for name in reversed(names):
        wrapper = RUN_OPTIONS[name](wrapper)
    return wrapper


def evaluation_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """lm-eval's run options, passed to the command as ``eval_options``."""
    return _with_run_options(func, list(RUN_OPTIONS))


def sweep_run_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """lm-eval's run options for a sweep: all but ``--device``, which is mergekit's there
    (``--device`` / ``--cuda``): the sweep evaluates where it merges."""
    return _with_run_options(func, [name for name in RUN_OPTIONS if name != "device"])


def _within(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    if value is not None and value < 0:
        raise click.BadParameter(f"must be ≥ 0, got {value}")
    return value


def sweep_evaluation_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--eval``, ``--select``, ``--within``, ``--keep``: the arguments of ``evaluate_sweep``
    a sweep takes from its user (with ``evaluation_options`` for the rest)."""
    options = [
        click.option(
            "--eval",
            "eval_tasks",
            callback=_tasks,
            metavar="T1,T2",
            help="Evaluate every output (and the axis' ends) on these lm-eval tasks.",
        ),
        click.option(
            "--select",
            metavar="TASK:METRIC[:max|min]",
            help="Choose the output best by this metric (direction: lm-eval's, or as given).",
        ),
        click.option(
            "--within",
            type=float,
            callback=_within,
            metavar="X",
            help="Instead, choose the shortest generations (or the smallest value) within X "
            "points of the best.",
        ),
        click.option(
            "--keep",
            type=click.Choice(["all", "best"]),
            default="all",
            show_default=True,
            help="best: remove every other output folder after evaluation.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _echo_folder(outcome: Any) -> None:
    """Progress on stderr as each folder's Ray task ends."""
    click.echo(f"task {outcome.label}: {'done' if outcome.ok else outcome.error}", err=True)


@click.command()
@click.argument(
    "folders", nargs=-1, required=True, type=click.Path(path_type=Path), metavar="FOLDER..."
)
@click.option(
    "--tasks",
    required=True,
    callback=_tasks,
    metavar="T1,T2",
    help="lm-eval tasks (names, globs, groups), built-in or from --include-path.",
)
@evaluation_options
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write every folder's results here (one JSON).",
)
@ray_options
@user_errors
def evaluate(
    folders: tuple[Path, ...],
    tasks: list[str],
    eval_options: dict[str, Any],
    json_path: Path | None,
    ray_settings: RaySettings | None,
) -> None:
    """Evaluate model FOLDERs with lm-evaluation-harness and print one table.

    Offline where the tasks' data is local (the package's tasks, --include-path tasks with
    local files; HF_DATASETS_OFFLINE=1 is respected). Results are cached by the folders'
    content: a rerun evaluates nothing again. A merged folder keeps its results in
    FOLDER/evaluation.json, which its model card shows. With --ray, one folder per Ray task
    (pass --device cuda on a GPU cluster; see docs/distributed.md). See docs/evaluation.md.
    """
    from mergekit_weightlevel.evaluation.evaluate import evaluate_folders

    run = evaluate_folders
    if ray_settings is not None:
        from mergekit_weightlevel.distributed.evaluation import evaluate_on_ray

        run = functools.partial(evaluate_on_ray, settings=ray_settings, on_done=_echo_folder)
    evaluation = run(
        list(folders),
        tasks,
        json_path=json_path,
        log=lambda line: click.echo(line, err=True),
        **eval_options,
    )
    click.echo(evaluation.table())
    click.echo("")
    for model in evaluation.models:
        click.echo(f"lm-eval's results for {model.label}: {model.lm_eval_results}")
    if json_path is not None:
        click.echo(f"wrote {json_path}")

"""``mergekit-weightlevel``: a thin click layer over the package's Python API.

User errors (a bad config, a missing file, a wrong parameter) print one clear message
and exit 1 without a traceback; usage errors exit 2 (click's convention); ``--debug``
shows the traceback.

The commands that take mergekit-yaml's options (``merge``, ``sweep``) live in
``merge_commands``, ``analyze`` in ``analyze_command``, ``card`` and ``publish`` in
``publish_commands``; each is imported only when its command runs: mergekit's option
module imports transformers and peft, seconds that ``analyze`` on local folders does not
need.
"""

from __future__ import annotations

import importlib
import sys
import traceback
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

import click

from mergekit_weightlevel.about import __version__

#: Errors of the libraries underneath (mergekit, transformers, safetensors, the OS) that
#: mean "the input is wrong": a config mergekit refuses, a path that does not exist.
LIBRARY_USER_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,
    TypeError,
    RuntimeError,
    OSError,
)
PACKAGE_DIR = str(Path(__file__).resolve().parent.parent)
REPORT_BUG = (
    "This is a bug in mergekit-weightlevel, not a problem with your input: please report it "
    "with the traceback above and the command you ran."
)


def _raised_by_us(error: BaseException) -> bool:
    """Whether the innermost frame of the error's traceback is this package's own code."""
    traceback = error.__traceback__
    if traceback is None:
        return False
    while traceback.tb_next is not None:
        traceback = traceback.tb_next
    return str(Path(traceback.tb_frame.f_code.co_filename).resolve()).startswith(PACKAGE_DIR)


def _is_user_error(error: BaseException) -> bool:
    """Ours (``WeightLevelError``), a bad YAML or config, or a library's complaint about the
    input. A builtin exception raised by this package's own code is a bug."""
    import yaml
    from pydantic import ValidationError

    from mergekit_weightlevel.errors import WeightLevelError

    if isinstance(error, (WeightLevelError, yaml.YAMLError, ValidationError)):
        return True
    return isinstance(error, LIBRARY_USER_ERRORS) and not _raised_by_us(error)


def user_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn user-facing exceptions into `error: ...` and exit code 1 (traceback with --debug)."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise  # usage errors (exit 2) and exits: click's own handling
        except Exception as error:
            ctx = click.get_current_context()
            if ctx.find_root().params.get("debug"):
                raise
            if not _is_user_error(error):
                traceback.print_exc()
                click.echo(REPORT_BUG, err=True)
                sys.exit(1)
            click.echo(f"error: {error}", err=True)
            click.echo("(run with --debug for the traceback)", err=True)
            sys.exit(1)

    return wrapper


class LazyGroup(click.Group):
    """A click group some of whose commands are imported when used (click's lazy-loading recipe)."""

    def __init__(self, *args: Any, lazy_commands: dict[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands = lazy_commands  # name -> "module:attribute"

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.lazy_commands:
            return super().get_command(ctx, cmd_name)
        module_name, attribute = self.lazy_commands[cmd_name].split(":")
        return getattr(importlib.import_module(module_name), attribute)


@click.group(
    cls=LazyGroup,
    lazy_commands={
        "merge": "mergekit_weightlevel.cli.merge_commands:merge",
        "sweep": "mergekit_weightlevel.cli.merge_commands:sweep",
        "analyze": "mergekit_weightlevel.cli.analyze_command:analyze",
        "evaluate": "mergekit_weightlevel.cli.evaluate_command:evaluate",
        "card": "mergekit_weightlevel.cli.publish_commands:card",
        "publish": "mergekit_weightlevel.cli.publish_commands:publish",
    },
    context_settings={"help_option_names": ["-h", "--help"]},
)
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
@user_errors
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

"""``card`` and ``publish``: thin over ``mergekit_weightlevel.publishing``."""

from __future__ import annotations

from pathlib import Path

import click

from mergekit_weightlevel.cli import user_errors

FOLDER = click.Path(exists=True, file_okay=False, path_type=Path)
HUB_ID_HELP = (
    "PATH=org/name: the Hub id a local input stands for (PATH as written in the merge "
    "config, or any path to the same folder); repeat for each. Listed in the card's base_model."
)
REPORT_HELP = (
    "Add the weight-level section: σ and eRank of the output against each input "
    "(runs `analyze`; figures go to FOLDER/weight_level/)."
)


def _show_warnings() -> None:
    """Warnings print as mergekit's commands print theirs (``WARNING:mergekit_weightlevel:…``)."""
    import logging

    logging.basicConfig(level=logging.WARNING)


def _hub_ids(pairs: tuple[str, ...]) -> dict[str, str]:
    from mergekit_weightlevel.publishing.inputs import parse_hub_ids

    return parse_hub_ids(pairs)


def _license_note(card_text: str) -> None:
    """Say so when the card sets no license: a model without one is hard for others to use."""
    from huggingface_hub import ModelCard

    card = ModelCard(card_text)
    if card.data.license is None:
        section = card.text.split("## License", 1)[-1].strip().split("\n\n")[0]
        click.echo(f"note: the card sets no license: {section}", err=True)


def _base_model_note(folder: Path, card_text: str) -> None:
    """Say so when the card names no base_model (every input a local folder)."""
    from mergekit_weightlevel.publishing.card import base_model_note

    note = base_model_note(folder, card_text)
    if note is not None:
        click.echo(f"note: {note}", err=True)


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{count} B"


@click.command()
@click.argument("folder", type=FOLDER)
@click.option("--hub-id", "hub_ids", multiple=True, metavar="PATH=org/name", help=HUB_ID_HELP)
@click.option("--report", is_flag=True, help=REPORT_HELP)
@user_errors
def card(folder: Path, hub_ids: tuple[str, ...], report: bool) -> None:
    """(Re)write FOLDER/README.md, the model card of a merged folder.

    Reads FOLDER/mergekit_config.yml, the weights' headers and the inputs' cards (local
    README.md; the Hub for Hub ids, with a short timeout). See docs/publishing.md.
    """
    from mergekit_weightlevel.publishing import write_card

    _show_warnings()
    path = write_card(folder, hub_ids=_hub_ids(hub_ids), report=report)
    click.echo(f"wrote {path}")
    _license_note(path.read_text(encoding="utf-8"))
    _base_model_note(folder, path.read_text(encoding="utf-8"))


@click.command()
@click.argument("folder", type=FOLDER)
@click.argument("repo_id")
@click.option(
    "--private",
    is_flag=True,
    help="Create the repo private (an existing repo keeps its visibility).",
)
@click.option("--revision", help="Branch to push to (created if missing). Default: main.")
@click.option(
    "--create-pr", is_flag=True, help="Open a pull request against main instead of pushing."
)
@click.option("--commit-message", help="The commit's title.")
@click.option("--hub-id", "hub_ids", multiple=True, metavar="PATH=org/name", help=HUB_ID_HELP)
@click.option("--report", is_flag=True, help=REPORT_HELP)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Write the card, check the folder, print the card and the files; send nothing.",
)
@user_errors
def publish(
    folder: Path,
    repo_id: str,
    private: bool,
    revision: str | None,
    create_pr: bool,
    commit_message: str | None,
    hub_ids: tuple[str, ...],
    report: bool,
    dry_run: bool,
) -> None:
    """Check a merged FOLDER, write its card and upload it to the Hub model repo REPO_ID.

    Uses your Hub login (`hf auth login` or HF_TOKEN). Nothing is sent unless the folder is
    a complete model: every shard the index names present and readable, config.json and
    the tokenizer loading, the card valid. See docs/publishing.md.
    """
    from mergekit_weightlevel.publishing import publish_folder

    _show_warnings()
    result = publish_folder(
        folder,
        repo_id,
        private=private,
        revision=revision,
        create_pr=create_pr,
        commit_message=commit_message,
        report=report,
        dry_run=dry_run,
        hub_ids=_hub_ids(hub_ids),
    )
    if dry_run:
        click.echo(result.card_text)
        click.echo(f"files ({len(result.files)}, {_size(sum(s for _, s in result.files))}):")
        extra = set(result.not_model_files)
        for name, size in result.files:
            flag = "  (not part of the model)" if name in extra else ""
            click.echo(f"  {name}  {_size(size)}{flag}")
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    _license_note(result.card_text)
    _base_model_note(folder, result.card_text)
    if dry_run:
        click.echo(f"dry run: {folder} is ready; nothing was sent to {repo_id}")
    else:
        click.echo(f"published {folder} to {result.repo_id}: {result.pr_url or result.commit_url}")

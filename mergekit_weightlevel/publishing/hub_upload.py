"""``publish``: check a merged folder, write its card, and upload it with ``huggingface_hub``.

The order is chosen so that nothing is sent unless everything can be:

1. the repo id is a model repo id (local check);
2. the card is (re)written: a README.md absent, mergekit's generic one or ours is replaced,
   one written by hand is kept (and still checked);
3. the folder is a complete model (``checks.check_folder``: shards by header, config,
   tokenizer, card);
4. ``--dry-run`` stops here;
5. the user's Hub login (``HF_TOKEN`` or ``hf auth login``) exists; its value is never printed
   or written by this package;
6. one small request with a timeout (``repo_info``) shows the Hub answers, within seconds;
7. ``create_repo(exist_ok=True)``, the branch for ``--revision`` (created if missing, as
   ``hf upload`` does), then ``upload_folder`` (one commit; with ``hf_xet`` installed the
   client commits very large folders in several batches and resumes interrupted uploads).

Hub refusals (no login, token refused, no write access, missing repo or branch) and transport
failures become one ``PublishError`` naming the repo and saying what to do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mergekit_weightlevel.checks.model_folder import is_model_file
from mergekit_weightlevel.errors import WeightLevelError
from mergekit_weightlevel.publishing.card import USER_CARD, is_generated_card, write_card
from mergekit_weightlevel.publishing.checks import check_folder, folder_files
from mergekit_weightlevel.publishing.inputs import CardInputError, check_repo_id

#: Seconds the first request to the Hub may take before publish gives up.
PROBE_TIMEOUT_S = 10.0
LOGIN_HINT = "run `hf auth login` (or set HF_TOKEN) with a token that has write access"


class PublishError(WeightLevelError, RuntimeError):
    """The upload cannot be done (or did not complete); the message says why and what to do."""


@dataclass
class PublishResult:
    """What ``publish_folder`` did: the card, the files, and the commit (None on a dry run)."""

    repo_id: str
    card_path: Path
    card_text: str
    files: list[tuple[str, int]]
    dry_run: bool
    commit_url: str | None = None
    pr_url: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def not_model_files(self) -> list[str]:
        """The files sent that are not part of the model (notes, a moved-aside card, …)."""
        return [name for name, _ in self.files if not is_model_file(name, self.folder)]

    @property
    def folder(self) -> Path:
        return self.card_path.parent


def check_model_repo_id(repo_id: str) -> None:
    """Raise ``PublishError`` unless ``repo_id`` names a model repository (``org/name``)."""
    if repo_id.startswith(("http://", "https://")):
        raise PublishError(
            f"{repo_id!r} is a URL: give the repo id, e.g. org/name (the part after the host)"
        )
    for prefix, kind in (("datasets/", "dataset"), ("spaces/", "Space"), ("kernels/", "kernel")):
        if repo_id.startswith(prefix):
            raise PublishError(
                f"{repo_id!r} names a {kind} repository: publish uploads a model, give a model "
                f"repo id such as {repo_id[len(prefix) :]!r}"
            )
    try:
        check_repo_id(repo_id, what="REPO_ID")
    except CardInputError as error:
        raise PublishError(str(error)) from None


def prepare_card(
    folder: Path,
    repo_id: str,
    *,
    hub_ids: dict[str, str] | None,
    report: bool,
    notes: list[str],
) -> Path:
    """Write the card unless README.md was written by hand; return README.md's path."""
    readme = folder / "README.md"
    if readme.is_file() and not is_generated_card(readme.read_text(encoding="utf-8")):
        notes.append(
            f"{readme} was not written by mergekit or mergekit-weightlevel: kept as is "
            f"(`mergekit-weightlevel card FOLDER` writes the method's card and moves this one "
            f"to {USER_CARD})" + ("; --report was not applied to it" if report else "")
        )
        return readme
    return write_card(folder, hub_ids=hub_ids, report=report, model_id=repo_id)


def _scrub(text: str, token: str | None) -> str:
    return text.replace(token, "***") if token else text


def _hub_failure(error: Exception, repo_id: str, step: str, endpoint: str) -> PublishError:
    """A PublishError for an exception the Hub client raised while doing ``step``."""
    from huggingface_hub.errors import (
        HfHubHTTPError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = f"cannot publish to {repo_id} ({step})"
    if isinstance(error, RevisionNotFoundError):
        return PublishError(f"{where}: the Hub has no such branch or revision; check --revision")
    if isinstance(error, HfHubHTTPError) and error.response is not None:
        status = error.response.status_code
        if status == 401:
            return PublishError(
                f"{where}: the Hub refused the token (invalid or expired); {LOGIN_HINT}"
            )
        if status == 403:
            namespace = repo_id.split("/")[0] if "/" in repo_id else "your namespace"
            return PublishError(
                f"{where}: no write access to {namespace!r}: use a token with write access to "
                "it (fine-grained tokens need write permission on that namespace), or publish "
                "under your own name"
            )
        if isinstance(error, RepositoryNotFoundError) or status == 404:
            return PublishError(
                f"{where}: the Hub has no model repo {repo_id} visible to this token (it may "
                f"be of another type, or private to someone else); {LOGIN_HINT}"
            )
        server = (getattr(error, "server_message", None) or str(error)).splitlines()[0]
        return PublishError(f"{where}: the Hub answered HTTP {status} ({server}); try again later")
    if isinstance(error, ValueError):
        return PublishError(f"{where}: {error}")
    return PublishError(
        f"{where}: the Hub at {endpoint} could not be reached ({type(error).__name__}: {error}); "
        "check the network (or HF_ENDPOINT) and run again"
    )


def publish_folder(
    folder: Path,
    repo_id: str,
    *,
    private: bool = False,
    revision: str | None = None,
    create_pr: bool = False,
    commit_message: str | None = None,
    report: bool = False,
    dry_run: bool = False,
    hub_ids: dict[str, str] | None = None,
) -> PublishResult:
    """Check ``folder``, write its card and upload it to the model repo ``repo_id``."""
    folder = Path(folder)
    check_model_repo_id(repo_id)
    if create_pr and revision not in (None, "main"):
        raise PublishError(
            f"--create-pr opens a pull request against main of {repo_id}: leave out "
            f"--revision {revision} (or leave out --create-pr to push to that branch)"
        )
    notes: list[str] = []
    card_path = prepare_card(folder, repo_id, hub_ids=hub_ids, report=report, notes=notes)
    check_folder(folder)
    files = folder_files(folder)
    result = PublishResult(
        repo_id, card_path, card_path.read_text(encoding="utf-8"), files, dry_run, notes=notes
    )
    if result.not_model_files:
        sent = "would be uploaded" if dry_run else "are uploaded"
        notes.append(
            f"{len(result.not_model_files)} file(s) in {folder} are not part of the model and "
            f"{sent} with it: {', '.join(result.not_model_files)}; move them out of the folder "
            "first if they should not be"
        )
    if dry_run:
        return result

    from huggingface_hub import HfApi, get_token
    from huggingface_hub.errors import HfHubHTTPError

    token = get_token()
    if token is None:
        raise PublishError(f"cannot publish to {repo_id}: not logged in to the Hub; {LOGIN_HINT}")
    api = HfApi()
    endpoint = api.endpoint
    step = "reaching the Hub"
    try:
        try:
            api.repo_info(repo_id, repo_type="model", timeout=PROBE_TIMEOUT_S)
            exists = True
        except HfHubHTTPError as error:  # the Hub answered: 404 means "not created yet"
            if error.response is None or error.response.status_code != 404:
                raise
            exists = False
        step = "creating the repo"
        url = api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        # A bare `name` is created in the user's namespace: upload to the full id.
        repo_id = getattr(url, "repo_id", None) or repo_id
        result.repo_id = repo_id
        if exists and private:
            notes.append(
                f"{repo_id} already existed: --private does not change its visibility "
                "(change it in the repo's settings)"
            )
        if revision not in (None, "main") and not create_pr:
            step = f"creating branch {revision}"
            api.create_branch(repo_id, branch=revision, repo_type="model", exist_ok=True)
        step = "uploading"
        commit = api.upload_folder(
            repo_id=repo_id,
            folder_path=folder,
            repo_type="model",
            revision=revision,
            create_pr=create_pr,
            commit_message=commit_message or f"Upload {folder.name} (mergekit-weightlevel)",
        )
    except Exception as error:  # noqa: BLE001 - every failure becomes one message, no traceback
        failure = _hub_failure(error, repo_id, step, endpoint)
        raise PublishError(_scrub(str(failure), token)) from None
    result.commit_url = commit.commit_url
    result.pr_url = commit.pr_url
    return result

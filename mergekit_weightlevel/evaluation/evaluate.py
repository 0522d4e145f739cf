"""``evaluate_folders``: lm-eval on local model folders, cached by content, one table.

    from mergekit_weightlevel.evaluation import evaluate_folders
    evaluation = evaluate_folders(["out/a", "out/b"], ["toy_qa_add3"], limit=50)
    print(evaluation.table())

Order of work: every folder and task is checked first (a folder that is not a model, an
unknown task, a task whose data cannot be had offline: one message, nothing run); then each
folder is evaluated in turn, or read from the cache when the same content was evaluated
with the same settings before. Per folder, lm-eval's own results file is kept in the cache
entry (``ModelEvaluation.lm_eval_results``) and, for folders a merge wrote, the numbers go
into ``FOLDER/evaluation.json`` for the model card.
"""

from __future__ import annotations

import datetime
import json
import shutil
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mergekit_weightlevel.about import __version__
from mergekit_weightlevel.checks.model_folder import check_finished
from mergekit_weightlevel.errors import ModelFolderError, WeightLevelInputError, package_logger
from mergekit_weightlevel.evaluation.cache import (
    ResultCache,
    default_cache_dir,
    folder_digest,
    settings_digest,
    tree_digest,
    write_json_atomically,
)
from mergekit_weightlevel.evaluation.harness import TaskCatalog, resolve_tasks, run_lm_eval
from mergekit_weightlevel.evaluation.record import write_record
from mergekit_weightlevel.evaluation.results import (
    ModelEvaluation,
    TaskFacts,
    metrics_table,
    read_metrics,
    read_task_facts,
)

LOG = package_logger(__name__)

WEIGHT_SUFFIXES = (".safetensors", ".bin")


@dataclass(frozen=True)
class EvalSettings:
    """What, besides the model, decides an evaluation's numbers."""

    tasks: tuple[str, ...]
    include_paths: tuple[Path, ...] = ()
    limit: int | float | None = None
    num_fewshot: int | None = None
    device: str | None = None
    batch_size: int | str | None = None
    model_args: tuple[tuple[str, Any], ...] = ()
    #: Prompts through the tokenizer's chat template (lm-eval's --apply_chat_template).
    apply_chat_template: bool = False

    def shown(self) -> dict[str, Any]:
        """The settings as a record states them."""
        return {
            "tasks": list(self.tasks),
            "limit": self.limit,
            "num_fewshot": self.num_fewshot,
            "device": self.device,
            "batch_size": self.batch_size,
            "model_args": dict(self.model_args),
            "apply_chat_template": self.apply_chat_template,
        }


def library_versions() -> dict[str, str]:
    import lm_eval
    import torch
    import transformers

    return {
        "lm_eval": getattr(lm_eval, "__version__", "?"),
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "mergekit-weightlevel": __version__,
    }


def check_model_folder(folder: Path) -> None:
    """Raise ``ModelFolderError`` unless lm-eval's ``hf`` model can load ``folder``: a
    ``config.json`` transformers reads and weights beside it."""
    if folder.exists() and not folder.is_dir():
        raise ModelFolderError(
            f"{folder}: a file, not a model folder; give the folder a merge wrote"
        )
    if not folder.is_dir():
        raise ModelFolderError(f"{folder}: no such model folder")
    unfinished = check_finished(folder)
    if unfinished:
        raise ModelFolderError(f"{folder}: {unfinished[0]}")
    if not (folder / "config.json").is_file():
        raise ModelFolderError(
            f"{folder}: not a model folder lm-eval can load (no config.json); give the folder a "
            "merge wrote, or a saved transformers model"
        )
    if not any(p.suffix in WEIGHT_SUFFIXES for p in folder.iterdir()):
        raise ModelFolderError(f"{folder}: holds no weights (*.safetensors or *.bin)")
    from transformers import AutoConfig

    try:
        AutoConfig.from_pretrained(str(folder))
    except Exception as error:  # noqa: BLE001 - any failure means the folder does not load
        raise ModelFolderError(
            f"{folder}: its config.json does not load ({type(error).__name__}: {error})"
        ) from None


def has_chat_template(folder: Path) -> bool:
    """Whether the folder's tokenizer carries a chat template (its own file or its config)."""
    if (folder / "chat_template.jinja").is_file():
        return True
    try:
        config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return bool(config.get("chat_template"))


def folder_labels(folders: Sequence[Path]) -> list[str]:
    """Folder names, or their paths where two folders share a name."""
    names = [f.name for f in folders]
    return [str(f) if names.count(f.name) > 1 else f.name for f in folders]


@dataclass
class Evaluation:
    """``evaluate_folders``' result: one ``ModelEvaluation`` per folder, in order."""

    settings: EvalSettings
    models: list[ModelEvaluation]

    def table(self) -> str:
        return metrics_table(self.models)

    def to_dict(self) -> dict[str, Any]:
        return {
            "settings": self.settings.shown(),
            "models": [model.to_dict() for model in self.models],
        }

    def write_json(self, path: Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomically(path, self.to_dict())
        return path


class Evaluator:
    """Evaluates folders one by one with fixed settings, through the cache.

    ``prepare`` does every check that needs no model (tasks, data); ``evaluate`` runs (or
    reads from the cache) one folder. ``evaluate_folders`` and ``evaluate_sweep`` use it.
    """

    def __init__(
        self,
        settings: EvalSettings,
        *,
        cache_dir: Path | None = None,
        log: Callable[[str], None] = print,
    ) -> None:
        self.settings = settings
        self.cache = ResultCache(Path(cache_dir) if cache_dir else default_cache_dir())
        self.log = log
        self.catalog: TaskCatalog | None = None
        self.settings_key = ""

    def prepare(self) -> TaskCatalog:
        """Find and load the tasks (raises before any model is touched)."""
        if self.catalog is None:
            catalog = resolve_tasks(
                list(self.settings.tasks), list(self.settings.include_paths), self.log
            )
            from mergekit_weightlevel.evaluation.harness import default_device

            device = self.settings.device or default_device()
            identity = {
                **self.settings.shown(),
                "device": device,
                "tasks": catalog.names,
                "task_files": tree_digest(catalog.include_paths),
                "versions": library_versions(),
            }
            self.settings_key = settings_digest(identity)
            self.catalog = catalog
        return self.catalog

    def evaluate(self, folder: Path, label: str, *, record: bool = True) -> ModelEvaluation:
        """Evaluate one folder (or read its cached evaluation); raises on failure. With
        ``record``, a merge output's ``evaluation.json`` gets the results (never give it for
        an input model, e.g. a sweep's reference: the docs promise those are not written to)."""
        catalog = self.prepare()
        folder = Path(folder).resolve()
        digest = folder_digest(folder, self.cache.memo)
        cached = self.cache.load(digest, self.settings_key)
        if cached is not None:
            evaluation = self._from_summary(cached, folder, label, digest)
            self.log(f"{label}: cached (same weights and settings evaluated on {evaluation.date})")
        else:
            if not self.settings.apply_chat_template and has_chat_template(folder):
                self.log(
                    f"note: {folder} has a chat template; prompts go in raw, as lm-eval's "
                    "default (--apply-chat-template sends them through it)"
                )
            evaluation = self._run(folder, label, digest, catalog)
        if record:
            write_record(
                folder, evaluation, self.settings.shown(), f"mergekit-weightlevel {__version__}"
            )
        return evaluation

    def evaluate_or_fail(self, folder: Path, label: str, *, record: bool = True) -> ModelEvaluation:
        """``evaluate``, with any failure recorded instead of raised (a sweep goes on)."""
        try:
            return self.evaluate(folder, label, record=record)
        except KeyboardInterrupt:
            raise
        except Exception as error:  # noqa: BLE001 - the table says which failed and why
            reason = f"{type(error).__name__}: {error}".splitlines()[0]
            self.log(f"{label}: evaluation failed: {reason}")
            LOG.debug("%s: evaluation failed", label, exc_info=error)  # its traceback
            return ModelEvaluation(Path(folder), label, "failed", error=reason)

    def _run(self, folder: Path, label: str, digest: str, catalog: TaskCatalog) -> ModelEvaluation:
        settings = self.settings
        self.log(f"{label}: evaluating {folder} on {', '.join(catalog.names)}")
        start = time.perf_counter()
        staging = self.cache.staging(digest, self.settings_key)
        try:
            results, written = run_lm_eval(
                folder,
                catalog,
                output_file=staging / "lm_eval_results.json",
                limit=settings.limit,
                num_fewshot=settings.num_fewshot,
                device=settings.device,
                batch_size=settings.batch_size,
                model_args=dict(settings.model_args),
                apply_chat_template=settings.apply_chat_template,
            )
        except Exception as error:
            shutil.rmtree(staging, ignore_errors=True)  # no partial entry left behind
            raise _model_failure(folder, error) from error
        summary = {
            "folder": str(folder),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "seconds": round(time.perf_counter() - start, 2),
            "versions": library_versions(),
            "lm_eval_results": written.name,
            "results": {
                k: results[k] for k in ("results", "groups", "higher_is_better") if k in results
            },
            "facts": {name: asdict(facts) for name, facts in read_task_facts(results).items()},
        }
        entry = self.cache.commit(staging, summary)
        summary = self.cache.load(digest, self.settings_key) or summary  # theirs, if first
        return self._from_summary(summary, folder, label, digest, entry, status="evaluated")

    def _from_summary(
        self,
        summary: dict[str, Any],
        folder: Path,
        label: str,
        digest: str,
        entry: Path | None = None,
        status: str = "cached",
    ) -> ModelEvaluation:
        entry = entry or self.cache.entry(digest, self.settings_key)
        return ModelEvaluation(
            folder=folder,
            label=label,
            status=status,
            digest=digest,
            metrics=read_metrics(summary["results"]),
            tasks={name: TaskFacts(**facts) for name, facts in summary["facts"].items()},
            lm_eval_results=entry / summary["lm_eval_results"],
            date=summary["date"],
            seconds=summary["seconds"],
            versions=summary["versions"],
        )


#: Where lm-eval's ``hf`` model loads the config, tokenizer and weights.
LOADING = ("__init__", "_get_config", "_create_model", "_create_tokenizer", "_get_backend")


def _failed_loading(error: BaseException) -> bool:
    """Whether ``error`` was raised while lm-eval's ``hf`` model was being built."""
    return any(
        frame.f_code.co_filename.endswith(str(Path("lm_eval", "models", "huggingface.py")))
        and frame.f_code.co_name in LOADING
        for frame, _ in traceback.walk_tb(error.__traceback__)
    )


def _model_failure(folder: Path, error: Exception) -> Exception:
    """A model that does not load names its folder; anything else passes as it is."""
    if not _failed_loading(error):
        return error
    first = (str(error).splitlines() or [""])[0]
    return ModelFolderError(
        f"{folder}: lm-eval could not load the model ({type(error).__name__}: {first})"
    )


def make_settings(
    tasks: Sequence[str] | str,
    *,
    include_path: str | Path | Sequence[str | Path] | None = None,
    limit: int | float | None = None,
    num_fewshot: int | None = None,
    device: str | None = None,
    batch_size: int | str | None = None,
    model_args: dict[str, Any] | None = None,
    apply_chat_template: bool = False,
) -> EvalSettings:
    """``EvalSettings`` from user-facing arguments (``tasks`` may be ``"T1,T2"``)."""
    if isinstance(tasks, str):
        tasks = [t for t in (part.strip() for part in tasks.split(",")) if t]
    if include_path is None:
        paths: tuple[Path, ...] = ()
    elif isinstance(include_path, (str, Path)):
        paths = (Path(include_path),)
    else:
        paths = tuple(Path(p) for p in include_path)
    if limit is not None and limit <= 0:
        raise WeightLevelInputError(f"--limit must be positive, got {limit}")
    if num_fewshot is not None and num_fewshot < 0:
        raise WeightLevelInputError(f"--num-fewshot must be ≥ 0, got {num_fewshot}")
    if device is not None and device.split(":")[0] not in ("cpu", "cuda"):
        raise WeightLevelInputError(f"--device must be cpu or cuda (cuda:N), got {device!r}")
    return EvalSettings(
        tasks=tuple(tasks),
        include_paths=paths,
        limit=limit,
        num_fewshot=num_fewshot,
        device=device,
        batch_size=batch_size,
        model_args=tuple(sorted((model_args or {}).items())),
        apply_chat_template=apply_chat_template,
    )


def evaluate_folders(
    folders: Sequence[str | Path],
    tasks: Sequence[str] | str,
    *,
    include_path: str | Path | Sequence[str | Path] | None = None,
    limit: int | float | None = None,
    num_fewshot: int | None = None,
    device: str | None = None,
    batch_size: int | str | None = None,
    model_args: dict[str, Any] | None = None,
    apply_chat_template: bool = False,
    json_path: str | Path | None = None,
    cache_dir: str | Path | None = None,
    log: Callable[[str], None] = print,
) -> Evaluation:
    """Evaluate each model folder on lm-eval ``tasks`` (names, globs, groups, or tasks in
    ``include_path`` / the shipped ``evaluation/tasks``); see the module's docstring.

    ``limit``, ``num_fewshot``, ``device``, ``batch_size`` are lm-eval's (``device`` defaults
    to cuda where there is one, ``batch_size`` to 1); ``model_args`` adds to
    ``pretrained=FOLDER`` (e.g. ``{"dtype": "bfloat16"}``); ``apply_chat_template`` prompts through the
    tokenizer's chat template (lm-eval's ``--apply_chat_template``). ``json_path`` writes the combined
    results. Raises before any evaluation for a folder that is not a model, an unknown task
    or data that cannot be had; a folder whose model fails to load raises naming it.
    """
    paths = [Path(f) for f in folders]
    if not paths:
        raise WeightLevelInputError("give at least one model folder to evaluate")
    settings = make_settings(
        tasks,
        include_path=include_path,
        limit=limit,
        num_fewshot=num_fewshot,
        device=device,
        batch_size=batch_size,
        model_args=model_args,
        apply_chat_template=apply_chat_template,
    )
    for path in paths:
        check_model_folder(path)
    evaluator = Evaluator(settings, cache_dir=Path(cache_dir) if cache_dir else None, log=log)
    evaluator.prepare()  # every task found and loaded before any model
    models = [evaluator.evaluate(path, label) for path, label in zip(paths, folder_labels(paths))]
    evaluation = Evaluation(settings, models)
    if json_path is not None:
        evaluation.write_json(Path(json_path))
    return evaluation

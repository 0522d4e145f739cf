"""The calls into lm-evaluation-harness (``lm_eval``): finding tasks, running one model.

Everything that needs ``lm_eval`` (the ``[eval]`` extra) is imported here, inside functions,
so the rest of the package imports without it. A run is what lm-eval's command line does,
through its Python API: the same model arguments (``pretrained=FOLDER``), the same task
metadata (the model arguments, as the command line passes them), the same seeds and the
same results file; ``tests/test_evaluation_cli_oracle.py`` checks the numbers agree.

Finding tasks costs: lm-eval indexes its ~15 000 built-in task files in about 10 s. Tasks
found in the shipped folder and ``--include-path`` alone are looked up there first; the
built-in index is built only for a name not found there, once per process.
"""

from __future__ import annotations

import copy
import difflib
import logging
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from mergekit_weightlevel.errors import WeightLevelError, WeightLevelInputError
from mergekit_weightlevel.evaluation.results import NO_FILTER
from mergekit_weightlevel.evaluation.shipped import TASKS_DIR

INSTALL_HINT = 'install the evaluation extra: pip install "mergekit-weightlevel[eval]"'
OFFLINE_SWITCHES = ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE")


class UnknownTaskError(WeightLevelInputError):
    """A task name lm-eval does not know, with the close names it does."""


class TaskDataError(WeightLevelError, RuntimeError):
    """A task whose data cannot be loaded (a Hub dataset offline, a missing local file)."""


class _DropNoise(logging.Filter):
    """lm-eval warnings that say nothing to our users: a hint about ``--metadata`` for every
    task with a custom loader (ours read the model's tokenizer from it already), and a
    chat-template hint for every folder whose name contains "instruct"."""

    NOISE = ("Custom kwargs can be passed to `--metadata`", "appears to be an instruct or chat")
    # (``evaluate`` says itself when a folder has a chat template that is not applied.)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(noise in message for noise in self.NOISE)


def _quiet_lm_eval() -> None:
    for name in ("lm_eval.api.task", "lm_eval.evaluator"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropNoise) for f in logger.filters):
            logger.addFilter(_DropNoise())


def require_lm_eval() -> None:
    try:
        import lm_eval  # noqa: F401
    except ImportError:
        raise WeightLevelError(f"evaluation needs lm-evaluation-harness: {INSTALL_HINT}") from None
    _quiet_lm_eval()


def offline_switches() -> list[str]:
    """The Hub's offline switches set in the environment (``HF_DATASETS_OFFLINE=1``, ...)."""
    return [
        name
        for name in OFFLINE_SWITCHES
        if os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")
    ]


@lru_cache(maxsize=4)
def _task_manager(include_paths: tuple[str, ...], include_defaults: bool) -> Any:
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=list(include_paths), include_defaults=include_defaults)


def task_manager_for(manager: Any, metadata: dict[str, Any]) -> Any:
    """``manager``'s task index with ``metadata`` given to every task it builds.

    lm-eval's command line builds a new TaskManager per run with the model arguments as
    metadata (a task's dataset loader reads the tokenizer there); building one re-indexes
    every task file, so this copies the index and gives the copy its own task factory
    (lm-eval 0.4.13's ``TaskManager._factory``, pinned by the ``[eval]`` extra).
    """
    from lm_eval.tasks._factory import TaskFactory

    shared = copy.copy(manager)
    shared.metadata = metadata
    shared._factory = TaskFactory(meta=metadata)
    return shared


@dataclass
class TaskCatalog:
    """The requested tasks, found: lm-eval's names, its task manager, what each produces."""

    requested: list[str]
    names: list[str]
    include_paths: list[Path]
    manager: Any
    #: Per task (and per requested group): the metric names its results will hold.
    metrics: dict[str, list[str]] = field(default_factory=dict)
    #: Per task reading a Hub dataset: that dataset (``openai/gsm8k``).
    hub_datasets: dict[str, str] = field(default_factory=dict)
    uses_builtin_tasks: bool = False


def _close_names(name: str, known: list[str]) -> list[str]:
    return difflib.get_close_matches(name, known, n=3, cutoff=0.6)


def _unknown(names: list[str], known: list[str], include_paths: list[Path]) -> UnknownTaskError:
    parts = []
    for name in names:
        close = _close_names(name, known)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        parts.append(f"{name!r}{hint}")
    where = ", ".join(str(p) for p in include_paths)
    return UnknownTaskError(
        f"unknown lm-eval task {'; '.join(parts)}: not among lm-eval's tasks nor in {where}; "
        "`lm_eval ls tasks` lists the built-in ones, --include-path DIR adds a folder of task "
        "YAMLs"
    )


def _dataset_of(manager: Any, name: str) -> tuple[str | None, str | None]:
    """The Hub dataset (path, config) a task's YAML names, if any (None for local data)."""
    from mergekit_weightlevel.evaluation.results import hub_dataset_of

    entry = manager.task_index.get(name)
    config = (entry.cfg if entry is not None else None) or {}
    if entry is not None and not config and entry.yaml_path is not None:
        from lm_eval.tasks._yaml_loader import load_yaml

        config = load_yaml(entry.yaml_path, resolve_func=False)
    found = hub_dataset_of(config)
    return found if found is not None else (None, None)


def _data_error(name: str, manager: Any, error: Exception) -> TaskDataError:
    dataset, config = _dataset_of(manager, name)
    reason = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
    if dataset is None:
        return TaskDataError(f"task {name!r}: its data could not be loaded ({reason})")
    shown = dataset + (f" (config {config})" if config else "")
    switches = offline_switches()
    if switches:
        verb = "are" if len(switches) > 1 else "is"
        what = (
            f"{' and '.join(f'{s}=1' for s in switches)} {verb} set: the Hub is not asked. Run once "
            f"without {' and '.join(switches)} on a machine with network to cache it"
        )
    else:
        what = (
            "the Hub could not be reached: check the network (or HF_ENDPOINT), or copy the "
            "dataset into the Hugging Face cache and set HF_DATASETS_OFFLINE=1"
        )
    return TaskDataError(
        f"task {name!r} needs dataset {shown} from the Hugging Face Hub, and it is not in "
        f"the local cache ({reason}); {what}, or use a local task (--include-path)"
    )


def _metric_names(task: Any) -> list[str]:
    """The ``metric`` / ``metric,filter`` names a loaded lm-eval task reports."""
    filters = [f["name"] for f in task.config.filter_list or []] or [NO_FILTER]
    metrics = list(task.aggregation())
    return [m if f == NO_FILTER else f"{m},{f}" for f in filters for m in metrics]


def resolve_tasks(
    requested: list[str], include_paths: list[Path] | None = None, log=print
) -> TaskCatalog:
    """Find the requested tasks and load them once (their data included), before any model.

    Raises ``UnknownTaskError`` (with close names) or ``TaskDataError`` (naming the dataset
    and the offline switch) so that nothing is evaluated when a task cannot run.
    """
    require_lm_eval()
    if not requested:
        raise WeightLevelInputError("give at least one lm-eval task (--tasks T1,T2)")
    extra = [Path(p) for p in include_paths or []]
    for path in extra:
        if not path.is_dir():
            raise WeightLevelInputError(f"--include-path {path}: not a folder of task YAMLs")
    paths = [TASKS_DIR, *(p.resolve() for p in extra)]
    key = tuple(str(p) for p in paths)
    manager = _task_manager(key, False)
    builtin = any(not manager.match_tasks([name]) for name in requested)
    if builtin:
        manager = _task_manager(key, True)
    missing = [name for name in requested if not manager.match_tasks([name])]
    if missing:
        raise _unknown(missing, manager.all_tasks, paths)
    names = list(dict.fromkeys(n for name in requested for n in manager.match_tasks([name])))
    catalog = TaskCatalog(requested, names, paths, manager, uses_builtin_tasks=builtin)
    for name in names:
        dataset, _ = _dataset_of(manager, name)
        if dataset is not None:
            catalog.hub_datasets[name] = dataset
            offline = " (offline: from the local cache only)" if offline_switches() else ""
            log(f"task {name} reads dataset {dataset} from the Hugging Face Hub{offline}")
        try:
            loaded = manager.load([name])
        except Exception as error:  # noqa: BLE001 - one message naming the task and its data
            raise _data_error(name, manager, error) from error
        group_metrics: list[str] = []
        for task_name, task in loaded["tasks"].items():
            catalog.metrics[task_name] = _metric_names(task)
            group_metrics += catalog.metrics[task_name]
        for group in loaded.get("groups", {}):
            catalog.metrics[group] = list(dict.fromkeys(group_metrics))
    return catalog


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def run_lm_eval(
    folder: Path,
    catalog: TaskCatalog,
    *,
    output_file: Path,
    limit: int | float | None = None,
    num_fewshot: int | None = None,
    device: str | None = None,
    batch_size: int | str | None = None,
    model_args: dict[str, Any] | None = None,
    apply_chat_template: bool = False,
) -> tuple[dict[str, Any], Path]:
    """Evaluate ``folder`` on the catalog's tasks as ``lm_eval --model hf`` would.

    lm-eval's own results file is written beside ``output_file`` (``<stem>_<date>.json``,
    what ``--output_path FILE.json`` writes); returns the results and that file.
    """
    import lm_eval
    from lm_eval.loggers import EvaluationTracker

    arguments = {"pretrained": str(folder), **(model_args or {})}
    tracker = EvaluationTracker(output_path=str(output_file))
    results = lm_eval.simple_evaluate(
        model="hf",
        model_args=arguments,
        tasks=catalog.names,
        num_fewshot=num_fewshot,
        batch_size=batch_size if batch_size is not None else 1,
        device=device or default_device(),
        limit=limit,
        log_samples=False,
        apply_chat_template=apply_chat_template,
        evaluation_tracker=tracker,
        task_manager=task_manager_for(catalog.manager, arguments),
    )
    if results is None:  # only other ranks of a distributed run get None
        raise WeightLevelError(f"lm-eval returned no results for {folder}")
    tracker.save_results_aggregated(results=results, samples=None)
    written = sorted(output_file.parent.glob(f"{output_file.stem}_*.json"))
    return results, written[-1]

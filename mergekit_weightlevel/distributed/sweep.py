"""``sweep`` on Ray: the values in groups, each group one ``run_sweep`` pass in one task.

A group is a slice of the checked ``SweepRequest`` (its values, their configs and folders),
merged by ``run_sweep`` as a local sweep of those values would be: each output equals the
local sweep's, bit for bit. Grouping trades reading for parallelism: each group reads the
inputs once (and Timber decomposes each tensor once per group), and the groups run at once.
By default there are as many groups as the cluster runs tasks at once (one per GPU, or per
``--cpus-per-task`` CPUs), at most one per value; ``values_per_task`` fixes the group size.

``evaluate`` is the hook for "then evaluate the group's outputs": called in the same task
right after the group's merge, on the GPU the task holds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mergekit.options import MergeOptions

from mergekit_weightlevel.distributed.connection import connect
from mergekit_weightlevel.distributed.settings import RaySettings
from mergekit_weightlevel.distributed.storage import check_shared_storage
from mergekit_weightlevel.distributed.units import UnitOutcome, describe_error, run_units
from mergekit_weightlevel.errors import WeightLevelInputError
from mergekit_weightlevel.running.sweep import (
    SweepRequest,
    SweptOutput,
    finished_outputs,
    input_paths,
    run_sweep,
)

#: ``evaluate(outputs) -> results``: the group's ``SweptOutput``s in value order (failed ones
#: included, their ``error`` set); one result per output, same order. See ``sweep_on_ray``.
EvaluateOutputs = Callable[[list[SweptOutput]], Sequence[Any]]


@dataclass(frozen=True)
class SweptOnRay:
    """One value's end on Ray: its ``SweptOutput`` and what ``evaluate`` said of it.

    ``output.error`` is also set when the group's task failed (its worker died twice);
    ``evaluation`` is ``evaluate``'s result for it (None without ``evaluate``);
    ``evaluation_error`` is set when ``evaluate`` raised for the group.
    """

    output: SweptOutput
    evaluation: Any = None
    evaluation_error: str | None = None


@dataclass(frozen=True)
class GroupTask:
    """One task's request: merge ``request`` (a slice of the sweep), then ``evaluate``."""

    request: SweepRequest
    options: MergeOptions | None
    evaluate: EvaluateOutputs | None
    reuse: bool = True


def group_sizes(count: int, groups: int) -> list[int]:
    """``count`` values in ``groups`` contiguous groups whose sizes differ by at most one."""
    groups = max(1, min(groups, count))
    return [count // groups + (1 if k < count % groups else 0) for k in range(groups)]


def split_request(
    request: SweepRequest, slots: int, values_per_task: int | None = None
) -> list[SweepRequest]:
    """The request's values in groups: ``values_per_task`` each, else one group per slot."""
    count = len(request.values)
    if values_per_task is not None:
        if values_per_task < 1:
            raise WeightLevelInputError(
                f"--values-per-task must be 1 or more, not {values_per_task}."
            )
        sizes = [values_per_task] * (count // values_per_task) + (
            [count % values_per_task] if count % values_per_task else []
        )
    else:
        sizes = group_sizes(count, slots)
    groups, start = [], 0
    for size in sizes:
        part = slice(start, start + size)
        groups.append(
            replace(
                request,
                values=request.values[part],
                configs=request.configs[part],
                out_dirs=request.out_dirs[part],
            )
        )
        start += size
    return groups


def merge_group(task: GroupTask) -> list[SweptOnRay]:
    """A task's body: ``run_sweep`` of the group, then ``evaluate`` of its outputs."""
    if task.options is not None:
        task.options.apply_global_options()
    outputs = run_sweep(task.request, task.options, reuse=task.reuse)
    if task.evaluate is None:
        return [SweptOnRay(output) for output in outputs]
    try:
        results = list(task.evaluate(outputs))
    except Exception as error:  # noqa: BLE001 - the merges stand; say why evaluation did not
        message = describe_error(error)
        return [SweptOnRay(output, evaluation_error=message) for output in outputs]
    if len(results) != len(outputs):
        message = f"evaluate returned {len(results)} results for {len(outputs)} outputs"
        return [SweptOnRay(output, evaluation_error=message) for output in outputs]
    return [SweptOnRay(output, result) for output, result in zip(outputs, results)]


def sweep_on_ray(
    request: SweepRequest,
    options: MergeOptions | None = None,
    *,
    settings: RaySettings | None = None,
    values_per_task: int | None = None,
    evaluate: EvaluateOutputs | None = None,
    on_done: Callable[[UnitOutcome], None] | None = None,
    reuse: bool = True,
    writes_also: Sequence[Path] = (),
) -> list[SweptOnRay]:
    """``run_sweep(request, options)`` on Ray: one ``SweptOnRay`` per value, in value order.

    ``request`` comes from ``plan_sweep`` (or ``plan_timber_sweep``): every check is done
    before Ray starts. The output folders must be shared storage (checked first: each node
    writes a probe into the prefix's folder). Each group is one task (``values_per_task``
    values each, or one group per task slot of the cluster); a group whose task fails gives
    each of its values that error, its folders keeping ``MERGE_INCOMPLETE.txt``; the other
    groups complete.

    ``evaluate``: the hook for evaluating each group's outputs in the task that merged them
    (on its GPU). ``evaluate(outputs)`` receives the group's ``SweptOutput``s in value order
    (a failed one has ``error`` set and no weights) and returns one result per output, in
    the same order; each result is pickled back as ``SweptOnRay.evaluation``. It must be
    picklable and importable on the nodes (a module-level function, a ``functools.partial``
    of one, or an instance of a module-level class). If it raises, the group's outputs stay
    written and each gets ``evaluation_error``. ``writes_also``: other folders the tasks
    write into (the evaluation cache), checked to be shared like the outputs'.
    """
    settings = settings or RaySettings()
    inputs = _local_inputs(request)
    with connect(settings.address) as cluster:
        task_request = cluster.request(settings)
        folders = {folder.parent for folder in request.out_dirs} | set(map(Path, writes_also))
        for folder in sorted(folders):
            check_shared_storage(cluster, task_request, folder, inputs)
        groups = split_request(request, cluster.slots(task_request), values_per_task)
        tasks = [GroupTask(group, options, evaluate, reuse) for group in groups]
        labels = [
            f"{request.parameter} {', '.join(f'{value:g}' for value in group.values)}"
            for group in groups
        ]
        outcomes = run_units(merge_group, tasks, task_request, labels=labels, on_done=on_done)
    results: list[SweptOnRay] = []
    for group, outcome in zip(groups, outcomes):
        if outcome.ok:
            results += outcome.result
        else:
            results += _failed_group(group, outcome.error)
    return results


def _failed_group(group: SweepRequest, error: str | None) -> list[SweptOnRay]:
    """A group whose task failed (twice): a value whose folder holds its finished merge
    (the task died later, e.g. evaluating) is written, with the evaluation failed; the
    others carry the error (their folders keep ``MERGE_INCOMPLETE.txt``)."""
    finished = finished_outputs(group)
    return [
        SweptOnRay(SweptOutput(value, folder), evaluation_error=f"its task failed: {error}")
        if folder in finished
        else SweptOnRay(SweptOutput(value, folder, f"its task failed: {error}"))
        for value, folder in zip(group.values, group.out_dirs)
    ]


def _local_inputs(request: SweepRequest) -> list[str]:
    """The folders here that the sweep reads (its models, their adapters, a parameter's
    adapter): every node must see them too."""
    return sorted(path for path in input_paths(request) if Path(path).is_dir())

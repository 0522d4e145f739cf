"""``run_units``: independent units of work, one Ray task each; the results back, in order.

The one runner behind ``analyze`` of several pairs (a unit: one pair), ``sweep`` on Ray (a
unit: a group of values) and, later, ``evaluate`` (a unit: one folder). Ray schedules and
retries; this module only submits, collects and cancels. ``run_on_ray`` is the whole
sequence from the user's ``RaySettings``: connect, check the storage, run, disconnect.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from mergekit_weightlevel.distributed.cluster import TaskRequest
from mergekit_weightlevel.distributed.connection import connect, first_line, require_ray
from mergekit_weightlevel.distributed.settings import RaySettings
from mergekit_weightlevel.distributed.storage import check_shared_storage
from mergekit_weightlevel.errors import WeightLevelError

Payload = TypeVar("Payload")
Result = TypeVar("Result")

#: A task whose worker died (killed for memory, a lost node, a crash) runs once more.
WORKER_RETRIES = 1
#: How long, after Ctrl-C, to wait for the cancelled tasks' workers to be gone.
CANCEL_WAIT_S = 30.0


@dataclass(frozen=True)
class UnitOutcome(Generic[Result]):
    """One unit's end: its ``result``, or ``error``, one line saying why it has none."""

    label: str
    result: Result | None = None
    error: str | None = None
    #: The exception the unit's function raised (None: it returned, or its worker died).
    exception: BaseException | None = field(default=None, compare=False, repr=False)

    @property
    def ok(self) -> bool:
        return self.error is None


class UnitsInterrupted(KeyboardInterrupt):
    """Ctrl-C while units ran: the unfinished ones were cancelled (their workers stopped)."""

    def __init__(self, cancelled: list[str], finished: list[UnitOutcome]) -> None:
        self.cancelled = cancelled
        self.finished = finished
        super().__init__(
            f"interrupted: cancelled {len(cancelled)} unfinished task(s) "
            f"({', '.join(cancelled)}); {len(finished)} had finished."
        )


class UnitsFailed(WeightLevelError, RuntimeError):
    """Some units of a run that needs all of them (``analyze``) failed; the message says which."""


def run_units(
    function: Callable[[Payload], Result],
    payloads: Sequence[Payload],
    request: TaskRequest,
    *,
    labels: Sequence[str] | None = None,
    on_done: Callable[[UnitOutcome[Result]], None] | None = None,
) -> list[UnitOutcome[Result]]:
    """Run ``function(payload)`` for every payload, each as one Ray task; one outcome each.

    The contract, for every caller (``analyze``, ``sweep``, ``evaluate``):

    - Call it inside ``connection.connect(...)``; ``request`` is that cluster's
      ``Cluster.request(settings)``: each task declares those CPUs and GPUs (Ray gives a
      GPU task its own device through ``CUDA_VISIBLE_DEVICES``: use ``cuda``, not
      ``cuda:N``).
    - ``function`` must be importable on every node (a module-level function of an
      installed package, or a ``functools.partial`` / picklable callable object of one);
      ``payload`` and its return value are pickled: paths, settings and results, not
      tensors. Only the return value travels back.
    - Each unit runs in the driver's working directory where that folder exists on its node
      (relative paths in a payload mean the same on shared storage).
    - A unit whose worker dies (killed for memory, its node lost, a crash) runs once more
      (``WORKER_RETRIES``); an exception raised by ``function`` is not retried (it would
      fail again) and becomes the unit's ``error`` (its message) and ``exception``. The
      other units go on either way.
    - Returns when every unit has ended: the outcomes in the order of ``payloads``;
      ``labels`` name them in errors and messages (default: "unit 1", …); ``on_done`` is
      called in this process as each one ends (in the order they end), e.g. for progress.
    - Ctrl-C (KeyboardInterrupt here) cancels every unfinished unit, stopping its worker,
      waits for those workers to be gone, and raises ``UnitsInterrupted``. A unit that
      writes files must mark them as unfinished until done (as a merge does with
      ``MERGE_INCOMPLETE.txt``) or write them atomically: it can be stopped at any point.
    """
    ray = require_ray()
    labels = list(labels) if labels is not None else [f"unit {k + 1}" for k in range(len(payloads))]
    if len(labels) != len(payloads):
        raise ValueError(f"{len(payloads)} payloads but {len(labels)} labels")
    task = ray.remote(_in_driver_folder)
    cwd = os.getcwd()
    refs = [
        task.options(
            name=label,
            num_cpus=request.cpus,
            num_gpus=request.gpus,
            max_retries=WORKER_RETRIES,
            retry_exceptions=False,
        ).remote(function, payload, cwd)
        for label, payload in zip(labels, payloads)
    ]
    position = {ref: k for k, ref in enumerate(refs)}
    outcomes: list[UnitOutcome[Result] | None] = [None] * len(refs)
    pending = list(refs)
    try:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                k = position[ref]
                outcomes[k] = _outcome(ray, labels[k], ref)
                if on_done is not None:
                    on_done(outcomes[k])
    except KeyboardInterrupt:
        for ref in pending:
            ray.cancel(ref, force=True)
        if pending:
            ray.wait(pending, num_returns=len(pending), timeout=CANCEL_WAIT_S)
        raise UnitsInterrupted(
            [labels[position[ref]] for ref in pending],
            [outcome for outcome in outcomes if outcome is not None],
        ) from None
    return [outcome for outcome in outcomes if outcome is not None]


def run_on_ray(
    function: Callable[[Payload], Result],
    payloads: Sequence[Payload],
    settings: RaySettings,
    *,
    write_in: str | Path | None = None,
    reads: Sequence[str | Path] = (),
    labels: Sequence[str] | None = None,
    on_done: Callable[[UnitOutcome[Result]], None] | None = None,
) -> list[UnitOutcome[Result]]:
    """``run_units`` from the user's settings: connect, check the storage, run, disconnect.

    ``write_in``: the folder the units write into (every node must share it: checked first,
    ``storage.check_shared_storage``); None when they write nothing on the nodes. ``reads``:
    local paths every node must see (the models, the folders to evaluate). The rest is
    ``run_units``' contract.
    """
    with connect(settings.address) as cluster:
        request = cluster.request(settings)
        check_shared_storage(cluster, request, write_in, reads)
        return run_units(function, payloads, request, labels=labels, on_done=on_done)


def _in_driver_folder(function: Callable[[Any], Any], payload: Any, cwd: str) -> Any:
    """The task's body: ``function(payload)`` in the driver's folder where this node has it."""
    here = os.getcwd()
    if os.path.isdir(cwd):
        os.chdir(cwd)
    try:
        return function(payload)
    finally:
        os.chdir(here)


def _outcome(ray: Any, label: str, ref: Any) -> UnitOutcome:
    try:
        return UnitOutcome(label, result=ray.get(ref))
    except ray.exceptions.RayTaskError as error:  # raised by the unit's function
        cause = error.cause if isinstance(error.cause, BaseException) else error
        return UnitOutcome(label, error=describe_error(cause), exception=cause)
    except ray.exceptions.RayError as error:  # its worker died, twice (or Ray lost it)
        return UnitOutcome(
            label,
            error=f"its worker died, and so did its retry ({type(error).__name__}: "
            f"{first_line(error)})",
        )


def describe_error(error: BaseException) -> str:
    """One line: the message of our own errors, ``Type: message`` of anything else."""
    text = first_line(error)
    return text if isinstance(error, WeightLevelError) else f"{type(error).__name__}: {text}"

"""What one merge remembers while it runs, and nothing after it.

mergekit calls a method once per tensor, but some of a method's work belongs to the whole
merge: the checkpoint headers are checked once, the "is this a post-trained pair?" σ is
sampled on a few tensors, Shadow-FT checks its ``include`` and adapter before the first
tensor, the kernels share the CPUs with a thread policy. That memory lives in a
``MergeRun``, which the merge's runner (``running.stock_merge``, wrapping mergekit's
``run_merge`` for every entry point) opens for the duration of one merge with
``merge_run()``. Two merges in one process, back to back or one inside the other, each
see their own run: the second checks its headers again and warns again.

mergekit paths that do not go through ``run_merge`` (``mergekit-pytorch``, the in-memory
``merge_tensors`` / ``merge_state_dicts``) run outside any merge of ours; they share one
run kept for the process (``UNSCOPED``), so that their once-per-merge checks still run
once and not per tensor.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Hashable, Iterator
from dataclasses import dataclass, field
from typing import Any

from mergekit_weightlevel.numerics.threads import ThreadPolicy


@dataclass
class MergeRun:
    """The once-per-merge memory of one merge."""

    #: keys of the checks already done in this merge (header checks, Shadow-FT's include ...)
    checked: set[Hashable] = field(default_factory=set)
    #: (method, base, model) -> how many tensors the pair σ has been sampled on
    pair_samples: dict[Hashable, int] = field(default_factory=dict)
    #: the kernels' thread policy (None: the user chose the thread count, or none is needed)
    threads: ThreadPolicy | None = None
    #: the runner's own decisions for this merge (``running.stock_merge``), opaque here
    runner: Any = None

    def first_time(self, key: Hashable) -> bool:
        """True the first time ``key`` is asked about in this merge (and records it)."""
        if key in self.checked:
            return False
        self.checked.add(key)
        return True


#: The run of mergekit paths that bypass ``run_merge`` (see the module's docstring).
UNSCOPED = MergeRun()

_current: contextvars.ContextVar[MergeRun | None] = contextvars.ContextVar(
    "mergekit_weightlevel_merge_run", default=None
)


def current_run() -> MergeRun:
    """The merge in progress; ``UNSCOPED`` outside any merge opened with ``merge_run``."""
    run = _current.get()
    return UNSCOPED if run is None else run


def active_run() -> MergeRun | None:
    """The merge in progress, or None outside one."""
    return _current.get()


@contextlib.contextmanager
def merge_run(run: MergeRun | None = None) -> Iterator[MergeRun]:
    """Open ``run`` (a fresh one by default) for the duration of one merge."""
    run = MergeRun() if run is None else run
    token = _current.set(run)
    try:
        yield run
    finally:
        _current.reset(token)
        if run.threads is not None:
            run.threads.restore()

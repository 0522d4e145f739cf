"""How many threads the merge kernels use when other processes share the CPUs.

torch starts one OpenMP thread per CPU, and its threads spin while they wait for each
other. On a machine whose cores other work keeps busy, that is slower than one thread:
a 4-layer Timber merge of the benchmark family took 34.8 s and 72.5 s with two threads
against 12.2 s and 17.3 s with one, on this project's 2-core machine with two other
processes running (docs/benchmarks.md, "Threads on a busy machine").

So during a merge with one of our methods, the kernels measure how much CPU the *other*
processes used since the last check (the whole machine's busy time from /proc/stat minus
this process's own CPU time) and use the CPUs left: ``round(cpus − others)``, at least 1,
at most the CPUs this process may run on. The first look takes 0.25 s before the merge
starts; then the check is two small reads every few seconds, between tensors.

The user's choice always wins: mergekit's ``--num-threads`` / ``-j``, ``OMP_NUM_THREADS``
or ``MKL_NUM_THREADS`` switch the policy off, and so does ``MERGEKIT_WEIGHTLEVEL_THREADS=off``
(torch's default then applies).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping

import torch

from mergekit_weightlevel.errors import package_logger

LOG = package_logger(__name__)

THREADS_ENV = "MERGEKIT_WEIGHTLEVEL_THREADS"
#: Environment variables that mean "the user chose the thread count".
USER_THREAD_SETTINGS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", THREADS_ENV)
#: Seconds between two measurements (each is two small file reads).
RECHECK_SECONDS = 2.0
#: How long a merge looks at the machine before it starts (its own process idle meanwhile).
FIRST_LOOK_SECONDS = 0.25
_PROC_STAT = "/proc/stat"


def cpus_available() -> int:
    """The CPUs this process may run on (its affinity mask), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def threads_for(cpus: int, others_busy: float) -> int:
    """The threads to use when other processes keep ``others_busy`` CPUs busy."""
    return max(1, min(cpus, round(cpus - others_busy)))


def system_busy_seconds(path: str = _PROC_STAT) -> float | None:
    """CPU-seconds every CPU of the machine has spent not idle since boot (None off Linux)."""
    try:
        with open(path, encoding="ascii") as stat:
            fields = stat.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    # user nice system idle iowait irq softirq steal ...: idle and iowait are not busy.
    ticks = [int(value) for value in fields[1:9]]
    busy = sum(ticks) - ticks[3] - ticks[4]
    return busy / os.sysconf("SC_CLK_TCK")


def user_chose_threads(num_threads: int | None, environ: Mapping[str, str] = os.environ) -> bool:
    return num_threads is not None or any(environ.get(name) for name in USER_THREAD_SETTINGS)


class ThreadPolicy:
    """Sets torch's thread count from the CPUs that other processes leave free."""

    def __init__(self, cpus: int | None = None, first_look: float = 0.0) -> None:
        self.cpus = cpus or cpus_available()
        self.initial = torch.get_num_threads()
        self._last = self._sample()
        if first_look > 0:
            # A first measurement before the merge starts, while this process sleeps: the
            # loading and planning then already run on the CPUs the others leave free.
            time.sleep(first_look)
            self.update(min_interval=0.0)

    @staticmethod
    def _sample() -> tuple[float, float | None, float]:
        return time.monotonic(), system_busy_seconds(), time.process_time()

    def update(self, min_interval: float | None = None) -> int:
        """Re-measure if the last measurement is old enough; return the threads in use."""
        now = self._sample()
        wall = now[0] - self._last[0]
        interval = RECHECK_SECONDS if min_interval is None else min_interval
        if wall <= 0 or wall < interval or now[1] is None or self._last[1] is None:
            return torch.get_num_threads()
        others = max(0.0, (now[1] - self._last[1]) - (now[2] - self._last[2])) / wall
        self._last = now
        threads = threads_for(self.cpus, others)
        if threads != torch.get_num_threads():
            LOG.info(
                "other processes keep %.1f of %d CPUs busy: using %d thread(s)",
                others,
                self.cpus,
                threads,
            )
            torch.set_num_threads(threads)
        return threads

    def restore(self) -> None:
        torch.set_num_threads(self.initial)


def policy_for(num_threads: int | None) -> ThreadPolicy | None:
    """The policy for one merge, or None when the user chose the thread count.

    The merge holds it (``methods.merge_run``), its kernels call ``update`` between tensors,
    and ``restore`` puts torch's thread count back when the merge ends.
    """
    if user_chose_threads(num_threads):
        return None
    return ThreadPolicy(first_look=FIRST_LOOK_SECONDS)

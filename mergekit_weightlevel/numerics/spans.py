"""A blocked pass over a long range, one span of blocks per thread, each span single-threaded.

torch runs every CPU operation on its OpenMP threads, which wait for each other at the end of
the operation. A pass of many small operations (``pair_statistics``: 18 per 64K-element block,
~33 000 per 120M elements) pays that wait every time, and on a machine whose cores other
processes keep busy, a thread that waits for a descheduled one spins through its time slice:
the σ pass of the 8-layer benchmark family took 4.8–65 s with torch's two threads against
0.7 s with one, beside three other developers' jobs (2 cores, December 2026).

So the range is cut into one span per thread instead, at block boundaries (the blocks and
their sums stay those of a single-threaded pass), and each span runs in a Python thread with
torch's operations single-threaded: torch releases the GIL inside each operation, and the
threads never wait for one another before the end of their spans.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import lru_cache
from typing import TypeVar

import torch

T = TypeVar("T")

#: Fewer blocks than this per thread: one span (the threads' start-up would not pay).
MIN_BLOCKS_PER_SPAN = 8


def block_spans(total: int, block: int, parts: int) -> list[tuple[int, int]]:
    """``[start, stop)`` spans covering ``range(total)``, at most ``parts``, each a whole
    number of ``block``-long blocks but the last, as even as the blocks allow."""
    blocks = -(-total // block)
    parts = max(1, min(parts, blocks // MIN_BLOCKS_PER_SPAN))
    cuts = [min(total, (blocks * index // parts) * block) for index in range(parts + 1)]
    return [(start, stop) for start, stop in zip(cuts, cuts[1:]) if stop > start]


@lru_cache(maxsize=1)
def _pool(workers: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(workers, thread_name_prefix="weightlevel-span")


@contextmanager
def single_threaded_kernels() -> Iterator[None]:
    """torch's operations on one thread each while inside (the count is process-wide)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def map_spans(
    work: Callable[[int, int], T],
    total: int,
    block: int,
    device: torch.device,
    parts: int | None = None,
) -> list[T]:
    """``work(start, stop)`` for the spans of ``range(total)``, side by side on the CPU.

    At most ``parts`` spans (None: torch's thread count, which follows the CPUs, ``-j`` or
    ``OMP_NUM_THREADS``). Elsewhere (a GPU) one span: the device does the parallel work.
    """
    if device.type != "cpu":
        return [work(0, total)]
    cut = block_spans(total, block, torch.get_num_threads() if parts is None else parts)
    # One span too runs single-threaded: every block's sums are then those of one thread,
    # whatever the thread count (torch splits a reduction between its threads otherwise).
    with single_threaded_kernels():
        if len(cut) <= 1:
            return [work(0, total)]
        return list(_pool(len(cut)).map(lambda span: work(*span), cut))

"""How a method computes a sweep's values together, when one shared step serves them all.

A sweep plans one ordinary merge per value (``running.one_pass``); mergekit then asks the
method once per value and tensor. For Timber the expensive step, the decomposition of
W_I − W_B, does not depend on λ: the sweep gives each value's merge the same
``SweepShare`` (as the hidden kernel argument ``SWEEP_SHARE``, beside the method's own
parameters), the first value asked for a tensor computes every value from one
decomposition, and the others take theirs. Nothing is kept for the process: the share
belongs to one sweep, and a tensor's entry is gone once every value has taken its output.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import torch

#: The name under which a sweep passes its share to a method's kernel.
SWEEP_SHARE = "sweep_share"


class SweepShare:
    """The values of one sweep, and the outputs computed for values not yet asked for."""

    def __init__(self, values: Sequence[float]):
        self.values = tuple(float(value) for value in values)
        self._waiting: dict[str, dict[float, torch.Tensor]] = {}
        self._failed: set[float] = set()
        self._lock = threading.Lock()

    def take(
        self,
        tensor: str,
        value: float,
        compute: Callable[[Sequence[float]], list[torch.Tensor]],
    ) -> torch.Tensor:
        """Tensor ``tensor``'s output at ``value``; ``compute(values)`` gives the output of
        every value still merging in one go, the first time the tensor is asked for."""
        value = float(value)
        with self._lock:
            waiting = self._waiting.get(tensor)
            if waiting is None:
                live = [v for v in self.values if v not in self._failed or v == value]
                waiting = dict(zip(live, compute(live)))
                self._waiting[tensor] = waiting
            output = waiting.pop(value)
            if not waiting:
                del self._waiting[tensor]
            return output

    def forget(self, value: float) -> None:
        """``value``'s output failed and will not ask again: drop what waits for it, and
        compute nothing more for it (else every later tensor's output would wait here for
        it until the pass ends: up to a whole model)."""
        with self._lock:
            self._failed.add(float(value))
            for tensor in list(self._waiting):
                self._waiting[tensor].pop(float(value), None)
                if not self._waiting[tensor]:
                    del self._waiting[tensor]

"""What a λ sweep asks of the Timber kernel: several λ per tensor from one decomposition.

Each ``timber_spectral`` output is W_B + P_k(D) + λ·(D − P_k(D)), and the decomposition
giving P_k does not depend on λ. A sweep (``running.sweep``, a higher layer) registers a
``SweepRequest`` here for one mergekit run; the kernel then computes every λ of the request,
returns the first to mergekit and stashes the others, which the sweep's writer collects
when mergekit saves that tensor. Outside a sweep nothing is registered and the kernel
computes its one λ. The kernel never imports the sweep runner.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence

import torch

from mergekit_weightlevel.errors import WeightLevelConfigError, WeightLevelError
from mergekit_weightlevel.methods.timber.decomposition import NAME


class SweepRequest:
    """The λ values of the sweep in progress and the tensors waiting to be written."""

    def __init__(self, lambdas: Sequence[float]):
        self.lambdas = tuple(float(lam) for lam in lambdas)
        self._stash: dict[str, list[torch.Tensor]] = {}
        self._lock = threading.Lock()

    def keep(self, name: str, outputs: Sequence[torch.Tensor]) -> None:
        with self._lock:
            self._stash[name] = list(outputs)

    def take(self, name: str) -> list[torch.Tensor] | None:
        """The other λ's outputs of tensor ``name`` (None: it does not depend on λ)."""
        with self._lock:
            return self._stash.pop(name, None)


_active: SweepRequest | None = None


@contextlib.contextmanager
def sweeping(request: SweepRequest) -> Iterator[SweepRequest]:
    """Register ``request`` for the duration of one mergekit run."""
    global _active
    if _active is not None:
        raise WeightLevelError(f"{NAME} sweep: another sweep is running in this process")
    _active = request
    try:
        yield request
    finally:
        _active = None


def lambdas_for(name: str, lam: float) -> list[float]:
    """The λ values the kernel must compute for tensor ``name`` (just ``lam`` outside a sweep)."""
    request = _active
    if request is None:
        return [lam]
    if lam != request.lambdas[0]:
        raise WeightLevelConfigError(
            f"{NAME} sweep: tensor {name} got `lambda: {lam}` from a per-model, per-slice or "
            f"filtered setting, but a sweep sets `lambda` itself ({list(request.lambdas)}). "
            "Remove `lambda` from everywhere but the top-level `parameters:` of the config."
        )
    return list(request.lambdas)


def stash(name: str, outputs: Sequence[torch.Tensor]) -> None:
    """Keep the outputs for the sweep's other λ until mergekit saves tensor ``name``."""
    request = _active
    if request is None or len(outputs) < 2:
        return
    if all(out is outputs[0] for out in outputs[1:]):
        return  # does not depend on λ: the writer copies what mergekit saves
    request.keep(name, outputs[1:])

"""Before any work: does every node see the inputs and the output folder the driver sees?

Work on Ray writes where it runs: a merge on a worker writes its folder on that worker's
disks. Unless the output folder is shared storage (NFS, a cluster filesystem) mounted at
the same path everywhere, outputs scatter over the nodes. So each node that can run the
run's tasks checks that it sees every local input, and writes a probe file into the output
folder; the driver then reads every probe back (and deletes it). One node that fails stops
the run before any work, with one line naming the node and the folder.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mergekit_weightlevel.distributed.cluster import Cluster, TaskRequest
from mergekit_weightlevel.distributed.connection import first_line, require_ray
from mergekit_weightlevel.errors import WeightLevelError

PROBE_PREFIX = ".mergekit-weightlevel-probe-"
#: How long the probes may take (they wait for nothing but a file write).
PROBE_TIMEOUT_S = 120.0
SHARED = (
    "every Ray node must see it at the same path (shared storage: NFS, a cluster "
    "filesystem), or run without --ray"
)


class SharedStorageError(WeightLevelError, OSError):
    """A node that does not see an input or the output folder as the driver does."""


@dataclass(frozen=True)
class Probe:
    """What one node found: the probe file it wrote, or the ``problem`` that stopped it."""

    node: str
    host: str
    path: str | None = None
    problem: str | None = None

    @property
    def where(self) -> str:
        return f"node {self.host} ({self.node[:8]})"


def write_probe(folder: str | None, inputs: Sequence[str], token: str) -> Probe:
    """On a node: check every input is there, then write ``folder``'s probe file atomically."""
    from ray import get_runtime_context

    node, host = get_runtime_context().get_node_id(), socket.gethostname()
    for path in inputs:
        if not os.path.exists(path):
            return Probe(node, host, problem=f"does not see the input {path}")
    if folder is None:
        return Probe(node, host)
    path = Path(folder) / f"{PROBE_PREFIX}{token}-{node[:16]}"
    staging = path.with_name(path.name + ".tmp")
    try:
        staging.write_text(probe_text(token, node), encoding="utf-8")
        os.replace(staging, path)
    except OSError as error:
        staging.unlink(missing_ok=True)
        return Probe(node, host, problem=f"cannot write in {folder} ({error.strerror or error})")
    return Probe(node, host, path=str(path))


def probe_text(token: str, node: str) -> str:
    return f"{token} {node}\n"


def read_probes(folder: Path | None, probes: Sequence[Probe], token: str) -> None:
    """On the driver: every node's probe must be here, as written; deleted either way."""
    try:
        for probe in probes:
            if probe.problem is not None:
                raise SharedStorageError(
                    f"{probe.where} {probe.problem}: {SHARED}. Nothing was run."
                )
            if probe.path is None:
                continue
            try:
                seen = Path(probe.path).read_text(encoding="utf-8")
            except OSError:
                seen = None
            if seen != probe_text(token, probe.node):
                raise SharedStorageError(
                    f"{folder} is not shared with {probe.where}: the probe file it wrote there "
                    f"({probe.path}) is not here; {SHARED}. Nothing was run."
                )
    finally:
        for probe in probes:
            if probe.path is not None:
                Path(probe.path).unlink(missing_ok=True)


def check_shared_storage(
    cluster: Cluster,
    request: TaskRequest,
    folder: str | Path | None,
    inputs: Sequence[str | Path] = (),
) -> None:
    """Every node that can run ``request``'s tasks sees ``inputs`` and shares ``folder``.

    ``folder`` (created here if missing) is where the run writes; None: the run writes
    nothing on the nodes (``analyze``), only the inputs are checked.
    """
    ray = require_ray()
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    if folder is not None:
        folder = Path(folder).absolute()
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise SharedStorageError(
                f"cannot create the output folder {folder} ({error.strerror or error}); "
                "choose another output prefix."
            ) from None
    token = uuid.uuid4().hex
    inputs = [str(Path(path).absolute()) for path in inputs]
    probe = ray.remote(write_probe)
    refs = [
        probe.options(
            num_cpus=0,
            scheduling_strategy=NodeAffinitySchedulingStrategy(node.id, soft=False),
        ).remote(None if folder is None else str(folder), inputs, token)
        for node in cluster.nodes_for(request)
    ]
    try:
        probes = ray.get(refs, timeout=PROBE_TIMEOUT_S)
    except ray.exceptions.GetTimeoutError:
        raise SharedStorageError(
            f"the storage check on the Ray nodes did not finish in {PROBE_TIMEOUT_S:g} s "
            "(a node that cannot start tasks?); check the cluster with `ray status`."
        ) from None
    except ray.exceptions.RayError as error:
        raise SharedStorageError(
            f"the storage check failed on a Ray node: {first_line(error)}"
        ) from None
    read_probes(folder, probes, token)

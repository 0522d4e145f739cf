"""The nodes of a Ray cluster and what one task asks of them: plain data, no ``ray`` import.

``Cluster.from_ray_nodes(ray.nodes())`` reads Ray's own description of its nodes;
``Cluster.request`` turns the user's ``RaySettings`` into the ``TaskRequest`` every task of
a run declares (one GPU per task where the cluster has GPUs, one CPU otherwise), refusing
one that no node could ever run (Ray would wait for it forever); ``Cluster.slots`` is how
many such tasks run at once.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from mergekit_weightlevel.distributed.settings import RaySettings
from mergekit_weightlevel.errors import WeightLevelInputError


@dataclass(frozen=True)
class TaskRequest:
    """The resources one task declares to Ray (``num_cpus``, ``num_gpus``)."""

    cpus: float
    gpus: float

    def describe(self) -> str:
        parts = [f"{n:g} {kind}" for n, kind in ((self.gpus, "GPU"), (self.cpus, "CPU")) if n]
        return " + ".join(parts)


@dataclass(frozen=True)
class Node:
    """One alive Ray node: its id, host name and the CPUs and GPUs it offers."""

    id: str
    host: str
    cpus: float
    gpus: float

    def fits(self, request: TaskRequest) -> bool:
        return self.cpus >= request.cpus and self.gpus >= request.gpus

    def slots(self, request: TaskRequest) -> int:
        """How many tasks of ``request`` this node runs at once."""
        counts = [
            math.floor(have / want)
            for have, want in ((self.cpus, request.cpus), (self.gpus, request.gpus))
            if want > 0
        ]
        return min(counts) if counts else 0


@dataclass(frozen=True)
class Cluster:
    """The Ray instance a run uses: how it was reached (for messages) and its alive nodes."""

    address: str
    nodes: tuple[Node, ...]

    @classmethod
    def from_ray_nodes(cls, address: str, nodes: Iterable[Mapping[str, Any]]) -> Cluster:
        """From ``ray.nodes()``: alive nodes only."""
        return cls(
            address,
            tuple(
                Node(
                    id=node["NodeID"],
                    host=node.get("NodeManagerHostname") or node.get("NodeManagerAddress", "?"),
                    cpus=float(node.get("Resources", {}).get("CPU", 0)),
                    gpus=float(node.get("Resources", {}).get("GPU", 0)),
                )
                for node in nodes
                if node.get("Alive")
            ),
        )

    @property
    def gpus(self) -> float:
        return sum(node.gpus for node in self.nodes)

    def request(self, settings: RaySettings) -> TaskRequest:
        """What each task declares: the settings, else one GPU where there are GPUs, one CPU.

        Fails before any task when no node has that much: Ray would wait for it forever.
        """
        gpus = settings.gpus_per_task
        if gpus is None:
            gpus = 1.0 if self.gpus > 0 else 0.0
        cpus = 1.0 if settings.cpus_per_task is None else settings.cpus_per_task
        request = TaskRequest(cpus=cpus, gpus=gpus)
        if not any(node.fits(request) for node in self.nodes):
            largest = max(self.nodes, key=lambda node: (node.gpus, node.cpus), default=None)
            has = f"{largest.gpus:g} GPU + {largest.cpus:g} CPU" if largest else "no node"
            raise WeightLevelInputError(
                f"Ray at {self.address}: each task asks for {request.describe()}, which no "
                f"node has (the largest: {has}); lower --gpus-per-task / --cpus-per-task."
            )
        return request

    def nodes_for(self, request: TaskRequest) -> list[Node]:
        """The nodes that can run a task of ``request``."""
        return [node for node in self.nodes if node.fits(request)]

    def slots(self, request: TaskRequest) -> int:
        """How many tasks of ``request`` the cluster runs at once (at least 1)."""
        return max(1, sum(node.slots(request) for node in self.nodes))

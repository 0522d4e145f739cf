"""What a run on Ray asks for: where the cluster is and what each task requests (plain data)."""

from __future__ import annotations

from dataclasses import dataclass

from mergekit_weightlevel.errors import WeightLevelInputError


@dataclass(frozen=True)
class RaySettings:
    """``--ray`` / ``--ray-address`` / ``--gpus-per-task`` / ``--cpus-per-task``.

    ``address``: None starts a Ray instance on this machine, or joins the one already
    running here (``ray start``, or ``RAY_ADDRESS``); ``auto`` joins a running cluster
    and fails without one; ``ray://HOST:PORT`` reaches a cluster's Ray Client server
    (port 10001 by default); ``HOST:PORT`` a cluster's head from a machine of the cluster.
    ``gpus_per_task``: None is one GPU where the cluster has GPUs, else none.
    ``cpus_per_task``: None is one CPU.
    """

    address: str | None = None
    gpus_per_task: float | None = None
    cpus_per_task: float | None = None

    def __post_init__(self) -> None:
        for option, value in (
            ("--gpus-per-task", self.gpus_per_task),
            ("--cpus-per-task", self.cpus_per_task),
        ):
            if value is not None and value < 0:
                raise WeightLevelInputError(f"{option} must be 0 or more, not {value:g}.")
        if self.gpus_per_task == 0 and self.cpus_per_task == 0:
            raise WeightLevelInputError(
                "--gpus-per-task 0 and --cpus-per-task 0: a task must request a CPU or a GPU "
                "(else Ray runs every task at once); give one of them a value above 0."
            )
        if self.address is not None and not self.address.strip():
            raise WeightLevelInputError(
                "--ray-address is empty; give auto, ray://HOST:PORT or HOST:PORT, or leave "
                "it out to start Ray on this machine."
            )

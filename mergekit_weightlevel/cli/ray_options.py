"""``--ray``, ``--ray-address``, ``--gpus-per-task``, ``--cpus-per-task``: declared once.

    @some_group.command()
    @click.argument(...)
    @ray_options
    @user_errors
    def command(..., ray_settings: RaySettings | None) -> None:
        if ray_settings is None: ...  # as before: Ray is never imported
        else: ...                     # the distributed package's function, with ray_settings

The command receives one argument, ``ray_settings``: None without ``--ray`` and
``--ray-address`` (the other two then are a usage error), else a ``RaySettings``. Ctrl-C
during a run on Ray prints which tasks were cancelled and exits 130.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click

from mergekit_weightlevel.distributed.settings import RaySettings


def ray_settings(
    use_ray: bool,
    address: str | None,
    gpus_per_task: float | None,
    cpus_per_task: float | None,
) -> RaySettings | None:
    """The options' ``RaySettings`` (None: run here, without Ray)."""
    if not use_ray and address is None:
        for option, value in (
            ("--gpus-per-task", gpus_per_task),
            ("--cpus-per-task", cpus_per_task),
        ):
            if value is not None:
                raise click.UsageError(
                    f"{option} applies to a run on Ray: add --ray or --ray-address."
                )
        return None
    return RaySettings(address, gpus_per_task, cpus_per_task)


def ray_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add the four options to a click command; it gets ``ray_settings`` instead."""

    @functools.wraps(command)
    def wrapper(
        *args: Any,
        use_ray: bool,
        ray_address: str | None,
        gpus_per_task: float | None,
        cpus_per_task: float | None,
        **kwargs: Any,
    ) -> Any:
        settings = ray_settings(use_ray, ray_address, gpus_per_task, cpus_per_task)
        if settings is None:
            return command(*args, ray_settings=None, **kwargs)
        from mergekit_weightlevel.distributed.units import UnitsInterrupted

        try:
            return command(*args, ray_settings=settings, **kwargs)
        except UnitsInterrupted as interrupted:
            click.echo(str(interrupted), err=True)
            raise click.exceptions.Exit(130) from None

    options = [
        click.option(
            "--ray",
            "use_ray",
            is_flag=True,
            help="Run the independent units (pairs, groups of values, folders) as Ray tasks "
            "on a Ray instance started on this machine (or the one already running here). "
            "Needs the [distributed] extra.",
        ),
        click.option(
            "--ray-address",
            metavar="ADDRESS",
            help="Run on the Ray cluster at ADDRESS: auto (the cluster this machine belongs "
            "to), ray://HOST:PORT (Ray Client, port 10001) or HOST:PORT. Implies --ray. "
            "Outputs must be on storage every node sees (checked first).",
        ),
        click.option(
            "--gpus-per-task",
            type=click.FloatRange(min=0),
            metavar="N",
            help="GPUs each Ray task requests.  [default: 1 where the cluster has GPUs, else 0]",
        ),
        click.option(
            "--cpus-per-task",
            type=click.FloatRange(min=0),
            metavar="N",
            help="CPUs each Ray task requests.  [default: 1]",
        ),
    ]
    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper

"""Reaching Ray: ``connect(address)`` yields the ``Cluster`` a run uses, and lets it go after.

The one place that imports ``ray`` for the others (``require_ray``), inside functions: the
package imports without it. An address is tried over TCP first, with a short timeout, so an
unreachable one fails in seconds with one line naming it (Ray itself waits 30 s for a
``ray://`` address and minutes for a head's GCS address).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

from mergekit_weightlevel.distributed.cluster import Cluster
from mergekit_weightlevel.errors import WeightLevelError

#: How long to wait for a cluster's port to answer before saying it cannot be reached.
CONNECT_TIMEOUT_S = 5.0
#: Ray Client's port when a ``ray://`` address names none.
RAY_CLIENT_PORT = 10001
#: A task killed by Ray's memory monitor is retried this many times (Ray's default: forever),
#: like one whose worker died otherwise (``units.WORKER_RETRIES``). Set for instances this
#: process starts and for the tasks it submits; a cluster's own ``ray start`` sets its own.
OOM_RETRIES_VARIABLE = "RAY_task_oom_retries"


class RayNotInstalledError(WeightLevelError, ImportError):
    """``--ray`` without the ``[distributed]`` extra."""


class ClusterUnreachableError(WeightLevelError, ConnectionError):
    """A Ray address that does not answer; the message names it."""


def require_ray() -> ModuleType:
    """``import ray``, or one line saying how to install it."""
    try:
        import ray
    except ImportError:
        raise RayNotInstalledError(
            "--ray needs Ray, which is not installed: pip install "
            "'mergekit-weightlevel[distributed]' (on every machine of the cluster)."
        ) from None
    return ray


def host_and_port(address: str) -> tuple[str, int] | None:
    """The TCP endpoint of ``ray://HOST[:PORT]`` or ``HOST:PORT``; None for ``auto`` / ``local``."""
    if address in ("auto", "local"):
        return None
    rest = address.removeprefix("ray://")
    host, _, port = rest.rpartition(":") if ":" in rest else (rest, "", "")
    if not port:
        if not address.startswith("ray://"):
            return None  # not an address Ray takes either: let ray.init say so
        return rest, RAY_CLIENT_PORT
    try:
        return host.strip("[]"), int(port)
    except ValueError:
        raise ClusterUnreachableError(
            f"--ray-address {address}: {port!r} is not a port number; give "
            "ray://HOST:PORT (Ray Client, port 10001 by default), HOST:PORT or auto."
        ) from None


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Fail in at most ``timeout`` seconds, naming ``address``, when nothing answers there."""
    endpoint = host_and_port(address)
    if endpoint is None:
        return
    try:
        with socket.create_connection(endpoint, timeout=timeout):
            pass
    except OSError as error:
        reason = "timed out" if isinstance(error, TimeoutError) else error.strerror or error
        raise ClusterUnreachableError(
            f"cannot reach the Ray cluster at {address} ({reason} after at most "
            f"{timeout:g} s): start it with `ray start --head` on its head node, check the "
            "address and that this machine may open that port."
        ) from None


@contextmanager
def connect(address: str | None = None) -> Iterator[Cluster]:
    """The Ray instance at ``address`` (see ``RaySettings.address``), as a ``Cluster``.

    An address given (or ``RAY_ADDRESS``) is checked first: nothing answering there fails
    in seconds. A process already connected to Ray (its own ``ray.init``, a test's) keeps
    that connection, left open; otherwise this connects, and disconnects at the end (an
    instance started here stops with it).
    """
    ray = require_ray()
    target = address if address is not None else os.environ.get("RAY_ADDRESS")
    if target:
        check_reachable(target)
    if ray.is_initialized():
        yield _cluster(ray, address or "the Ray instance this process is connected to")
        return
    os.environ.setdefault(OOM_RETRIES_VARIABLE, "1")
    try:
        ray.init(address=address)
    except ConnectionError as error:
        raise ClusterUnreachableError(
            f"cannot connect to Ray at {target or 'this machine'}: {first_line(error)}. "
            "Start a cluster with `ray start --head`, or leave out --ray-address to start "
            "Ray on this machine."
        ) from None
    try:
        yield _cluster(ray, target or "this machine")
    finally:
        ray.shutdown()


def _cluster(ray: ModuleType, address: str) -> Cluster:
    return Cluster.from_ray_nodes(address, ray.nodes())


def first_line(error: BaseException) -> str:
    """The first line of an error's message (its type's name when it has none)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__

"""Joining a Ray cluster (or starting a private one on this machine) and checking it has room for the replicas.

Every failure here is a ModelLoadError with one line saying what is wrong and what to do: the CLI prints it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sakura_core.engine import ModelLoadError

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: What ``ray.init`` is given for a private Ray on this machine: always a new one, never someone else's.
LOCAL = "local"
#: Seconds a TCP connection to an explicit --ray-address may take before the address counts as unreachable.
PROBE_SECONDS = 5.0
#: Seconds joining the cluster (or starting a private Ray: ~10 s on two busy cores) may take.
CONNECT_SECONDS = 120.0
#: Seconds leaving the cluster (stopping a private Ray) may take.
CLOSE_SECONDS = 60.0
#: Ports Ray listens on when an address names none: the head's GCS, and the Ray Client server.
DEFAULT_GCS_PORT = 6379
DEFAULT_CLIENT_PORT = 10001


@dataclass
class RayConnection:
    """This process's place in a Ray cluster."""

    #: ``local``, ``auto``, ``HOST:PORT`` or ``ray://HOST:PORT``; ``None`` when Ray was already initialised.
    address: str | None
    #: True when this process called ``ray.init`` and so disconnects (or stops its private Ray) at close.
    owned: bool
    #: Set to let the thread that joined the cluster leave it (see ``connect_async``).
    release: threading.Event = field(default_factory=threading.Event)
    keeper: threading.Thread | None = None

    def describe(self) -> str:
        """How the cluster was reached, for the log."""
        if self.address is None:
            return "the Ray cluster this process had joined"
        if self.address == LOCAL:
            return "a private Ray on this machine"
        return f"the Ray cluster at {self.address}"

    def close(self, within: float = CLOSE_SECONDS) -> None:
        """Leave the cluster (which stops a private Ray) if this process joined it. Blocks."""
        self.release.set()
        if self.keeper is not None:
            self.keeper.join(within)


def probe(address: str) -> None:
    """Raise ModelLoadError when nothing accepts a TCP connection at an explicit ``HOST:PORT``/``ray://HOST:PORT``.

    Ray itself retries an unreachable address for minutes before it gives up; this answers in seconds.
    """
    if address in (LOCAL, "auto"):
        return
    client = address.startswith("ray://")
    target = address.removeprefix("ray://")
    host, sep, port_text = target.rpartition(":")
    if not sep:
        host, port_text = target, str(DEFAULT_CLIENT_PORT if client else DEFAULT_GCS_PORT)
    host = host.strip("[]")
    try:
        port = int(port_text)
        with socket.create_connection((host, port), timeout=PROBE_SECONDS):
            pass
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__
        raise ModelLoadError(
            f"cannot reach the Ray cluster at {address} ({reason}); start one with `ray start --head` "
            "or correct --ray-address"
        ) from None


def prepare_process() -> None:
    """Settings Ray reads when it is first imported: sakura handles SIGTERM itself (a graceful shutdown), so Ray's
    native crash handler, which would print a stack dump on it and abort the process, stays off."""
    os.environ.setdefault("RAY_DISABLE_FAILURE_SIGNAL_HANDLER", "1")


class _NotInMainThread(logging.Filter):
    """Drops Ray's warning that it set no SIGTERM handler: sakura handles its signals itself (on purpose)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "SIGTERM handler is not set" not in record.getMessage()


def connect(address: str | None) -> RayConnection:
    """Join the cluster at ``address`` (None: start a private Ray on this machine). Blocks; see ``connect_async``.

    ``ray.init`` runs outside the main thread, so Ray leaves the process's signal handling to sakura (a SIGTERM
    shuts down gracefully). Call ``prepare_process`` before Ray is first imported.
    """
    import ray

    logging.getLogger("ray._private.worker").addFilter(_NotInMainThread())
    logging.getLogger("ray.serve").setLevel(logging.WARNING)  # sakura logs what the front does itself
    if ray.is_initialized():  # embedding or tests: use the cluster this process is in
        return RayConnection(None, owned=False)
    target = address or LOCAL
    probe(target)
    # replicas' own logs stay in Ray's log files: on the front's console, Ray Serve's tracebacks of a replica that
    # failed would bury the one line sakura prints about it
    options: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
    if target == LOCAL:
        options["include_dashboard"] = False
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # a private Ray reports nothing anywhere
        # Ray protects a new cluster with a token of its own and says so; a private Ray needs no word about it
        logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
    try:
        ray.init(address=target, **options)
    except Exception as exc:
        hint = (
            "start one with `ray start --head`"
            if target == "auto"
            else "check --ray-address, and set RAY_AUTH_MODE=token if the cluster uses Ray's token authentication"
        )
        raise ModelLoadError(f"cannot join the Ray cluster at {target}: {first_line(exc)}; {hint}") from None
    return RayConnection(target, owned=True)


async def connect_async(address: str | None, within: float = CONNECT_SECONDS) -> RayConnection:
    """``connect`` in a thread that stays until the connection is closed, giving up after ``within`` seconds.

    Ray ties the processes of a private Ray to the thread that started them (Linux's parent-death signal): that
    thread must live as long as the cluster is used, and it is the one that stops it.
    """
    release = threading.Event()

    def join() -> RayConnection:
        connection = connect(address)
        connection.release, connection.keeper = release, threading.current_thread()
        return connection

    def stay_then_leave(connection: RayConnection) -> None:
        release.wait()
        if connection.owned:
            import ray

            ray.shutdown()

    try:
        return await in_daemon_thread(join, within, then=stay_then_leave)
    except TimeoutError:
        release.set()
        raise ModelLoadError(
            f"the Ray cluster at {address or LOCAL} did not answer within {within:g} s; check --ray-address"
        ) from None


async def in_daemon_thread(
    function: Callable[[], T], within: float | None, then: Callable[[T], None] | None = None
) -> T:
    """Run a blocking call in a daemon thread (one that never holds up the process's exit); give up after
    ``within`` seconds (None: never). ``then(result)`` runs afterwards in the same thread, if given."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if done.done():
            return
        if error is not None:
            done.set_exception(error)
        else:
            done.set_result(result)  # type: ignore[arg-type]

    def post(result: T | None, error: BaseException | None) -> None:
        with contextlib.suppress(RuntimeError):  # the loop has closed since the caller gave up: nobody waits
            loop.call_soon_threadsafe(settle, result, error)

    def run() -> None:
        try:
            result = function()
        except BaseException as exc:
            post(None, exc)
            return
        post(result, None)
        if then is not None:
            then(result)

    threading.Thread(target=run, name="sakura-ray", daemon=True).start()
    return await asyncio.wait_for(done, within)


def replicas_that_fit(nodes: list[Mapping[str, Any]], cpus: float, gpus: float) -> int:
    """How many replicas of ``cpus`` CPUs and ``gpus`` GPUs the live nodes (``ray.nodes()``) hold in all."""
    total = 0
    for node in nodes:
        if not node.get("Alive", False):
            continue
        resources = node.get("Resources", {})
        fits = [math.floor(resources.get("CPU", 0.0) / cpus + 1e-9)]
        if gpus > 0:
            fits.append(math.floor(resources.get("GPU", 0.0) / gpus + 1e-9))
        total += min(fits)
    return total


def check_room(replicas: int, cpus: float, gpus: float) -> None:
    """Raise ModelLoadError when the cluster's nodes cannot hold ``replicas`` replicas at all (Ray Serve would
    wait for them forever)."""
    import ray

    fits = replicas_that_fit(ray.nodes(), cpus, gpus)
    if fits < replicas:
        needs = f"{cpus:g} CPU" + (f" and {gpus:g} GPU" if gpus else "")
        raise ModelLoadError(
            f"the Ray cluster's nodes hold {fits} replica(s) of {needs} each, not {replicas}: add nodes "
            "(`ray start --address HEAD:PORT` on more machines) or lower --replica-cpus/--replica-gpus/--replicas"
        )


def first_line(exc: BaseException) -> str:
    """The first non-blank line of an exception's message (Ray's errors carry whole tracebacks), else its type."""
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__

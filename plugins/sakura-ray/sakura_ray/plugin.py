"""The sakura plugin module (entry point ``ray`` in group ``sakura``): adds the replica options to ``sakura run``
and hosts the chosen engine on Ray when one of them is given. Imports no Ray."""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel

from sakura_core.engine import Engine
from sakura_core.hookspecs import hookimpl
from sakura_ray.options import RayOptions

HEADING = "Replicas on a Ray cluster (sakura-ray)"


@hookimpl
def register_run_options(register: Callable[[type[BaseModel], str], None]) -> None:
    """Add --replicas, --min-replicas, --max-replicas, --ray-address, --replica-cpus and --replica-gpus."""
    register(RayOptions, HEADING)


@hookimpl
def host_engine(engine: Engine, run_options: dict[type[BaseModel], BaseModel]) -> Engine | None:
    """Stand in for the engine with replicas on Ray when any replica option was given; else leave it be."""
    options = run_options.get(RayOptions)
    if not isinstance(options, RayOptions) or not options.wanted:
        return None
    from sakura_ray.engine import RayEngine  # imports no Ray either: that waits for load()

    return RayEngine(engine, options)

"""The sakura plugin module (entry point ``ray`` in group ``sakura``): adds the replica options to ``sakura run``
and hosts the chosen engine on Ray when one of them is given.

Importing it costs nothing: the options model (pydantic) is imported by the hooks, Ray only when a model loads.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from sakura_core.hookspecs import hookimpl

if TYPE_CHECKING:
    from pydantic import BaseModel

    from sakura_core.engine import Engine

HEADING = "Replicas on a Ray cluster (sakura-ray)"


@hookimpl
def register_run_options(register: Callable[[type[BaseModel], str], None]) -> None:
    """Add --replicas, --min-replicas, --max-replicas, --ray-address, --replica-cpus and --replica-gpus."""
    from sakura_ray.options import RayOptions

    register(RayOptions, HEADING)


@hookimpl
def host_engine(engine: Engine, run_options: dict[type[BaseModel], BaseModel]) -> Engine | None:
    """Stand in for the engine with replicas on Ray when any replica option was given; else leave it be."""
    from sakura_ray.options import RayOptions

    options = run_options.get(RayOptions)
    if not isinstance(options, RayOptions) or not options.wanted:
        return None
    from sakura_ray.engine import RayEngine  # imports no Ray either: that waits for load()

    return RayEngine(engine, options)

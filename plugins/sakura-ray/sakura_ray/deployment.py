"""The Ray Serve application that runs the replicas: deploying it, and deleting it at shutdown."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from sakura_core.engine import Engine, EngineOptions, ModelLoadError
from sakura_ray.options import RayOptions

if TYPE_CHECKING:
    from ray.serve.handle import DeploymentHandle

logger = logging.getLogger(__name__)

#: The deployment's name inside its application (one application per sakura front, named by the front).
DEPLOYMENT_NAME = "SakuraEngine"
#: Requests Ray Serve lets one replica hold. Generous on purpose: the front admits no more than the replicas'
#: summed parallelism, each replica makes generations beyond its engine's wait for a slot, and token counts and
#: state queries must never queue behind generations (a blocking token count would stall the front).
REPLICA_REQUEST_LIMIT = 10_000
#: The autoscaling policy (see ``sakura_ray.autoscaling``), by import path.
AUTOSCALING_POLICY = "sakura_ray.autoscaling:slot_policy"
#: Attempts at starting the first replicas: a model that cannot load fails the same way every time.
START_ATTEMPTS = 1


def scaling_options(options: RayOptions) -> dict[str, Any]:
    """Ray Serve's replica count or autoscaling config for ``options``."""
    if not options.autoscaling:
        return {"num_replicas": options.first_replicas}
    return {
        "autoscaling_config": {
            "min_replicas": options.first_replicas,
            "initial_replicas": options.first_replicas,
            "max_replicas": options.most_replicas,
            "policy": {"policy_function": AUTOSCALING_POLICY},
        }
    }


def actor_options(options: RayOptions) -> dict[str, Any]:
    """Ray's resources for one replica."""
    actor: dict[str, Any] = {"num_cpus": options.cpus}
    if options.gpus:
        actor["num_gpus"] = options.gpus
    return actor


def deploy(
    app_name: str,
    engine_class: type[Engine],
    engine_options: EngineOptions,
    model: str,
    model_version: str | None,
    options: RayOptions,
) -> DeploymentHandle:
    """Run the application; blocks until the first replicas have loaded the model. A replica's ModelLoadError
    is raised here with its own message."""
    from ray import serve

    from sakura_ray.replica import EngineReplica

    serve.start(proxy_location="Disabled")  # the front is sakura's own server: Ray Serve needs no HTTP proxy
    deployment = serve.deployment(
        name=DEPLOYMENT_NAME,
        max_ongoing_requests=REPLICA_REQUEST_LIMIT,
        ray_actor_options=actor_options(options),
        max_constructor_retry_count=START_ATTEMPTS,
        **scaling_options(options),
    )(EngineReplica)
    log_level = logging.getLogger("sakura_core").getEffectiveLevel()
    application = deployment.bind(engine_class, engine_options, model, model_version, log_level)
    try:
        return serve.run(
            application,
            name=app_name,
            route_prefix=None,
            logging_config={"enable_access_log": False, "log_level": "WARNING"},
        )
    except Exception:
        failure = load_failure(app_name)
        if failure is not None:
            raise ModelLoadError(failure) from None
        raise


def load_failure(app_name: str) -> str | None:
    """The message of the ModelLoadError a replica failed to start with, as Ray Serve's status reports it."""
    from ray import serve

    application = serve.status().applications.get(app_name)
    if application is None:
        return None
    messages = [application.message, *(d.message for d in application.deployments.values())]
    for message in messages:
        for line in reversed(message.splitlines()):
            _, found, rest = line.partition(f"{ModelLoadError.__name__}: ")
            if found and rest.strip():
                return rest.strip()
    return None


def delete(app_name: str) -> None:
    """Delete the application: Ray Serve stops its replicas, which close their engines."""
    from ray import serve

    serve.delete(app_name)

"""The autoscaling policy: as many replicas as the running and queued requests fill, counted in engine slots.

Ray Serve's default policy aims at a fixed number of requests per replica (``target_ongoing_requests``), which
must be known when the deployment starts. A replica's engine knows its own ``parallelism`` only once the model is
loaded, so each replica reports it (``record_autoscaling_stats``) and this policy divides the deployment's running
and queued requests by it. Serve applies ``min_replicas``/``max_replicas`` and the up- and down-scaling delays
around it. Ray Serve ships this function to its controller by value: it must use nothing but its arguments.
"""

from __future__ import annotations

from typing import Any

#: The custom autoscaling metric: generations one replica runs at once (each replica reports it).
SLOTS_METRIC = "sakura_slots"


def slot_policy(context: Any) -> tuple[float, dict[str, Any]]:
    """Replicas wanted: ongoing requests (running and queued) over the slots of one replica.

    ``context`` is Ray Serve's ``AutoscalingContext``. Until a replica has reported its slots, keep the current
    target.
    """
    reported = (context.aggregated_metrics or {}).get(SLOTS_METRIC) or {}
    slots = [value for value in reported.values() if value and value > 0]
    if not slots or context.current_num_replicas == 0:
        return float(context.target_num_replicas), {}
    return context.total_num_requests / min(slots), {}

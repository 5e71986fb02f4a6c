"""Reading a running server's ``/metrics`` page in end-to-end tests."""

from __future__ import annotations


def metric_value(exposition: str, sample: str, default: float | None = None) -> float:
    """The value of ``sample`` in ``exposition`` (the text ``/metrics`` answers).

    ``sample`` is a metric name with its labels as the server writes them, e.g.
    ``sakura_generations_total{outcome="cancelled"}``. A labelled counter appears with its first event: before
    that the page lacks it, and ``default`` is returned (LookupError without one).
    """
    for line in exposition.splitlines():
        name, _, value = line.rpartition(" ")
        if name == sample:
            return float(value)
    if default is None:
        raise LookupError(f"{sample} is not in the metrics")
    return default

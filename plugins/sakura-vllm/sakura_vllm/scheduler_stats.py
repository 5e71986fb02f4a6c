"""What vLLM's scheduler reports about itself, kept for sakura: requests running and waiting, KV-cache use.

vLLM's engine core (a separate process) sends its scheduler's statistics with every batch of outputs; vLLM
hands them to stat loggers, an interface it offers to API users. ``stat_logger_factory`` plugs a small one in
that keeps the latest figures in a ``SchedulerSnapshot``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class SchedulerSnapshot:
    """The latest statistics from vLLM's scheduler, and the most requests seen running since ``mark()``."""

    running: int = 0
    waiting: int = 0
    kv_cache_usage: float = 0.0
    updates: int = 0
    peak_running: int = 0

    def update(self, running: int, waiting: int, kv_cache_usage: float) -> None:
        """Take in one report of the scheduler."""
        self.running = running
        self.waiting = waiting
        self.kv_cache_usage = kv_cache_usage
        self.updates += 1
        self.peak_running = max(self.peak_running, running)

    def mark(self) -> None:
        """Start a new window for ``peak_running``: the most requests running in reports from now on."""
        self.peak_running = 0


def stat_logger_factory(snapshot: SchedulerSnapshot) -> Any:
    """A vLLM stat-logger factory whose loggers write the scheduler's figures into ``snapshot``."""
    from vllm.v1.metrics.loggers import StatLoggerBase

    class SnapshotStatLogger(StatLoggerBase):
        """Keeps the scheduler's latest figures; logs nothing."""

        def __init__(self, vllm_config: Any, engine_index: int = 0) -> None:
            self.engine_index = engine_index

        def record(
            self,
            scheduler_stats: Any,
            iteration_stats: Any,
            mm_cache_stats: Any = None,
            engine_idx: int = 0,
        ) -> None:
            if scheduler_stats is not None:
                snapshot.update(
                    scheduler_stats.num_running_reqs, scheduler_stats.num_waiting_reqs, scheduler_stats.kv_cache_usage
                )

        def log_engine_initialized(self) -> None:
            pass

    return SnapshotStatLogger

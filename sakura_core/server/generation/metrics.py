"""Counters of what the server did, rendered as Prometheus text by prometheus_client (our names and llama-server's
``llamacpp:``)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from sakura_core.types import Delta, EngineMetric, FinishReason

#: Upper bounds of the time-to-first-token histogram, in seconds.
TTFT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


@dataclass(eq=False)
class GenerationRecord:
    """One generation as the server saw it: times and the engine's latest token counts."""

    queued_at: float = field(default_factory=time.perf_counter)
    started_at: float | None = None
    first_token_at: float | None = None
    finished_at: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int | None = None  # prompt tokens the engine took from its prompt cache (None: not reported)
    outcome: str = "queued"
    finish_reason: FinishReason | None = None  # the engine's, once a delta ends the generation
    text_chars: int = 0

    def observe(self, delta: Delta) -> None:
        """Take in one delta from the engine."""
        if self.first_token_at is None and delta.completion_tokens > 0:
            self.first_token_at = time.perf_counter()
        self.prompt_tokens = delta.prompt_tokens
        self.completion_tokens = delta.completion_tokens
        if delta.cached_tokens is not None:
            self.cached_tokens = delta.cached_tokens
        self.text_chars += len(delta.text)
        if delta.finish_reason is not None:
            self.outcome = self.finish_reason = delta.finish_reason

    @property
    def seconds(self) -> float:
        """From arrival to the end (or to now)."""
        return (self.finished_at or time.perf_counter()) - self.queued_at


class Histogram:
    """A cumulative Prometheus histogram."""

    def __init__(self, buckets: Iterable[float]) -> None:
        self.buckets = tuple(sorted(buckets))
        self.counts = [0] * len(self.buckets)
        self.total = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        """Count one observation."""
        self.total += 1
        self.sum += value
        for index, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[index] += 1


@dataclass
class Gauges:
    """Values read at scrape time from the scheduler and the model."""

    queue_depth: int
    active: int
    slots: int
    context_length: int


class ServerMetrics:
    """Everything /metrics reports. The server calls ``start``/``finish`` around each generation and
    ``count_request`` once per HTTP request."""

    def __init__(self) -> None:
        self.requests: Counter[tuple[str, str]] = Counter()
        #: HTTP requests by route, result (finished, cancelled, failed, refused) and reason.
        self.results: Counter[tuple[str, str, str]] = Counter()
        self.outcomes: Counter[str] = Counter()
        self.prompt_tokens = 0
        self.prompt_tokens_cached = 0
        self.completion_tokens = 0
        self.prompt_seconds = 0.0
        self.predicted_seconds = 0.0
        self.token_events = 0
        self.busy_slots_at_events = 0
        self.ttft = Histogram(TTFT_BUCKETS)
        self.running: set[GenerationRecord] = set()

    def count_request(self, route: str, status: int) -> None:
        """Count one finished HTTP request."""
        self.requests[(route, str(status))] += 1

    def start(self, record: GenerationRecord) -> None:
        """A generation got its slot."""
        record.started_at = time.perf_counter()
        record.outcome = "running"
        self.running.add(record)

    def token_event(self, busy_slots: int) -> None:
        """One delta arrived while ``busy_slots`` sequences were running."""
        self.token_events += 1
        self.busy_slots_at_events += busy_slots

    def finish(self, record: GenerationRecord) -> None:
        """A generation ended (finished, cancelled or failed)."""
        record.finished_at = time.perf_counter()
        self.running.discard(record)
        self.outcomes[record.outcome] += 1
        if record.started_at is None:
            return
        self.prompt_tokens += record.prompt_tokens
        self.prompt_tokens_cached += record.cached_tokens or 0
        self.completion_tokens += record.completion_tokens
        if record.first_token_at is not None:
            self.ttft.observe(record.first_token_at - record.queued_at)
            self.prompt_seconds += record.first_token_at - record.started_at
            self.predicted_seconds += record.finished_at - record.first_token_at
        else:
            self.prompt_seconds += record.finished_at - record.started_at

    def count_result(self, route: str, result: str, reason: str) -> None:
        """Count how one HTTP request ended: ``finished``, ``cancelled``, ``failed`` or ``refused``, and why."""
        self.results[(route, result, reason)] += 1

    def render(self, gauges: Gauges | None, engine_metrics: Sequence[EngineMetric] = ()) -> str:
        """Prometheus text exposition (version 0.0.4), written by prometheus_client; ``engine_metrics`` are the
        engine's own figures (``sakura_engine_<name>``)."""
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Snapshot(self, gauges, engine_metrics))
        return generate_latest(registry).decode("utf-8")

    def families(self, gauges: Gauges | None, engine_metrics: Sequence[EngineMetric] = ()) -> Iterator[Metric]:
        """Every metric family, read now."""
        requests = CounterMetricFamily(
            "sakura_requests_total", "HTTP requests by route and status.", labels=("route", "status")
        )
        for (route, status), count in sorted(self.requests.items()):
            requests.add_metric((route, status), count)
        yield requests
        results = CounterMetricFamily(
            "sakura_request_results_total",
            "HTTP requests by how they ended (finished, cancelled, failed, refused) and why; they add up to"
            " sakura_requests_total.",
            labels=("route", "result", "reason"),
        )
        for (route, result, reason), count in sorted(self.results.items()):
            results.add_metric((route, result, reason), count)
        yield results
        generations = CounterMetricFamily(
            "sakura_generations_total",
            "Generations by outcome (stop, length, cancelled, send_timeout, shutting_down, error).",
            labels=("outcome",),
        )
        for outcome, count in sorted(self.outcomes.items()):
            generations.add_metric((outcome,), count)
        yield generations
        yield CounterMetricFamily("sakura_prompt_tokens_total", "Prompt tokens of generations.", self.prompt_tokens)
        yield CounterMetricFamily(
            "sakura_prompt_tokens_cached_total",
            "Prompt tokens the engine took from its prompt cache instead of processing them.",
            self.prompt_tokens_cached,
        )
        yield CounterMetricFamily("sakura_completion_tokens_total", "Generated tokens.", self.completion_tokens)
        buckets = [(_bound(b), c) for b, c in zip(self.ttft.buckets, self.ttft.counts, strict=True)]
        yield HistogramMetricFamily(
            "sakura_time_to_first_token_seconds",
            "From arrival to the first token.",
            buckets=[*buckets, ("+Inf", self.ttft.total)],
            sum_value=self.ttft.sum,
        )
        if gauges is not None:
            yield GaugeMetricFamily("sakura_queue_depth", "Requests waiting for a slot.", gauges.queue_depth)
            yield GaugeMetricFamily("sakura_active_sequences", "Generations running in the engine.", gauges.active)
            yield GaugeMetricFamily("sakura_slots", "Sequences the engine decodes together.", gauges.slots)
        for metric in engine_metrics:
            engine_family = CounterMetricFamily if metric.kind == "counter" else GaugeMetricFamily
            yield engine_family(f"sakura_engine_{metric.name}", metric.help, metric.value)
        for name, kind, help_text, value in self._llamacpp_rows(gauges):
            family = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
            yield family(f"llamacpp:{name}", help_text, value)

    def _llamacpp_rows(self, gauges: Gauges | None) -> list[tuple[str, str, str, float]]:
        """llama-server's names, which Sakura_Launcher_GUI reads; derived from the token events we observe."""
        running_tokens = sum(r.prompt_tokens + r.completion_tokens for r in self.running)
        prompt_started = [r for r in self.running if r.first_token_at]
        cached = self.prompt_tokens_cached + sum(r.cached_tokens or 0 for r in prompt_started)
        # as llama-server counts them: prompt tokens processed, the ones taken from the cache apart
        processed = self.prompt_tokens + sum(r.prompt_tokens for r in prompt_started) - cached
        predicted = self.completion_tokens + sum(r.completion_tokens for r in self.running)
        rows: list[tuple[str, str, str, float]] = [
            ("prompt_tokens_total", "counter", "Number of prompt tokens processed, cached ones excluded.", processed),
            ("prompt_tokens_cached_total", "counter", "Number of prompt tokens reused from the cache.", cached),
            ("prompt_seconds_total", "counter", "Prompt process time.", self.prompt_seconds),
            ("tokens_predicted_total", "counter", "Number of generation tokens processed.", predicted),
            ("tokens_predicted_seconds_total", "counter", "Predict process time.", self.predicted_seconds),
            ("n_decode_total", "counter", "Token events (decode steps seen per sequence).", self.token_events),
            (
                "n_busy_slots_per_decode",
                "gauge",
                "Average number of busy slots per token event.",
                _ratio(self.busy_slots_at_events, self.token_events),
            ),
            (
                "prompt_tokens_seconds",
                "gauge",
                "Average prompt throughput in tokens/s.",
                _ratio(self.prompt_tokens - self.prompt_tokens_cached, self.prompt_seconds),
            ),
            (
                "predicted_tokens_seconds",
                "gauge",
                "Average generation throughput in tokens/s.",
                _ratio(self.completion_tokens, self.predicted_seconds),
            ),
        ]
        if gauges is not None:
            capacity_tokens = gauges.context_length * gauges.slots
            rows += [
                (
                    "kv_cache_usage_ratio",
                    "gauge",
                    "Tokens held by running sequences over the context of all slots.",
                    _ratio(running_tokens, capacity_tokens),
                ),
                ("kv_cache_tokens", "gauge", "Tokens held by running sequences.", running_tokens),
                ("requests_processing", "gauge", "Number of requests processing.", gauges.active),
                ("requests_deferred", "gauge", "Number of requests deferred.", gauges.queue_depth),
            ]
        return rows


class _Snapshot(Collector):
    """prometheus_client's view of the server's metrics at one scrape."""

    def __init__(self, metrics: ServerMetrics, gauges: Gauges | None, engine_metrics: Sequence[EngineMetric]) -> None:
        self.metrics = metrics
        self.gauges = gauges
        self.engine_metrics = engine_metrics

    def collect(self) -> Iterable[Metric]:
        return list(self.metrics.families(self.gauges, self.engine_metrics))


def _bound(value: float) -> str:
    return repr(float(value))


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else 0.0

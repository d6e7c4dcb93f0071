"""Prometheus metrics of one app instance (its own registry, so several apps can share a process)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter, Histogram, Info, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from core.predlog import WriterStatus

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Telemetry:
    """Request, decision and model-reload metrics, and the prediction log's backlog and write errors."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "fraudops_http_requests",
            "HTTP requests by route template, method and status code.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "fraudops_http_request_duration_seconds",
            "HTTP request latency by route template and method.",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.decisions = Counter(
            "fraudops_decisions", "Scored transactions by decision.", ["outcome"], registry=self.registry
        )
        self.reload_failures = Counter(
            "fraudops_model_reload_failures",
            "Champion versions that failed to load or pass the smoke test.",
            registry=self.registry,
        )
        self.served_model = Info(
            "fraudops_served_model", "The model version being served.", registry=self.registry
        )
        self.registry.register(PredictionLogCollector(self))
        self.prediction_log_status: Callable[[], WriterStatus] | None = None

    def watch_prediction_log(self, status: Callable[[], WriterStatus]) -> None:
        """Export the prediction log's ``status`` (read at each scrape)."""
        self.prediction_log_status = status

    def count_decisions(self, n_fraud: int, n_genuine: int) -> None:
        """Add a batch's decisions."""
        self.decisions.labels(outcome="fraud").inc(n_fraud)
        self.decisions.labels(outcome="genuine").inc(n_genuine)

    def set_served_model(self, name: str, version: str) -> None:
        """Publish the model version now serving."""
        self.served_model.info({"name": name, "version": version})

    def render(self) -> bytes:
        """The registry in Prometheus text format."""
        return generate_latest(self.registry)


class PredictionLogCollector(Collector):
    """The prediction log's backlog, its bound, failed writes and last error, read at scrape time."""

    def __init__(self, telemetry: Telemetry) -> None:
        self.telemetry = telemetry

    def collect(self) -> Iterator[Metric]:
        read = self.telemetry.prediction_log_status
        if read is None:
            return
        status = read()
        prefix = "fraudops_prediction_log"
        yield GaugeMetricFamily(
            f"{prefix}_backlog_rows", "Acknowledged predictions not yet written.", value=status.pending
        )
        yield GaugeMetricFamily(
            f"{prefix}_backlog_limit_rows",
            "Most predictions that may wait; beyond it scoring is 503.",
            value=status.max_pending,
        )
        yield GaugeMetricFamily(
            f"{prefix}_failing", "1 while the last write failed: scoring is 503.", value=int(status.failing)
        )
        yield CounterMetricFamily(
            f"{prefix}_failed_writes", "Writes of the prediction log that failed.", value=status.failed_writes
        )
        if status.last_error is not None and status.last_error_at is not None:
            error = GaugeMetricFamily(
                f"{prefix}_last_error_timestamp_seconds",
                "When the last write failed (epoch seconds), its error as a label.",
                labels=["error"],
            )
            error.add_metric([status.last_error], status.last_error_at)
            yield error


class RequestMetrics:
    """Pure ASGI middleware: count and time every request by route template, method and status.

    Route templates (not raw paths) keep label cardinality low. Plain ASGI rather than
    ``@app.middleware("http")``, whose per-request task and stream cost more than the scoring itself.
    """

    def __init__(self, app: ASGIApp, telemetry: Telemetry) -> None:
        self.app = app
        self.telemetry = telemetry
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_and_note_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note_status)
        finally:
            self._metrics(scope, status).observe_and_count(time.perf_counter() - start)

    def _metrics(self, scope: Scope, status: int) -> _RouteMetrics:
        route = str(getattr(scope.get("route"), "path", "unmatched"))
        key = (route, scope["method"], status)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = (
                self.telemetry.requests.labels(route=route, method=key[1], status=str(status)),
                self.telemetry.latency.labels(route=route, method=key[1]),
            )
        return _RouteMetrics(*found)


class _RouteMetrics:
    __slots__ = ("count", "latency")

    def __init__(self, count: Any, latency: Any) -> None:
        self.count, self.latency = count, latency

    def observe_and_count(self, seconds: float) -> None:
        self.count.inc()
        self.latency.observe(seconds)


def add_request_metrics(app: FastAPI, telemetry: Telemetry) -> None:
    """Install :class:`RequestMetrics` on ``app``."""
    app.add_middleware(RequestMetrics, telemetry=telemetry)

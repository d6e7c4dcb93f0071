"""Prometheus metrics of one app instance (its own registry, so several apps can share a process)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from prometheus_client import CollectorRegistry, Counter, Histogram, Info, generate_latest

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Telemetry:
    """Request, decision and model-reload metrics."""

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


def _route_of(request: Request) -> str:
    route = request.scope.get("route")
    return str(getattr(route, "path", "unmatched"))


def add_request_metrics(app: FastAPI, telemetry: Telemetry) -> None:
    """Count and time every request by route template (not raw path, to keep label cardinality low)."""

    @app.middleware("http")
    async def record_request(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        start = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            route = _route_of(request)
            telemetry.requests.labels(route=route, method=request.method, status=str(status)).inc()
            telemetry.latency.labels(route=route, method=request.method).observe(time.perf_counter() - start)

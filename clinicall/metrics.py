"""Prometheus metrics: one registry per app, so tests and several apps in one process never clash."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("clinicall_http_requests", "HTTP requests", ["method", "route", "status"],
                                registry=self.registry)
        self.latency = Histogram("clinicall_http_request_seconds", "HTTP request latency", ["route"],
                                 registry=self.registry)

    def render(self) -> web.Response:
        response = web.Response(body=generate_latest(self.registry))
        response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
        return response


METRICS_KEY = web.AppKey("metrics", Metrics)

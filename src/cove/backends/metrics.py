"""``/metrics`` in Prometheus' text format (prometheus_client, Apache-2.0), and
``/metrics/backends`` as JSON for ``cove backend list``.

Families (``backend`` label = the backend's name; ``model`` = a loaded local model):

- ``cove_backend_up`` (gauge): 1 while the circuit breaker is closed, else 0
- ``cove_backend_in_flight`` (gauge): requests being answered now
- ``cove_backend_requests_total``, ``cove_backend_errors_total``, ``cove_backend_retries_total``,
  ``cove_backend_breaker_opened_total`` (counters)
- ``cove_backend_tokens_total{kind="prompt"|"completion"}`` (counter, from upstream usage)
- ``cove_backend_request_seconds``, ``cove_backend_first_byte_seconds`` (summaries: ``_sum``
  and ``_count``)
- ``cove_model_loaded_bytes``, ``cove_model_context_tokens``, ``cove_model_slots``,
  ``cove_model_pending``, ``cove_prompt_cache_bytes``, ``cove_prompt_cache_budget_bytes``
  (gauges of the local engine: memory estimate, window per slot, slots, requests waiting or
  running, host prompt cache used and its budget)

Both routes sit behind the API key once an account exists (the same gate as ``/v1``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)

router = APIRouter()


class _Collector:
    """Reads the pipeline's figures at each scrape (nothing is kept twice)."""

    def __init__(self, pipeline: Any) -> None:
        self.pipeline = pipeline

    def collect(self) -> Iterator[Metric]:
        self.pipeline.remote.refresh()
        stats = list(self.pipeline.remote.router.stats.values())
        lb = ["backend"]

        def gauge(name: str, doc: str, value: Any) -> GaugeMetricFamily:
            g = GaugeMetricFamily(name, doc, labels=lb)
            for s in stats:
                g.add_metric([s.backend.name], float(value(s)))
            return g

        def counter(name: str, doc: str, value: Any) -> CounterMetricFamily:
            c = CounterMetricFamily(name, doc, labels=lb)
            for s in stats:
                c.add_metric([s.backend.name], float(value(s)))
            return c

        yield gauge("cove_backend_up", "1 while the backend's circuit breaker is closed",
                    lambda s: s.open_until is None)
        yield gauge("cove_backend_in_flight", "Requests the backend is answering now",
                    lambda s: s.in_flight)
        yield counter("cove_backend_requests", "Requests sent to the backend",
                      lambda s: s.requests)
        yield counter("cove_backend_errors", "Requests to the backend that failed",
                      lambda s: s.errors)
        yield counter("cove_backend_retries", "Failed tries taken over by another backend",
                      lambda s: s.retries)
        yield counter("cove_backend_breaker_opened", "Times the circuit breaker opened",
                      lambda s: s.opened)
        tokens = CounterMetricFamily("cove_backend_tokens", "Tokens by the backend's usage",
                                     labels=["backend", "kind"])
        for s in stats:
            tokens.add_metric([s.backend.name, "prompt"], s.prompt_tokens)
            tokens.add_metric([s.backend.name, "completion"], s.completion_tokens)
        yield tokens
        latency = SummaryMetricFamily("cove_backend_request_seconds",
                                      "Seconds from sending a request to its last byte",
                                      labels=lb)
        ttft = SummaryMetricFamily("cove_backend_first_byte_seconds",
                                   "Seconds from sending a request to its first event",
                                   labels=lb)
        for s in stats:
            latency.add_metric([s.backend.name], s.requests, s.latency_sum)
            ttft.add_metric([s.backend.name], s.ttft_count, s.ttft_sum)
        yield latency
        yield ttft
        loaded = [m for m in self.pipeline.models.loaded()]
        lm = ["model", "kind"]
        families = {
            "bytes": GaugeMetricFamily("cove_model_loaded_bytes",
                                       "Memory estimate of a loaded local model", labels=lm),
            "ctx": GaugeMetricFamily("cove_model_context_tokens",
                                     "Context window per slot of a loaded local model",
                                     labels=lm),
            "slots": GaugeMetricFamily("cove_model_slots",
                                       "Sequences a loaded local chat model decodes together",
                                       labels=lm),
            "pending": GaugeMetricFamily("cove_model_pending",
                                         "Requests waiting or running on a local chat model",
                                         labels=lm),
            "cache": GaugeMetricFamily("cove_prompt_cache_bytes",
                                       "Host memory held by a local chat model's prompt cache",
                                       labels=lm),
            "budget": GaugeMetricFamily("cove_prompt_cache_budget_bytes",
                                        "Budget of a local chat model's prompt cache "
                                        "(COVE_PROMPT_CACHE_MB)", labels=lm),
        }
        for m in loaded:
            labels = [m.entry.name, m.kind]
            families["bytes"].add_metric(labels, m.size)
            families["ctx"].add_metric(labels, m.n_ctx)
            if m.scheduler is not None:
                families["slots"].add_metric(labels, m.engine.n_slots)
                families["pending"].add_metric(labels, m.scheduler.pending)
                families["cache"].add_metric(labels, m.scheduler.cache.used)
                families["budget"].add_metric(labels, m.scheduler.cache.budget)
        yield from families.values()


def _registry(request: Request) -> CollectorRegistry:
    reg = getattr(request.app.state, "metrics_registry", None)
    if reg is None:
        reg = CollectorRegistry(auto_describe=False)
        reg.register(_Collector(request.app.state.pipeline))  # type: ignore[arg-type]
        request.app.state.metrics_registry = reg
    return reg  # type: ignore[no-any-return]


@router.get("/metrics", response_class=Response)
def metrics(request: Request) -> Response:
    """Prometheus' text exposition format (version 0.0.4)."""
    return Response(generate_latest(_registry(request)), media_type=CONTENT_TYPE_LATEST)


@router.get("/metrics/backends")
def backends(request: Request) -> dict[str, Any]:
    """``{"backends": [summary, ...]}``: each backend's state and figures
    (:meth:`cove.backends.router.BackendStats.summary`)."""
    return {"backends": request.app.state.pipeline.remote.summaries()}

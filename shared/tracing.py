"""OpenTelemetry traces (#16): off unless configured, then from the webhook to the e-mail.

With ``OTEL_EXPORTER_OTLP_ENDPOINT`` unset (the default) nothing is set up: no provider, no exporter,
no instrumentation on the HTTP app or the broker, no ``traceparent`` in the outbox; :func:`span` is a
no-op. Set, each process builds one SDK ``TracerProvider`` (resource ``service.name``: the service)
exporting over OTLP/HTTP in batches, and

- every HTTP app is instrumented (``opentelemetry-instrumentation-fastapi``: a server span per
  request, its context taken from the caller's ``traceparent``);
- every broker has FastStream's ``KafkaTelemetryMiddleware``: a span per consumed message, continuing
  the trace its ``traceparent`` header carries (a batch's span links to each record's; each record of a
  batch also gets a short span in its own trace, ``shared.kafka.batch_events``);
- an event written to an outbox carries the W3C trace context of the code that wrote it in its row's
  headers (:func:`trace_headers`, ``shared.outbox``), so the trace goes on through the relay's publish
  to the consumers;
- the notifier's SMTP send and channel POST are spans (:func:`span`) under a delivery span whose parent
  is the trace context stored on the delivery row: the alert's own.

Tests install a provider of their own (an in-memory exporter) with :func:`use_provider` before they
build an app.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

if TYPE_CHECKING:
    from fastapi import FastAPI
    from opentelemetry.sdk.trace import TracerProvider

    from shared.settings import CommonSettings

log = logging.getLogger(__name__)

TRACEPARENT = "traceparent"
_PROPAGATOR = TraceContextTextMapPropagator()
_provider: TracerProvider | None = None
# Health probes and scrapes every few seconds are no trace anyone reads.
EXCLUDED_URLS = "/health/.*,/metrics"


def configure(settings: CommonSettings, service: str) -> TracerProvider | None:
    """The process's provider: the one already in use (another app of this process, or a test's), a new
    one exporting to ``settings.otel_exporter_otlp_endpoint`` when that is set, else None (tracing off)."""
    global _provider
    if _provider is None and settings.otel_exporter_otlp_endpoint:
        # Imported here: a process with tracing off never loads the SDK or the exporter.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

        provider = TracerProvider(
            resource=Resource.create({SERVICE_NAME: service}),
            sampler=ParentBased(TraceIdRatioBased(settings.otel_traces_sampler_arg)),
        )
        # The generic endpoint names the collector; traces go to its /v1/traces (as the SDK's own
        # reading of OTEL_EXPORTER_OTLP_ENDPOINT does).
        endpoint = f"{settings.otel_exporter_otlp_endpoint.rstrip('/')}/v1/traces"
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
        _provider = provider
        log.info("traces of %s exported to %s (sampled: %g)", service, endpoint, settings.otel_traces_sampler_arg)
    return _provider


def use_provider(provider: TracerProvider | None) -> TracerProvider | None:
    """Make ``provider`` the process's (None: tracing off); returns the previous one. For tests."""
    global _provider
    previous, _provider = _provider, provider
    return previous


def provider() -> TracerProvider | None:
    return _provider


def enabled() -> bool:
    return _provider is not None


def instrument_app(app: FastAPI) -> None:
    """A server span per HTTP request of ``app`` (not the health probes nor scrapes), if tracing is on."""
    if _provider is None:
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    # No spans of their own for each ASGI receive and send: one span per request is the trace's step.
    FastAPIInstrumentor.instrument_app(app, tracer_provider=_provider, excluded_urls=EXCLUDED_URLS,
                                       exclude_spans=["receive", "send"])


def broker_middlewares() -> tuple[Any, ...]:
    """FastStream's telemetry middleware for a new broker, if tracing is on (outermost: its span holds
    the handler, the dead letter and what the handler publishes)."""
    if _provider is None:
        return ()
    from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware

    return (KafkaTelemetryMiddleware(tracer_provider=_provider),)


def trace_headers() -> dict[str, str]:
    """The W3C trace context of the current span as record headers (``traceparent``); empty when
    tracing is off or no span is current. What an outbox row carries to the consumers."""
    if _provider is None or not trace.get_current_span().get_span_context().is_valid:
        return {}
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier


def context_from(headers: Mapping[str, str]) -> Context | None:
    """The trace context a record's headers carry (``traceparent``), or None."""
    if TRACEPARENT not in headers:
        return None
    context = _PROPAGATOR.extract(headers)
    return context if trace.get_current_span(context).get_span_context().is_valid else None


@contextmanager
def span(name: str, *, kind: trace.SpanKind = trace.SpanKind.INTERNAL, context: Context | None = None,
         attributes: Mapping[str, Any] | None = None) -> Iterator[trace.Span | None]:
    """A span of this process's tracer, current inside the block; None and no cost with tracing off."""
    if _provider is None:
        yield None
        return
    tracer = _provider.get_tracer("csp_triage")
    with tracer.start_as_current_span(name, kind=kind, context=context, attributes=dict(attributes or {})) as current:
        yield current

"""Logging set-up for every process: one line per record, with the service's name and the ids of what
it is about, and no log storms.

Every record, ours (``logging.getLogger`` or ``structlog.get_logger``) and those of FastStream, aiokafka
and uvicorn, goes through one handler and one :class:`structlog.stdlib.ProcessorFormatter`. Outside
development each is one JSON object per line (``timestamp``, ``level``, ``logger``, ``service``,
``message``, then ``tenant_id``, ``alert_id``, ``event_id``, ``trace_id``, ``span_id``... when known), for
a log shipper to index; in development (``ENVIRONMENT=development``, as ``make run`` and the tests run
the services) a readable line, ``<time> <LEVEL> <service> <logger>: <message> key=value...``.
``LOG_FORMAT=json|console`` forces one or the other.

The ids come from :mod:`structlog.contextvars`, bound where the work starts: per consumed Kafka
message by :class:`LogContextMiddleware` (FastStream), per HTTP request by
:class:`HttpLogContextMiddleware`, or by hand (``bound_contextvars(alert_id=...)``). A record
logged inside reads them whatever logger wrote it. The trace and span ids are those of the current
OpenTelemetry span, when there is one.

While a dependency is away its clients report every failed attempt: with the broker down, aiokafka
alone wrote hundreds of ERROR lines a second per process ("Unable connect to node with id 1",
"Unable to update metadata from [1]", ...), enough to fill a disk in an hour-long outage and to
bury the one line that matters. :class:`RepeatLimiter` lets the first warning or error of a kind
through, then at most one per interval, and says how many it held back; and it tells an exception
once: a handler's failure logged by ``shared.kafka`` ("handler failed; ... retried", with its
traceback) is not written again by FastStream's own error line for the same exception.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import secrets
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import IO, Any, Literal

import structlog
from faststream.middlewares import BaseMiddleware
from opentelemetry import trace
from structlog.typing import EventDict, Processor, WrappedLogger

from shared.events import EVENT_TYPE_HEADER
from shared.problems import DEPENDENCY_ERRORS
from shared.wire import TENANT_ID_MAX_LENGTH, TENANT_ID_PATTERN

# How often a warning or error of one kind may be written while it repeats.
REPEAT_INTERVAL_SECONDS = 10.0


@dataclass
class _Window:
    started: float  # when the record that opened this window passed
    suppressed: int = 0


class RepeatLimiter(logging.Filter):
    """Lets the first record of a kind through, then at most one per ``every_seconds``.

    A kind is the logger's name, the level and the message *template* (``record.msg`` before its
    arguments are filled in), so "Unable connect to node with id %s" is one kind whatever the node
    and the error. The record that ends a quiet interval carries the count of those held back:
    ``... (1234 similar suppressed in the last 10 s)``; a count of records suppressed just before the
    storm ended is told by the next record of that kind, whenever it comes.

    Only warnings and above are limited: INFO and DEBUG are the normal work of a process (one line
    per published status, per started subscriber) and each tells something different.

    A warning or error carrying an exception that an earlier record of its level or higher already
    carried (passed or held back) is dropped: the exception was told, with its traceback, by the first.
    FastStream logs every exception a handler raises ("ConnectionDoesNotExistError: connection was
    closed...", a kind per text) after ``shared.kafka`` logged it as the handler's failure: one failure,
    two lines.
    """

    def __init__(
        self,
        every_seconds: float = REPEAT_INTERVAL_SECONDS,
        *,
        min_level: int = logging.WARNING,
        clock: Callable[[], float] = time.monotonic,
        max_kinds: int = 1000,
    ) -> None:
        super().__init__()
        self.every_seconds = every_seconds
        self.min_level = min_level
        self.clock = clock
        self.max_kinds = max_kinds
        self._windows: dict[tuple[str, int, str], _Window] = {}  # (logger, level, template + failure site)
        # Records may come from threads (asyncio.to_thread, libraries' own threads).
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._windows)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < self.min_level:
            return True
        if _told_before(record):
            return False
        kind = (record.name, record.levelno, _template(record) + _failure_site(record))
        now = self.clock()
        with self._lock:
            window = self._windows.get(kind)
            if window is not None and now - window.started < self.every_seconds:
                window.suppressed += 1
                return False
            if window is None and len(self._windows) >= self.max_kinds:
                self._forget_quiet(now)
            self._windows[kind] = _Window(started=now)
        if window is not None and window.suppressed:
            note = f" ({window.suppressed} similar suppressed in the last {now - window.started:.0f} s)"
            if isinstance(record.msg, dict):
                # A structlog record: its message is the event dict (a copy: other handlers may share it).
                record.msg = {**record.msg, "event": f"{record.msg.get('event', '')}{note}"}
            else:
                # Appended to the rendered text (not to the template, which would be formatted again).
                record.msg = f"{record.getMessage()}{note}"
                record.args = None
        return True

    def _forget_quiet(self, now: float) -> None:
        """Make room: drop the kinds whose interval is over (they would pass anyway), else all.

        Forgetting only ever lets a record through that would have been held back: a full table
        never silences anything new.
        """
        quiet = [kind for kind, window in self._windows.items() if now - window.started >= self.every_seconds]
        for kind in quiet:
            del self._windows[kind]
        if len(self._windows) >= self.max_kinds:
            self._windows.clear()


# Set on an exception once a record carrying it reached the limiter: the highest level it was told at.
_TOLD = "_csp_log_told_at"


def _told_before(record: logging.LogRecord) -> bool:
    """True if ``record``'s exception was carried by an earlier record of its level or higher; else marks it
    as told at this level (a warning that an error then gives up on still lets the error through)."""
    exc = record.exc_info[1] if record.exc_info else None
    if exc is None:
        return False
    if getattr(exc, _TOLD, -1) >= record.levelno:
        return True
    try:
        setattr(exc, _TOLD, record.levelno)
    except AttributeError:  # (an exception type without a __dict__: told as often as it is logged)
        pass
    return False


def _template(record: logging.LogRecord) -> str:
    """The message before its arguments: a structlog record's message is its event dict, whose
    ``event`` is the template (its key-values are the arguments)."""
    if isinstance(record.msg, str):
        return record.msg
    if isinstance(record.msg, dict):
        return str(record.msg.get("event", ""))
    return type(record.msg).__name__


def _failure_site(record: logging.LogRecord) -> str:
    """For a record with an exception: its type and the innermost frame that raised it. Generic
    templates ("Exception in ASGI application", "handler failed") then keep two different failures
    apart instead of holding back the second as a repeat of the first.

    Except a database, cache or peer that does not answer (``shared.problems.DEPENDENCY_ERRORS``):
    one outage, told by a dozen exception types raised at as many frames (refused, closed in the
    middle of an operation, a transaction's exit on a closed connection...), is one kind."""
    if not record.exc_info or record.exc_info[1] is None:
        return ""
    exc = record.exc_info[1]
    if isinstance(exc, DEPENDENCY_ERRORS):
        return "\x1fa dependency does not answer"
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    where = f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}" if tb is not None else ""
    return f"\x1f{type(exc).__qualname__}\x1f{where}"



# --- format -------------------------------------------------------------------------------------------

LogFormat = Literal["json", "console"]
LOG_FORMATS: tuple[str, ...] = ("json", "console")

# The fields that say what a record is about, in the order a line shows them after its message.
CONTEXT_FIELDS = ("tenant_id", "alert_id", "event_id", "event_type", "topic", "batch_size", "request_id",
                  "trace_id", "span_id")
# The ``extra`` fields of a standard library record that make it to the line: what FastStream passes
# with its own records (to which LogContextMiddleware adds the ids), and the ids given by hand
# (``log.info(..., extra={"alert_id": ...})``). Only these: a library's private extras (uvicorn's
# ``color_message``) stay out of the line.
RECORD_EXTRAS = ("topic", "group_id", "message_id", "tenant_id", "alert_id", "event_id", "event_type")
_FIRST_FIELDS = ("timestamp", "level", "logger", "service", "message")


def log_format_for(environment: str | None = None, forced: str | None = None) -> LogFormat:
    """``forced`` (``LOG_FORMAT``) if set, else readable lines in development and JSON anywhere else.

    Read from the environment when not given, as the settings are (``CommonSettings.environment``):
    the process's entry point calls :func:`configure_logging` before anything else.
    """
    forced = forced if forced is not None else _env("LOG_FORMAT")
    if forced:
        value = forced.strip().lower()
        if value not in LOG_FORMATS:
            raise ValueError(f"LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, not {forced!r}")
        return value  # type: ignore[return-value]
    environment = environment if environment is not None else (_env("ENVIRONMENT") or "production")
    return "console" if environment.strip().lower() == "development" else "json"


def _env(name: str) -> str | None:
    # Case-insensitive, as pydantic-settings reads the settings (case_sensitive=False).
    return next((value for key, value in os.environ.items() if key.upper() == name), None)


def add_trace_context(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """The current OpenTelemetry span's trace and span ids (hex, as OTLP back-ends show them), when a
    span is recording this work: a log line then leads to its trace, and back."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event_dict.setdefault("trace_id", format(context.trace_id, "032x"))
        event_dict.setdefault("span_id", format(context.span_id, "016x"))
    return event_dict


def _add_service(service: str) -> Processor:
    def add_service(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
        event_dict.setdefault("service", service)
        return event_dict

    return add_service


def _ordered(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """The same keys, the envelope first, then the ids, then the rest, the traceback last."""
    first = {key: event_dict.pop(key) for key in (*_FIRST_FIELDS, *CONTEXT_FIELDS) if key in event_dict}
    last = {key: event_dict.pop(key) for key in ("exception", "stack_info") if key in event_dict}
    return {**first, **dict(sorted(event_dict.items())), **last}


def render_console(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> str:
    """``<time> <LEVEL> <service> <logger>: <message> key=value...``, a traceback on the lines after.

    The first four fields are where they always were: tests/faults/observe.py reads the level and the
    logger of a service's lines.
    """
    fields = dict(event_dict)
    timestamp = str(fields.pop("timestamp", ""))
    timestamp = timestamp[:23] + "Z" if len(timestamp) > 23 and timestamp.endswith("Z") else timestamp  # ms
    level = str(fields.pop("level", "")).upper()
    service, logger = fields.pop("service", "-"), fields.pop("logger", "-")
    message = fields.pop("message", "")
    trailer = "".join(f"\n{text}".rstrip() for text in (fields.pop("exception", None),
                                                       fields.pop("stack_info", None)) if text)
    pairs = " ".join(f"{key}={_console_value(value)}" for key, value in fields.items())
    return f"{timestamp} {level:<7} {service} {logger}: {message}{' ' if pairs else ''}{pairs}{trailer}"


def _console_value(value: Any) -> str:
    text = str(value)
    return text if text and not any(c.isspace() or c in "\"'=" for c in text) else repr(text)


def _processors(service: str) -> list[Processor]:
    """What every record gets, ours and the libraries' alike, before it is rendered."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        _add_service(service),
        add_trace_context,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
    ]


def make_formatter(service: str, log_format: LogFormat) -> structlog.stdlib.ProcessorFormatter:
    """The formatter of the process's handler: a record of any logger becomes one line of ``log_format``."""
    renderer: Processor = (structlog.processors.JSONRenderer() if log_format == "json" else render_console)
    return structlog.stdlib.ProcessorFormatter(
        # Records of the standard library's loggers (ours, FastStream's, aiokafka's, uvicorn's).
        foreign_pre_chain=[*_processors(service), structlog.stdlib.ExtraAdder(allow=RECORD_EXTRAS)],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            structlog.processors.EventRenamer("message"),
            _ordered,
            renderer,
        ],
    )


def configure_logging(service: str, level: str = "INFO",
                      repeat_interval_seconds: float = REPEAT_INTERVAL_SECONDS, *,
                      log_format: LogFormat | None = None, stream: IO[str] | None = None) -> None:
    """One handler for every record of the process: the limiter, then ``log_format`` (by default
    :func:`log_format_for` the environment), written to ``stream`` (stdout)."""
    try:
        log_format = log_format or log_format_for()
    except ValueError as exc:
        # As shared.settings.load_settings says a bad setting: one line, no traceback.
        print(f"invalid settings: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(make_formatter(service, log_format))
    # On the handler, not on a logger: a logger's filter does not see its children's records
    # (aiokafka logs from aiokafka.conn, aiokafka.cluster, aiokafka.consumer.group_coordinator...).
    handler.addFilter(RepeatLimiter(repeat_interval_seconds))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # FastStream's "faststream" logger (the brokers' loggers are its children) stops propagation and
    # would write with a handler and format of its own, past the limiter. Given ours, it keeps it:
    # its import-time set-up adds a handler only where no stdout handler exists yet.
    faststream = logging.getLogger("faststream")
    faststream.handlers[:] = [handler]
    faststream.propagate = False
    # aiokafka reports every reconnect at WARNING/ERROR; the limiter keeps those to a line per kind
    # and interval.
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, logging.getLevelName(level)))
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    # structlog's own loggers (structlog.get_logger(), with key-values) end in the same handler.
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_processors(service),
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


# --- what a record is about: Kafka ----------------------------------------------------------------------

# The headers every event is published with (shared.kafka.event_headers).
EVENT_ID_HEADER = "eventId"
TENANT_ID_HEADER = "tenantId"

# The event types whose Kafka key is ``<tenant>:<alert id>`` (shared.events, each model's kafka_key),
# some with a suffix after the alert id.
_ALERT_KEY_SUFFIXES: Mapping[str, re.Pattern[str]] = {
    "alert-created": re.compile(r"$"),
    "alert-updated": re.compile(r"$"),
    "alert-response-time-changed": re.compile(r"$"),
    "alert-sync-changed": re.compile(r"$"),
    "alert-assigned": re.compile(r":assignee$"),
    "alert-note-added": re.compile(r":note:[^:]*$"),
}
_MAX_FIELD_LENGTH = 256
_TENANT_ID = re.compile(TENANT_ID_PATTERN)


def record_log_fields(record: Any) -> dict[str, str]:
    """What a consumed Kafka record is about, from its headers (``eventId``, ``eventType``,
    ``tenantId``: shared.kafka.event_headers) and its key (the tenant before the first ``:``, the
    alert id after it for alert events), without parsing its value. Only what the record has."""
    headers = {key: _text(value) for key, value in (getattr(record, "headers", None) or ())}
    key = _text(getattr(record, "key", None))
    fields: dict[str, str] = {}
    if topic := getattr(record, "topic", None):
        fields["topic"] = str(topic)
    if event_id := headers.get(EVENT_ID_HEADER):
        fields["event_id"] = event_id
    event_type = headers.get(EVENT_TYPE_HEADER)
    if event_type:
        fields["event_type"] = event_type
    tenant_id = headers.get(TENANT_ID_HEADER) or (key.split(":", 1)[0] if key else "")
    if tenant_id and len(tenant_id) <= TENANT_ID_MAX_LENGTH and _TENANT_ID.match(tenant_id):
        fields["tenant_id"] = tenant_id
    suffix = _ALERT_KEY_SUFFIXES.get(event_type or "")
    if suffix is not None and key and tenant_id and key.startswith(f"{tenant_id}:"):
        alert_id = suffix.sub("", key[len(tenant_id) + 1:], count=1)
        if alert_id:
            fields["alert_id"] = alert_id
    # A header is anyone's text: keep the line a line (a newline would forge the next one).
    return {name: value for name, value in fields.items() if _loggable(value)}


def batch_log_fields(records: Any) -> dict[str, Any]:
    """What a batch of records is about: its topic and size, and the tenant when they share one (the
    ids of each record are bound by the handler that applies it, see :func:`bound_record`)."""
    records = tuple(records)
    fields: dict[str, Any] = {"batch_size": len(records)}
    if not records:
        return fields
    # The first record's fields, if every other has the same raw topic and tenant: the ids of each
    # record read for a batch of hundreds were ~4% of a consumer's time (#15).
    first = record_log_fields(records[0])
    for name, raw in (("topic", _raw_topic), ("tenant_id", _raw_tenant)):
        if name in first and len({raw(record) for record in records}) == 1:
            fields[name] = first[name]
    return fields


def _raw_topic(record: Any) -> Any:
    return getattr(record, "topic", None)


def _raw_tenant(record: Any) -> Any:
    """The tenant :func:`record_log_fields` reads, as the record holds it (unchecked, undecoded)."""
    for key, value in getattr(record, "headers", None) or ():
        if key == TENANT_ID_HEADER and value:
            return value
    key = getattr(record, "key", None)
    if isinstance(key, bytes | bytearray):
        return bytes(key).split(b":", 1)[0]
    return None if key is None else str(key).split(":", 1)[0]


def bound_record(record: Any) -> Any:
    """``with bound_record(record):`` the ids of one record of a batch are on every line logged inside."""
    return structlog.contextvars.bound_contextvars(**record_log_fields(record))


class LogContextMiddleware(BaseMiddleware):
    """Binds what a consumed message is about (:func:`record_log_fields`; for a batch,
    :func:`batch_log_fields`) to the log context while it is handled, and puts the context back as it
    was afterwards: every line the handler, the dead-letter middleware and FastStream write about the
    message carries its event id, event type, tenant id and alert id.

    Give it to the broker (``KafkaBroker(middlewares=(LogContextMiddleware, ...))``) first, so every
    other middleware's lines have the ids. FastStream writes its error line about a failed message
    after every middleware has exited: it takes its extra fields from FastStream's own log context
    of the message, to which the ids are added as well.
    """

    __slots__ = ("_fields", "_tokens")

    def __init__(self, msg: Any, /, **kwargs: Any) -> None:
        super().__init__(msg, **kwargs)
        self._fields: dict[str, Any] = {}
        self._tokens: Mapping[str, Any] = {}

    async def on_receive(self) -> None:
        raw = self.msg
        if raw is None:
            return
        self._fields = batch_log_fields(raw) if isinstance(raw, (tuple, list)) else record_log_fields(raw)
        self._tokens = structlog.contextvars.bind_contextvars(**self._fields)

    async def consume_scope(self, call_next: Any, msg: Any) -> Any:
        log_context = self.context.get_local("log_context")
        if isinstance(log_context, dict):  # a fresh dict per message (the subscriber's get_log_context)
            log_context.update(self._fields)
        return await call_next(msg)

    async def after_processed(self, exc_type: Any = None, exc_val: Any = None, exc_tb: Any = None) -> bool | None:
        # Put back what was bound before (tokens, not a clear: what the task had bound stays).
        if self._tokens:
            structlog.contextvars.reset_contextvars(**self._tokens)
            self._tokens = {}
        return False


# --- what a record is about: HTTP ---------------------------------------------------------------------------

REQUEST_ID_HEADER = "x-request-id"
_REQUEST_ID_HEADER = REQUEST_ID_HEADER.encode()
_TENANT_PATH = re.compile(r"^(?:/v\d+)?/tenants/(?P<tenant>[^/]+)(?:/alerts/(?P<alert>[^/]+))?")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# A new request id: 32 hex digits as a UUID's, unique without asking the OS for randomness per request
# (uuid4 was ~2% of a score read, #15): this process's random half, then its count of requests.
_PROCESS_ID = secrets.token_hex(8)
_REQUEST_COUNT = itertools.count()


def _new_process_id() -> None:
    global _PROCESS_ID
    _PROCESS_ID = secrets.token_hex(8)


os.register_at_fork(after_in_child=_new_process_id)  # a forked worker counts under an id of its own


def new_request_id() -> str:
    return f"{_PROCESS_ID}{next(_REQUEST_COUNT):016x}"



def request_log_fields(scope: Mapping[str, Any]) -> dict[str, str]:
    """What an HTTP request is about: the caller's ``X-Request-ID`` when it is a plain token, else a
    new one; the tenant (and alert) of a ``/v1/tenants/{tenant_id}[/alerts/{alert_id}]/...`` path."""
    given = next((_text(value) for key, value in scope.get("headers") or () if key.lower() == _REQUEST_ID_HEADER),
                 "")
    fields = {"request_id": given if _REQUEST_ID.match(given) else new_request_id()}
    if match := _TENANT_PATH.match(scope.get("path") or ""):
        tenant_id, alert_id = match.group("tenant"), match.group("alert")
        # Only a valid tenant id: an invalid one is refused with a 4xx and must not forge log fields.
        if len(tenant_id) <= TENANT_ID_MAX_LENGTH and _TENANT_ID.match(tenant_id):
            fields["tenant_id"] = tenant_id
            if alert_id and _loggable(alert_id):
                fields["alert_id"] = alert_id
    return fields


class HttpLogContextMiddleware:
    """A pure ASGI middleware: binds :func:`request_log_fields` to the log context for the request
    and answers with its ``X-Request-ID`` (what a caller quotes to find the request's lines).

    Added last to the app (``app.add_middleware(HttpLogContextMiddleware)``), it is the outermost of
    the app's own middleware, so the request guard's and the handlers' lines all carry the ids.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        fields = request_log_fields(scope)
        request_id = fields["request_id"].encode()

        async def send_with_request_id(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() != _REQUEST_ID_HEADER]
                message = {**message, "headers": [*headers, (_REQUEST_ID_HEADER, request_id)]}
            await send(message)

        tokens = structlog.contextvars.bind_contextvars(**fields)
        # Put back only on success: after an error the server logs its traceback once the app has
        # raised, still in the request's own task (uvicorn runs each request in one, and its context
        # goes with it), and that line should name the request too.
        await self.app(scope, receive, send_with_request_id)
        structlog.contextvars.reset_contextvars(**tokens)


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value.decode(errors="replace") if isinstance(value, (bytes, bytearray)) else str(value)


def _loggable(value: str) -> bool:
    return 0 < len(value) <= _MAX_FIELD_LENGTH and value.isprintable()

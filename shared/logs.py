"""Logging set-up for every process: one line per record, with the service's name, and no log storms.

While a dependency is away its clients report every failed attempt: with the broker down, aiokafka
alone wrote hundreds of ERROR lines a second per process ("Unable connect to node with id 1",
"Unable to update metadata from [1]", ...), enough to fill a disk in an hour-long outage and to
bury the one line that matters. :class:`RepeatLimiter` lets the first warning or error of a kind
through, then at most one per interval, and says how many it held back.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

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
        template = record.msg if isinstance(record.msg, str) else type(record.msg).__name__
        kind = (record.name, record.levelno, template + _failure_site(record))
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
            # Appended to the rendered text (not to the template, which would be formatted again).
            record.msg = (f"{record.getMessage()} ({window.suppressed} similar suppressed in the last "
                          f"{now - window.started:.0f} s)")
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


def _failure_site(record: logging.LogRecord) -> str:
    """For a record with an exception: its type and the innermost frame that raised it. Generic
    templates ("Exception in ASGI application", "handler failed") then keep two different failures
    apart instead of holding back the second as a repeat of the first."""
    if not record.exc_info or record.exc_info[1] is None:
        return ""
    exc = record.exc_info[1]
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    where = f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}" if tb is not None else ""
    return f"\x1f{type(exc).__qualname__}\x1f{where}"


def configure_logging(service: str, level: str = "INFO",
                      repeat_interval_seconds: float = REPEAT_INTERVAL_SECONDS) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        logging.Formatter(f"%(asctime)s %(levelname)-7s {service} %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S%z")
    )
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

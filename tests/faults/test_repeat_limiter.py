"""The log filter that keeps an outage from flooding the logs (``shared.logs.RepeatLimiter``): the
first record of a kind goes through, then at most one per interval, telling how many it held back.
Pure: a fake clock, records made by hand, no handler, no I/O."""

from __future__ import annotations

import logging
import sys

from shared.logs import RepeatLimiter, configure_logging


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def record(message: str, *args, name: str = "aiokafka.conn", level: int = logging.ERROR) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, message, args, None)


def passed(limiter: RepeatLimiter, *records: logging.LogRecord) -> list[str]:
    return [r.getMessage() for r in records if limiter.filter(r)]


def test_the_first_record_of_a_kind_passes_and_the_repeats_within_the_interval_do_not():
    clock = FakeClock()
    limiter = RepeatLimiter(every_seconds=10, clock=clock)
    storm = [record("Unable connect to node with id %s: %s", 1, f"attempt {i}") for i in range(1000)]
    assert passed(limiter, *storm) == ["Unable connect to node with id 1: attempt 0"]


def test_after_the_interval_one_more_passes_with_the_count_it_held_back():
    clock = FakeClock()
    limiter = RepeatLimiter(every_seconds=10, clock=clock)
    assert passed(limiter, record("Unable to update metadata from [%s]", 1))
    clock.now += 4
    assert not passed(limiter, *[record("Unable to update metadata from [%s]", 1) for _ in range(1233)])
    clock.now += 6.5
    assert passed(limiter, record("Unable to update metadata from [%s]", 1)) == [
        "Unable to update metadata from [1] (1233 similar suppressed in the last 10 s)"
    ]
    # A new window starts there: the next repeat within 10 s is held back again.
    clock.now += 1
    assert not passed(limiter, record("Unable to update metadata from [%s]", 1))


def test_a_kind_is_its_logger_and_message_template_not_its_arguments():
    clock = FakeClock()
    limiter = RepeatLimiter(every_seconds=10, clock=clock)
    out = passed(
        limiter,
        record("Unable connect to node with id %s", 1),
        record("Unable connect to node with id %s", 2),  # same template: the same kind
        record("Failed fetch messages from %s: %s", 1, "x"),  # another template
        record("Unable connect to node with id %s", 1, name="aiokafka.cluster"),  # another logger
        record("Group Coordinator Request failed: %s", "x", name="aiokafka.consumer.group_coordinator"),
    )
    assert out == [
        "Unable connect to node with id 1",
        "Failed fetch messages from 1: x",
        "Unable connect to node with id 1",
        "Group Coordinator Request failed: x",
    ]


def test_info_and_debug_records_are_never_held_back():
    clock = FakeClock()
    limiter = RepeatLimiter(every_seconds=10, clock=clock)
    infos = [record("published %s status for %s", "x", f"tenant-{i}", name="svc", level=logging.INFO)
             for i in range(50)]
    assert len(passed(limiter, *infos)) == 50
    debugs = [record("Received", name="faststream.x", level=logging.DEBUG) for _ in range(5)]
    assert len(passed(limiter, *debugs)) == 5


def test_warnings_and_errors_of_any_logger_are_limited():
    clock = FakeClock()
    limiter = RepeatLimiter(every_seconds=5, clock=clock)
    warnings = [record("database unavailable: %s", "refused", name="services.ingest.routes_alerts",
                       level=logging.WARNING) for _ in range(20)]
    assert len(passed(limiter, *warnings)) == 1
    criticals = [record("lost: %s", "x", name="faststream.scoring", level=logging.CRITICAL) for _ in range(20)]
    assert len(passed(limiter, *criticals)) == 1


def test_a_record_whose_message_is_not_a_string_is_limited_by_its_type():
    clock = FakeClock()
    limiter = RepeatLimiter(every_seconds=10, clock=clock)
    assert passed(limiter, record(ValueError("boom")), record(ValueError("bang"))) == ["boom"]
    clock.now += 10
    # The count is appended to the rendered text, not to a template that would be formatted again.
    assert passed(limiter, record(ValueError("100% gone"))) == ["100% gone (1 similar suppressed in the last 10 s)"]


def test_a_suppressed_exception_record_keeps_no_traceback_and_a_passing_one_keeps_it():
    clock = FakeClock()
    limiter = RepeatLimiter(every_seconds=10, clock=clock)
    try:
        raise ConnectionRefusedError("refused")
    except ConnectionRefusedError:
        import sys

        info = sys.exc_info()
    first = logging.LogRecord("shared.kafka", logging.ERROR, __file__, 1, "handler failed", (), info)
    second = logging.LogRecord("shared.kafka", logging.ERROR, __file__, 1, "handler failed", (), info)
    assert limiter.filter(first) and first.exc_info is info
    assert not limiter.filter(second)


def test_the_table_of_kinds_stays_bounded_when_every_message_is_different():
    clock = FakeClock()
    limiter = RepeatLimiter(every_seconds=10, clock=clock, max_kinds=100)
    for i in range(1000):
        limiter.filter(record(f"pre-formatted message {i}"))  # an f-string: every record its own kind
        clock.now += 0.001
    assert len(limiter) <= 100
    # What is new still passes: a full table forgets, it never silences.
    assert passed(limiter, record("something else entirely")) == ["something else entirely"]


def test_configure_logging_installs_the_limiter_on_the_process_handler():
    with saved_logging():
        configure_logging("svc", "INFO")
        (handler,) = logging.getLogger().handlers
        assert any(isinstance(f, RepeatLimiter) for f in handler.filters)


def test_faststream_records_go_through_the_same_handler_whichever_is_imported_first():
    """FastStream gives its "faststream" logger a handler of its own and stops propagation when it
    is imported: its records (the brokers' loggers are its children) bypassed the process's format
    and the limiter."""
    from faststream._internal.logger.logging import get_logger

    with saved_logging():
        configure_logging("svc", "INFO")
        (handler,) = logging.getLogger().handlers
        assert logging.getLogger("faststream").handlers == [handler]
        # The services configure logging first and import FastStream afterwards: its import-time set-up
        # (this call) must then keep the handler it finds rather than add its own.
        get_logger(name="faststream", log_level=logging.INFO, stream=sys.stderr, fmt="%(message)s")
        assert logging.getLogger("faststream").handlers == [handler]
        storm = [record("Consumer %s assigned to partitions", "c-1", name="faststream.notifier", level=logging.INFO)
                 for _ in range(50)]
        emitted = []
        handler.emit = lambda r: emitted.append(r.getMessage())  # no I/O: what would be written
        for r in storm:
            logging.getLogger("faststream.notifier").handle(r)
        assert emitted == ["Consumer c-1 assigned to partitions"] * 50  # INFO: never limited, but ours
        errors = [record("Failed to consume: %s", i, name="faststream.notifier") for i in range(50)]
        for r in errors:
            logging.getLogger("faststream.notifier").handle(r)
        assert emitted[50:] == ["Failed to consume: 0"]


class saved_logging:  # noqa: N801 (used as a context manager)
    """Puts back the loggers configure_logging touches, so the test leaves the process as it was."""

    names = ("", "faststream", "aiokafka", "uvicorn.access")

    def __enter__(self) -> None:
        self.saved = {n: (logging.getLogger(n).handlers[:], logging.getLogger(n).level,
                          logging.getLogger(n).propagate) for n in self.names}

    def __exit__(self, *exc) -> None:
        for name, (handlers, level, propagate) in self.saved.items():
            logger = logging.getLogger(name)
            logger.handlers[:] = handlers
            logger.setLevel(level)
            logger.propagate = propagate


def _failure(exc_type: type[Exception]) -> logging.LogRecord:
    # Raised from two different places, as two bugs behind one generic template would be.
    def first() -> None:
        raise exc_type("boom")

    def second() -> None:
        raise exc_type("boom")

    raiser = first if exc_type is KeyError else second
    try:
        raiser()
    except Exception:
        info = sys.exc_info()
    return logging.LogRecord("uvicorn.error", logging.ERROR, __file__, 1, "Exception in ASGI application", (), info)


def test_two_different_failures_behind_one_template_both_pass_and_a_repeat_does_not():
    limiter = RepeatLimiter(every_seconds=10, clock=FakeClock())
    assert limiter.filter(_failure(KeyError))
    assert limiter.filter(_failure(ValueError))  # another bug: its traceback must not be held back
    assert not limiter.filter(_failure(KeyError))  # the same one again is a repeat


def _raised(exc: BaseException):
    try:
        raise exc
    except BaseException:
        return sys.exc_info()


def test_an_exception_is_told_once_whoever_logs_it_again():
    """shared.kafka logs a handler's failure, then FastStream logs the same exception in its own words
    ("Type: text", a kind per text): one failure, one line."""
    limiter = RepeatLimiter(every_seconds=10, clock=FakeClock())
    failure = _raised(ConnectionRefusedError("[Errno 111] Connection refused"))
    ours = logging.LogRecord("shared.kafka", logging.ERROR, __file__, 1, "handler failed", (), failure)
    theirs = logging.LogRecord("faststream.notifier", logging.ERROR, __file__, 1,
                               "ConnectionRefusedError: [Errno 111] Connection refused", (), failure)
    assert limiter.filter(ours)
    assert not limiter.filter(theirs)
    # Another exception, though of the same type and text, is another failure: told.
    again = _raised(ConnectionRefusedError("[Errno 111] Connection refused"))
    assert limiter.filter(logging.LogRecord("faststream.notifier", logging.ERROR, __file__, 1,
                                            "ConnectionRefusedError: [Errno 111] Connection refused", (), again))


def test_an_exception_whose_first_record_was_held_back_is_not_told_by_a_second_logger_either():
    limiter = RepeatLimiter(every_seconds=10, clock=FakeClock())
    assert limiter.filter(logging.LogRecord("shared.kafka", logging.ERROR, __file__, 1, "handler failed", (),
                                            _raised(OSError("first"))))
    storm = _raised(OSError("second"))
    assert not limiter.filter(logging.LogRecord("shared.kafka", logging.ERROR, __file__, 1, "handler failed", (),
                                                storm))  # a repeat of the kind: held back
    assert not limiter.filter(logging.LogRecord("faststream.x", logging.ERROR, __file__, 1, "OSError: second", (),
                                                storm))


def test_an_info_record_with_an_exception_passes_and_does_not_count_as_telling_it():
    limiter = RepeatLimiter(every_seconds=10, clock=FakeClock())
    failure = _raised(TimeoutError("slow"))
    assert limiter.filter(logging.LogRecord("svc", logging.INFO, __file__, 1, "retrying", (), failure))
    assert limiter.filter(logging.LogRecord("svc", logging.ERROR, __file__, 1, "gave up", (), failure))


def test_one_outage_behind_one_template_is_one_kind_whatever_exception_and_frame_tell_it():
    """A database going away is told as refused, closed in the middle of an operation, a transaction's
    exit on a closed connection..., each raised at its own frame: not a new failure each."""
    import asyncpg

    def failing(exc: BaseException, where: int):
        def inner():
            raise exc
        def other():
            raise exc
        try:
            (inner, other)[where]()
        except BaseException:
            return sys.exc_info()

    limiter = RepeatLimiter(every_seconds=10, clock=FakeClock())
    outage = [failing(ConnectionRefusedError(111, "refused"), 0),
              failing(asyncpg.exceptions.ConnectionDoesNotExistError("closed in the middle"), 1),
              failing(asyncpg.InterfaceError("cannot call Transaction.__aexit__()"), 0),
              failing(TimeoutError(), 1)]
    lines = [limiter.filter(logging.LogRecord("svc.worker", logging.ERROR, __file__, 1, "loop failed", (), info))
             for info in outage]
    assert lines == [True, False, False, False]
    # A bug behind the same template is still its own kind.
    assert limiter.filter(logging.LogRecord("svc.worker", logging.ERROR, __file__, 1, "loop failed", (),
                                            failing(KeyError("x"), 0)))


def test_an_exception_told_as_a_warning_is_told_again_by_an_error_that_gives_up_on_it():
    limiter = RepeatLimiter(every_seconds=10, clock=FakeClock())
    failure = _raised(KeyError("state"))
    assert limiter.filter(logging.LogRecord("svc", logging.WARNING, __file__, 1, "retrying", (), failure))
    assert limiter.filter(logging.LogRecord("svc.main", logging.ERROR, __file__, 1, "gave up", (), failure))
    assert not limiter.filter(logging.LogRecord("faststream.x", logging.ERROR, __file__, 1, "KeyError: 'state'", (),
                                                failure))
    assert not limiter.filter(logging.LogRecord("svc", logging.WARNING, __file__, 1, "again", (), failure))

"""How long each consumer's fetch may wait for records to gather (#15): briefly where someone waits for the
result, longer for the rest; a burst ends the wait at once (``KAFKA_FETCH_MIN_BYTES``). What each
service's router asks of its consumers, read from the subscribers it builds (no broker)."""

from __future__ import annotations

import pytest

from services.ingest.config import Settings as IngestSettings
from services.ingest.handlers import build_router as ingest_router
from services.notifier.config import Settings as NotifierSettings
from services.notifier.handlers import build_router as notifier_router
from services.response_time.config import Settings as ResponseTimeSettings
from services.response_time.handlers import build_router as response_time_router
from services.scoring.config import Settings as ScoringSettings
from services.scoring.handlers import build_router as scoring_router
from shared.events import Topic
from shared.kafka import BACKGROUND_BATCH_IDLE_MS, WAITED_FOR_BATCH_IDLE_MS, subscriber_options
from shared.settings import CommonSettings, load_settings

LIVE, BACKGROUND, MIN_BYTES = 60, 500, 65536


@pytest.fixture(autouse=True)
def development(monkeypatch):
    monkeypatch.setenv("ENVIRONMENT", "development")
    for name in ("KAFKA_FETCH_MAX_WAIT_MS", "KAFKA_BACKGROUND_FETCH_MAX_WAIT_MS", "KAFKA_FETCH_MIN_BYTES"):
        monkeypatch.delenv(name, raising=False)


def fetches(router, prefix: str) -> dict[str, tuple[int, int]]:
    """Each subscriber's topic (without prefix): the longest its fetch may wait, and the bytes that end
    the wait. (The consumer's arguments as FastStream keeps them for the AIOKafkaConsumer it makes.)"""
    found: dict[str, tuple[int, int]] = {}
    for subscriber in router.subscribers:
        for topic in subscriber.topics:
            found[str(getattr(topic, "name", topic)).removeprefix(prefix)] = (
                subscriber._connection_args["fetch_max_wait_ms"], subscriber._connection_args["fetch_min_bytes"])
    return found


def waits(router, prefix: str) -> dict[str, int]:
    """Each subscriber's topic and the longest its fetch may wait, records gathering (not a rare topic's)."""
    found = fetches(router, prefix)
    assert {min_bytes for _wait, min_bytes in found.values()} <= {MIN_BYTES, 1}
    return {topic: wait for topic, (wait, min_bytes) in found.items() if min_bytes == MIN_BYTES}


def rare(router, prefix: str) -> set[str]:
    """The topics whose fetch the broker answers at the first record, holding an empty one the background wait."""
    found = fetches(router, prefix)
    assert all(wait == BACKGROUND for wait, min_bytes in found.values() if min_bytes == 1)
    return {topic for topic, (_wait, min_bytes) in found.items() if min_bytes == 1}


def test_the_defaults_and_a_background_subscriber():
    settings = load_settings(CommonSettings)
    assert subscriber_options(settings)["fetch_max_wait_ms"] == LIVE
    assert subscriber_options(settings, background=True)["fetch_max_wait_ms"] == BACKGROUND
    assert subscriber_options(settings)["fetch_min_bytes"] == MIN_BYTES


def test_a_rare_topic_is_fetched_at_its_first_record_and_an_empty_fetch_held_long():
    settings = load_settings(CommonSettings)
    for background in (False, True):
        options = subscriber_options(settings, background=background, rare=True)
        assert (options["fetch_min_bytes"], options["fetch_max_wait_ms"]) == (1, BACKGROUND)


def test_the_waits_are_settings(monkeypatch):
    monkeypatch.setenv("KAFKA_FETCH_MAX_WAIT_MS", "10")
    monkeypatch.setenv("KAFKA_BACKGROUND_FETCH_MAX_WAIT_MS", "1000")
    monkeypatch.setenv("KAFKA_FETCH_MIN_BYTES", "1")
    settings = load_settings(CommonSettings)
    assert (subscriber_options(settings)["fetch_max_wait_ms"],
            subscriber_options(settings, background=True)["fetch_max_wait_ms"],
            subscriber_options(settings)["fetch_min_bytes"]) == (10, 1000, 1)


def test_a_wait_of_zero_is_refused_at_start_up(monkeypatch, capsys):
    # (With nothing to wait for, the broker would answer at once and the consumer ask again: a busy loop.)
    monkeypatch.setenv("KAFKA_FETCH_MAX_WAIT_MS", "0")
    with pytest.raises(SystemExit):
        load_settings(CommonSettings)
    assert "KAFKA_FETCH_MAX_WAIT_MS" in capsys.readouterr().err


def test_the_read_api_waits_briefly_only_for_what_someone_waits_for():
    settings = load_settings(ScoringSettings)
    router = scoring_router(settings)
    found = waits(router, settings.kafka_topic_prefix)
    live = {Topic.alerts, Topic.alert_response_times}
    assert found == {topic.value: LIVE if topic in live else BACKGROUND for topic in map(Topic, found)}
    assert {Topic.deliveries.value, Topic.alerts.value, Topic.customer_mfa.value} <= found.keys()
    # The score and an assignment are waited for too, but come a few a day: each fetched as it comes.
    assert rare(router, settings.kafka_topic_prefix) == {
        Topic.requirement_status.value, Topic.alert_triage.value, Topic.tenants.value}


def test_the_path_to_a_response_time_is_live_and_the_notifier_in_the_background():
    settings = load_settings(ResponseTimeSettings)
    router = response_time_router(settings)
    assert waits(router, settings.kafka_topic_prefix) == {Topic.alerts.value: LIVE}
    assert rare(router, settings.kafka_topic_prefix) == {Topic.tenants.value}
    settings = load_settings(NotifierSettings)
    router = notifier_router(settings, lambda: None)
    assert waits(router, settings.kafka_topic_prefix) == {Topic.alerts.value: BACKGROUND}
    assert Topic.security_contacts.value in rare(router, settings.kafka_topic_prefix)
    # The write API checks a redelivery against its copy of the deliveries: never behind the read API's.
    settings = load_settings(IngestSettings)
    assert waits(ingest_router(settings), settings.kafka_topic_prefix) == {Topic.deliveries.value: LIVE}


def idle_waits(router, prefix: str) -> dict[str, int]:
    """Each batch subscriber's topic and how long it sleeps once it found nothing (FastStream's
    ``batch_timeout_ms``: it waits that long for records, then sleeps as long again)."""
    return {str(getattr(topic, "name", topic)).removeprefix(prefix): subscriber.batch_timeout_ms
            for subscriber in router.subscribers if hasattr(subscriber, "batch_timeout_ms")
            for topic in subscriber.topics}


def test_a_batch_consumer_someone_waits_for_looks_again_soon_after_finding_nothing():
    # At FastStream's 200 ms an alert reaching an idle consumer waited up to that long in each such hop.
    routers = {ResponseTimeSettings: response_time_router, ScoringSettings: scoring_router,
               IngestSettings: ingest_router,
               NotifierSettings: lambda settings: notifier_router(settings, lambda: None)}
    found = {}
    for settings_class, build in routers.items():
        settings = load_settings(settings_class)
        found[settings_class] = idle_waits(build(settings), settings.kafka_topic_prefix)
    assert found[ResponseTimeSettings] == {Topic.alerts.value: WAITED_FOR_BATCH_IDLE_MS}
    assert found[IngestSettings] == {Topic.deliveries.value: WAITED_FOR_BATCH_IDLE_MS}
    assert found[NotifierSettings] == {Topic.alerts.value: BACKGROUND_BATCH_IDLE_MS}
    assert found[ScoringSettings] == {
        Topic.alert_response_times.value: WAITED_FOR_BATCH_IDLE_MS,
        Topic.requirement_status.value: WAITED_FOR_BATCH_IDLE_MS,
        Topic.deliveries.value: BACKGROUND_BATCH_IDLE_MS, Topic.alerts.value: WAITED_FOR_BATCH_IDLE_MS}

"""What happens with no event: a preview requirement's date passing, Redis losing everything, a bad
catalogue, several scoring instances at once (SPEC §4)."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta

import pytest
from redis.asyncio import Redis

from services.scoring import cache as cache_keys
from shared.wire import utcnow
from tests.services.scoring.conftest import (
    FLUSHABLE_REDIS_DB,
    event_applied,
    isolated_env,
    read_api,
    score_of,
    status_event,
    wait_for_score,
)
from tests.support.kafka import read_topic
from tests.support.polling import eventually

T0 = datetime(2026, 11, 27, 6, 0, tzinfo=UTC)


def flushable_redis_url(test_env) -> str:
    base, _, _ = test_env["REDIS_URL"].rpartition("/")
    return f"{base}/{FLUSHABLE_REDIS_DB}"


async def test_a_preview_requirement_becomes_active_on_its_date_with_no_event(
    make_service, send_status, tenant_id, tmp_path, kafka_bootstrap, topic_prefix, own_database, redis_client
):
    # 40 s: the process must start and score the tenant before the date, on a loaded CI machine too.
    effective = utcnow().replace(microsecond=0) + timedelta(seconds=40)
    catalogue = tmp_path / "catalogue.yaml"
    catalogue.write_text(f"""
requirements:
  - {{requirementType: mfaEnforcedForAdmins, kind: mandatory, maxScore: 20}}
  - {{requirementType: securityContactProvided, kind: mandatory, maxScore: 20}}
  - {{requirementType: allUsersMfaRegistered, kind: recommended, maxScore: 20, state: preview,
      effectiveDateTime: "{effective.isoformat()}"}}
""")
    process = make_service(
        "scoring", **isolated_env(CATALOGUE_PATH=str(catalogue), DATABASE_URL=own_database)
    )
    await asyncio.to_thread(process.start)
    try:
        await send_status(status_event(tenant_id, "mfaEnforcedForAdmins", "compliant", T0))
        await send_status(status_event(tenant_id, "allUsersMfaRegistered", "compliant", T0))
        before = await wait_for_score(process, tenant_id, 50.0, projectedScore=66.67)  # 20 of 40; 40 of 60
        assert utcnow() < effective, "the machine was too slow to see the requirement in preview"
        requirements = (await read_api(process, tenant_id, "/requirements")).json()["value"]
        preview = next(r for r in requirements if r["id"] == "allUsersMfaRegistered")
        assert preview["state"] == "preview" and preview[
            "effectiveDateTime"
        ] == effective.isoformat().replace("+00:00", "Z")

        # Nothing is sent from here on: the date alone must change the score, within 30 s of it.
        await asyncio.sleep(max(0.0, (effective - utcnow()).total_seconds()))
        after = await wait_for_score(process, tenant_id, 66.67, projectedScore=66.67)
        assert utcnow() >= effective and after["updatedDateTime"] >= before["updatedDateTime"]
        requirements = (await read_api(process, tenant_id, "/requirements")).json()["value"]
        assert next(r for r in requirements if r["id"] == "allUsersMfaRegistered")["state"] == "active"
        history = await eventually(
            lambda: read_api(process, tenant_id, "/history"), lambda r: r.json()["value"][0]["score"] == 66.67,
            within=30,
        )
        latest = history.json()["value"][0]
        assert (latest["compliantRequirementsCount"], latest["totalRequirementsCount"]) == (2, 3)
        changes = await read_topic(
            kafka_bootstrap,
            f"{topic_prefix}score-changes",
            count=1,
            timeout=30,
            predicate=lambda r: r["key"] == tenant_id and r["value"]["currentScore"] == 66.67,
        )
        assert changes[0]["value"]["previousScore"] == 50.0
    finally:
        await asyncio.to_thread(process.stop)
        async for key in redis_client.scan_iter(match=f"{process.env['REDIS_KEY_PREFIX']}*", count=500):
            await redis_client.delete(key)


async def test_after_redis_loses_everything_the_api_answers_503_then_the_rebuilt_score(
    make_service, send_status, tenant_id, test_env
):
    # The read notices the loss: no periodic check during this test.
    process = make_service(
        "scoring", **isolated_env(REDIS_URL=flushable_redis_url(test_env), CACHE_CHECK_SECONDS="3600")
    )
    await asyncio.to_thread(process.start)
    redis = Redis.from_url(flushable_redis_url(test_env), decode_responses=True)
    try:
        await send_status(status_event(tenant_id, "mfaEnforcedForAdmins", "compliant", T0))
        await send_status(status_event(tenant_id, "securityContactProvided", "compliant", T0))
        await wait_for_score(process, tenant_id, 62.5)  # 20 + 20 + 10 (no responded alert) of 80
        # The first read after each loss is refused, whichever endpoint it is; it starts the rebuild.
        for path in ("", "/requirements"):
            await redis.flushdb()  # only this test's own database
            unavailable = await read_api(process, tenant_id, path)
            assert unavailable.status_code == 503
            assert unavailable.headers["retry-after"] == "1"
            assert unavailable.headers["content-type"].startswith("application/problem+json")
            await wait_for_score(process, tenant_id, 62.5)

        rebuilt = await wait_for_score(process, tenant_id, 62.5)
        assert rebuilt["lastRefreshDateTime"] is not None
        requirements = (await read_api(process, tenant_id, "/requirements")).json()["value"]
        assert {r["id"] for r in requirements if r["complianceStatus"] == "compliant"} == {
            "mfaEnforcedForAdmins",
            "securityAlertsPromptlyResolved",
            "securityContactProvided",
        }
        # History is durable (PostgreSQL): the loss of Redis cost none of it.
        assert [h["score"] for h in (await read_api(process, tenant_id, "/history")).json()["value"]] == [
            62.5,
            37.5,
        ]
    finally:
        await asyncio.to_thread(process.stop)
        async for key in redis.scan_iter(match=f"{process.env['REDIS_KEY_PREFIX']}*", count=500):
            await redis.delete(key)
        await redis.aclose()


async def test_a_periodic_check_rebuilds_the_cache_with_no_read(
    make_service, send_status, tenant_id, test_env
):
    env = isolated_env(REDIS_URL=flushable_redis_url(test_env), CACHE_CHECK_SECONDS="0.2")
    process = make_service("scoring", **env)
    await asyncio.to_thread(process.start)
    redis = Redis.from_url(flushable_redis_url(test_env), decode_responses=True)
    try:
        # Noncompliant: a score of its own (with no status this requirement is compliant, 12.5).
        await send_status(status_event(tenant_id, "securityAlertsPromptlyResolved", "noncompliant", T0))
        await wait_for_score(process, tenant_id, 0.0)
        await redis.flushdb()
        tenant_hash = cache_keys.tenant_key(env["REDIS_KEY_PREFIX"], tenant_id)
        await eventually(
            lambda: redis.exists(cache_keys.ready_key(env["REDIS_KEY_PREFIX"]), tenant_hash), lambda n: n == 2,
            within=30,
        )
        assert (await score_of(process, tenant_id))["currentScore"] == 0.0
    finally:
        await asyncio.to_thread(process.stop)
        async for key in redis.scan_iter(match=f"{process.env['REDIS_KEY_PREFIX']}*", count=500):
            await redis.delete(key)
        await redis.aclose()


async def test_a_bad_catalogue_stops_the_service_with_one_line(make_service, tmp_path):
    catalogue = tmp_path / "catalogue.yaml"
    catalogue.write_text("requirements:\n  - {requirementType: a, kind: mandatory, maxScore: 25}\n")
    process = make_service("scoring", **isolated_env(CATALOGUE_PATH=str(catalogue)))
    with pytest.raises(RuntimeError, match="exited with 2") as refused:
        await asyncio.to_thread(process.start)
    assert "requirements[0](a).maxScore: Input should be less than or equal to 20" in str(refused.value)


async def test_several_instances_agree_on_the_newest_status(
    scoring, make_service, send_status, tenant_id, db_pool
):
    # A second instance in another consumer group, sharing the first one's Redis keys and the database:
    # both apply every event, concurrently.
    twin = make_service("scoring", **isolated_env(REDIS_KEY_PREFIX=scoring.env["REDIS_KEY_PREFIX"]))
    await asyncio.to_thread(twin.start)
    try:
        observations = [
            (T0 + timedelta(minutes=i), "compliant" if i % 2 else "noncompliant") for i in range(12)
        ]
        newest_time, newest_status = max(observations)
        random.Random(7).shuffle(observations)
        sent = await asyncio.gather(
            *(
                send_status(status_event(tenant_id, "mfaEnforcedForAdmins", status, observed))
                for observed, status in observations
            )
        )
        for event in sent:
            await event_applied(db_pool, event)
        for process in (scoring, twin):
            requirements = await eventually(
                lambda p=process: read_api(p, tenant_id, "/requirements"),
                lambda r: (
                    next(x for x in r.json()["value"] if x["id"] == "mfaEnforcedForAdmins")[
                        "observedDateTime"
                    ]
                    == newest_time.isoformat().replace("+00:00", "Z")
                ),
                within=30,
            )
            mfa = next(x for x in requirements.json()["value"] if x["id"] == "mfaEnforcedForAdmins")
            assert mfa["complianceStatus"] == newest_status
        history = (await read_api(scoring, tenant_id, "/history")).json()["value"]
        scores = [h["score"] for h in reversed(history)]
        assert all(a != b for a, b in zip(scores, scores[1:], strict=False))  # every entry is a change
        assert scores[-1] == (37.5 if newest_status == "compliant" else 12.5)
    finally:
        await asyncio.to_thread(twin.stop)


async def test_after_a_redis_restart_that_kept_the_marker_but_lost_the_last_writes_the_cache_is_rebuilt(
    make_service, send_status, tenant_id, test_env
):
    # Redis restarted (a new run_id) from an AOF missing its last second: the ready marker survived,
    # the tenant's newest status did not. The marker names the old run, so it no longer counts.
    env = isolated_env(REDIS_URL=flushable_redis_url(test_env), CACHE_CHECK_SECONDS="3600")
    process = make_service("scoring", **env)
    await asyncio.to_thread(process.start)
    redis = Redis.from_url(flushable_redis_url(test_env), decode_responses=True)
    try:
        await send_status(status_event(tenant_id, "mfaEnforcedForAdmins", "compliant", T0))
        await send_status(status_event(tenant_id, "securityContactProvided", "compliant", T0))
        await wait_for_score(process, tenant_id, 62.5)
        ready_key = cache_keys.ready_key(env["REDIS_KEY_PREFIX"])
        assert await redis.get(ready_key) == (await redis.info("server"))["run_id"]

        await redis.set(ready_key, "0" * 40)  # the marker as the previous server run left it
        await redis.hdel(cache_keys.tenant_key(env["REDIS_KEY_PREFIX"], tenant_id), "s:securityContactProvided")  # lost
        unavailable = await read_api(process, tenant_id, "")
        assert unavailable.status_code == 503  # not the stale 37.5
        await wait_for_score(process, tenant_id, 62.5)
        assert await redis.get(ready_key) == (await redis.info("server"))["run_id"]
    finally:
        await asyncio.to_thread(process.stop)
        async for key in redis.scan_iter(match=f"{process.env['REDIS_KEY_PREFIX']}*", count=500):
            await redis.delete(key)
        await redis.aclose()

"""Ticketing channels are the write API's: each change is a ``notification-channel-changed`` event on
the compacted ``notification-channels`` topic, written in the change's own transaction (with its audit
entry) with the secrets sealed, and a channel no event told of yet (an upgraded deployment's) is told
once at start-up. Real PostgreSQL and Kafka, the write API in-process.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import asyncpg
import pytest
from cryptography.fernet import Fernet

from services.ingest import channels_store
from shared.db import COMPONENTS, apply_migrations
from shared.events import Topic
from shared.sealed import SealBroken, unseal
from shared.settings import CommonSettings
from tests.conftest import AUTH
from tests.services.ingest.support import running_ingest, topic_records
from tests.support.databases import with_database

SECRET = "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
NEW_SECRET = "whsec_ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA="


def deployment_keys() -> list[str]:
    return CommonSettings().sealing_key_list  # the test run's SEALING_KEYS (the development key)


async def channel_events(test_env, tenant_id: str, name: str | None = None, count: int | None = None) -> list[dict]:
    prefix = f"{tenant_id}:{name}" if name else f"{tenant_id}:"
    return [r for r in await topic_records(test_env, Topic.notification_channels, prefix, count=count)
            if name is None or r["key"] == prefix]


async def waiting_rows(db_pool, tenant_id: str) -> int:
    return await db_pool.fetchval(
        "SELECT count(*) FROM ingest.outbox WHERE convert_from(key, 'UTF8') LIKE $1 || ':%'", tenant_id)


async def test_each_change_is_an_event_whose_secrets_open_only_with_the_deployment_key(test_env, tenant_id):
    url = f"/v1/tenants/{tenant_id}/channels/jira"
    channel = {"url": "https://tickets.example/hook", "secret": SECRET, "routes": [{"severities": ["high"]}]}
    async with running_ingest() as client:
        assert (await client.put(url, json=channel, headers=AUTH)).status_code == 201
        assert (await client.put(url, json={**channel, "secret": NEW_SECRET}, headers=AUTH)).status_code == 200
        moved = {"url": "https://tickets.example/moved", "escalation": True}
        assert (await client.put(url, json=moved, headers=AUTH)).status_code == 200  # the secret kept
        assert (await client.delete(url, headers=AUTH)).status_code == 204
        records = await channel_events(test_env, tenant_id, "jira", count=4)

    assert [r["headers"]["eventType"] for r in records] == ["notification-channel-changed"] * 4
    created, rotated, moved_event, deleted = (r["value"] for r in records)
    assert [r["offset"] for r in records] == sorted(r["offset"] for r in records)
    assert {v["name"] for v in (created, rotated, moved_event, deleted)} == {"jira"}
    assert {v["tenantId"] for v in (created, rotated, moved_event, deleted)} == {tenant_id}
    keys = deployment_keys()

    assert created["channel"]["url"] == "https://tickets.example/hook"
    assert created["channel"]["routes"] == [
        {"severities": ["high"], "alertTypes": [], "customerTenantIds": [], "includeTest": False}]
    assert created["channel"]["escalation"] is False
    assert unseal(created["channel"]["secret"], keys) == SECRET
    assert created["channel"]["previousSecret"] is None

    assert unseal(rotated["channel"]["secret"], keys) == NEW_SECRET
    assert unseal(rotated["channel"]["previousSecret"], keys) == SECRET
    assert rotated["channel"]["previousSecretUntil"].endswith("Z")

    assert moved_event["channel"]["url"] == "https://tickets.example/moved"
    assert moved_event["channel"]["escalation"] is True and moved_event["channel"]["routes"] == []
    assert unseal(moved_event["channel"]["secret"], keys) == NEW_SECRET
    assert unseal(moved_event["channel"]["previousSecret"], keys) == SECRET

    assert deleted["channel"] is None

    # Never in clear, whole or its base64 part, in any value or header; another key opens nothing.
    text = json.dumps([(r["value"], r["headers"]) for r in records])
    for secret in (SECRET, NEW_SECRET):
        assert secret not in text and secret.removeprefix("whsec_") not in text
    with pytest.raises(SealBroken):
        unseal(created["channel"]["secret"], [Fernet.generate_key().decode()])


async def test_a_teams_channel_has_no_secret_and_its_events_and_audit_entries_say_its_kind(
    test_env, tenant_id, db_pool
):
    url = f"/v1/tenants/{tenant_id}/channels/soc"
    teams = {"kind": "teams", "url": "https://contoso.webhook.office.com/webhookb2/abc", "routes": []}
    async with running_ingest() as client:
        created = await client.put(url, json=teams, headers=AUTH)
        assert created.status_code == 201, created.text
        assert (created.json()["kind"], created.json()["secretConfigured"]) == ("teams", False)
        # Teams verifies no signature: a secret would only pretend to protect something. Refused.
        for refused_body, field in (({**teams, "secret": SECRET}, "secret"), ({**teams, "kind": "fax"}, "kind")):
            refused = await client.put(url, json=refused_body, headers=AUTH)
            assert refused.status_code == 422, refused.text
            assert field in [e["field"] for e in refused.json()["errors"]]
        # Made a webhook, it needs a secret of its own (none to keep); then its rotation starts afresh.
        no_secret = await client.put(url, json={"url": "https://tickets.example/hook"}, headers=AUTH)
        assert no_secret.status_code == 422 and no_secret.json()["errors"][0]["field"] == "secret"
        webhook = await client.put(url, json={"url": "https://tickets.example/hook", "secret": SECRET}, headers=AUTH)
        assert webhook.status_code == 200, webhook.text
        assert (webhook.json()["kind"], webhook.json()["secretConfigured"]) == ("webhook", True)
        assert webhook.json()["previousSecretValidUntil"] is None
        # And a Teams channel again: its secrets are gone, not kept aside.
        again = await client.put(url, json=teams, headers=AUTH)
        assert (again.status_code, again.json()["kind"], again.json()["secretConfigured"]) == (200, "teams", False)
        listed = (await client.get(f"/v1/tenants/{tenant_id}/channels", headers=AUTH)).json()["value"]
        assert [(c["name"], c["kind"]) for c in listed] == [("soc", "teams")]
        records = await channel_events(test_env, tenant_id, "soc", count=3)
        audit = (await client.get(f"/v1/tenants/{tenant_id}/audit", headers=AUTH)).json()["value"]

    row = await db_pool.fetchrow(
        "SELECT kind, secret, previous_secret, previous_secret_until FROM ingest.channels WHERE tenant_id = $1",
        tenant_id)
    assert dict(row) == {"kind": "teams", "secret": None, "previous_secret": None, "previous_secret_until": None}
    first, made_webhook, made_teams = (r["value"]["channel"] for r in records)
    assert (first["kind"], first["url"], first["secret"], first["previousSecret"]) == (
        "teams", teams["url"], None, None)
    assert made_webhook["kind"] == "webhook" and unseal(made_webhook["secret"], deployment_keys()) == SECRET
    assert made_webhook["previousSecret"] is None
    assert (made_teams["kind"], made_teams["secret"], made_teams["previousSecret"]) == ("teams", None, None)
    assert [(e["action"], e["changes"]["kind"], e["changes"]["secretChanged"]) for e in reversed(audit)] == [
        ("channel-created", "teams", False), ("channel-replaced", "webhook", True),
        ("channel-replaced", "teams", True)]


async def test_a_change_that_rolls_back_publishes_nothing(test_env, tenant_id, db_pool, monkeypatch):
    async def audit_fails(*args, **kwargs):
        raise ConnectionError("injected: the audit entry could not be written")

    base = f"/v1/tenants/{tenant_id}/channels"
    kept = {"url": "https://tickets.example/kept", "secret": SECRET}
    async with running_ingest() as client:
        assert (await client.put(f"{base}/kept", json=kept, headers=AUTH)).status_code == 201
        with monkeypatch.context() as patch:
            patch.setattr(channels_store, "record_audit", audit_fails)
            created = await client.put(f"{base}/lost", json={**kept, "url": "https://tickets.example/lost"},
                                       headers=AUTH)
            replaced = await client.put(f"{base}/kept", json={**kept, "secret": NEW_SECRET}, headers=AUTH)
            deleted = await client.delete(f"{base}/kept", headers=AUTH)
        assert [r.status_code for r in (created, replaced, deleted)] == [503, 503, 503], created.text
        assert (await client.get(f"{base}/lost", headers=AUTH)).status_code == 404
        assert (await client.get(f"{base}/kept", headers=AUTH)).json()["url"] == "https://tickets.example/kept"
        assert (await client.put(f"{base}/after", json=kept, headers=AUTH)).status_code == 201
        records = await channel_events(test_env, tenant_id, "after", count=1)
        assert len(records) == 1
        assert await waiting_rows(db_pool, tenant_id) == 0

    everything = await channel_events(test_env, tenant_id)
    assert sorted(r["key"] for r in everything) == [f"{tenant_id}:after", f"{tenant_id}:kept"]
    [kept_event] = [r["value"] for r in everything if r["key"] == f"{tenant_id}:kept"]
    assert unseal(kept_event["channel"]["secret"], deployment_keys()) == SECRET


async def test_channels_no_event_told_of_are_published_once_at_start_up(test_env, tenant_id, db_pool):
    # As an upgrade leaves them: copied from the notifier's table, never on the topic.
    await db_pool.execute(
        """INSERT INTO ingest.channels (tenant_id, name, url, secret, routes, escalation, announced)
           VALUES ($1, 'legacy', 'https://tickets.example/legacy', $2, '[{"severities": ["low"]}]', true, false)""",
        tenant_id, SECRET)
    async with running_ingest():
        [record] = await channel_events(test_env, tenant_id, "legacy", count=1)
    async with running_ingest():
        pass  # a second start tells nothing again
    assert await db_pool.fetchval(
        "SELECT announced FROM ingest.channels WHERE tenant_id = $1 AND name = 'legacy'", tenant_id) is True
    assert len(await channel_events(test_env, tenant_id, "legacy")) == 1
    channel = record["value"]["channel"]
    assert (channel["kind"], channel["url"], channel["escalation"], channel["routes"]) == (
        "webhook", "https://tickets.example/legacy", True, [{"severities": ["low"]}])
    assert unseal(channel["secret"], deployment_keys()) == SECRET


@pytest.fixture
async def bare_database(test_env):
    """An empty database of this test (no migration applied), dropped afterwards."""
    server = test_env["DATABASE_URL"]
    name = f"csp_bare_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(server)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    yield with_database(server, name)
    admin = await asyncpg.connect(server)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


async def test_the_upgrade_copies_the_channels_the_notifier_kept(bare_database):
    # The single-schema layout's table, with a channel in the middle of a secret rotation.
    conn = await asyncpg.connect(bare_database)
    try:
        await conn.execute(
            """CREATE TABLE public.notification_channels (
                   tenant_id text NOT NULL, name text NOT NULL, url text NOT NULL, secret text NOT NULL,
                   routes jsonb NOT NULL DEFAULT '[]'::jsonb, escalation boolean NOT NULL DEFAULT false,
                   created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now(),
                   previous_secret text, previous_secret_until timestamptz, PRIMARY KEY (tenant_id, name));
               INSERT INTO public.notification_channels
                   (tenant_id, name, url, secret, routes, escalation, created_at, previous_secret,
                    previous_secret_until)
               VALUES ('t1', 'jira', 'https://tickets.example/hook', 'whsec_new', '[{"severities": ["high"]}]',
                       true, '2026-01-02T03:04:05Z', 'whsec_old', '2026-12-01T00:00:00Z')""")
        await apply_migrations(bare_database, tuple(c for c in COMPONENTS if c.schema == "ingest"))
        rows = [dict(r) for r in await conn.fetch(
            """SELECT tenant_id, name, kind, url, secret, routes::text, escalation, previous_secret,
                      previous_secret_until, created_at, announced FROM ingest.channels""")]
    finally:
        await conn.close()
    assert rows == [{
        "tenant_id": "t1", "name": "jira", "kind": "webhook", "url": "https://tickets.example/hook",
        "secret": "whsec_new",
        "routes": '[{"severities": ["high"]}]', "escalation": True, "previous_secret": "whsec_old",
        "previous_secret_until": datetime(2026, 12, 1, tzinfo=UTC),
        "created_at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        "announced": False,
    }]


def test_a_channel_event_takes_its_time_from_the_database_clock_not_the_host():
    """The notifier keeps the newest event per channel; with several write-API hosts, a host's own
    clock could make a later change look older, so the time is the database's (clock_timestamp)."""
    from datetime import UTC, datetime

    from cryptography.fernet import Fernet

    from services.ingest.channel_events import channel_changed

    when = datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC)
    keys = [Fernet.generate_key().decode()]
    row = {"url": "https://t.example/h", "secret": "whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQ=", "previous_secret": None,
           "previous_secret_until": None, "routes": [], "escalation": False, "changed_at": when}
    assert channel_changed("t", "n", row, keys).occurred_date_time == when
    assert channel_changed("t", "n", None, keys, when).occurred_date_time == when

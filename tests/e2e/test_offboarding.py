"""Offboarding a tenant (#18), every service a real process: after it, no endpoint of either API returns
anything of the tenant (each answers exactly as for a tenant never heard of), no table or Redis key of any
service holds it, the last record of each of its keys on the compacted topics is a tombstone, and a
rebuild from the topics (new response-time, scoring and notifier processes on an empty database, in
consumer groups of their own) brings nothing of it back, while another tenant's data comes back whole."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from shared.events import Topic
from shared.kafka import TOPIC_SPECS
from tests.conftest import AUTH
from tests.faults.observe import read_all
from tests.support.polling import eventually
from tests.support.processes import ServiceProcess

# Two systems' worth of processes (the running one, then the rebuilt consumers catching up with every topic).
pytestmark = pytest.mark.timeout(600)

SECRET = "whsec_c2VjcmV0LWZvci10ZXN0cy0xMjM0NQ=="
SCHEMAS = ["auth", "ingest", "response_time", "scoring", "notifier"]
COMPACTED = [spec.topic for spec in TOPIC_SPECS
             if spec.config.get("cleanup.policy") == "compact" and spec.topic is not Topic.tenants]
# What each rebuilt service consumes (its handlers' topics).
CONSUMES = {
    "response-time": [Topic.alerts, Topic.tenants],
    "scoring": [Topic.requirement_status, Topic.alert_response_times, Topic.deliveries, Topic.customer_mfa,
                Topic.alert_sync, Topic.alerts, Topic.alert_triage, Topic.tenants],
    "notifier": [Topic.alerts, Topic.security_contacts, Topic.notifications, Topic.notification_channels,
                 Topic.delivery_commands, Topic.requirement_status, Topic.escalation_chains, Topic.tenants],
}


async def a_tenant_with_everything(http: httpx.AsyncClient, write: str, tenant_id: str, receiver) -> None:
    """A contact, a ticketing channel, two alerts: one answered, one assigned and noted."""
    base = f"{write}/v1/tenants/{tenant_id}"
    detected = (datetime.now(UTC) - timedelta(hours=2)).replace(microsecond=0).isoformat()
    answers = [
        await http.put(f"{base}/security-contact", headers=AUTH, json={"name": "SOC", "email": "soc@partner.example",
                                                                     "phone": "+44 20 7946 0000"}),
        await http.put(f"{base}/channels/ticketing", headers=AUTH,
                       json={"url": receiver.url(f"/{tenant_id}/ticketing"), "secret": SECRET}),
        *[await http.post(f"{base}/alerts", headers=AUTH, json={
            "id": alert_id, "displayName": "Impossible travel", "severity": "high", "alertType": "unusualActivity",
            "customerTenantId": "customer-1", "detectedDateTime": detected}) for alert_id in ("off-1", "off-2")],
        await http.patch(f"{base}/alerts/off-1", headers=AUTH, json={"status": "investigating"}),
        await http.put(f"{base}/alerts/off-2/assignee", headers=AUTH, json={"assignee": "bo@partner.example"}),
        await http.post(f"{base}/alerts/off-2/notes", headers=AUTH, json={"text": "Called the customer."}),
    ]
    for answer in answers:
        assert answer.status_code < 300, answer.text


async def shown(http: httpx.AsyncClient, read: str, tenant_id: str) -> dict[str, Any]:
    """What the read API shows of the tenant's alerts and deliveries."""
    alerts = await http.get(f"{read}/v1/tenants/{tenant_id}/alerts", headers=AUTH)
    deliveries = await http.get(f"{read}/v1/tenants/{tenant_id}/deliveries", headers=AUTH)
    return {"alerts": {a["id"]: a for a in alerts.json()["value"]} if alerts.status_code == 200 else {},
            "deliveries": deliveries.json()["value"] if deliveries.status_code == 200 else []}


def fully_shown(seen: dict[str, Any]) -> bool:
    alerts = seen["alerts"]
    return (set(alerts) == {"off-1", "off-2"} and alerts["off-1"]["respondedDateTime"] is not None
            and alerts["off-2"]["assignedTo"] == "bo@partner.example" and alerts["off-2"]["notesCount"] == 1
            and len(seen["deliveries"]) > 0)


async def tenant_gets(http: httpx.AsyncClient, api: str) -> list[str]:
    """Every GET path of ``api`` under a tenant, from its OpenAPI document, but event streams (the read
    API's live changes: an answer that never ends, and holds nothing of the tenant but its id)."""
    document = (await http.get(f"{api}/openapi.json")).json()

    def streams(get: dict) -> bool:
        return any("text/event-stream" in answer.get("content", {}) for answer in get["responses"].values())

    return sorted(path for path, item in document["paths"].items()
                  if path.startswith("/v1/tenants/{tenant_id}") and "get" in item and not streams(item["get"]))


async def answers(http: httpx.AsyncClient, api: str, paths: list[str], tenant_id: str,
                  known: dict[str, str]) -> dict[str, tuple[int, str]]:
    """Each path's status and body for the tenant, the tenant's id in it replaced by ``<tenant>``."""
    found = {}
    for path in paths:
        names = set(re.findall(r"{(\w+)}", path)) - {"tenant_id"}
        assert names <= set(known), f"a GET of a parameter this test does not know: {path}"
        url = path.replace("{tenant_id}", tenant_id).format(**known)
        response = await http.get(f"{api}{url}", headers=AUTH)
        found[path] = (response.status_code, response.text.replace(tenant_id, "<tenant>"))
    return found


async def rows_of(database_url: str, tenant_id: str, schemas: list[str]) -> dict[str, int]:
    """The tenant's rows in every table with a tenant_id column of ``schemas`` (but offboarded_tenants)."""
    conn = await asyncpg.connect(database_url)
    try:
        tables = await conn.fetch(
            """SELECT c.table_schema, c.table_name FROM information_schema.columns c
               JOIN information_schema.tables t USING (table_schema, table_name)
               WHERE c.column_name = 'tenant_id' AND c.table_schema = ANY($1::text[])
                 AND t.table_type = 'BASE TABLE' AND c.table_name <> 'offboarded_tenants'""", schemas)
        assert {t["table_schema"] for t in tables} == set(schemas), tables  # no schema missed
        counts = {f"{t['table_schema']}.{t['table_name']}": await conn.fetchval(
            f'SELECT count(*) FROM {t["table_schema"]}."{t["table_name"]}" WHERE tenant_id = $1', tenant_id)
            for t in tables}
    finally:
        await conn.close()
    return {table: count for table, count in counts.items() if count}


async def live_keys(bootstrap: str, prefix: str, tenant_id: str) -> dict[str, bool]:
    """Each key of the tenant on the compacted topics: whether its last record is a tombstone."""
    last: dict[str, bool] = {}
    for topic in COMPACTED:
        for record in await read_all(bootstrap, f"{prefix}{topic.value}"):
            key = record.key.decode() if record.key else ""
            if key == tenant_id or key.startswith(f"{tenant_id}:"):
                last[f"{topic.value}/{key}"] = not record.value  # one key: one partition, in order
    return last


async def lag(bootstrap: str, prefix: str, groups: dict[str, str]) -> dict[str, int]:
    """Records not consumed yet per rebuilt service (0 each: caught up), against each partition's last
    record (the alerts topic's transaction markers take offsets nobody commits past)."""
    topics = sorted({f"{prefix}{topic.value}" for service in groups for topic in CONSUMES[service]})
    last: dict[TopicPartition, int] = {}
    for topic in topics:
        for record in await read_all(bootstrap, topic):
            partition = TopicPartition(topic, record.partition)
            last[partition] = max(last.get(partition, -1), record.offset)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        behind = {}
        for service, group in groups.items():
            committed = await admin.list_consumer_group_offsets(group)
            mine = {f"{prefix}{topic.value}" for topic in CONSUMES[service]}
            behind[service] = sum(
                max(0, offset + 1 - (committed[p].offset if p in committed and committed[p].offset >= 0 else 0))
                for p, offset in last.items() if p.topic in mine)
    finally:
        await admin.close()
    return behind


async def test_after_offboarding_no_endpoint_returns_anything_of_the_tenant_and_a_rebuild_brings_nothing_back(
    system, tenant_id, receiver, redis_client, test_env, make_service, own_database, smtp_server
):
    write, read = system["ingest"].url, system["scoring"].url
    bootstrap, prefix = test_env["KAFKA_BOOTSTRAP_SERVERS"], test_env["KAFKA_TOPIC_PREFIX"]
    staying, never = f"tenant-{uuid.uuid4().hex[:10]}", f"never-{uuid.uuid4().hex[:10]}"
    async with httpx.AsyncClient(timeout=15) as http:
        for each in (tenant_id, staying):
            await a_tenant_with_everything(http, write, each, receiver)
        for each in (tenant_id, staying):
            seen = await eventually(lambda each=each: shown(http, read, each), fully_shown, within=90,
                                    what=f"the alerts, their triage and deliveries of {each} on the read API")
        seen = await shown(http, read, tenant_id)
        notes = (await http.get(f"{write}/v1/tenants/{tenant_id}/alerts/off-2/notes", headers=AUTH)).json()
        known = {"alert_id": "off-2", "note_id": notes["value"][0]["id"], "name": "ticketing",
                 "delivery_id": seen["deliveries"][0]["id"]}
        gets = {api: await tenant_gets(http, api) for api in (write, read)}
        before = {api: await answers(http, api, paths, tenant_id, known) for api, paths in gets.items()}
        assert sum(status == 200 for api in before for status, _ in before[api].values()) >= 12, before

        offboarded = await http.post(f"{write}/v1/tenants/{tenant_id}/offboarding", headers=AUTH,
                                     json={"dryRun": False, "confirmTenantId": tenant_id})
        assert offboarded.status_code == 202, offboarded.text

        async def differences(api: str, tenant: str) -> dict[str, Any]:
            mine = await answers(http, api, gets[api], tenant, known)
            strangers = await answers(http, api, gets[api], never, known)
            return {path: (mine[path], strangers[path]) for path in mine if mine[path] != strangers[path]}

        # Every GET of both APIs answers as for a tenant never heard of: 404, an empty list, or (the
        # score, the response time) the figures of no data at all.
        for api in (write, read):
            await eventually(lambda api=api: differences(api, tenant_id), lambda found: found == {}, within=90,
                             what=f"every GET of {api} for the tenant as for a tenant never heard of")
        assert (await shown(http, read, staying))["alerts"].keys() == {"off-1", "off-2"}

    await eventually(lambda: rows_of(test_env["DATABASE_URL"], tenant_id, SCHEMAS), lambda rows: rows == {},
                     within=60, what="no row of the tenant in any service's tables")
    assert [key async for key in redis_client.scan_iter(match=f"*{tenant_id}*")] == []
    keys = await eventually(lambda: live_keys(bootstrap, prefix, tenant_id), lambda keys: all(keys.values()),
                            within=60, what="each key of the tenant on a compacted topic tombstoned last")
    assert {key.split("/")[0] for key in keys} >= {
        "security-contacts", "notification-channels", "alert-response-times", "deliveries", "alert-triage",
        "requirement-status"}, keys

    # A rebuild from the topics: new consumers on an empty database read every topic from the start.
    run = uuid.uuid4().hex[:8]
    groups = {service: f"rebuild-{service}-{run}" for service in CONSUMES}
    redis_prefix = f"rebuild-{run}:"
    rebuilt: dict[str, ServiceProcess] = {
        "response-time": make_service("response-time", DATABASE_URL=own_database,
                                      CONSUMER_GROUP=groups["response-time"]),
        "scoring": make_service("scoring", DATABASE_URL=own_database, CONSUMER_GROUP=groups["scoring"],
                                REDIS_KEY_PREFIX=redis_prefix),
        # Its mail goes to a server of its own: it sends again what the topics ask of it.
        "notifier": make_service("notifier", DATABASE_URL=own_database, CONSUMER_GROUP=groups["notifier"],
                                 SMTP_HOST="127.0.0.1", SMTP_PORT=str(smtp_server.port)),
    }
    try:
        for process in rebuilt.values():
            process.start(wait=False)
        for process in rebuilt.values():
            await asyncio.to_thread(process.wait_ready)
        await eventually(lambda: lag(bootstrap, prefix, groups), lambda behind: not any(behind.values()),
                         within=300, interval=2, what="the rebuilt consumers caught up with every topic")
        read_again = rebuilt["scoring"].url
        async with httpx.AsyncClient(timeout=15) as http:
            # The staying tenant is back whole: the rebuild did read the topics.
            await eventually(lambda: shown(http, read_again, staying), fully_shown, within=60,
                             what="the staying tenant rebuilt")
            mine = await answers(http, read_again, gets[read], tenant_id, known)
            strangers = await answers(http, read_again, gets[read], never, known)
        assert {path: (mine[path], strangers[path]) for path in mine if mine[path] != strangers[path]} == {}
        assert await rows_of(own_database, tenant_id, SCHEMAS[2:]) == {}
        assert await rows_of(own_database, staying, SCHEMAS[2:])
        assert [key async for key in redis_client.scan_iter(match=f"{redis_prefix}*{tenant_id}*")] == []
        # What the rebuilt services published again: the tenant's keys still end tombstoned.
        assert all((await live_keys(bootstrap, prefix, tenant_id)).values())
    finally:
        for process in rebuilt.values():
            await asyncio.to_thread(process.stop)
        async for key in redis_client.scan_iter(match=f"{redis_prefix}*", count=500):
            await redis_client.delete(key)


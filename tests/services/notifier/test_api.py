"""The notifier behind the two APIs: channels and redelivery set over the write API reach it as events
(notification-channels, delivery-commands), its deliveries show on the read API (deliveries topic).

(The tests of the write API's channel routes alone are here too, until they move to its own tests.)
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from services.ingest.app import create_app
from shared.auth import Role, create_key
from shared.events import Topic
from tests.conftest import AUTH
from tests.services.notifier.helpers import OTHER_SECRET, SECRET, alert_created, deliveries, settled
from tests.support.kafka import read_topic
from tests.support.polling import eventually
from tests.support.processes import ServiceProcess


@pytest.fixture(scope="module")
def apis(make_service, notifier_db_url: str, topic_prefix: str) -> Iterator[dict[str, ServiceProcess]]:
    """The write and read APIs on the notifier tests' database and topics."""
    processes = {
        name: make_service(name, DATABASE_URL=notifier_db_url, KAFKA_TOPIC_PREFIX=topic_prefix).start(wait=False)
        for name in ("ingest", "scoring")
    }
    for process in processes.values():
        process.wait_ready()
    yield processes
    for process in processes.values():
        process.stop()


@pytest.fixture
async def http() -> httpx.AsyncClient:
    async with httpx.AsyncClient(timeout=15) as client:
        yield client


async def test_channels_are_created_replaced_read_and_deleted(apis, tenant_id, http, notifier_pool):
    url = f"{apis['ingest'].url}/v1/tenants/{tenant_id}/channels/jira"
    body = {
        "url": "https://tickets.example/hook",
        "secret": SECRET,
        "routes": [{"severities": ["high"], "customerTenantIds": ["cust-1"]}],
    }
    created = await http.put(url, json=body, headers=AUTH)
    assert created.status_code == 201, created.text
    assert created.json()["routes"] == [
        {"severities": ["high"], "alertTypes": [], "customerTenantIds": ["cust-1"], "includeTest": False}
    ]
    assert "secret" not in created.json() and created.json()["secretConfigured"] is True
    assert created.json()["previousSecretValidUntil"] is None
    # The same secret again is no rotation.
    assert (await http.put(url, json=body, headers=AUTH)).json()["previousSecretValidUntil"] is None

    # Without a secret, a PUT keeps the current one.
    replaced = await http.put(
        url, json={"url": "https://tickets.example/v2", "escalation": True}, headers=AUTH
    )
    assert replaced.status_code == 200, replaced.text
    read = (await http.get(url, headers=AUTH)).json()
    assert (read["url"], read["routes"], read["escalation"]) == ("https://tickets.example/v2", [], True)
    listed = (await http.get(f"{apis['ingest'].url}/v1/tenants/{tenant_id}/channels", headers=AUTH)).json()
    assert [c["name"] for c in listed["value"]] == ["jira"]

    # A new secret rotates: the previous one signs beside it for a day (CHANNEL_SECRET_OVERLAP_HOURS).
    rotated = await http.put(url, json={"url": "https://tickets.example/v2", "secret": OTHER_SECRET}, headers=AUTH)
    until = datetime.fromisoformat(rotated.json()["previousSecretValidUntil"])
    assert timedelta(hours=23) < until - datetime.now(UTC) <= timedelta(hours=24)
    await notifier_pool.execute(  # the write API's own copy (this test is of its routes)
        "UPDATE ingest.channels SET previous_secret_until = now() WHERE tenant_id = $1", tenant_id)
    assert (await http.get(url, headers=AUTH)).json()["previousSecretValidUntil"] is None  # overlap over

    assert (await http.delete(url, headers=AUTH)).status_code == 204
    assert (await http.get(url, headers=AUTH)).status_code == 404
    assert (await http.delete(url, headers=AUTH)).status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "ftp://tickets.example/hook", "secret": SECRET}, "url"),
        ({"url": "tickets.example/hook", "secret": SECRET}, "url"),
        ({"url": "https://tickets.example/hook", "secret": "not-a-secret"}, "secret"),
        ({"url": "https://tickets.example/hook", "secret": "whsec_!!!"}, "secret"),
        ({"url": "https://tickets.example/hook", "secret": "whsec_c2hvcnQ="}, "secret"),
        ({"url": "https://tickets.example/hook"}, "secret"),
        ({"url": "https://tickets.example/hook", "kind": "teams", "secret": SECRET}, "secret"),
        ({"url": "https://tickets.example/hook", "kind": "fax"}, "kind"),
        (
            {"url": "https://tickets.example/hook", "secret": SECRET, "routes": [{"severities": ["urgent"]}]},
            "routes[0].severities",
        ),
    ],
)
async def test_invalid_channels_are_422_naming_the_field(apis, tenant_id, http, body, field):
    response = await http.put(
        f"{apis['ingest'].url}/v1/tenants/{tenant_id}/channels/jira", json=body, headers=AUTH
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert field in [e["field"] for e in response.json()["errors"]]


async def test_a_reader_may_read_but_not_change_channels_or_redeliver(apis, tenant_id, http, notifier_db_url):
    key = await create_key(notifier_db_url, tenant_id, Role.security_reader, "reader@partner.example")
    reader = {"Authorization": f"Bearer {key}"}
    base = f"{apis['ingest'].url}/v1/tenants/{tenant_id}"
    put = await http.put(
        f"{base}/channels/jira", json={"url": "https://t.example", "secret": SECRET}, headers=reader
    )
    assert put.status_code == 403
    assert (await http.get(f"{base}/channels", headers=reader)).status_code == 200
    redeliver = await http.post(
        f"{base}/deliveries/6f1e1b8e-3d0c-4c7e-9a53-0f2d7b1c2a10/redeliver", headers=reader
    )
    assert redeliver.status_code == 403
    assert (
        await http.get(f"{apis['scoring'].url}/v1/tenants/{tenant_id}/deliveries", headers=reader)
    ).status_code == 200


async def notifier_has_channel(pool, tenant_id: str, name: str) -> bool:
    return bool(await pool.fetchval(
        "SELECT count(*) FROM notification_channels WHERE tenant_id = $1 AND name = $2 AND NOT deleted",
        tenant_id, name))


@pytest.mark.timeout(180)
async def test_a_dead_delivery_is_listed_and_redelivered_once(
    apis, tenant_id, http, start_notifier, publish, notifier_pool, receiver
):
    path = f"/{tenant_id}/jira"
    receiver.script(path, (400, {}))
    write, read = (
        f"{apis['ingest'].url}/v1/tenants/{tenant_id}",
        f"{apis['scoring'].url}/v1/tenants/{tenant_id}",
    )
    put = await http.put(
        f"{write}/channels/jira", json={"url": receiver.url(path), "secret": SECRET}, headers=AUTH
    )
    assert put.status_code == 201, put.text
    start_notifier()
    await eventually(lambda: notifier_has_channel(notifier_pool, tenant_id, "jira"), what="the channel event")
    created = alert_created(tenant_id, "a1")
    await publish(Topic.alerts, created)
    await eventually(lambda: settled(notifier_pool, tenant_id, created.event_id), what="deliveries")

    async def listed(state: str) -> list[dict]:
        response = await http.get(f"{read}/deliveries", params={"state": state}, headers=AUTH)
        return response.json()["value"]

    dead = await eventually(lambda: listed("dead"), what="the dead delivery on the read API")
    assert [(d["alertId"], d["channel"], d["kind"], d["attempts"], d["lastStatusCode"]) for d in dead] == [
        ("a1", "webhook:jira", "alert", 1, 400)
    ]
    delivery_id = dead[0]["id"]

    # The write API knows the delivery once its events reached it: 404 until the first, then 409 naming the
    # state it has (pending) until the one of its death, which its own consumer may apply after the read
    # API's did. A write API that never learns of the death fails here, naming its last answer.
    again = await eventually(
        lambda: http.post(f"{write}/deliveries/{delivery_id}/redeliver", headers=AUTH),
        lambda response: response.status_code != 404 and not (
            response.status_code == 409 and response.json().get("state") == "pending"),
        what="the write API to know the dead delivery",
    )
    assert again.status_code == 202, again.text
    assert again.json()["id"] == delivery_id
    await eventually(
        lambda: deliveries(notifier_pool, tenant_id, channel="webhook:jira", state="delivered"),
        what="the redelivery",
    )
    assert [c.status for c in receiver.calls(path)] == [400, 200]
    assert len(receiver.effective(path)) == 1

    one = await eventually(
        lambda: http.get(f"{read}/deliveries/{delivery_id}", headers=AUTH),
        lambda response: response.json()["state"] == "delivered", what="the read API to show it delivered",
    )
    assert (one.json()["attempts"], one.json()["redeliveries"], one.json()["recipient"]) == (
        1, 1, receiver.url(path))
    assert await listed("dead") == []

    # Delivered now: once the write API heard so, a redelivery is refused (one asked before that is
    # ignored by the notifier: the delivery is no longer dead).
    await eventually(
        lambda: http.post(f"{write}/deliveries/{delivery_id}/redeliver", headers=AUTH),
        lambda response: response.status_code == 409, what="the write API to refuse a second redelivery",
    )
    assert [c.status for c in receiver.calls(path)] == [400, 200]
    unknown = f"{write}/deliveries/6f1e1b8e-3d0c-4c7e-9a53-0f2d7b1c2a10/redeliver"
    assert (await http.post(unknown, headers=AUTH)).status_code == 404
    assert (await http.post(f"{write}/deliveries/not-an-id/redeliver", headers=AUTH)).status_code == 422
    assert (await http.get(f"{read}/deliveries", params={"state": "lost"}, headers=AUTH)).status_code == 422


@pytest.mark.timeout(180)
async def test_through_the_write_api_contact_channel_alert_and_response(
    apis, tenant_id, http, start_notifier, notifier_pool, smtp_server, receiver
):
    """The whole path: contact and channel set over HTTP, an alert posted, answered over HTTP."""
    path = f"/{tenant_id}/jira"
    write = f"{apis['ingest'].url}/v1/tenants/{tenant_id}"
    contact = {"name": "SOC", "email": "soc@partner.example", "phone": "+442071234567"}
    assert (await http.put(f"{write}/security-contact", json=contact, headers=AUTH)).status_code == 200
    channel = {"url": receiver.url(path), "secret": SECRET}
    assert (await http.put(f"{write}/channels/jira", json=channel, headers=AUTH)).status_code == 201
    start_notifier(REMINDER_AFTER_SECONDS="3600")
    await eventually(
        lambda: notifier_pool.fetchval("SELECT email FROM notifier_contacts WHERE tenant_id = $1", tenant_id),
        what="the contact to reach the notifier",
    )
    await eventually(lambda: notifier_has_channel(notifier_pool, tenant_id, "jira"), what="the channel event")

    alert = {
        "id": "a1",
        "displayName": "Unusual activity",
        "severity": "medium",
        "alertType": "unusualActivity",
    }
    for _ in range(2):  # the second post is a duplicate: no event, no second delivery
        assert (await http.post(f"{write}/alerts", json=alert, headers=AUTH)).status_code == 202
    await eventually(
        lambda: deliveries(notifier_pool, tenant_id, kind="alert", state="delivered"), what="the deliveries"
    )
    await eventually(
        lambda: len(smtp_server.mail.for_tenant(tenant_id, "alert")) == 1 and len(receiver.calls(path)) == 1,
        what="one e-mail and one webhook",
    )
    assert smtp_server.mail.for_tenant(tenant_id, "alert")[0]["Subject"] == "[medium] Unusual activity"

    answered = await http.patch(f"{write}/alerts/a1", json={"status": "investigating"}, headers=AUTH)
    assert answered.status_code in (200, 202), answered.text
    await eventually(
        lambda: notifier_pool.fetchval(
            "SELECT count(*) = 2 FROM notification_timers WHERE tenant_id = $1 AND state = 'cancelled'",
            tenant_id,
        ),
        what="the response to cancel both timers",
    )
    assert len(receiver.calls(path)) == 1 and len(smtp_server.mail.for_tenant(tenant_id)) == 1


@pytest.mark.timeout(180)
async def test_a_teams_channel_set_over_the_write_api_gets_the_card_whose_button_records_its_response(
    apis, tenant_id, http, start_notifier, notifier_pool, receiver, kafka_bootstrap, topic_prefix
):
    """A Teams channel end to end: set over HTTP, an alert posted, its card received, the Acknowledge
    button followed and confirmed: the response is the channel's, and the notifier sees it."""
    path = f"/{tenant_id}/teams"
    write = f"{apis['ingest'].url}/v1/tenants/{tenant_id}"
    channel = {"kind": "teams", "url": receiver.url(path)}
    assert (await http.put(f"{write}/channels/soc", json=channel, headers=AUTH)).status_code == 201
    start_notifier(REMINDER_AFTER_SECONDS="3600", WRITE_API_PUBLIC_URL=apis["ingest"].url)
    await eventually(lambda: notifier_has_channel(notifier_pool, tenant_id, "soc"), what="the channel event")

    alert = {"id": "a1", "displayName": "Unusual activity", "severity": "medium", "alertType": "unusualActivity"}
    assert (await http.post(f"{write}/alerts", json=alert, headers=AUTH)).status_code == 202
    await eventually(lambda: receiver.calls(path), what="the card")
    [call] = receiver.calls(path)
    card = call.json["attachments"][0]["content"]
    [acknowledge] = [a["url"] for a in card["actions"] if a["title"] == "Acknowledge"]
    assert acknowledge.startswith(f"{apis['ingest'].url}/v1/actions/")
    page = await http.get(acknowledge)  # what the click opens: a page, no change
    assert page.status_code == 200 and "Confirm: Acknowledge" in page.text
    confirmed = await http.post(acknowledge)
    assert confirmed.status_code == 200, confirmed.text

    [updated] = await read_topic(
        kafka_bootstrap, f"{topic_prefix}alerts", count=1, timeout=30,
        predicate=lambda r: r["headers"]["eventType"] == "alert-updated" and r["value"]["tenantId"] == tenant_id)
    [change] = updated["value"]["statusChanges"]
    assert (change["to"], change["actor"]) == ("investigating", {"type": "user", "id": "teams:soc"})
    await eventually(
        lambda: notifier_pool.fetchval(
            "SELECT count(*) = 2 FROM notification_timers WHERE tenant_id = $1 AND state = 'cancelled'", tenant_id),
        what="the channel's response to cancel both timers",
    )


async def test_a_channel_on_a_private_address_is_refused_unless_allowed(
    test_env, notifier_db_url, tenant_id, monkeypatch
):
    monkeypatch.setenv("WEBHOOK_ALLOW_PRIVATE_ADDRESSES", "false")
    monkeypatch.setenv("DATABASE_URL", notifier_db_url)
    app = create_app()
    url = f"/v1/tenants/{tenant_id}/channels/jira"
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ingest") as client,
    ):
        for target in ("http://127.0.0.1:9000/hook", "http://169.254.169.254/latest/meta-data",
                       "http://localhost/hook", "http://[::1]/hook", "https://10.0.0.7/hook"):
            refused = await client.put(url, json={"url": target, "secret": SECRET}, headers=AUTH)
            assert refused.status_code == 422, (target, refused.text)
            assert refused.headers["content-type"] == "application/problem+json"
            assert refused.json()["errors"][0]["field"] == "url"
            assert "public address" in refused.json()["detail"]
        accepted = await client.put(url, json={"url": "https://tickets.example/hook", "secret": SECRET},
                                    headers=AUTH)
        assert accepted.status_code == 201, accepted.text

"""A tenant with something on every view of the dashboard, put in as the real sources put it: the write
API's posts (alerts, contact, MFA reports) and, for a dead notification, the notifier's delivery event."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx

from shared.events import DeliveryChanged, DeliveryView, Topic
from shared.kafka import event_headers
from tests.conftest import AUTH
from tests.support.kafka import produce
from tests.support.polling import eventually


@dataclass
class Seeded:
    tenant_id: str
    urgent_alert: str  # open for 22 hours: 2 hours left
    fresh_alert: str  # open for 40 minutes
    dead_delivery: str
    partner_center_alert: str  # polled from Partner Center (the Graph emulator), resolved and written back


def ago(**delta: float) -> str:
    return (datetime.now(UTC) - timedelta(**delta)).isoformat()


async def post_alert(http: httpx.AsyncClient, write_url: str, tenant_id: str, alert_id: str, title: str, *,
                     severity: str = "high", customer: str = "contoso-customer", detected: str | None = None) -> None:
    posted = await http.post(f"{write_url}/v1/tenants/{tenant_id}/alerts", headers=AUTH, json={
        "id": alert_id, "displayName": title, "severity": severity, "alertType": "unusualActivity",
        "customerTenantId": customer, "detectedDateTime": detected or ago(minutes=5)})
    assert posted.status_code == 202, posted.text


async def admin_mfa(http: httpx.AsyncClient, write_url: str, tenant_id: str, total: int, with_mfa: int) -> None:
    posted = await http.post(f"{write_url}/v1/tenants/{tenant_id}/signals/admin-mfa", headers=AUTH,
                             json={"totalAdmins": total, "adminsWithMfa": with_mfa})
    assert posted.status_code == 202, posted.text


async def requirement_status(http: httpx.AsyncClient, read_url: str, tenant_id: str, requirement: str) -> str | None:
    answer = await http.get(f"{read_url}/v1/tenants/{tenant_id}/security-score/requirements", headers=AUTH)
    if answer.status_code != 200:
        return None
    return {r["requirementType"]: r["complianceStatus"] for r in answer.json()["value"]}.get(requirement)


async def seed(system, test_env: dict[str, str], tenant_id: str, graph_emulator) -> Seeded:
    write, read = system["ingest"].url, system["scoring"].url
    base = f"/v1/tenants/{tenant_id}"
    seeded = Seeded(tenant_id, "urgent-1", "fresh-1", str(uuid.uuid4()), f"pc-{uuid.uuid4().hex[:8]}")
    async with httpx.AsyncClient(timeout=15) as http:
        contact = await http.put(f"{write}{base}/security-contact", headers=AUTH, json={
            "name": "Security team", "email": "soc@partner.example", "phone": "+44 20 7946 0000"})
        assert contact.status_code in (200, 201), contact.text
        await admin_mfa(http, write, tenant_id, total=4, with_mfa=3)
        customers = await http.post(f"{write}{base}/signals/customer-mfa", headers=AUTH, json={"customers": [
            {"customerTenantId": "contoso-customer", "customerName": "Contoso Ltd", "admins": 3, "adminsWithMfa": 3,
             "nonAdminsWithMfa": 20, "totalUsers": 40},
            {"customerTenantId": "fabrikam-customer", "customerName": "Fabrikam <script>alert(1)</script>", "admins": 2,
             "adminsWithMfa": 1, "nonAdminsWithMfa": 5, "totalUsers": 12}]})
        assert customers.status_code == 202, customers.text
        await post_alert(http, write, tenant_id, seeded.urgent_alert, "Suspicious sign-in from a new country",
                         detected=ago(hours=22))
        await post_alert(http, write, tenant_id, seeded.fresh_alert, "Unusual Azure consumption", severity="medium",
                         customer="fabrikam-customer", detected=ago(minutes=40))
        await post_alert(http, write, tenant_id, "answered-1", "Password spray", severity="low", detected=ago(hours=6))
        answered = await http.patch(f"{write}{base}/alerts/answered-1", headers=AUTH,
                                    json={"status": "resolved", "resolvedReason": "legitimate"})
        assert answered.status_code == 202, answered.text

        # A Graph connection, and an alert that came through it, answered here and written back.
        directory_id, client_id, secret = str(uuid.uuid4()), str(uuid.uuid4()), f"secret~{uuid.uuid4().hex}"
        graph_emulator.register_app(directory_id, client_id, secret=secret)
        connected = await http.put(f"{write}{base}/connections/graph", headers=AUTH, json={
            "directoryId": directory_id, "clientId": client_id, "clientSecret": secret})
        assert connected.status_code == 201, connected.text
        graph_emulator.add_alert(directory_id, id=seeded.partner_center_alert, severity="low",
                                 customerTenantId="contoso-customer",
                                 detectedDateTime=datetime.now(UTC) - timedelta(hours=3))
        await eventually(lambda: http.get(f"{read}{base}/alerts/{seeded.partner_center_alert}", headers=AUTH),
                         lambda answer: answer.status_code == 200, what="the Partner Center alert on the read API")
        resolved = await http.patch(f"{write}{base}/alerts/{seeded.partner_center_alert}", headers=AUTH,
                                    json={"status": "resolved", "resolvedReason": "legitimate"})
        assert resolved.status_code == 202, resolved.text

        # A notification the notifier gave up on, as the notifier tells of it.
        now = datetime.now(UTC)
        dead = DeliveryChanged(tenant_id=tenant_id, occurred_date_time=now, delivery=DeliveryView(
            id=uuid.UUID(seeded.dead_delivery), alert_id=seeded.urgent_alert, subject=seeded.urgent_alert,
            channel="webhook:tickets", kind="alert", state="dead", recipient="https://tickets.example/hook", attempts=5,
            last_attempt_date_time=now, last_status_code=503, last_error="HTTP 503", dead_lettered_date_time=now,
            created_date_time=now - timedelta(minutes=30)))
        await produce(test_env["KAFKA_BOOTSTRAP_SERVERS"], f"{test_env['KAFKA_TOPIC_PREFIX']}{Topic.deliveries.value}",
                      dead.model_dump_json().encode(), key=dead.kafka_key(),
                      headers={"content-type": "application/json", **event_headers(dead)})

        async def settled() -> bool:
            alerts = (await http.get(f"{read}{base}/alerts", headers=AUTH)).json().get("value", [])
            responded = [a for a in alerts if a.get("respondedDateTime")]
            dead_ones = (await http.get(f"{read}{base}/deliveries?state=dead", headers=AUTH)).json().get("value", [])
            customers = (await http.get(f"{read}{base}/customers/mfa", headers=AUTH)).json().get("value", [])
            contact_status = await requirement_status(http, read, tenant_id, "securityContactProvided")
            synced = [a for a in alerts if (a.get("partnerCenterSync") or {}).get("state") == "synced"
                      and a.get("respondedDateTime")]
            return (len(alerts) == 4 and len(responded) == 2 and len(synced) == 1 and len(dead_ones) == 1
                    and len(customers) == 2 and contact_status == "compliant")

        await eventually(settled, interval=0.3, what="the seeded tenant on the read API")
    return seeded

"""Partner Center end to end: the Graph emulator (a real HTTP server standing in for Microsoft Graph and
the identity platform) and every service a real process on the real broker, PostgreSQL and SMTP.

An alert appears in Partner Center → the write API polls it → the contact gets an e-mail → a
response through the API → Partner Center receives the PATCH; the same with Graph throttling, and
with Graph down for a while; a change made in Partner Center comes in and is never written back.
"""

from __future__ import annotations

import uuid

import httpx

from tests.conftest import AUTH
from tests.support.polling import eventually


def _ids() -> tuple[str, str, str]:
    return str(uuid.uuid4()), str(uuid.uuid4()), f"secret~{uuid.uuid4().hex}"


async def _connect(http: httpx.AsyncClient, write: str, tenant_id: str, graph_emulator) -> str:
    """A contact and a Graph connection for ``tenant_id``; the directory (Partner Center tenant) id."""
    directory_id, client_id, secret = _ids()
    graph_emulator.register_app(directory_id, client_id, secret=secret)
    contact = await http.put(f"{write}/v1/tenants/{tenant_id}/security-contact", json={
        "name": "Security team", "email": "soc@partner.example", "phone": "+44 20 7946 0000"})
    assert contact.status_code in (200, 201), contact.text
    connected = await http.put(f"{write}/v1/tenants/{tenant_id}/connections/graph", json={
        "directoryId": directory_id, "clientId": client_id, "clientSecret": secret})
    assert connected.status_code == 201, connected.text
    assert secret not in connected.text
    return directory_id


async def _sync_state(http: httpx.AsyncClient, read: str, tenant_id: str, alert_id: str) -> dict | None:
    response = await http.get(f"{read}/v1/tenants/{tenant_id}/alerts/{alert_id}")
    return response.json().get("partnerCenterSync") if response.status_code == 200 else None


async def test_an_alert_from_partner_center_is_mailed_and_the_response_is_written_back(
    system, tenant_id, system_mail, graph_emulator
):
    write, read = system["ingest"].url, system["scoring"].url
    async with httpx.AsyncClient(timeout=15, headers=AUTH) as http:
        directory_id = await _connect(http, write, tenant_id, graph_emulator)
        alert = graph_emulator.add_alert(directory_id, displayName="Crypto mining detected", severity="high")

        mails = await eventually(lambda: system_mail.mail.for_tenant(tenant_id, "alert"), interval=0.2,
                                 what="the e-mail about the polled alert")
        assert "Crypto mining detected" in mails[0]["Subject"]
        synced = await eventually(lambda: _sync_state(http, read, tenant_id, alert["id"]), interval=0.2,
                                  what="the alert's sync state on the read API")
        assert synced["state"] == "synced"

        patched = await http.patch(f"{write}/v1/tenants/{tenant_id}/alerts/{alert['id']}",
                                   json={"status": "resolved", "resolvedReason": "legitimate"})
        assert patched.status_code == 202, patched.text
        patches = await eventually(lambda: graph_emulator.patches(directory_id), interval=0.2,
                                   what="the PATCH at Partner Center")
        assert patches[0]["alertId"] == alert["id"]
        assert patches[0]["body"] == {"status": "resolved", "resolvedReason": "legitimate"}
        assert graph_emulator.alert(directory_id, alert["id"])["status"] == "resolved"

        responded = await eventually(lambda: http.get(f"{read}/v1/tenants/{tenant_id}/alerts/{alert['id']}"),
                                     lambda r: r.json().get("latencyHours") is not None, interval=0.2,
                                     what="the response on the read API")
        assert responded.json()["respondedBy"] == "operator"

        # Polls go on (every second here): the echo of our own PATCH is never written back again.
        polls_before = len([r for r in graph_emulator.requests(directory_id) if r["method"] == "GET"])
        await eventually(lambda: len([r for r in graph_emulator.requests(directory_id) if r["method"] == "GET"]),
                         lambda n: n >= polls_before + 3, interval=0.2, what="three more polls")
        assert len(graph_emulator.patches(directory_id)) == 1

        state = (await http.get(f"{write}/v1/tenants/{tenant_id}/connections/graph")).json()
        assert state["alertsSeen"] >= 1 and state["writeBacksPending"] == 0 and state["writeBacksFailed"] == 0
        assert state["lastSuccessfulPollDateTime"] is not None and state["lastError"] is None


async def test_a_response_waits_while_graph_throttles_or_is_down_and_is_written_after(
    system, tenant_id, graph_emulator
):
    write, read = system["ingest"].url, system["scoring"].url
    async with httpx.AsyncClient(timeout=15, headers=AUTH) as http:
        directory_id = await _connect(http, write, tenant_id, graph_emulator)
        first = graph_emulator.add_alert(directory_id, displayName="Throttled one")
        second = graph_emulator.add_alert(directory_id, displayName="Down one")
        for alert in (first, second):
            await eventually(lambda a=alert: _sync_state(http, read, tenant_id, a["id"]), interval=0.2,
                             what=f"alert {alert['id']} polled")

        graph_emulator.throttle(directory_id, times=4, retry_after=1)
        answered = await http.patch(f"{write}/v1/tenants/{tenant_id}/alerts/{first['id']}",
                                    json={"status": "investigating"})
        assert answered.status_code == 202, answered.text
        await eventually(lambda: [p for p in graph_emulator.patches(directory_id) if p["alertId"] == first["id"]],
                         interval=0.2, what="the throttled write-back, once Graph takes it")
        assert any(r["status"] == 429 for r in graph_emulator.requests(directory_id))

        graph_emulator.set_down(directory_id, True)
        answered = await http.patch(f"{write}/v1/tenants/{tenant_id}/alerts/{second['id']}",
                                    json={"status": "resolved", "resolvedReason": "fraud"})
        assert answered.status_code == 202, answered.text
        pending = await eventually(lambda: _sync_state(http, read, tenant_id, second["id"]),
                                   lambda s: s and s["state"] == "pending" and s["attempts"] >= 1, interval=0.2,
                                   what="the write-back pending on the read API while Graph is down")
        assert pending["pendingStatus"] == "resolved" and pending["lastError"]
        state = (await http.get(f"{write}/v1/tenants/{tenant_id}/connections/graph")).json()
        assert state["writeBacksPending"] == 1
        assert not [p for p in graph_emulator.patches(directory_id) if p["alertId"] == second["id"]]

        graph_emulator.set_down(directory_id, False)
        await eventually(lambda: [p for p in graph_emulator.patches(directory_id) if p["alertId"] == second["id"]],
                         interval=0.2, within=60, what="the write-back once Graph is back")
        assert graph_emulator.alert(directory_id, second["id"])["resolvedReason"] == "fraud"
        synced = await eventually(lambda: _sync_state(http, read, tenant_id, second["id"]),
                                  lambda s: s and s["state"] == "synced", interval=0.2, what="synced again")
        assert synced["lastSyncedDateTime"] is not None
        assert len([p for p in graph_emulator.patches(directory_id) if p["alertId"] == second["id"]]) == 1


async def test_a_change_made_in_partner_center_comes_in_and_is_not_written_back(
    system, tenant_id, graph_emulator
):
    write, read = system["ingest"].url, system["scoring"].url
    async with httpx.AsyncClient(timeout=15, headers=AUTH) as http:
        directory_id = await _connect(http, write, tenant_id, graph_emulator)
        alert = graph_emulator.add_alert(directory_id, displayName="Answered in the portal")
        await eventually(lambda: _sync_state(http, read, tenant_id, alert["id"]), interval=0.2, what="polled")

        graph_emulator.change_in_partner_center(directory_id, alert["id"], status="resolved",
                                                resolved_reason="ignore", by="carol@partner.example")
        responded = await eventually(lambda: http.get(f"{read}/v1/tenants/{tenant_id}/alerts/{alert['id']}"),
                                     lambda r: r.json().get("respondedBy") == "carol@partner.example",
                                     interval=0.2, what="Partner Center's response on the read API")
        assert responded.json()["status"] == "resolved"
        assert graph_emulator.patches(directory_id) == []

        # A refused write-back (Partner Center forbids it) is visible on the alert and the connection.
        graph_emulator.refuse_patches(directory_id, status=403, code="Forbidden", message="not allowed")
        reopened = await http.patch(f"{write}/v1/tenants/{tenant_id}/alerts/{alert['id']}", json={"status": "active"})
        assert reopened.status_code == 202, reopened.text
        failed = await eventually(lambda: _sync_state(http, read, tenant_id, alert["id"]),
                                  lambda s: s and s["state"] == "failed", interval=0.2, what="the refusal shown")
        assert "403" in failed["lastError"] or "Forbidden" in failed["lastError"]
        state = (await http.get(f"{write}/v1/tenants/{tenant_id}/connections/graph")).json()
        assert state["writeBacksFailed"] == 1

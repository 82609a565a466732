"""One alert's timeline after its whole journey (#18), every service a real process: created, e-mailed to
the security contact, reminded, assigned, noted, acknowledged. The read API's timeline lists each step
once, newest first, built from the events the services published."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from shared.auth import Role, create_key
from tests.conftest import AUTH
from tests.support.polling import eventually

CONTACT = "soc@partner.example"
ANALYST = "ana@partner.example"
ASSIGNEE = "bo@partner.example"


async def test_an_alerts_timeline_after_its_journey_lists_every_step_once_in_order(
    system, tenant_id, system_mail, test_env
):
    write, read = system["ingest"].url, system["scoring"].url
    base = f"/v1/tenants/{tenant_id}"
    analyst = {"Authorization": "Bearer " + await create_key(test_env["DATABASE_URL"], tenant_id,
                                                             Role.security_administrator, ANALYST)}
    # Detected two hours ago: its reminder (one hour after detection, the notifier's default) is due at
    # once, its escalation (twenty hours) is not.
    detected = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    async with httpx.AsyncClient(timeout=15) as http:
        contact = await http.put(f"{write}{base}/security-contact", headers=AUTH, json={
            "name": "SOC", "email": CONTACT, "phone": "+44 20 7946 0000"})
        assert contact.status_code in (200, 201), contact.text
        posted = await http.post(f"{write}{base}/alerts", headers=AUTH, json={
            "id": "journey-1", "displayName": "Impossible travel", "severity": "high",
            "alertType": "unusualActivity", "customerTenantId": "customer-1", "detectedDateTime": detected.isoformat()})
        assert posted.status_code == 202, posted.text

        for kind in ("alert", "reminder"):
            [mail] = await eventually(lambda kind=kind: system_mail.mail.for_tenant(tenant_id, kind), interval=0.2,
                                      what=f"the {kind} e-mail to the security contact")
            assert mail["To"] == CONTACT

        async def timeline() -> list[dict[str, Any]]:
            answer = await http.get(f"{read}{base}/alerts/journey-1/timeline", headers=analyst)
            return answer.json()["value"] if answer.status_code == 200 else []

        def delivered(entries: list[dict[str, Any]]) -> bool:
            sent = [e for e in entries if e["type"] in ("notified", "reminded")]
            return len(sent) == 2 and all(e["details"]["state"] == "delivered" for e in sent)

        await eventually(timeline, delivered, what="both e-mails delivered on the timeline")

        assigned = await http.put(f"{write}{base}/alerts/journey-1/assignee", headers=analyst,
                                  json={"assignee": ASSIGNEE})
        assert assigned.status_code == 200, assigned.text
        noted = await http.post(f"{write}{base}/alerts/journey-1/notes", headers=analyst,
                                json={"text": "Called the customer: not them.\nBlocking sign-ins."})
        assert noted.status_code == 201, noted.text
        acknowledged = await http.patch(f"{write}{base}/alerts/journey-1", headers=analyst,
                                        json={"status": "investigating"})
        assert acknowledged.status_code == 202, acknowledged.text

        # The steps come on several topics (alert-triage, alerts, alert-response-times), in any order.
        await eventually(timeline, lambda entries: {"assigned", "noted", "updated", "responded"} <= {
            e["type"] for e in entries}, what="the assignment, the note, the update and the response on the timeline")
        listed = await http.get(f"{read}{base}/alerts/journey-1", headers=analyst)
        assert listed.status_code == 200 and listed.json()["respondedBy"] == ANALYST
        assert (listed.json()["assignedTo"], listed.json()["notesCount"]) == (ASSIGNEE, 1)
        entries = await timeline()

    assert [e["type"] for e in entries] == [
        "responded", "updated", "noted", "assigned", "reminded", "notified", "received"]
    times = [e["occurredDateTime"] for e in entries]
    assert times == sorted(times, reverse=True)
    by_type = {e["type"]: e for e in entries}
    assert by_type["received"]["details"]["displayName"] == "Impossible travel"
    for kind in ("notified", "reminded"):
        details = by_type[kind]["details"]
        assert (details["channel"], details["recipient"], details["state"]) == ("email:contact", CONTACT, "delivered")
    assert by_type["assigned"]["actor"] == ANALYST
    assert by_type["assigned"]["details"] == {"assignee": ASSIGNEE, "previousAssignee": None}
    assert by_type["noted"]["actor"] == ANALYST
    assert by_type["noted"]["details"]["text"] == "Called the customer: not them.\nBlocking sign-ins."
    assert by_type["updated"]["actor"] == ANALYST
    assert {"field": "status", "from": "active", "to": "investigating"} in by_type["updated"]["details"]["changes"]
    # The assignment and the note did not stop the clock: the acknowledgement did, by the analyst.
    assert by_type["responded"]["actor"] == ANALYST
    assert by_type["responded"]["occurredDateTime"] == by_type["updated"]["occurredDateTime"]
    assert 2.0 <= by_type["responded"]["details"]["latencyHours"] < 2.5

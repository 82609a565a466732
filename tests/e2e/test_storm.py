"""A storm end to end, every service a real process: eight alerts of a tenant in a burst give the
security contact five e-mails and then one digest listing the other three; its bulk acknowledge link
opens a page that changes nothing, and confirming it records, as the contact, the response to each
alert still untouched: the read API shows the clock stopped on those three and running on the rest."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import httpx

from tests.conftest import AUTH
from tests.support.polling import eventually

CONTACT = "storm-soc@partner.example"
FORM_POST = {"Content-Type": "application/x-www-form-urlencoded"}


async def test_a_burst_of_alerts_gives_one_digest_whose_bulk_link_acknowledges_the_rest(system, tenant_id, system_mail):
    write, read = system["ingest"].url, system["scoring"].url
    base = f"/v1/tenants/{tenant_id}"
    detected = datetime.now(UTC) - timedelta(hours=1)
    ids = [f"storm-{n}" for n in range(1, 9)]
    async with httpx.AsyncClient(timeout=15, headers=AUTH) as api, httpx.AsyncClient(timeout=15) as browser:
        contact = await api.put(f"{write}{base}/security-contact", json={
            "name": "SOC", "email": CONTACT, "phone": "+44 20 7946 0000"})
        assert contact.status_code in (200, 201), contact.text
        # Eight alerts in one Graph list (one request): a burst.
        posted = await api.post(f"{write}{base}/alerts", json={"value": [
            {"id": alert_id, "displayName": f"Suspicious sign-in {alert_id}", "severity": "medium",
             "customerTenantId": "customer-1", "detectedDateTime": detected.isoformat()} for alert_id in ids]})
        assert posted.status_code == 202, posted.text

        [digest] = await eventually(lambda: system_mail.mail.for_tenant(tenant_id, "digest"), within=60,
                                    interval=0.5, what="the storm's digest")
        alone = system_mail.mail.for_tenant(tenant_id, "alert")
        assert len(alone) == 5 and digest["To"] == CONTACT
        text = digest.get_body(("plain",)).get_content().replace("\r\n", "\n")
        listed = re.findall(r"^   Alert id: (\S+)$", text, re.MULTILINE)
        assert sorted(listed + [m["X-CSP-Alert-Id"] for m in alone]) == sorted(ids)
        assert "Acknowledge all 3 alerts" in text
        [bulk] = re.findall(r"^(\S+/v1/actions/bulk/\S+)$", text, re.MULTILINE)
        assert bulk.startswith(f"{write}/v1/actions/bulk/")

        async def alerts_on_read_api() -> dict[str, dict]:
            found = {}
            for alert_id in ids:
                answer = await api.get(f"{read}{base}/alerts/{alert_id}")
                if answer.status_code == 200:
                    found[alert_id] = answer.json()
            return found

        await eventually(alerts_on_read_api, lambda alerts: len(alerts) == 8, what="the alerts on the read API")

        # Opening the link (a mail scanner, or the contact) shows the alerts and changes nothing.
        page = await browser.get(bulk)
        assert page.status_code == 200, page.text
        assert all(alert_id in page.text for alert_id in listed) and '<form method="post">' in page.text
        assert {a["status"] for a in (await alerts_on_read_api()).values()} == {"active"}

        confirmed = await browser.post(bulk, content=b"", headers=FORM_POST)
        assert confirmed.status_code == 200, confirmed.text
        answered = await eventually(
            alerts_on_read_api, lambda alerts: all(alerts[a]["respondedBy"] for a in listed),
            what="the three responses on the read API")
        for alert_id in listed:
            assert answered[alert_id]["status"] == "investigating"
            assert answered[alert_id]["respondedBy"] == CONTACT
            assert 0.9 < answered[alert_id]["latencyHours"] < 1.5
        for alert_id in set(ids) - set(listed):
            assert answered[alert_id]["status"] == "active" and answered[alert_id]["respondedBy"] is None

        # The link works once.
        assert (await browser.post(bulk, content=b"", headers=FORM_POST)).status_code == 409

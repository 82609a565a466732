"""A partner's day end to end, every service a real process on the real broker, PostgreSQL, Redis
and SMTP server: contact set, alert in, e-mail out, a late response, the response-time requirement
failing and the live score following it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from tests.conftest import AUTH
from tests.support.polling import eventually


async def test_a_late_response_fails_the_requirement_and_lowers_the_score(system, tenant_id, system_mail):
    write, read = system["ingest"].url, system["scoring"].url
    base = f"/v1/tenants/{tenant_id}"
    detected = datetime.now(UTC) - timedelta(hours=30)
    async with httpx.AsyncClient(timeout=15, headers=AUTH) as http:
        contact = await http.put(f"{write}{base}/security-contact", json={
            "name": "Security team", "email": "soc@partner.example", "phone": "+44 20 7946 0000"})
        assert contact.status_code in (200, 201), contact.text

        posted = await http.post(f"{write}{base}/alerts", json={
            "id": "late-1", "displayName": "Suspicious sign-in", "severity": "high", "alertType": "unusualActivity",
            "customerTenantId": "customer-1", "detectedDateTime": detected.isoformat()})
        assert posted.status_code == 202, posted.text

        # The contact gets one e-mail about it, naming severity and title.
        mails = await eventually(lambda: system_mail.mail.for_tenant(tenant_id, "alert"), interval=0.2,
                                 what="the alert e-mail to the security contact")
        assert len(mails) == 1
        assert mails[0]["To"] == "soc@partner.example"
        assert "high" in mails[0]["Subject"].lower() and "Suspicious sign-in" in mails[0]["Subject"]

        # Open for 30 hours: not yet counted, but the projection says the requirement is at risk.
        async def open_figures():
            figures = (await http.get(f"{read}{base}/response-time")).json()
            return figures if figures.get("openCount") == 1 else None

        figures = await eventually(open_figures, interval=0.2, what="the open alert in the figures")
        assert figures["respondedCount"] == 0 and figures["compliant"] is True and figures["atRisk"] is True
        assert 29.9 < figures["oldestOpenAgeHours"] < 30.5

        patched = await http.patch(f"{write}{base}/alerts/late-1",
                                   json={"status": "resolved", "resolvedReason": "legitimate"})
        assert patched.status_code == 202, patched.text

        async def answered():
            figures = (await http.get(f"{read}{base}/response-time")).json()
            return figures if figures.get("respondedCount") == 1 else None

        figures = await eventually(answered, interval=0.2, what="the response in the figures")
        assert figures["compliant"] is False and figures["openCount"] == 0
        assert 29.9 < figures["averageResponseTimeInHours"] < 30.5

        alert = (await http.get(f"{read}{base}/alerts/late-1")).json()
        assert alert["respondedBy"] == "operator" and 29.9 < alert["latencyHours"] < 30.5

        # The score follows: the contact (20) is the only compliant requirement of 80 points.
        async def scored():
            requirements = (await http.get(f"{read}{base}/security-score/requirements")).json()
            status = {r["requirementType"]: r["complianceStatus"] for r in requirements["value"]}
            return status if status.get("securityAlertsPromptlyResolved") == "noncompliant" else None

        status = await eventually(scored, interval=0.2, what="the requirement turning noncompliant on the read API")
        assert status["securityContactProvided"] == "compliant"
        score = (await http.get(f"{read}{base}/security-score")).json()
        assert score["currentScore"] == 25.0 and score["maxScore"] == 100
        history = (await http.get(f"{read}{base}/security-score/history")).json()
        assert history["value"], "each score change leaves a history entry"

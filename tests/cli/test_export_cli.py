"""``csp-triage tenant export``: everything the two APIs serve of a tenant as JSON lines, against the
four services running as processes."""

from __future__ import annotations

import json
import os
import stat
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.cli.running import csp_triage
from tests.conftest import AUTH
from tests.support.polling import eventually

CHANNEL_SECRET = "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="


def records(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


async def test_a_tenants_export_has_every_object_of_both_apis_once_and_no_secret(system, tenant_id, env, tmp_path):
    write, read, base = system["ingest"].url, system["scoring"].url, f"/v1/tenants/{tenant_id}"
    detected = datetime.now(UTC) - timedelta(minutes=5)
    async with httpx.AsyncClient(timeout=15, headers=AUTH) as api:
        contact = await api.put(f"{write}{base}/security-contact", json={
            "name": "SOC", "email": "soc@partner.example", "phone": "+44 20 7946 0000"})
        assert contact.status_code in (200, 201), contact.text
        channel = await api.put(f"{write}{base}/channels/jira", json={
            "url": "https://tickets.example/hook", "secret": CHANNEL_SECRET, "routes": [{"severities": ["low"]}]})
        assert channel.status_code == 201, channel.text
        for alert_id in ("exp-1", "exp-2"):
            posted = await api.post(f"{write}{base}/alerts", json={
                "id": alert_id, "displayName": f"Alert {alert_id}", "severity": "high",
                "customerTenantId": "customer-1", "detectedDateTime": detected.isoformat()})
            assert posted.status_code == 202, posted.text
        assert (await api.put(f"{write}{base}/alerts/exp-1/assignee", json={"assignee": "bo@partner.example"})
                ).status_code == 200
        assert (await api.post(f"{write}{base}/alerts/exp-1/notes", json={"text": "Not them."})).status_code == 201

        async def settled() -> list[dict[str, Any]]:
            alerts = (await api.get(f"{read}{base}/alerts")).json()["value"]
            deliveries = (await api.get(f"{read}{base}/deliveries", params={"state": "delivered"})).json()["value"]
            return alerts if len(deliveries) == 2 else []

        # Both alerts e-mailed, and the read API has heard of the note.
        await eventually(settled, lambda alerts: len(alerts) == 2 and any(a["notesCount"] == 1 for a in alerts),
                         what="both alerts delivered and the note on the read API")
    reader = json.loads((await csp_triage("keys", "create", "--role", "securityReader", "--user", "r@partner.example",
                                          "--json", env=env)).out)

    exported = await csp_triage("tenant", "export", "--output", str(tmp_path / "contoso.jsonl"), env=env)
    assert exported.code == 0, exported.err
    assert exported.out == ""
    path = tmp_path / "contoso.jsonl"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600  # personal data: the owner's alone
    text = path.read_text()
    lines = records(text)
    assert lines[0]["kind"] == "export" and lines[0]["tenantId"] == tenant_id
    assert lines[-1]["kind"] == "export-complete"
    kinds = Counter(line["kind"] for line in lines[1:-1])
    assert lines[-1]["counts"] == dict(kinds)
    assert kinds["alert"] == 2 and kinds["contact"] == 1 and kinds["channel"] == 1 and kinds["note"] == 1
    assert kinds["assignment"] == 1 and kinds["delivery"] == 2 and kinds["key"] == 1
    assert kinds["score"] == 1 and kinds["response-time"] == 1 and kinds["requirement"] >= 1
    assert kinds["audit-entry"] >= 2  # the contact and the channel set (the key: the deployment's audit log)
    assert "escalation-chain" not in kinds and "graph-connection" not in kinds  # it has none
    by_kind = {kind: [line for line in lines if line["kind"] == kind] for kind in kinds}
    assert {line["data"]["id"] for line in by_kind["alert"]} == {"exp-1", "exp-2"}
    assert [(line["alertId"], line["data"]["text"]) for line in by_kind["note"]] == [("exp-1", "Not them.")]
    assert by_kind["assignment"][0]["data"]["assignee"] == "bo@partner.example"
    timeline = Counter((line["alertId"], line["data"]["type"]) for line in by_kind["timeline-entry"])
    assert timeline[("exp-1", "received")] == timeline[("exp-2", "received")] == 1
    assert timeline[("exp-1", "noted")] == timeline[("exp-1", "assigned")] == timeline[("exp-2", "notified")] == 1
    assert by_kind["key"][0]["data"]["keyId"] == reader["keyId"]
    # Never a secret: not the channel's, not a key.
    assert CHANNEL_SECRET not in text and reader["key"] not in text
    assert by_kind["channel"][0]["data"]["secretConfigured"] is True

    # Without --output: on stdout, the same document.
    streamed = await csp_triage("tenant", "export", env=env)
    assert streamed.code == 0, streamed.err
    assert Counter(line["kind"] for line in records(streamed.out)) == Counter(line["kind"] for line in lines)

    # A key that may not read all of it (the tenant's keys: operators only) exports nothing at all.
    refused = await csp_triage("tenant", "export", "--output", str(tmp_path / "partial.jsonl"),
                               env={**env, "CSP_TRIAGE_API_KEY": reader["key"]})
    assert refused.code == 1 and refused.err.startswith("Forbidden")
    assert os.listdir(tmp_path) == ["contoso.jsonl"]

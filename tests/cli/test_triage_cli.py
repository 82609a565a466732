"""The CLI's triage commands (assign, notes, timeline, the assignee filter, bulk actions) as a process,
against the four services running as processes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx

from tests.cli.running import csp_triage, rows_of
from tests.conftest import AUTH
from tests.support.polling import eventually

BO = "bo@partner.example"


async def post_alerts(system, tenant_id: str, *alerts: tuple[str, str]) -> None:
    """Alerts of ``(id, severity)``, detected an hour ago, the first one first."""
    detected = datetime.now(UTC) - timedelta(hours=1)
    async with httpx.AsyncClient(timeout=15, headers=AUTH) as api:
        for offset, (alert_id, severity) in enumerate(alerts):
            when = detected + timedelta(minutes=offset)
            posted = await api.post(f"{system['ingest'].url}/v1/tenants/{tenant_id}/alerts", json={
                "id": alert_id, "displayName": f"Alert {alert_id}", "severity": severity,
                "customerTenantId": "customer-1", "detectedDateTime": when.isoformat()})
            assert posted.status_code == 202, posted.text


async def test_alerts_are_assigned_noted_filtered_by_assignee_and_their_timeline_shown(system, tenant_id, env):
    await post_alerts(system, tenant_id, ("tri-1", "high"), ("tri-2", "low"))

    assigned = await eventually(lambda: csp_triage("alerts", "assign", "tri-1", "tri-2", "--to", BO, env=env),
                                lambda run: run.code == 0, what="both alerts assigned on the write API")
    assert {alert: row[1] for alert, row in rows_of(assigned.out).items()} == {
        "tri-1": f"assigned to {BO}", "tri-2": f"assigned to {BO}"}
    unassigned = await csp_triage("alerts", "assign", "tri-2", "--unassign", env=env)
    assert (unassigned.code, rows_of(unassigned.out)["tri-2"][1]) == (0, "unassigned"), unassigned.err
    neither = await csp_triage("alerts", "assign", "tri-2", env=env)
    assert neither.code == 2 and "--to" in neither.err and "--unassign" in neither.err

    noted = await csp_triage("alerts", "note", "tri-1", "Called the customer: not them.", env=env)
    assert noted.code == 0, noted.err
    assert "Called the customer: not them." in noted.out
    from_stdin = await csp_triage("--json", "alerts", "note", "tri-1", "-", env=env,
                                  stdin="Blocking sign-ins.\nSee the ticket.\n")
    assert json.loads(from_stdin.out)["text"] == "Blocking sign-ins.\nSee the ticket."
    empty = await csp_triage("alerts", "note", "tri-1", "   ", env=env)
    assert empty.code == 1 and empty.err.startswith("Invalid request") and "text" in empty.err

    notes = await csp_triage("alerts", "notes", "tri-1", env=env)
    assert notes.code == 0, notes.err
    lines = notes.out.splitlines()
    assert lines[0].split() == ["ID", "CREATED", "AUTHOR", "TEXT"]
    assert "Blocking sign-ins. See the ticket." in lines[1] and "Called the customer" in lines[2]  # newest first
    paged = json.loads((await csp_triage("alerts", "notes", "tri-1", "--page-size", "1", "--json", env=env)).out)
    assert [note["text"] for note in paged["value"]] == ["Blocking sign-ins.\nSee the ticket.",
                                                         "Called the customer: not them."]

    # The read API learns of assignments from the alert-triage topic.
    mine = await eventually(lambda: csp_triage("alerts", "list", "--assignee", BO, env=env),
                            lambda run: set(rows_of(run.out)) == {"tri-1"}, what="tri-1 listed as Bo's")
    assert rows_of(mine.out)["tri-1"][-1] == BO  # the ASSIGNEE column
    nobodys = await eventually(lambda: csp_triage("alerts", "list", "--assignee", "none", env=env),
                               lambda run: set(rows_of(run.out)) == {"tri-2"}, what="tri-2 listed as nobody's")
    assert nobodys.code == 0
    not_an_address = await csp_triage("alerts", "list", "--assignee", "bo", env=env)
    assert not_an_address.code == 1 and "assignee" in not_an_address.err

    # Its e-mails (skipped: the tenant has no contact) are on the timeline too, whenever the notifier got to them.
    ours = ("noted", "assigned", "received")
    timeline = await eventually(lambda: csp_triage("alerts", "timeline", "tri-1", env=env),
                                lambda run: [line.split()[1] for line in run.out.splitlines()[1:]].count("noted") == 2,
                                what="both notes on tri-1's timeline")
    lines = timeline.out.splitlines()
    assert lines[0].split() == ["TIME", "TYPE", "ACTOR", "SUMMARY"]
    rows = [line for line in lines[1:] if line.split()[1] in ours]
    assert [row.split()[1] for row in rows] == ["noted", "noted", "assigned", "received"]  # newest first
    assert "Blocking sign-ins. See the ticket." in rows[0] and "operator" in rows[0]  # the author: the key's user
    assert f"to {BO}" in rows[2] and "high, active: Alert tri-1 (customer customer-1)" in rows[3]
    document = json.loads((await csp_triage("alerts", "timeline", "tri-1", "--page-size", "2", "--json",
                                            env=env)).out)
    entries = [entry for entry in document["value"] if entry["type"] in ours]
    assert [entry["type"] for entry in entries] == ["noted", "noted", "assigned", "received"]
    assert entries[2]["details"]["assignee"] == BO and "@odata.nextLink" not in document
    unknown = await csp_triage("alerts", "timeline", "no-such-alert", env=env)
    assert unknown.code == 1 and unknown.out == ""


async def test_bulk_actions_by_ids_and_by_a_filter_report_each_alert(system, tenant_id, env):
    await post_alerts(system, tenant_id, ("bulk-1", "high"), ("bulk-2", "high"), ("bulk-3", "low"))

    async def acknowledged():
        return await csp_triage("alerts", "bulk", "acknowledge", "bulk-1", "bulk-2", "no-such-alert", env=env)

    # Each alert once, in the order named, with what was done; an unknown one makes the exit code 1.
    by_ids = await eventually(acknowledged, lambda run: "notFound" in run.out and run.out.count("changed") == 2,
                              what="both alerts acknowledged by ids")
    assert by_ids.code == 1
    assert by_ids.out.splitlines()[0].split() == ["ALERT", "OUTCOME", "DETAIL"]
    assert [row[:2] for row in rows_of(by_ids.out).values()] == [
        ["bulk-1", "changed"], ["bulk-2", "changed"], ["no-such-alert", "notFound"]]
    assert rows_of(by_ids.out)["bulk-1"][2] == "active → investigating"
    assert by_ids.err == "1 of 3 alerts not found: no-such-alert\n"

    resolved = json.loads((await csp_triage("alerts", "bulk", "resolve", "--severity", "low", "--reason", "fraud",
                                            "--json", env=env)).out)
    assert (resolved["action"], resolved["matched"], resolved["changed"]) == ("resolve", 1, 1)
    assert resolved["results"][0]["alertId"] == "bulk-3"

    assigned = await csp_triage("alerts", "bulk", "assign", "--status", "investigating", "--customer", "customer-1",
                                "--to", BO, env=env)
    assert assigned.code == 0, assigned.err
    assert {alert: row[1] for alert, row in rows_of(assigned.out).items()} == {"bulk-1": "changed",
                                                                                "bulk-2": "changed"}

    again = await csp_triage("alerts", "bulk", "acknowledge", "bulk-1", env=env)
    assert again.code == 0 and rows_of(again.out)["bulk-1"][1:] == ["unchanged", "already investigating"]
    both = await csp_triage("alerts", "bulk", "acknowledge", "bulk-1", "--status", "active", env=env)
    assert both.code == 2 and "not both" in both.err
    neither = await csp_triage("alerts", "bulk", "acknowledge", env=env)
    assert neither.code == 2 and "--status" in neither.err

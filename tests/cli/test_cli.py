"""The operator CLI (``csp-triage``) as a process, against the four services running as processes."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import click
import httpx
from click.testing import CliRunner

from cli.main import cli
from tests.cli.running import INSTALLED, csp_triage, environment, rows_of, without
from tests.conftest import AUTH
from tests.support.polling import eventually
from tests.support.processes import free_port


def test_every_command_says_what_it_does():
    def commands(group: click.Group, path: tuple[str, ...] = ()):
        for name, command in group.commands.items():
            yield (*path, name), command
            if isinstance(command, click.Group):
                yield from commands(command, (*path, name))

    runner = CliRunner()
    for path, command in [((), cli), *commands(cli)]:
        shown = runner.invoke(cli, [*path, "--help"], env={"CSP_TRIAGE_API_KEY": "secret-key"})
        assert shown.exit_code == 0, (path, shown.output)
        assert command.get_short_help_str().strip(), f"{path} has no help"
        assert "secret-key" not in shown.output  # a key is never shown, not even as an option's default


async def test_the_installed_command_answers_help():
    shown = await csp_triage("--help", env=environment(), program=INSTALLED)
    assert shown.code == 0, shown.err
    for group in ("alerts", "deliveries", "keys", "webhook-secrets", "score", "response-time", "tenant"):
        assert group in shown.out


async def test_alerts_are_listed_shown_acknowledged_and_resolved(system, tenant_id, env):
    detected = datetime.now(UTC) - timedelta(hours=3)
    async with httpx.AsyncClient(timeout=15, headers=AUTH) as api:
        for alert_id, title, severity, hours_ago in (("cli-1", "Impossible travel", "high", 3),
                                                     ("cli-2", "Mass download", "low", 2)):
            posted = await api.post(f"{system['ingest'].url}/v1/tenants/{tenant_id}/alerts", json={
                "id": alert_id, "displayName": title, "severity": severity, "customerTenantId": "customer-1",
                "detectedDateTime": (detected + timedelta(hours=3 - hours_ago)).isoformat()})
            assert posted.status_code == 202, posted.text

    listed = await eventually(lambda: csp_triage("alerts", "list", env=env),
                              lambda run: "cli-1" in run.out and "cli-2" in run.out, what="both alerts listed")
    assert listed.code == 0, listed.err
    assert listed.out.split()[:4] == ["ID", "STATUS", "SEVERITY", "TITLE"]
    assert rows_of(listed.out)["cli-1"][1:4] == ["active", "high", "Impossible travel"]

    # --json is the API's document; paging follows the API's next link, up to --limit.
    every = json.loads((await csp_triage("--json", "alerts", "list", "--page-size", "1", env=env)).out)
    assert [alert["id"] for alert in every["value"]] == ["cli-2", "cli-1"]  # newest first
    assert "@odata.nextLink" not in every
    first = json.loads((await csp_triage("alerts", "list", "--limit", "1", "--json", env=env)).out)
    assert [alert["id"] for alert in first["value"]] == ["cli-2"] and "@odata.nextLink" in first

    acknowledged = await csp_triage("alerts", "acknowledge", "cli-1", env=env)
    assert acknowledged.code == 0, acknowledged.err
    assert rows_of(acknowledged.out)["cli-1"][1] == "investigating"
    resolved = await csp_triage("alerts", "resolve", "cli-2", "--reason", "fraud", env=env)
    assert resolved.code == 0, resolved.err
    assert rows_of(resolved.out)["cli-2"][1] == "resolved (fraud)"

    async def shown(alert_id: str) -> dict:
        return json.loads((await csp_triage("alerts", "show", alert_id, "--json", env=env)).out)

    investigating = await eventually(lambda: shown("cli-1"), lambda alert: alert["status"] == "investigating",
                                     what="cli-1 investigating on the read API")
    assert investigating["respondedBy"] is not None and investigating["latencyHours"] is not None
    await eventually(lambda: shown("cli-2"), lambda alert: alert["status"] == "resolved", what="cli-2 resolved")
    table = await csp_triage("alerts", "show", "cli-1", env=env)
    assert table.code == 0 and "displayName" in table.out and "Impossible travel" in table.out
    still_active = await csp_triage("alerts", "list", "--status", "active", env=env)
    assert rows_of(still_active.out) == {}


async def test_an_api_problem_exits_1_with_its_title_on_one_line(system, tenant_id, env):
    unknown = await csp_triage("alerts", "show", "no-such-alert", env=env)
    assert (unknown.code, unknown.out) == (1, "")
    assert unknown.err == f"Alert not found: no alert 'no-such-alert' for tenant '{tenant_id}'\n"

    # One request per alert, each reported; one failure makes the exit code 1.
    acknowledged = await csp_triage("alerts", "acknowledge", "no-such-alert", env=env)
    assert acknowledged.code == 1
    assert "no-such-alert" in acknowledged.err and len(acknowledged.err.splitlines()) == 1

    delivery = str(uuid.uuid4())
    redelivered = await csp_triage("deliveries", "redeliver", delivery, env=env)
    assert (redelivered.code, redelivered.err) == (1, f"Not found: no delivery {delivery} for tenant {tenant_id}\n")

    stranger = await csp_triage("score", env={**env, "CSP_TRIAGE_API_KEY": "not-a-key"})
    assert stranger.code == 1 and stranger.err.startswith("Unauthorized")
    keyless = await csp_triage("score", env=without(env, "CSP_TRIAGE_API_KEY"))
    assert keyless.code == 1 and keyless.err.startswith("Unauthorized") and "set CSP_TRIAGE_API_KEY" in keyless.err


async def test_an_unreachable_api_exits_2_naming_its_url_and_a_missing_tenant_is_bad_usage():
    nowhere = f"http://127.0.0.1:{free_port()}"
    unreachable = await csp_triage("alerts", "list", env=environment(read_url=nowhere, tenant="t", api_key="k"))
    assert unreachable.code == 2
    assert unreachable.err.startswith(f"cannot reach {nowhere}") and len(unreachable.err.splitlines()) == 1

    no_tenant = await csp_triage("score", env=environment(read_url=nowhere, api_key="k"))
    assert no_tenant.code == 2 and "CSP_TRIAGE_TENANT" in no_tenant.err


async def test_keys_are_created_listed_and_revoked(system, tenant_id, env):
    created = json.loads((await csp_triage("keys", "create", "--role", "securityReader",
                                           "--user", "cli@partner.example", "--json", env=env)).out)
    assert created["tenantId"] == tenant_id and created["key"]
    # The new key works on the read API, and is listed (never the key itself).
    as_reader = await csp_triage("alerts", "list", env={**env, "CSP_TRIAGE_API_KEY": created["key"]})
    assert as_reader.code == 0, as_reader.err
    listed = await csp_triage("keys", "list", env=env)
    assert rows_of(listed.out)[created["keyId"]][1:4] == [tenant_id, "securityReader", "cli@partner.example"]
    assert created["key"] not in listed.out

    revoked = await csp_triage("keys", "revoke", created["keyId"], env=env)
    assert revoked.code == 0, revoked.err
    after = json.loads((await csp_triage("--json", "keys", "list", env=env)).out)
    assert created["keyId"] not in [key["keyId"] for key in after["value"]]

    # A key of every tenant is made only when asked for by name.
    unscoped = await csp_triage("keys", "create", "--role", "securityReader", "--user", "x",
                                env=without(env, "CSP_TRIAGE_TENANT"))
    assert unscoped.code == 2 and "--every-tenant" in unscoped.err


async def test_score_response_time_and_dead_deliveries_of_a_tenant(system, tenant_id, env):
    score = await csp_triage("score", env=env)
    assert score.code == 0, score.err
    assert "12.5" in score.out and "securityAlertsPromptlyResolved" in score.out
    document = json.loads((await csp_triage("score", "--json", env=env)).out)
    assert document["score"]["currentScore"] == 12.5
    assert "securityAlertsPromptlyResolved" in [r["requirementType"] for r in document["requirements"]]

    figures = json.loads((await csp_triage("response-time", "--json", env=env)).out)
    assert figures["windowDays"] == 30 and figures["compliant"] is True
    assert "averageResponseTimeInHours" in (await csp_triage("response-time", env=env)).out

    dead = await csp_triage("deliveries", "list", "--state", "dead", env=env)
    assert (dead.code, dead.out.split()[:3]) == (0, ["ID", "ALERT", "KIND"]) and rows_of(dead.out) == {}

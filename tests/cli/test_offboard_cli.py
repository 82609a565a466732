"""``csp-triage tenant offboard``: a dry run changes nothing, ``--yes`` deletes the tenant, against the four
services running as processes."""

from __future__ import annotations

import json

import httpx

from tests.cli.running import csp_triage, rows_of
from tests.conftest import AUTH


async def test_a_dry_run_changes_nothing_and_yes_offboards_the_tenant(system, tenant_id, env):
    contact_url = f"{system['ingest'].url}/v1/tenants/{tenant_id}/security-contact"
    contact = {"name": "SOC", "email": "soc@partner.example", "phone": "+44 20 7946 0000"}
    async with httpx.AsyncClient(timeout=15, headers=AUTH) as api:
        assert (await api.put(contact_url, json=contact)).status_code in (200, 201)

        # Nothing is deleted by omission.
        neither = await csp_triage("tenant", "offboard", env=env)
        assert neither.code == 2 and "--dry-run" in neither.err and "--yes" in neither.err
        both = await csp_triage("tenant", "offboard", "--dry-run", "--yes", env=env)
        assert both.code == 2

        dry = json.loads((await csp_triage("tenant", "offboard", "--dry-run", "--json", env=env)).out)
        assert (dry["tenantId"], dry["dryRun"], dry["offboardedDateTime"]) == (tenant_id, True, None)
        assert dry["rows"]["ingest.security_contacts"] == 1 and dry["tombstones"]["security-contacts"] == 1
        assert (await api.get(contact_url)).status_code == 200  # still there
        shown = await csp_triage("tenant", "offboard", "--dry-run", env=env)
        assert shown.code == 0, shown.err
        assert rows_of(shown.out)["ingest.security_contacts"] == ["ingest.security_contacts", "1"]

        # --yes confirms the tenant set (the API's confirmTenantId).
        done = await csp_triage("tenant", "offboard", "--yes", env=env)
        assert done.code == 0, done.err
        assert f"tenant {tenant_id} offboarded" in done.err
        assert (await api.get(contact_url)).status_code == 404
        assert (await api.put(contact_url, json=contact)).status_code == 410  # its writes refused from now on
    refused = await csp_triage("alerts", "note", "any-alert", "too late", env=env)
    assert refused.code == 1 and refused.err.startswith(f"Tenant offboarded: tenant {tenant_id} was offboarded at")

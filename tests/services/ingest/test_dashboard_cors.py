"""The dashboard (served by the read API) writes to the write API from the browser: a cross-origin
request the browser makes only if the write API names the dashboard's origin (#14, CORS).

The write API in-process: a preflight from the dashboard's origin is answered before any key is asked
for; the answer to the real request (a problem too) carries the origin; any other origin gets no
CORS header, so the browser refuses to let its page read the answer. Bad origins stop the start-up.
"""

from __future__ import annotations

import pytest

from services.ingest.config import Settings
from tests.conftest import AUTH
from tests.services.ingest.support import running_ingest

DASHBOARD = "http://dashboard.example:8082"


def preflight(origin: str, method: str = "PATCH") -> dict[str, str]:
    return {"Origin": origin, "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization,content-type"}


async def test_the_dashboards_origin_may_write_and_read_the_answers_and_no_other(test_env, tenant_id, monkeypatch):
    monkeypatch.setenv("DASHBOARD_ORIGINS", f"{DASHBOARD}, https://triage.partner.example")
    async with running_ingest() as client:
        alert_url = f"/v1/tenants/{tenant_id}/alerts/a-1"

        allowed = await client.options(alert_url, headers=preflight(DASHBOARD))
        assert allowed.status_code == 200, allowed.text
        assert allowed.headers["access-control-allow-origin"] == DASHBOARD
        assert "PATCH" in allowed.headers["access-control-allow-methods"]
        assert "authorization" in allowed.headers["access-control-allow-headers"].lower()

        # The real request's answer is readable by the page: a problem (no such alert) as much as a success.
        missing = await client.patch(alert_url, json={"status": "investigating"},
                                     headers={**AUTH, "Origin": DASHBOARD})
        assert missing.status_code == 404, missing.text
        assert missing.headers["access-control-allow-origin"] == DASHBOARD
        unauthenticated = await client.get(f"/v1/tenants/{tenant_id}/connections/graph", headers={"Origin": DASHBOARD})
        assert unauthenticated.status_code == 401
        assert unauthenticated.headers["access-control-allow-origin"] == DASHBOARD

        refused = await client.options(alert_url, headers=preflight("http://evil.example"))
        assert refused.status_code == 400
        assert "access-control-allow-origin" not in refused.headers
        elsewhere = await client.get("/v1/keys", headers={**AUTH, "Origin": "http://evil.example"})
        assert "access-control-allow-origin" not in elsewhere.headers


def test_by_default_the_origin_is_the_read_apis_dashboard_and_in_development_its_twin(monkeypatch):
    for name in ("DASHBOARD_ORIGINS", "PUBLIC_BASE_URL", "ENVIRONMENT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ENVIRONMENT", "development")
    monkeypatch.setenv("PUBLIC_BASE_URL", "http://127.0.0.1:8082/")
    assert Settings().dashboard_origin_list == ["http://127.0.0.1:8082", "http://localhost:8082"]
    monkeypatch.setenv("PUBLIC_BASE_URL", "https://triage.partner.example/app")
    assert Settings().dashboard_origin_list == ["https://triage.partner.example"]


@pytest.mark.parametrize("origins", ["*", "http://dash.example/path", "dash.example:8082", "ftp://dash.example"])
def test_an_origin_that_is_none_is_refused_at_start_up(monkeypatch, origins):
    monkeypatch.setenv("ENVIRONMENT", "development")
    monkeypatch.setenv("DASHBOARD_ORIGINS", origins)
    with pytest.raises(ValueError, match="is not an origin"):
        Settings()

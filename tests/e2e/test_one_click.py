"""One-click responses end to end, every service a real process: the security contact's e-mail carries
signed links; a mail scanner opening one changes nothing; confirming records the response as the
contact and stops the clock on the read API; a replay and an altered link change nothing."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

import httpx

from tests.conftest import AUTH
from tests.support.kafka import read_topic
from tests.support.polling import eventually

CONTACT = "soc@partner.example"
# The alert e-mail's plain text offers each response as "- <label>: <link>".
OFFERED = re.compile(r"^- (.+): (\S+)$", re.MULTILINE)
FORM_POST = {"Content-Type": "application/x-www-form-urlencoded"}  # what the page's form sends (no fields)


def offered_links(mail: EmailMessage) -> dict[str, str]:
    text = mail.get_body(("plain",)).get_content().replace("\r\n", "\n")  # SMTP line ends
    return dict(OFFERED.findall(text))


def at_write_api(system, link: str) -> str:
    """``link`` as the e-mail gives it: the ``system`` fixture's notifier signs its links for this
    run's write API (``WRITE_API_PUBLIC_URL``), so it is followed as it is."""
    assert link.startswith(f"{system['ingest'].url}/v1/actions/"), link
    return link


def altered(url: str) -> str:
    """``url`` with one character of its token's payload changed."""
    token_at = url.rindex("/") + 1
    i = token_at + (len(url) - token_at) // 3
    return f"{url[:i]}{'A' if url[i] != 'A' else 'B'}{url[i + 1:]}"


async def test_a_link_from_the_email_shows_a_page_then_records_the_contacts_response_once(
    system, tenant_id, system_mail, kafka_bootstrap, topic_prefix
):
    write, read = system["ingest"].url, system["scoring"].url
    base = f"/v1/tenants/{tenant_id}"
    detected = datetime.now(UTC) - timedelta(hours=2)
    async with httpx.AsyncClient(timeout=15, headers=AUTH) as api, httpx.AsyncClient(timeout=15) as browser:
        contact = await api.put(f"{write}{base}/security-contact", json={
            "name": "SOC", "email": CONTACT, "phone": "+44 20 7946 0000"})
        assert contact.status_code in (200, 201), contact.text
        posted = await api.post(f"{write}{base}/alerts", json={
            "id": "click-1", "displayName": "Impossible travel", "severity": "high", "alertType": "unusualActivity",
            "customerTenantId": "customer-1", "detectedDateTime": detected.isoformat()})
        assert posted.status_code == 202, posted.text

        [mail] = await eventually(lambda: system_mail.mail.for_tenant(tenant_id, "alert"), interval=0.2,
                                  what="the alert e-mail to the security contact")
        assert mail["To"] == CONTACT
        links = offered_links(mail)
        assert list(links) == ["Acknowledge", "Resolve: legitimate", "Resolve: fraud", "Resolve: ignore"], links
        acknowledge = at_write_api(system, links["Acknowledge"])

        async def alert_on_read_api() -> dict:
            answer = await api.get(f"{read}{base}/alerts/click-1")
            return answer.json() if answer.status_code == 200 else {}

        before = await eventually(alert_on_read_api, what="the alert on the read API")
        assert before["status"] == "active" and before["respondedBy"] is None

        # A mail scanner (or the recipient) opens the link: a page, and no change, however often.
        for _ in range(2):
            page = await browser.get(acknowledge)
            assert page.status_code == 200, page.text
            assert page.headers["content-type"].startswith("text/html")
            assert '<form method="post">' in page.text and "Confirm: Acknowledge" in page.text
            assert CONTACT in page.text and "Impossible travel" in page.text
        assert (await browser.head(acknowledge)).status_code == 200
        unchanged = await alert_on_read_api()
        assert unchanged["status"] == "active" and unchanged["respondedBy"] is None

        # Confirmed from the page: recorded as the contact's response (had a GET recorded anything,
        # this would find the alert acknowledged already and say there is nothing to change).
        confirmed = await browser.post(acknowledge, content=b"", headers=FORM_POST)
        assert confirmed.status_code == 200, confirmed.text
        assert "<h1>Recorded</h1>" in confirmed.text and CONTACT in confirmed.text

        answered = await eventually(alert_on_read_api, lambda alert: alert.get("respondedBy") is not None,
                                    what="the response on the read API")
        assert answered["status"] == "investigating" and answered["respondedBy"] == CONTACT
        assert 1.9 < answered["latencyHours"] < 2.5, answered

        # A replay (a double click, a forwarded link) changes nothing: a page, or a problem for JSON.
        replayed = await browser.post(acknowledge, content=b"", headers=FORM_POST)
        assert replayed.status_code == 409 and replayed.headers["content-type"].startswith("text/html")
        as_json = await browser.post(acknowledge, headers={"Accept": "application/json"})
        assert as_json.status_code == 409
        assert as_json.headers["content-type"].startswith("application/problem+json")
        assert (await browser.get(acknowledge)).status_code == 409

        # A link with one character changed: refused, whichever the method.
        forged = altered(acknowledge)
        assert forged != acknowledge
        for method in ("GET", "POST"):
            refused = await browser.request(method, forged)
            assert refused.status_code == 400, (method, refused.text)
            assert "This link is not valid" in refused.text

        # Another response from the same e-mail is recorded after it: the first response still counts.
        fraud = at_write_api(system, links["Resolve: fraud"])
        resolved = await browser.post(fraud, content=b"", headers=FORM_POST)
        assert resolved.status_code == 200 and "<h1>Recorded</h1>" in resolved.text, resolved.text
        final = await eventually(alert_on_read_api, lambda alert: alert.get("status") == "resolved",
                                 what="the resolution on the read API")
        assert (final["respondedBy"], final["respondedDateTime"]) == (CONTACT, answered["respondedDateTime"])

    # The write API published the acknowledgement once, then the resolution: the replay and the
    # altered link added nothing between them (the outbox publishes in order).
    records = await read_topic(kafka_bootstrap, f"{topic_prefix}alerts", predicate=lambda r: (
        r["headers"].get("tenantId") == tenant_id and r["headers"].get("eventType") == "alert-updated"))
    updates = [r["value"] for r in records]
    assert [u["alert"]["status"] for u in updates] == ["investigating", "resolved"], updates
    assert {u["actor"]["id"] for u in updates} == {CONTACT}

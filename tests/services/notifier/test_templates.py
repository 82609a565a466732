"""The e-mails from Jinja2 templates: shipped in the package, overridable from NOTIFIER_TEMPLATE_DIR,
HTML autoescaped, every template loaded and rendered with sample data at start-up (a broken one stops
the process, naming the file)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.notifier import domain
from services.notifier.config import Settings
from services.notifier.domain import Kind
from services.notifier.templates import EmailTemplates, TemplateProblem
from services.notifier.transports import Transports
from shared.action_links import Action, read_action_link
from shared.events import AlertCreated, SpendingBudgetThresholdReached
from shared.wire import utcnow
from tests.services.notifier.helpers import alert_created
from tests.support.processes import REPO

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
LINKS = domain.Links("https://triage.example/?tenant=t1&alert=a1", "https://learn.microsoft.com/help")


def event(**fields) -> AlertCreated:
    return alert_created("t1", "a1", detectedDateTime="2026-11-27T08:00:00Z", **fields)


def spending() -> SpendingBudgetThresholdReached:
    return SpendingBudgetThresholdReached(
        tenant_id="t1", customer_tenant_id="c1", customer_name="Contoso", month="2026-11", budget=1000, spend=812.5)


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


# --- shipped and overridden ----------------------------------------------------------------------------


def test_every_kind_of_email_renders_from_the_shipped_templates():
    for kind, prefix, lead in (
        (Kind.alert, "", "A new security alert needs a response."),
        (Kind.reminder, "Reminder: ", "Reminder: this alert has had no response"),
        (Kind.escalation, "Escalation: ", "Escalation: this alert is still unanswered"),
    ):
        email = domain.alert_email(kind, event(), LINKS, NOW, 24 * 3600)
        assert email.subject == f"[high] {prefix}Unusual activity a1"
        assert email.text.startswith(lead) and f"<p>{lead}" in email.html
        assert "Time left before the 24-hour limit: 20 h 00 min left" in email.text
        assert email.html.startswith("<html>") and email.html.rstrip().endswith("</html>")
    budget = domain.spending_email(spending(), "https://triage.example")
    assert budget.subject == "[budget] Contoso reached 80% of its 2026-11 budget"
    assert "Spend: 812.50 (81% of the budget)" in budget.text
    assert '<a href="https://triage.example">Dashboard</a>' in budget.html


def test_a_template_in_the_override_directory_replaces_the_shipped_one_and_the_others_stay(tmp_path):
    write(tmp_path, "alert.subject.j2", "{{ alert.severity | upper }} on {{ alert.customer }}: {{ alert.title }}\n")
    templates = EmailTemplates(tmp_path)
    email = domain.alert_email(Kind.alert, event(displayName="Two\nlines"), LINKS, NOW, 86400, templates)
    assert email.subject == "HIGH on cust-1: Two lines"  # still one line (domain.header_text)
    shipped = domain.alert_email(Kind.alert, event(displayName="Two\nlines"), LINKS, NOW, 86400)
    assert (email.text, email.html) == (shipped.text, shipped.html)
    assert templates.overridden() == ["alert.subject.j2"]


def test_html_is_autoescaped_in_an_override_too_and_plain_text_is_not(tmp_path):
    write(tmp_path, "alert.html.j2", "<p>{{ alert.title }}</p>")
    write(tmp_path, "alert.txt.j2", "{{ alert.title }}")
    title = "<script>alert('x')</script> & co"
    email = domain.alert_email(Kind.alert, event(displayName=title), LINKS, NOW, 86400, EmailTemplates(tmp_path))
    assert email.html == "<p>&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; co</p>"
    assert email.text == title


# --- refused at the check ------------------------------------------------------------------------------


def test_a_template_with_a_syntax_error_is_refused_naming_the_file_and_line(tmp_path):
    broken = write(tmp_path, "alert.txt.j2", "Alert: {{ alert.title }}\n{% if alert.is_test %}\nTest\n")
    with pytest.raises(TemplateProblem) as refused:
        EmailTemplates(tmp_path).check(domain.sample_contexts())
    assert str(broken) in str(refused.value) and "line 3" in str(refused.value)
    assert "endif" in str(refused.value)


def test_a_template_naming_an_unknown_variable_is_refused_at_the_check(tmp_path):
    broken = write(tmp_path, "spending.html.j2", "<p>{{ customer }} spent {{ spnd }}</p>")
    with pytest.raises(TemplateProblem) as refused:
        EmailTemplates(tmp_path).check(domain.sample_contexts())
    assert str(broken) in str(refused.value) and "'spnd' is undefined" in str(refused.value)


def test_an_unknown_variable_in_a_branch_of_one_kind_only_is_refused_too(tmp_path):
    # StrictUndefined fails only where rendering goes: the samples take every kind of alert e-mail.
    write(tmp_path, "alert.subject.j2", "{% if kind == 'escalation' %}{{ escalated_to }}{% endif %}x")
    with pytest.raises(TemplateProblem, match="'escalated_to' is undefined"):
        EmailTemplates(tmp_path).check(domain.sample_contexts())


def test_the_shipped_templates_pass_the_check():
    EmailTemplates(None).check(domain.sample_contexts())


def test_a_broken_template_stops_the_notifier_at_start_with_exit_code_2_naming_the_file(tmp_path):
    broken = write(tmp_path, "alert.html.j2", "<p>{{ alert.title }</p>")
    started = subprocess.run(
        [sys.executable, "-m", "services.notifier"], cwd=REPO, capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin", "ENVIRONMENT": "development", "NOTIFIER_TEMPLATE_DIR": str(tmp_path),
             "NOTIFIER_PORT": "1"},  # never bound: the check comes first
    )
    assert started.returncode == 2, started.stderr
    assert f"invalid templates: {broken}, line 1:" in started.stderr
    assert "Traceback" not in started.stderr


def test_a_template_directory_that_does_not_exist_is_a_bad_setting(tmp_path):
    started = subprocess.run(
        [sys.executable, "-m", "services.notifier"], cwd=REPO, capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin", "ENVIRONMENT": "development",
             "NOTIFIER_TEMPLATE_DIR": str(tmp_path / "missing")},
    )
    assert started.returncode == 2 and "NOTIFIER_TEMPLATE_DIR" in started.stderr, started.stderr


# --- one-click response links ---------------------------------------------------------------------------

KEYS = ["new-action-link-key-for-the-tests-0001", "old-action-link-key-for-the-tests-0002"]
LINK = re.compile(r"^- (.+): (\S+)$", re.MULTILINE)


def mail_settings() -> Settings:
    return Settings(environment="development", write_api_public_url="https://triage.example/api/",
                    action_link_keys=",".join(KEYS), requirement_help_url="https://help.example/",
                    public_base_url="https://triage.example")


def delivery_row(kind: str, channel: str, payload: str) -> dict:
    return {"delivery_id": uuid.uuid4(), "tenant_id": "t1", "subject_id": "a/1", "alert_id": "a/1",
            "channel": channel, "kind": kind, "payload": payload, "attempts": 1, "redeliveries": 0}


def test_every_alert_email_carries_the_four_action_links_signed_for_its_recipient():
    transports = Transports(mail_settings(), pool=None, http=None)
    payload = alert_created("t1", "a/1").model_dump_json(by_alias=True)
    for kind, channel, recipient in (
        ("alert", domain.CONTACT_EMAIL, "soc@partner.example"),
        ("reminder", domain.CONTACT_EMAIL, "soc@partner.example"),
        ("escalation", domain.ESCALATION_EMAIL, "duty-manager@partner.example"),
    ):
        mail = transports.compose(delivery_row(kind, channel, payload), recipient)
        text = mail.get_body(("plain",)).get_content()
        html = mail.get_body(("html",)).get_content()
        offered = LINK.findall(text)
        assert [label for label, _ in offered] == [
            "Acknowledge", "Resolve: legitimate", "Resolve: fraud", "Resolve: ignore"], text
        links = []
        for label, url in offered:
            assert url.startswith("https://triage.example/api/v1/actions/"), url
            assert f'<a href="{url}"' in html and f">{label}</a>" in html  # the same links in both parts
            # Signed with the first key: it reads with that key alone.
            links.append(read_action_link(KEYS[:1], url.rpartition("/")[2], max_age_seconds=60, now=utcnow()))
        assert [(link.tenant_id, link.alert_id, link.recipient) for link in links] == [
            ("t1", "a/1", recipient)] * 4
        assert [link.action for link in links] == list(Action)
        assert len({link.link_id for link in links}) == 4  # each link used once, on its own
        assert "https://triage.example/dashboard?tenant=t1&alert=a%2F1" in text  # the dashboard link stays


def test_the_spending_email_and_the_webhook_body_carry_no_action_links():
    transports = Transports(mail_settings(), pool=None, http=None)
    mail = transports.compose(delivery_row("spending", domain.CONTACT_EMAIL, spending().model_dump_json()),
                              "soc@partner.example")
    for part in ("plain", "html"):
        assert "/v1/actions/" not in mail.get_body((part,)).get_content()
    links = replace(LINKS, actions=(domain.ActionChoice("acknowledge", "Acknowledge", "https://x.example/a"),))
    body = domain.webhook_body(uuid.uuid4(), Kind.alert, event(), links, 86400)
    assert json.loads(body)["links"] == {"dashboard": LINKS.dashboard, "help": LINKS.help}

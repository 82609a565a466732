"""The notifier's rules, without I/O: routing, delivery identity, retry policy, message content.

Routing (decided here, documented in docs/notifier.md): a channel holds a list of routes; an alert
goes to the channel when ANY route matches; within a route every criterion given must match (an
empty or absent list matches everything); test alerts match only routes with ``includeTest``. A
channel with no routes receives every non-test alert. Channels flagged ``escalation`` receive
escalations (by the same routes) and nothing else.
"""

from __future__ import annotations

import html
import json
import math
import random
import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import ValidationError

from shared.alerts import Alert, AlertStatus
from shared.channels import Route
from shared.dead_letters import DeadLetter, dead_delivery
from shared.events import AlertCreated, AlertUpdated, ChannelConfig, DeliveryView, SpendingBudgetThresholdReached
from shared.responses import first_partner_response
from shared.sealed import SealBroken, unseal
from shared.wire import format_utc

CONTACT_EMAIL = "email:contact"
ESCALATION_EMAIL = "email:escalation"
WEBHOOK_PREFIX = "webhook:"

# Fixed namespace: delivery ids (and so Idempotency-Keys) stay the same across processes and restarts.
_DELIVERY_NAMESPACE = uuid.UUID("3f0c4b8e-9a51-4a53-9d5e-6b1c2f7a8d10")
# Fixed namespace of the ids of dead letters: one per death of a delivery, whoever publishes it.
_DEAD_LETTER_NAMESPACE = uuid.UUID("b5e0f2a4-17c3-4d8e-a1f6-0c2d9e8b7a31")


class Kind(StrEnum):
    alert = "alert"
    reminder = "reminder"
    escalation = "escalation"
    spending = "spending"


def webhook_channel(name: str) -> str:
    return f"{WEBHOOK_PREFIX}{name}"


def delivery_id(tenant_id: str, subject_id: str, channel: str, kind: str) -> uuid.UUID:
    """One id per (tenant, subject, channel, kind): the delivery log's key and the Idempotency-Key."""
    return uuid.uuid5(_DELIVERY_NAMESPACE, "\x1f".join((tenant_id, subject_id, channel, kind)))


def spending_subject(event: SpendingBudgetThresholdReached) -> str:
    # One notification per customer and month, whatever the number of events saying so.
    return f"spending:{event.customer_tenant_id}:{event.month}"


# --- routing -----------------------------------------------------------------------------------------
# A channel's Route (the rule a partner sets) is in shared/channels.py: ingest accepts it, this routes by it.


@dataclass(frozen=True)
class ChannelRule:
    name: str
    routes: tuple[Route, ...]
    escalation: bool = False


@dataclass(frozen=True)
class OpenChannel:
    """A channel as the notifier keeps it: its secrets opened (it signs with them), its routes read."""

    url: str
    secret: str
    previous_secret: str | None
    previous_secret_until: datetime | None
    routes: tuple[Route, ...]
    escalation: bool


class UnusableChannel(ValueError):
    """A channel event the notifier can never apply: a secret none of its keys opens, a route it cannot read."""


def open_channel(config: ChannelConfig, sealing_keys: Sequence[str]) -> OpenChannel:
    """``config`` with its sealed secrets opened with ``sealing_keys``; UnusableChannel if it cannot be."""
    try:
        secret = unseal(config.secret, sealing_keys)
        previous = unseal(config.previous_secret, sealing_keys) if config.previous_secret else None
    except SealBroken as exc:
        raise UnusableChannel(f"a secret of the channel: {exc}") from exc
    try:
        routes = tuple(Route.model_validate(route) for route in config.routes)
    except ValidationError as exc:
        raise UnusableChannel(f"a route of the channel: {' '.join(str(exc).split())}") from exc
    return OpenChannel(config.url, secret, previous, config.previous_secret_until, routes, config.escalation)


def route_matches(route: Route, alert: Alert) -> bool:
    if alert.is_test and not route.include_test:
        return False
    severity = alert.severity.value if alert.severity else None
    if route.severities and severity not in route.severities:
        return False
    if route.alert_types and alert.alert_type not in route.alert_types:
        return False
    if route.customer_tenant_ids and alert.customer_tenant_id not in route.customer_tenant_ids:
        return False
    return True


def channel_wants(routes: Iterable[Route], alert: Alert) -> bool:
    routes = list(routes)
    if not routes:
        return not alert.is_test
    return any(route_matches(r, alert) for r in routes)


def alert_channels(channels: Iterable[ChannelRule], alert: Alert) -> list[str]:
    """Delivery channels of a new alert: the security contact and the matching ticketing channels."""
    return [CONTACT_EMAIL] + sorted(
        webhook_channel(c.name) for c in channels if not c.escalation and channel_wants(c.routes, alert)
    )


def escalation_channels(
    channels: Iterable[ChannelRule], alert: Alert, *, escalation_email: bool
) -> list[str]:
    """The escalation route: matching escalation channels and ESCALATION_EMAIL; the contact if neither."""
    found = sorted(
        webhook_channel(c.name) for c in channels if c.escalation and channel_wants(c.routes, alert)
    )
    if escalation_email:
        found.append(ESCALATION_EMAIL)
    return found or [CONTACT_EMAIL]


def reminder_channels() -> list[str]:
    return [CONTACT_EMAIL]


# --- timing ------------------------------------------------------------------------------------------


def detection_time(event: AlertCreated) -> datetime:
    """When the response clock started (SPEC §3): detection, else first ingestion."""
    return event.alert.detected_date_time or event.ingested_date_time


def timer_due_times(
    event: AlertCreated, reminder_after: float, escalation_after: float
) -> dict[Kind, datetime]:
    start = detection_time(event)
    return {
        Kind.reminder: start + timedelta(seconds=reminder_after),
        Kind.escalation: start + timedelta(seconds=escalation_after),
    }


def arrived_open(event: AlertCreated) -> bool:
    """The alert was neither resolved nor answered by a partner when first seen."""
    return event.alert.status is not AlertStatus.resolved and not first_partner_response(event.status_changes)


def needs_timers(event: AlertCreated) -> bool:
    """Whether a reminder and an escalation may follow this alert.

    Not for a test alert (it needs no response: SPEC §3 leaves it out of the response time), nor
    for one that arrives already resolved or already answered by a partner (an import of old
    alerts must not send a storm of reminders).
    """
    return not event.alert.is_test and arrived_open(event)


def why_timers_end(event: AlertUpdated) -> str | None:
    """Why this change ends the need for a reminder and an escalation; None if it does not.

    A partner response stops the clock; a resolution by anyone, the system included, closes the
    alert: nobody is left to remind (a later reopening does not bring the timers back).
    """
    if first_partner_response(event.status_changes):
        return "a partner response"
    if event.alert.status is AlertStatus.resolved:
        return "the alert was resolved"
    return None


def timers_for_new_alert(
    event: AlertCreated, reminder_after: float, escalation_after: float, now: datetime
) -> dict[Kind, datetime]:
    """The reminder and escalation a newly seen alert gets (none unless ``needs_timers``); for one
    whose escalation is already due on arrival, only the escalation: a reminder and an escalation
    at once say the same thing twice.
    """
    if not needs_timers(event):
        return {}
    due = timer_due_times(event, reminder_after, escalation_after)
    if due[Kind.escalation] <= now:
        del due[Kind.reminder]
    return due


def worth_sending_late(kind: Kind, payload: str, *, closed_since: bool) -> bool:
    """Whether an e-mail skipped for want of a contact is still worth sending now that one arrived.

    A spending notification is; an e-mail about an alert only if the alert is still open: it arrived
    neither resolved nor answered, and was not answered or resolved since (``closed_since``). The
    caller also leaves out e-mails skipped longer ago than CONTACT_CATCH_UP_SECONDS.
    """
    if kind is Kind.spending:
        return True
    if closed_since:
        return False
    try:
        return arrived_open(AlertCreated.model_validate_json(payload))
    except ValueError:  # pydantic's ValidationError: a row no send could use either
        return False


def time_left_text(deadline: datetime, now: datetime) -> str:
    seconds = (deadline - now).total_seconds()
    minutes = int(abs(seconds) // 60)
    span = f"{minutes // 60} h {minutes % 60:02d} min"
    return f"{span} left" if seconds >= 0 else f"overdue by {span}"


# --- retry policy ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attempt:
    """What one send produced."""

    outcome: Literal["delivered", "transient", "permanent", "skipped"]
    error: str | None = None
    status_code: int | None = None
    retry_after: float | None = None  # seconds the receiver asked us to wait
    recipient: str | None = None
    awaits_contact: bool = False  # skipped because the tenant has no security contact (yet)


NO_CONTACT = Attempt("skipped", "no security contact", awaits_contact=True)


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int
    base_seconds: float
    max_seconds: float
    max_retry_after_seconds: float


@dataclass(frozen=True)
class Decision:
    state: Literal["delivered", "pending", "dead", "skipped"]
    delay_seconds: float = 0.0


RETRIED_STATUSES = frozenset({408, 429})


def classify_status(status: int, headers: Mapping[str, str], now: datetime) -> Attempt:
    if 200 <= status < 300:
        return Attempt("delivered", status_code=status)
    error = f"HTTP {status}"
    if status >= 500 or status in RETRIED_STATUSES:
        return Attempt("transient", error, status, parse_retry_after(headers.get("retry-after"), now))
    # Other 4xx (and redirects, which a webhook URL should not answer) cannot be fixed by retrying.
    return Attempt("permanent", error, status)


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP-date; None when absent or unreadable."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return max(0.0, (when - now).total_seconds())


def backoff_seconds(
    attempts: int, base: float, cap: float, rand: Callable[[], float] = random.random
) -> float:
    """Exponential backoff with "equal jitter": half the delay fixed, half random, capped."""
    exponent = min(attempts - 1, 60)
    delay = min(cap, base * math.pow(2, exponent))
    return delay / 2 + rand() * delay / 2


def decide(
    attempts: int, attempt: Attempt, policy: RetryPolicy, rand: Callable[[], float] = random.random
) -> Decision:
    """What becomes of a delivery after its ``attempts``-th attempt."""
    if attempt.outcome in ("delivered", "skipped"):
        return Decision(attempt.outcome)
    if attempt.outcome == "permanent" or attempts >= policy.max_attempts:
        return Decision("dead")
    if attempt.retry_after is not None:
        return Decision("pending", min(attempt.retry_after, policy.max_retry_after_seconds))
    return Decision("pending", backoff_seconds(attempts, policy.base_seconds, policy.max_seconds, rand))


def dead_letter(tenant_id: str, delivery: DeliveryView) -> DeadLetter:
    """The dead letter of ``delivery``, which just went dead. Its id names that death (the delivery and
    the redeliveries before it), so the same death published twice is one to consumers, and a
    death after a redelivery is another."""
    return dead_delivery(
        event_id=uuid.uuid5(_DEAD_LETTER_NAMESPACE, f"{delivery.id}:{delivery.redeliveries}"),
        tenant_id=tenant_id,
        delivery_id=str(delivery.id),
        alert_id=delivery.alert_id,
        channel=delivery.channel,
        kind=delivery.kind,
        attempts=delivery.attempts,
        last_error=delivery.last_error or "unknown",
        last_attempt_date_time=delivery.last_attempt_date_time,
    )


# --- message content ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Links:
    dashboard: str
    help: str


def dashboard_link(template: str, public_base_url: str, tenant_id: str, alert_id: str) -> str:
    from urllib.parse import quote

    return template.format(
        publicBaseUrl=public_base_url.rstrip("/"),
        tenantId=quote(tenant_id, safe=""),
        alertId=quote(alert_id, safe=""),
    )


_KIND_TITLES = {Kind.alert: "", Kind.reminder: "Reminder: ", Kind.escalation: "Escalation: "}
_KIND_LEADS = {
    Kind.alert: "A new security alert needs a response.",
    Kind.reminder: "Reminder: this alert has had no response for an hour since it was detected.",
    Kind.escalation: "Escalation: this alert is still unanswered; the 24-hour limit is close.",
}


@dataclass(frozen=True)
class Email:
    subject: str  # one line (header_text)
    text: str
    html: str


# C0 controls (CR and LF among them), DEL, C1 controls (NEL among them), Unicode line/paragraph separators.
_CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def header_text(value: str) -> str:
    """A header value on one line: every control character becomes a space and runs of white space
    one space. Alert fields come from outside: a line break kept in a header would either make the
    message impossible to build or, in a laxer library, start a header of the sender's choosing.
    (Long values are still folded by the e-mail library, which receivers unfold.)"""
    return " ".join(_CONTROL_CHARACTERS.sub(" ", value).split())


def alert_email(kind: Kind, event: AlertCreated, links: Links, now: datetime, limit_seconds: float) -> Email:
    alert = event.alert
    severity = alert.severity.value if alert.severity else "unknown severity"
    title = alert.display_name or alert.alert_type or alert.id
    detected = detection_time(event)
    rows = [
        ("Alert", title),  # in full here: the subject has it on one line
        ("Customer", alert.customer_tenant_id or "unknown"),
        ("Alert type", alert.alert_type or "unknown"),
        ("Severity", severity),
        ("Detected", detected.strftime("%Y-%m-%d %H:%M UTC")),
        (
            "Time left before the 24-hour limit",
            time_left_text(detected + timedelta(seconds=limit_seconds), now),
        ),
        ("Alert id", alert.id),
    ]
    if alert.is_test:
        rows.append(("Test alert", "yes"))
    text = "\n".join(
        [
            _KIND_LEADS[kind],
            "",
            *(f"{k}: {v}" for k, v in rows),
            "",
            f"Open in the dashboard: {links.dashboard}",
            f"What the requirement asks: {links.help}",
            "",
            "Changing the alert's status stops the response clock.",
        ]
    )
    cells = "".join(
        f'<tr><th align="left">{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>' for k, v in rows
    )
    body_html = (
        f"<p>{html.escape(_KIND_LEADS[kind])}</p><table>{cells}</table>"
        f'<p><a href="{html.escape(links.dashboard)}">Open in the dashboard</a> · '
        f'<a href="{html.escape(links.help)}">What the requirement asks</a></p>'
        "<p>Changing the alert's status stops the response clock.</p>"
    )
    subject = header_text(f"[{severity}] {_KIND_TITLES[kind]}{title}")
    return Email(subject, text, f"<html><body>{body_html}</body></html>")


def spending_email(event: SpendingBudgetThresholdReached, dashboard: str) -> Email:
    customer = event.customer_name or event.customer_tenant_id
    share = 100 * event.spend / event.budget if event.budget else float(event.threshold_percent)
    rows = [
        ("Customer", customer),
        ("Customer tenant", event.customer_tenant_id),
        ("Month", event.month),
        ("Budget", f"{event.budget:,.2f}"),
        ("Spend", f"{event.spend:,.2f} ({share:.0f}% of the budget)"),
    ]
    lead = f"A customer's Azure spend has reached {event.threshold_percent}% of its monthly budget."
    text = "\n".join([lead, "", *(f"{k}: {v}" for k, v in rows), "", f"Dashboard: {dashboard}"])
    cells = "".join(
        f'<tr><th align="left">{html.escape(k)}</th><td>{html.escape(v)}</td></tr>' for k, v in rows
    )
    return Email(
        header_text(f"[budget] {customer} reached {event.threshold_percent}% of its {event.month} budget"),
        text,
        f"<html><body><p>{html.escape(lead)}</p><table>{cells}</table>"
        f'<p><a href="{html.escape(dashboard)}">Dashboard</a></p></body></html>',
    )


_WEBHOOK_TYPES = {
    Kind.alert: "alert.created",
    Kind.reminder: "alert.reminder",
    Kind.escalation: "alert.escalation",
}


def webhook_body(
    delivery: uuid.UUID, kind: Kind, event: AlertCreated, links: Links, limit_seconds: float
) -> bytes:
    """The JSON a ticketing channel receives; the same bytes on every attempt of one delivery."""
    detected = detection_time(event)
    document: dict[str, Any] = {
        "type": _WEBHOOK_TYPES[kind],
        "deliveryId": str(delivery),
        "tenantId": event.tenant_id,
        "alert": event.alert.model_dump(mode="json"),
        "event": event.model_dump(mode="json"),
        "clockStartedDateTime": format_utc(detected),
        "responseDeadlineDateTime": format_utc(detected + timedelta(seconds=limit_seconds)),
        "links": {"dashboard": links.dashboard, "help": links.help},
    }
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()

"""The notifier's rules, without I/O: routing, delivery identity, retry policy, message content.

Routing (decided here, documented in docs/notifier.md): a channel holds a list of routes; an alert
goes to the channel when ANY route matches; within a route every criterion given must match (an
empty or absent list matches everything); test alerts match only routes with ``includeTest``. A
channel with no routes receives every non-test alert. Channels flagged ``escalation`` receive
escalations (by the same routes) and nothing else. A tenant with an escalation chain escalates along
it instead: each step tells its one recipient (an address or a channel) at its own delay.
"""

from __future__ import annotations

import json
import math
import random
import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import Any, Literal, NamedTuple

from pydantic import ValidationError

from services.notifier.templates import EmailTemplates, Rendered
from services.notifier.templates import shipped as shipped_templates
from shared.action_links import (
    ACTION_LABELS,
    BULK_LINK_MAX_ALERTS,
    Action,
    action_url,
    bulk_action_url,
    sign_action_link,
    sign_bulk_link,
)
from shared.alerts import Alert, AlertStatus, Severity
from shared.channels import ChannelKind, Route
from shared.dead_letters import DeadLetter, dead_delivery
from shared.events import (
    AlertCreated,
    AlertUpdated,
    ChannelConfig,
    DeliveryView,
    EscalationStep,
    SpendingBudgetThresholdReached,
)
from shared.responses import first_partner_response
from shared.sealed import SealBroken, unseal
from shared.wire import WireModel, format_utc

CONTACT_EMAIL = "email:contact"
ESCALATION_EMAIL = "email:escalation"
EMAIL_TO_PREFIX = "email:to:"  # an address named by an escalation chain's step
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
    warning = "warning"  # a requirement at risk or no longer met (services/notifier/warnings.py)
    digest = "digest"  # the new alerts of a storm, in one message (see "storms" below)


def webhook_channel(name: str) -> str:
    return f"{WEBHOOK_PREFIX}{name}"


def email_channel(address: str) -> str:
    return f"{EMAIL_TO_PREFIX}{address}"


def email_address(channel: str) -> str | None:
    """The address a delivery channel names itself (``email:to:<address>``); None for the contact,
    the deployment's escalation address (both looked up when sent) and channels."""
    return channel.removeprefix(EMAIL_TO_PREFIX) if channel.startswith(EMAIL_TO_PREFIX) else None


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
    kind: ChannelKind = ChannelKind.webhook


@dataclass(frozen=True)
class OpenChannel:
    """A channel as the notifier keeps it: its secrets opened (it signs with them), its routes read."""

    url: str
    secret: str | None  # None: a Teams channel (nothing to sign with)
    previous_secret: str | None
    previous_secret_until: datetime | None
    routes: tuple[Route, ...]
    escalation: bool
    kind: ChannelKind = ChannelKind.webhook


class UnusableChannel(ValueError):
    """A channel event the notifier can never apply: a secret none of its keys opens, a route it cannot read."""


def open_channel(config: ChannelConfig, sealing_keys: Sequence[str]) -> OpenChannel:
    """``config`` with its sealed secrets opened with ``sealing_keys``; UnusableChannel if it cannot be."""
    try:
        secret = unseal(config.secret, sealing_keys) if config.secret else None
        previous = unseal(config.previous_secret, sealing_keys) if config.previous_secret else None
    except SealBroken as exc:
        raise UnusableChannel(f"a secret of the channel: {exc}") from exc
    try:
        routes = tuple(Route.model_validate(route) for route in config.routes)
    except ValidationError as exc:
        raise UnusableChannel(f"a route of the channel: {' '.join(str(exc).split())}") from exc
    return OpenChannel(config.url, secret, previous, config.previous_secret_until, routes, config.escalation,
                       config.kind)


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


# --- escalation chains -------------------------------------------------------------------------------
# A tenant's chain (the write API's, from the escalation-chains topic) replaces, for that tenant, the
# deployment's single escalation: step n (from 1) is a timer of its own, due ``afterMinutes`` after
# detection, that tells the one recipient the chain names for step n when it fires.

Chain = tuple[EscalationStep, ...]


class UnusableChain(ValueError):
    """A chain event the notifier can never apply: no steps, or a step naming no recipient or two."""


def usable_chain(steps: Sequence[EscalationStep] | None) -> Chain | None:
    """The chain an event sets (None: removed); UnusableChain if it tells nobody or a step is ambiguous."""
    if steps is None:
        return None
    if not steps:
        raise UnusableChain("a chain of no steps (a removed chain is null)")
    for index, step in enumerate(steps):
        if (step.email is None) == (step.channel is None):
            raise UnusableChain(f"steps[{index}] names {'both an e-mail and a channel' if step.email else 'nobody'}")
    return tuple(steps)


def step_channel(step: EscalationStep) -> str:
    """The delivery channel of a step's recipient: its address, or its channel (webhook or Teams)."""
    return email_channel(step.email) if step.email is not None else webhook_channel(step.channel)


def escalation_step_channels(
    step: int, chain: Chain | None, channels: Iterable[ChannelRule], alert: Alert, *, escalation_email: bool
) -> list[str]:
    """Where an escalation timer that fires now goes, by the chain in force now (``chain``).

    Step n of a chain: the recipient the chain names for step n (whatever the channel's routes or
    flag: the chain names it), or nobody if the chain has no step n any more. The deployment's
    escalation (``escalation_channels``) for step 0, the escalation of an alert that came while the
    tenant had no chain, and for a step whose chain was removed since: the tenant's escalation falls
    back to the deployment's, and one delivery per alert, channel and kind makes it one escalation
    however many steps fall back to it.
    """
    if step == 0 or chain is None:
        return escalation_channels(channels, alert, escalation_email=escalation_email)
    return [step_channel(chain[step - 1])] if step <= len(chain) else []


# --- storms ------------------------------------------------------------------------------------------
# More new alerts for a tenant than STORM_THRESHOLD within STORM_WINDOW_SECONDS on one channel people
# read (the contact's e-mail, a Teams channel) is a storm: each further alert joins a digest, one
# message listing them with one bulk acknowledge link, sent STORM_DIGEST_WAIT_SECONDS after its first
# alert or as soon as it holds BULK_LINK_MAX_ALERTS. A ticketing webhook still gets every alert on its
# own (a ticket each). Each alert keeps its own timers, and its own delivery row ('grouped', naming
# the digest) in the log.


@dataclass(frozen=True)
class StormPolicy:
    threshold: int  # alerts a channel gets one by one within the window before grouping; 0: never group
    window_seconds: float
    digest_wait_seconds: float
    digest_max_alerts: int = BULK_LINK_MAX_ALERTS


def groups_in_storms(channel: str, kinds: Mapping[str, ChannelKind]) -> bool:
    """Whether a delivery channel of a new alert joins digests in a storm: the contact's e-mail and
    Teams channels (people read them) do; a ticketing webhook (``kinds``: each channel's kind by
    name) does not."""
    if channel == CONTACT_EMAIL:
        return True
    name = channel.removeprefix(WEBHOOK_PREFIX)
    return channel.startswith(WEBHOOK_PREFIX) and kinds.get(name) is ChannelKind.teams


def in_storm(recent_alerts: int, policy: StormPolicy) -> bool:
    """Whether a new alert joins a digest, the channel having had ``recent_alerts`` new alerts (sent or
    grouped) within the window before it."""
    return policy.threshold > 0 and recent_alerts >= policy.threshold


def digest_subject(first_alert_id: str) -> str:
    """A digest's subject in the delivery log: named after its first alert (one digest per channel
    opens with a given alert)."""
    return f"digest:{first_alert_id}"


class DigestPayload(WireModel):
    """What a digest delivery holds: the alert-created events it lists, in the order they came, and
    how many alerts the channel had within the window when it opened (those sent one by one). A wire
    model (its names are the same in camelCase): its text is scanned once as a whole, not once per alert."""

    alerts: list[AlertCreated]
    earlier: int = 0


_SEVERITY_ORDER = {Severity.informational: 0, Severity.low: 1, Severity.medium: 2, Severity.high: 3}


def highest_severity(alerts: Iterable[Alert]) -> str:
    severities = [alert.severity for alert in alerts if alert.severity is not None]
    return max(severities, key=_SEVERITY_ORDER.__getitem__).value if severities else "unknown severity"


# The alert ids one bulk link carries, at most this many bytes of them: the link (compressed, base64)
# stays a few KB, well within what browsers and the write API's server take in a request line. Alert
# ids are short in practice (a GUID), so a digest's link covers all of its alerts; one of very long
# ids covers the first that fit, and says so.
BULK_LINK_ID_BYTES = 3000


def bulk_link_alerts(alert_ids: Sequence[str], max_bytes: int = BULK_LINK_ID_BYTES) -> list[str]:
    """The first of ``alert_ids`` (in order, at least one) whose ids fit in ``max_bytes``."""
    taken: list[str] = []
    size = 0
    for alert_id in alert_ids:
        size += len(json.dumps(alert_id)) + 1
        if taken and size > max_bytes:
            break
        taken.append(alert_id)
    return taken


@dataclass(frozen=True)
class DigestLinks:
    """The links of a digest: each alert's dashboard page, the help page, one bulk acknowledge (signed
    for the recipient, over the first ``bulk_count`` alerts; None on a digest shown without links)."""

    dashboards: Mapping[str, str]  # by alert id
    help: str
    bulk_acknowledge: str | None = None
    bulk_count: int | None = None  # None: every alert of the digest


def bulk_acknowledge_url(
    keys: Sequence[str], write_api_public_url: str, *, tenant_id: str, alert_ids: Sequence[str], recipient: str,
    now: datetime,
) -> str:
    """The one link of a digest that acknowledges the alerts ``alert_ids`` still untouched, as ``recipient``."""
    return bulk_action_url(write_api_public_url, sign_bulk_link(
        keys, tenant_id=tenant_id, alert_ids=list(alert_ids), recipient=recipient, now=now))


def _bulk_label(count: int, covered: int) -> str:
    if covered < count:
        return f"Acknowledge the first {covered} alerts listed"
    return "Acknowledge the alert" if count == 1 else f"Acknowledge all {count} alerts"


def digest_context(
    tenant_id: str, digest: DigestPayload, links: DigestLinks, now: datetime, limit_seconds: float,
    window_seconds: float,
) -> dict[str, Any]:
    """What the ``digest.*.j2`` templates (and the digest's Teams card) receive (docs/notifier.md)."""
    alerts = []
    for event in digest.alerts:
        row = alert_email_context(Kind.alert, event, Links(links.dashboards[event.alert.id], links.help),
                                  now, limit_seconds)["alert"]
        alerts.append({**row, "dashboard": links.dashboards[event.alert.id]})
    count = len(alerts)
    covered = count if links.bulk_count is None else links.bulk_count
    return {
        "tenant_id": tenant_id,
        "limit_hours": f"{limit_seconds / 3600:g}",
        "window_minutes": f"{window_seconds / 60:g}",
        "earlier": digest.earlier,
        "highest_severity": highest_severity(event.alert for event in digest.alerts),
        "alerts": alerts,
        "links": {"help": links.help},
        "bulk_acknowledge": (
            {"label": _bulk_label(count, covered), "url": links.bulk_acknowledge, "count": covered}
            if links.bulk_acknowledge else None
        ),
    }


def digest_webhook_body(delivery: uuid.UUID, tenant_id: str, digest: DigestPayload, help_url: str) -> bytes:
    """A digest for a channel that was a Teams channel when the digest opened and is a ticketing
    webhook when it is sent: the alerts, as JSON (its alerts came to no other delivery of it)."""
    document = {
        "type": "alert.digest",
        "deliveryId": str(delivery),
        "tenantId": tenant_id,
        "alerts": [event.alert.model_dump(mode="json") for event in digest.alerts],
        "links": {"help": help_url},
    }
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


def digest_email(context: dict[str, Any], templates: EmailTemplates | None = None) -> Email:
    return _email((templates or shipped_templates()).render("digest", context))


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


class TimerKey(NamedTuple):
    """One timer of an alert: the reminder, the deployment's escalation (step 0), or step n of the
    tenant's escalation chain (n from 1)."""

    kind: Kind
    step: int = 0


def timers_for_new_alert(
    event: AlertCreated, reminder_after: float, escalation_after: float, now: datetime, chain: Chain | None = None
) -> dict[TimerKey, datetime]:
    """The timers a newly seen alert gets (none unless ``needs_timers``): the reminder, and either the
    deployment's escalation or, when the tenant has a chain, one escalation per step, due at
    detection + its ``afterMinutes`` (a step already due fires at once: its recipient would have been
    told by now). A reminder that would come at once beside an escalation is left out: they would
    say the same thing twice at the same moment.
    """
    if not needs_timers(event):
        return {}
    start = detection_time(event)
    due = {TimerKey(kind): at for kind, at in timer_due_times(event, reminder_after, escalation_after).items()}
    if chain is not None:
        del due[TimerKey(Kind.escalation)]
        due |= {TimerKey(Kind.escalation, number): start + timedelta(minutes=step.after_minutes)
                for number, step in enumerate(chain, start=1)}
    reminder = TimerKey(Kind.reminder)
    if due[reminder] <= now and any(at <= now for key, at in due.items() if key.kind is Kind.escalation):
        del due[reminder]
    return due


def worth_sending_late(kind: Kind, payload: str, *, closed_since: bool) -> bool:
    """Whether an e-mail skipped for want of a contact is still worth sending now that one arrived.

    A spending notification or an at-risk warning is; an e-mail about an alert only if the alert is
    still open: it arrived neither resolved nor answered, and was not answered or resolved since (``closed_since``). The
    caller also leaves out e-mails skipped longer ago than CONTACT_CATCH_UP_SECONDS.
    """
    if kind in (Kind.spending, Kind.warning, Kind.digest):  # (a digest leaves out alerts closed when it is sent)
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
class ActionChoice:
    """A one-click response offered in an alert e-mail: the action, its label, its signed link."""

    action: str
    label: str
    url: str


@dataclass(frozen=True)
class Links:
    dashboard: str
    help: str
    actions: tuple[ActionChoice, ...] = ()  # signed for one recipient: e-mails only, never a webhook


def action_choices(
    keys: Sequence[str], write_api_public_url: str, *, tenant_id: str, alert_id: str, recipient: str, now: datetime
) -> tuple[ActionChoice, ...]:
    """The one-click responses of an alert e-mail to ``recipient``: a link per action, signed for that
    recipient (the write API records the response as theirs), each with a link id of its own."""
    return tuple(
        ActionChoice(action.value, ACTION_LABELS[action], action_url(write_api_public_url, sign_action_link(
            keys, tenant_id=tenant_id, alert_id=alert_id, action=action, recipient=recipient, now=now)))
        for action in Action
    )


def dashboard_link(template: str, public_base_url: str, tenant_id: str, alert_id: str) -> str:
    from urllib.parse import quote

    return template.format(
        publicBaseUrl=public_base_url.rstrip("/"),
        tenantId=quote(tenant_id, safe=""),
        alertId=quote(alert_id, safe=""),
    )


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


def _utc_minute(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def alert_email_context(
    kind: Kind, event: AlertCreated, links: Links, now: datetime, limit_seconds: float
) -> dict[str, Any]:
    """What the ``alert.*.j2`` templates receive (listed in docs/notifier.md): texts ready to show."""
    alert = event.alert
    detected = detection_time(event)
    deadline = detected + timedelta(seconds=limit_seconds)
    return {
        "kind": kind.value,  # alert | reminder | escalation
        "tenant_id": event.tenant_id,
        "limit_hours": f"{limit_seconds / 3600:g}",
        "alert": {
            "id": alert.id,
            "title": alert.display_name or alert.alert_type or alert.id,  # in full: the subject makes one line
            "description": alert.description or "",
            "customer": alert.customer_tenant_id or "unknown",
            "type": alert.alert_type or "unknown",
            "severity": alert.severity.value if alert.severity else "unknown severity",
            "detected": _utc_minute(detected),
            "deadline": _utc_minute(deadline),
            "time_left": time_left_text(deadline, now),
            "is_test": alert.is_test,
        },
        "links": {"dashboard": links.dashboard, "help": links.help},
        "actions": [{"action": c.action, "label": c.label, "url": c.url} for c in links.actions],
    }


def spending_email_context(event: SpendingBudgetThresholdReached, dashboard: str) -> dict[str, Any]:
    """What the ``spending.*.j2`` templates receive (listed in docs/notifier.md)."""
    share = 100 * event.spend / event.budget if event.budget else float(event.threshold_percent)
    return {
        "tenant_id": event.tenant_id,
        "customer": event.customer_name or event.customer_tenant_id,
        "customer_tenant_id": event.customer_tenant_id,
        "month": event.month,
        "budget": f"{event.budget:,.2f}",
        "spend": f"{event.spend:,.2f}",
        "share_percent": f"{share:.0f}",
        "threshold_percent": event.threshold_percent,
        "links": {"dashboard": dashboard},
    }


def _email(rendered: Rendered) -> Email:
    return Email(header_text(rendered.subject), rendered.text, rendered.html)


def alert_email(
    kind: Kind,
    event: AlertCreated,
    links: Links,
    now: datetime,
    limit_seconds: float,
    templates: EmailTemplates | None = None,
) -> Email:
    context = alert_email_context(kind, event, links, now, limit_seconds)
    return _email((templates or shipped_templates()).render("alert", context))


def warning_email(context: dict[str, Any], templates: EmailTemplates | None = None) -> Email:
    """An at-risk warning's e-mail (``warnings.warning_context`` builds what it says)."""
    return _email((templates or shipped_templates()).render("warning", context))


def spending_email(
    event: SpendingBudgetThresholdReached, dashboard: str, templates: EmailTemplates | None = None
) -> Email:
    return _email((templates or shipped_templates()).render("spending", spending_email_context(event, dashboard)))


def sample_contexts() -> dict[str, list[dict[str, Any]]]:
    """Contexts every template is rendered with at start-up: each kind of alert e-mail, with and
    without action links, a test alert and one without severity, type or customer; a spending one."""
    detected = datetime(2026, 1, 1, 8, 0, tzinfo=UTC)
    full = AlertCreated(tenant_id="sample-tenant", alert=Alert(
        id="sample-alert", display_name="Sample alert", description="A sample.", alert_type="unusualActivity",
        severity="high", customer_tenant_id="sample-customer", detected_date_time=detected))
    bare = AlertCreated(tenant_id="sample-tenant", alert=Alert(id="bare-alert", is_test=True,
                                                               detected_date_time=detected))
    url = "https://triage.example/sample"
    plain = Links(url, url)
    with_actions = replace(plain, actions=tuple(ActionChoice(a.value, ACTION_LABELS[a], f"{url}/{a}") for a in Action))
    alerts = [alert_email_context(kind, created, links, now, 86400)
              for kind in (Kind.alert, Kind.reminder, Kind.escalation)
              for created in (full, bare)
              for links in (plain, with_actions)
              for now in (detected, detected + timedelta(days=2))]
    budget = SpendingBudgetThresholdReached(tenant_id="sample-tenant", customer_tenant_id="sample-customer",
                                            month="2026-01", budget=1000, spend=812.5)
    from services.notifier.warnings import sample_warning_contexts  # (warnings imports shared modules only)

    many = DigestPayload(alerts=[full, bare], earlier=5)
    digests = [digest_context("sample-tenant", many, DigestLinks({"sample-alert": url, "bare-alert": url}, url, bulk),
                              detected, 86400, 120)
               for bulk in (None, url)]
    return {"alert": alerts, "spending": [spending_email_context(budget, url)], "warning": sample_warning_contexts(url),
            "digest": digests}


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

"""Sending one delivery: e-mail over SMTP (aiosmtplib), or a channel's POST (httpx): a signed webhook or
a Teams card.

Each send returns a :class:`domain.Attempt`; no exception escapes, so the worker always records
an outcome. The recipient is looked up when sending: a changed contact, channel URL or kind applies to
the next attempt, a deleted channel or a missing contact makes the delivery ``skipped``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr

import aiosmtplib
import asyncpg
import httpx
from opentelemetry.trace import SpanKind

from services.notifier import domain, metrics, store, teams
from services.notifier.config import Settings
from services.notifier.domain import Attempt, Kind
from services.notifier.templates import EmailTemplates
from services.notifier.warning_store import WarningPayload
from services.notifier.warnings import warning_context
from shared import tracing
from shared.catalogue import load_catalogue
from shared.channels import ChannelKind
from shared.egress import EgressRefused
from shared.events import AlertCreated, SpendingBudgetThresholdReached
from shared.webhooks import sign_headers
from shared.wire import utcnow

log = logging.getLogger(__name__)


class Transports:
    def __init__(
        self, settings: Settings, pool: asyncpg.Pool, http: httpx.AsyncClient, templates: EmailTemplates | None = None
    ) -> None:
        self.settings, self.pool, self.http = settings, pool, http
        self.templates = templates or EmailTemplates(settings.notifier_template_dir)
        # The requirements' names and help links, for the at-risk warnings.
        self.catalogue = load_catalogue(settings.catalogue_path)

    def links(self, tenant_id: str, alert_id: str) -> domain.Links:
        s = self.settings
        return domain.Links(
            domain.dashboard_link(s.dashboard_alert_url, s.public_base_url, tenant_id, alert_id),
            s.requirement_help_url,
        )

    async def open_digest(self, row: asyncpg.Record) -> domain.DigestPayload | None:
        """A digest's alerts still open when it is sent (an alert answered or resolved meanwhile needs
        no word); None if none is."""
        digest = domain.DigestPayload.model_validate_json(row["payload"])
        closed = await store.closed_alerts(self.pool, row["tenant_id"], [e.alert.id for e in digest.alerts])
        open_ones = [event for event in digest.alerts if event.alert.id not in closed]
        return digest.model_copy(update={"alerts": open_ones}) if open_ones else None

    def digest_context(self, row: asyncpg.Record, digest: domain.DigestPayload, recipient: str,
                       now: datetime) -> dict:
        s = self.settings
        tenant_id = row["tenant_id"]
        ids = [event.alert.id for event in digest.alerts]
        covered = domain.bulk_link_alerts(ids)
        links = domain.DigestLinks(
            {alert_id: domain.dashboard_link(s.dashboard_alert_url, s.public_base_url, tenant_id, alert_id)
             for alert_id in ids},
            s.requirement_help_url,
            domain.bulk_acknowledge_url(s.action_link_key_list, s.write_api_public_url, tenant_id=tenant_id,
                                        alert_ids=covered, recipient=recipient, now=now),
            len(covered),
        )
        return domain.digest_context(tenant_id, digest, links, now, s.response_limit_seconds, s.storm_window_seconds)

    async def send(self, row: asyncpg.Record) -> Attempt:
        bound = self.settings.send_bound_seconds
        try:
            # The whole send ends within the lease: a slower one is a transient failure, retried
            # later with the same ids, rather than a second send by the worker that claims it next.
            async with asyncio.timeout(bound):
                webhook = row["channel"].startswith(domain.WEBHOOK_PREFIX)
                # An e-mail's recipient first: with nobody to send to, a digest's alerts are not read (a
                # storm's digests for a tenant without a contact were ~15% of the notifier's time, #15).
                recipient = None if webhook else await self.email_recipient(row)
                if not webhook and not recipient:
                    return self.no_recipient(row)
                digest = None
                if row["kind"] == Kind.digest:
                    digest = await self.open_digest(row)
                    if digest is None:
                        return Attempt("skipped", "every alert of the digest was answered or resolved before it went")
                if webhook:
                    return await self.send_webhook(row, digest)
                return await self.send_email(row, recipient, digest)
        except TimeoutError:
            return Attempt("transient", f"send took longer than {bound:g} s (bounded by the lease)")
        except Exception as exc:  # a bug or an unreadable payload must not stop the worker
            log.exception("delivery %s failed unexpectedly", row["delivery_id"])
            return Attempt("transient", f"{type(exc).__name__}: {exc}"[:500])

    # --- webhooks ---------------------------------------------------------------------------------

    async def send_webhook(self, row: asyncpg.Record, digest: domain.DigestPayload | None = None) -> Attempt:
        """A delivery to a channel, in the shape of the channel's kind when it is sent: the signed JSON
        of a webhook, or the Adaptive Card of a Teams channel (``teams.py``). Either way one POST, whose
        answer the same retries, dead letters and redeliveries follow. A digest (``digest``: its alerts
        still open) is one card, or one JSON document for a channel no longer a Teams one."""
        name = row["channel"].removeprefix(domain.WEBHOOK_PREFIX)
        target = await store.channel_target(self.pool, row["tenant_id"], name)
        if target is None:
            return Attempt("skipped", f"channel {name} no longer exists")
        kind, delivery = Kind(row["kind"]), row["delivery_id"]
        if target.kind is ChannelKind.teams:
            metrics.sent_as.set("teams")  # csp_deliveries_total's channel: the kind it was sent as
        # Idempotency-Key stays the same on every attempt: receivers dedupe by it (Teams does not).
        headers = {
            "Idempotency-Key": str(delivery),
            "Content-Type": "application/json",
            "User-Agent": "csp-triage-notifier/1",
        }
        if digest is not None:
            context = self.digest_context(row, digest, teams.link_recipient(name), utcnow())
            if target.kind is ChannelKind.teams:
                body, read_answer = teams.digest_card_body(context), teams.answer_attempt
            else:
                body = domain.digest_webhook_body(delivery, row["tenant_id"], digest,
                                                  self.settings.requirement_help_url)
                headers |= sign_headers(target.secrets, body, msg_id=f"msg_{delivery.hex}")
                read_answer = _webhook_answer
            return await self._post(target.url, body, headers, read_answer)
        event = AlertCreated.model_validate_json(row["payload"])
        links = self.links(event.tenant_id, event.alert.id)
        if target.kind is ChannelKind.teams:
            now = utcnow()
            # Anyone in the channel may answer: the responses are signed for the channel.
            links = replace(links, actions=domain.action_choices(
                self.settings.action_link_key_list, self.settings.write_api_public_url, tenant_id=event.tenant_id,
                alert_id=event.alert.id, recipient=teams.link_recipient(name), now=now))
            body = teams.card_body(kind, event, links, now, self.settings.response_limit_seconds)
            read_answer = teams.answer_attempt
        else:
            body = domain.webhook_body(delivery, kind, event, links, self.settings.response_limit_seconds)
            # webhook-id is as stable as the Idempotency-Key.
            headers |= sign_headers(target.secrets, body, msg_id=f"msg_{delivery.hex}")
            read_answer = _webhook_answer
        return await self._post(target.url, body, headers, read_answer)

    async def _post(self, url: str, body: bytes, headers: dict[str, str], read_answer) -> Attempt:
        try:
            with tracing.span("channel POST", kind=SpanKind.CLIENT, attributes={"http.request.method": "POST"}):
                response = await self.http.post(
                    url, content=body, headers=headers, timeout=self.settings.webhook_timeout_seconds
                )
        except EgressRefused as exc:  # a private address: retrying cannot help (shared/egress.py)
            return Attempt("permanent", str(exc), recipient=url)
        except httpx.TimeoutException as exc:
            return Attempt("transient", f"timeout: {type(exc).__name__}", recipient=url)
        except httpx.TransportError as exc:
            return Attempt("transient", f"connection error: {type(exc).__name__}: {exc}"[:500], recipient=url)
        attempt = read_answer(response.status_code, response.headers, response.text, utcnow())
        detail = " ".join(response.text[:300].split())
        error = f"{attempt.error}: {detail}" if attempt.error and detail else attempt.error
        return replace(attempt, error=error, recipient=url)

    # --- e-mail -----------------------------------------------------------------------------------

    async def email_recipient(self, row: asyncpg.Record) -> str | None:
        """Where an e-mail delivery goes: the address its channel names (an escalation chain's step),
        the deployment's escalation address, or the tenant's contact as it is now."""
        channel = row["channel"]
        if (address := domain.email_address(channel)) is not None:
            return address
        if channel == domain.ESCALATION_EMAIL:
            return self.settings.escalation_email
        return await store.contact_email(self.pool, row["tenant_id"])

    @staticmethod
    def no_recipient(row: asyncpg.Record) -> Attempt:
        """An e-mail with nobody to send it to: skipped (the contact's waits for one, ``domain.NO_CONTACT``)."""
        return domain.NO_CONTACT if row["channel"] == domain.CONTACT_EMAIL else Attempt(
            "skipped", "no escalation address")

    async def send_email(self, row: asyncpg.Record, recipient: str,
                         digest: domain.DigestPayload | None = None) -> Attempt:
        """The e-mail of ``row`` to ``recipient`` (:meth:`email_recipient`)."""
        s = self.settings
        message = self.compose(row, recipient, digest)
        # A span of the trace (shared.tracing; nothing with tracing off): the SMTP conversation, the last
        # step of an alert's journey.
        with tracing.span("smtp send", kind=SpanKind.CLIENT, attributes={
                "server.address": s.smtp_host, "server.port": s.smtp_port, "csp.tenant_id": row["tenant_id"],
                "csp.delivery_id": str(row["delivery_id"]), "csp.delivery_kind": str(row["kind"])}):
            try:
                await aiosmtplib.send(
                    message,
                    hostname=s.smtp_host,
                    port=s.smtp_port,
                    username=s.smtp_username,
                    password=s.smtp_password.get_secret_value() if s.smtp_password else None,
                    start_tls=s.smtp_starttls,
                    use_tls=s.smtp_tls,
                    timeout=s.smtp_timeout_seconds,
                )
            except aiosmtplib.SMTPRecipientsRefused as exc:
                codes = [r.code for r in exc.recipients]
                return Attempt(
                    "transient" if all(400 <= c < 500 for c in codes) else "permanent",
                    f"recipient refused: {exc}"[:500],
                    recipient=recipient,
                )
            except aiosmtplib.SMTPResponseException as exc:
                return Attempt(
                    "transient" if 400 <= exc.code < 500 else "permanent",
                    f"SMTP {exc.code}: {exc.message}"[:500],
                    recipient=recipient,
                )
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                return Attempt(
                    "transient", f"SMTP connection: {type(exc).__name__}: {exc}"[:500], recipient=recipient
                )
            return Attempt("delivered", recipient=recipient)

    def compose(self, row: asyncpg.Record, recipient: str, digest: domain.DigestPayload | None = None) -> EmailMessage:
        """The e-mail of one delivery. Every header value goes through ``domain.header_text``:
        alert fields may hold line breaks, which belong in the body only. An alert e-mail carries the
        one-click responses signed for ``recipient``: whoever it reaches answers as themselves (a
        digest, ``digest``: its alerts still open, one bulk acknowledge)."""
        kind = Kind(row["kind"])
        now = utcnow()
        headers: dict[str, str] = {}
        if kind is Kind.digest:
            if digest is None:
                digest = domain.DigestPayload.model_validate_json(row["payload"])
            content = domain.digest_email(self.digest_context(row, digest, recipient, now), self.templates)
            headers["X-CSP-Alert-Count"] = str(len(digest.alerts))
        elif kind is Kind.spending:
            event = SpendingBudgetThresholdReached.model_validate_json(row["payload"])
            content = domain.spending_email(event, self.settings.public_base_url, self.templates)
        elif kind is Kind.warning:
            warning = WarningPayload.model_validate_json(row["payload"])
            content = domain.warning_email(
                warning_context(warning.event, warning.reason, self.catalogue, self.settings.public_base_url),
                self.templates)
        else:
            alert_event = AlertCreated.model_validate_json(row["payload"])
            links = replace(self.links(row["tenant_id"], alert_event.alert.id), actions=domain.action_choices(
                self.settings.action_link_key_list, self.settings.write_api_public_url,
                tenant_id=row["tenant_id"], alert_id=alert_event.alert.id, recipient=recipient, now=now))
            content = domain.alert_email(
                kind,
                alert_event,
                links,
                now,
                self.settings.response_limit_seconds,
                self.templates,
            )
            headers["X-CSP-Alert-Id"] = alert_event.alert.id
            if kind is not Kind.alert:
                # Threads the reminder or escalation under the first e-mail about the alert.
                first = domain.delivery_id(
                    row["tenant_id"], row["subject_id"], domain.CONTACT_EMAIL, Kind.alert
                )
                headers["In-Reply-To"] = headers["References"] = self.message_id(first)
        headers |= {
            "From": self.settings.smtp_from,
            "To": recipient,
            "Subject": content.subject,
            "Date": format_datetime(now),
            # Stable per delivery: if a crash makes us send twice, mail clients show it once.
            "Message-ID": self.message_id(row["delivery_id"]),
            "X-CSP-Tenant": row["tenant_id"],
            "X-CSP-Delivery-Kind": kind.value,
        }
        message = EmailMessage()
        for name, value in headers.items():
            message[name] = domain.header_text(value)
        message.set_content(content.text)
        message.add_alternative(content.html, subtype="html")
        return message

    def message_id(self, delivery) -> str:
        domain_part = parseaddr(self.settings.smtp_from)[1].rpartition("@")[2] or "localhost"
        return f"<{delivery}@{domain_part}>"


def _webhook_answer(status: int, headers: Mapping[str, str], text: str, now: datetime) -> Attempt:
    """What a ticketing system's answer means: its status alone."""
    return domain.classify_status(status, headers, now)

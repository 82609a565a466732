"""Bulk acknowledge (#13, storm grouping): ``GET | POST /v1/actions/bulk/{token}``, the one link of a
storm digest that acknowledges every alert it lists.

As the one-click responses (``routes_actions``): the signed token (``shared.action_links.sign_bulk_link``)
is the credential, so no key; it names the tenant, the alerts (at most 50), the action (acknowledge)
and the recipient, and acts on nothing else. ``GET`` (and ``HEAD``) only lists the alerts and how
many confirming would acknowledge (those still ``active``); the page's form ``POST``s to the same URL,
which acknowledges each alert still active through the one recording path (``services.ingest.recording``)
with the recipient as the actor at the time of the request (an ``alert-updated`` each, so each alert
keeps its own clock and log), queues them for Partner Center if they came from there, and marks the
link used, all in one transaction holding the alerts' row locks: a replay or a double click finds the
link used and changes nothing. Alerts already taken up, resolved, or not known to the tenant are left
as they are and listed as such; when none would change, the page says so and the link stays unused.

Refusals as the one-click responses' (a page, or a problem document for ``Accept: application/json``):
400 not a bulk link of this deployment (altered, another key, malformed, a one-alert link), 409
already used, 410 expired, 503 the database away (nothing changed). An unknown alert is no refusal.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

import asyncpg
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from services.ingest.action_pages import AlertList, AlertSummary, bulk_page
from services.ingest.action_refusals import (
    NO_KEY,
    REFUSALS,
    Refusal,
    Token,
    max_age,
    refusal_doc,
    refused,
    unavailable,
    used_refusal,
)
from services.ingest.deps import PoolDep, SettingsDep, wake_relay_after_write
from services.ingest.link_recording import LinkRecording, LinkUsed
from services.ingest.recording import record_alerts
from shared.action_links import BulkLink, LinkExpired, LinkInvalid, change_for, read_bulk_link
from shared.alerts import Alert, AlertStatus
from shared.http import Problem
from shared.http_guards import takes_no_key
from shared.problems import DEPENDENCY_ERRORS
from shared.wire import utcnow

log = logging.getLogger(__name__)
router = APIRouter(
    prefix="/v1/actions/bulk", tags=["one-click responses"], dependencies=[Depends(wake_relay_after_write)]
)

# As the one-click responses' refusals, but an alert unknown is listed, not refused (no 404).
_BULK_REFUSALS = {status: doc for status, doc in REFUSALS.items() if status != 404}
_ADVICE = "Open the alerts from the dashboard to see where they stand and respond there."


def _alerts(count: int) -> str:
    return f"{count} alert" if count == 1 else f"{count} alerts"


def _read(token: str, settings) -> BulkLink:
    try:
        return read_bulk_link(settings.action_link_key_list, token,
                              max_age_seconds=max_age(settings).total_seconds(), now=utcnow())
    except LinkExpired as expired:
        raise Refusal(410, "This link has expired",
                      f"It was sent at {expired.issued_at:%Y-%m-%d %H:%M} UTC; links work for "
                      f"{settings.action_link_max_age_hours:g} hours. Nothing was changed.", advice=_ADVICE) from None
    except LinkInvalid as invalid:
        raise Refusal(400, "This link is not valid", f"{str(invalid).capitalize()}. Nothing was changed.",
                      advice="Open the link exactly as the e-mail gives it (some mail programs break long "
                      f"links over lines); or: {_ADVICE[0].lower()}{_ADVICE[1:]}") from None


def _would_change(link: BulkLink, alert: Alert) -> bool:
    status = alert.status.value if alert.status else AlertStatus.active.value
    reason = alert.resolved_reason.value if alert.resolved_reason else None
    return change_for(link.action, status, reason) is not None


@dataclass(frozen=True)
class _Listing:
    """A bulk link's alerts as last recorded: those its action would change, and the others (taken
    up, resolved, or not known to the tenant), in the link's order."""

    to_change: list[Alert]
    left: list[AlertSummary]

    @classmethod
    def of(cls, link: BulkLink, states: Mapping[str, Alert]) -> _Listing:
        to_change, left = [], []
        for alert_id in link.alert_ids:
            alert = states.get(alert_id)
            if alert is None:
                left.append(AlertSummary.unknown(alert_id))
            elif _would_change(link, alert):
                to_change.append(alert)
            else:
                left.append(AlertSummary.of(alert))
        return cls(to_change, left)


async def _recorded_states(pool: asyncpg.Pool, link: BulkLink) -> tuple[dict[str, Alert], bool]:
    """The link's alerts known to its tenant, as last recorded, and whether the link was used."""
    async with pool.acquire() as conn:
        used = await conn.fetchval("SELECT EXISTS (SELECT 1 FROM used_action_links WHERE link_id = $1)",
                                   link.link_id)
        rows = await conn.fetch(
            "SELECT alert_id, alert FROM ingest_alert_state WHERE tenant_id = $1 AND alert_id = ANY($2::text[])",
            link.tenant_id, list(link.alert_ids))
    return {row["alert_id"]: Alert.model_validate_json(row["alert"]) for row in rows}, used


def _nothing_to_change(link: BulkLink, listing: _Listing) -> HTMLResponse:
    return bulk_page(200, heading="Nothing to change",
                     message=f"None of the link's {_alerts(len(link.alert_ids))} is still active: acknowledging "
                     "would change nothing, so nothing was recorded (and the link was not used).",
                     lists=[AlertList("Left as they are", listing.left)], recipient=link.recipient, advice=_ADVICE)


@router.get(
    "/{token}",
    response_class=HTMLResponse,
    responses={**_BULK_REFUSALS, 409: refusal_doc("The link was already used (it works once)")},
    openapi_extra=NO_KEY,
    summary="The confirmation page of a storm digest's bulk acknowledge link (changes nothing)",
)
@takes_no_key
async def show_bulk_action(token: Token, request: Request, settings: SettingsDep, pool: PoolDep) -> Response:
    """Lists the link's alerts (unknown ones as such), how many confirming would acknowledge (those
    still active), and a form that confirms it (`POST` to the same URL). Changes nothing: mail scanners
    open links. No key: the signed link is the credential."""
    try:
        link = _read(token, settings)
        try:
            states, used = await _recorded_states(pool, link)
        except DEPENDENCY_ERRORS as exc:
            log.warning("bulk acknowledge page: the database is unavailable: %s", type(exc).__name__)
            raise unavailable() from None
        if used:
            raise used_refusal()
    except Refusal as refusal:
        return refused(request, refusal)
    listing = _Listing.of(link, states)
    if not listing.to_change:
        return _nothing_to_change(link, listing)
    count = _alerts(len(listing.to_change))
    return bulk_page(
        200, heading=f"Acknowledge {count}?",
        message=f"Confirm to record “Acknowledge” (status investigating) as the response to each of the {count} "
        "still active below, each in its own log.",
        lists=[AlertList("To acknowledge", [AlertSummary.of(a) for a in listing.to_change]),
               AlertList("Left as they are", listing.left,
                         note="Already taken up, resolved, or not known: confirming leaves them as they are.")],
        recipient=link.recipient, confirm_label=f"Acknowledge {count}", expires=link.issued_at + max_age(settings),
    )


# HEAD answers as GET does, without a body (a link checker's request).
router.head("/{token}", include_in_schema=False)(show_bulk_action)


@router.post(
    "/{token}",
    response_class=HTMLResponse,
    responses={**_BULK_REFUSALS, 409: refusal_doc("The link was already used (it works once): nothing changed")},
    openapi_extra=NO_KEY,
    summary="Confirm a bulk acknowledge: acknowledge the link's alerts still active, as its recipient",
)
@takes_no_key
async def confirm_bulk_action(token: Token, request: Request, settings: SettingsDep, pool: PoolDep) -> Response:
    """Acknowledges each of the link's alerts still active, by its recipient, now (their response
    clocks stop), leaves the others as they are, and uses the link up. A form post from the
    confirmation page; any body is ignored. No key: the signed link is the credential."""
    try:
        link = _read(token, settings)
        recording = LinkRecording(link)
        try:
            # Which ids the tenant knows: the recording path changes known alerts only (it refuses an
            # unknown one with a 404, failing the others). Alert states are never deleted, so an
            # alert known here is still there in the transaction.
            states, used = await _recorded_states(pool, link)
            if used:
                raise used_refusal()
            known = [Alert(id=alert_id) for alert_id in link.alert_ids if alert_id in states]
            events = await record_alerts(pool, settings, link.tenant_id, known, api_actor=recording.actor,
                                         patch=recording.patch, adjust=recording.refuse_used,
                                         after=recording.use) if known else []
        except LinkUsed:
            raise used_refusal() from None
        except Problem as problem:
            if problem.status == 503:
                raise unavailable() from None
            raise Refusal(problem.status, problem.title, problem.detail or problem.title, advice=_ADVICE) from None
        except DEPENDENCY_ERRORS as exc:
            log.warning("bulk acknowledge: the database is unavailable: %s", type(exc).__name__)
            raise unavailable() from None
    except Refusal as refusal:
        return refused(request, refusal)
    found = {**states, **recording.before}  # as the transaction found them, where it did
    if not events:
        return _nothing_to_change(link, _Listing.of(link, found))
    acknowledged = [AlertSummary.of(event.alert) for event in events]
    acknowledged_ids = {event.alert.id for event in events}
    left = [AlertSummary.of(found[alert_id]) if alert_id in found else AlertSummary.unknown(alert_id)
            for alert_id in link.alert_ids if alert_id not in acknowledged_ids]
    log.info("bulk acknowledge of %d alerts of tenant %s recorded (%d left)", len(acknowledged), link.tenant_id,
             len(left))
    return bulk_page(
        200, heading="Recorded",
        message=f"{_alerts(len(acknowledged))} acknowledged, by {link.recipient}, at {recording.at:%Y-%m-%d %H:%M:%S} "
        f"UTC; {len(left)} left as they were.",
        lists=[AlertList("Acknowledged", acknowledged),
               AlertList("Left as they were", left,
                         note="Already taken up, resolved, or not known: nothing was recorded for them.")],
        recipient=link.recipient,
    )

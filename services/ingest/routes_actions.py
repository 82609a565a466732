"""One-click responses (#13): ``GET | POST /v1/actions/{token}``, the signed links of alert e-mails.

The token (``shared.action_links``) is the credential, so these routes take no key: it names the
tenant, the alert, the action and the recipient, and acts on nothing else. ``GET`` (and ``HEAD``)
only shows a confirmation page, since mail scanners open links; the page's form ``POST``s to the same
URL, which records the response through the one recording path (``services.ingest.recording``) with
the recipient as the actor at the time of the request, queues it for Partner Center if the alert came
from there, and marks the link used, all in one transaction: a replay or a double click finds the
link used (the alert's row lock orders them) and changes nothing. An action that would change
nothing (acknowledging a resolved alert) is said so, and leaves the link unused.

Refusals (the page says what happened and what to do; ``Accept: application/json`` gets the same
status as a problem document): 400 not a link of this deployment (altered, another key, malformed),
404 no such alert, 409 already used, 410 expired, 503 the database away (nothing changed).
"""

from __future__ import annotations

import logging

import asyncpg
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from services.ingest.action_pages import AlertSummary, page
from services.ingest.action_refusals import (
    DASHBOARD_ADVICE,
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
from shared.action_links import (
    ACTION_LABELS,
    ActionLink,
    LinkExpired,
    LinkInvalid,
    change_for,
    read_action_link,
)
from shared.alerts import Alert
from shared.http import Problem
from shared.http_guards import takes_no_key
from shared.problems import DEPENDENCY_ERRORS
from shared.wire import utcnow

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/actions", tags=["one-click responses"], dependencies=[Depends(wake_relay_after_write)])

def _read(token: str, settings) -> ActionLink:
    try:
        return read_action_link(settings.action_link_key_list, token,
                                max_age_seconds=max_age(settings).total_seconds(), now=utcnow())
    except LinkExpired as expired:
        raise Refusal(410, "This link has expired",
                      f"It was sent at {expired.issued_at:%Y-%m-%d %H:%M} UTC; links work for "
                      f"{settings.action_link_max_age_hours:g} hours. Nothing was changed.") from None
    except LinkInvalid as invalid:
        raise Refusal(400, "This link is not valid",
                      f"{str(invalid).capitalize()}. Nothing was changed.",
                      advice="Open the link exactly as the e-mail gives it (some mail programs break long "
                      f"links over lines); or: {DASHBOARD_ADVICE[0].lower()}{DASHBOARD_ADVICE[1:]}") from None


def _not_found(link: ActionLink) -> Refusal:
    return Refusal(404, "Alert not found",
                   f"This deployment knows no alert {link.alert_id!r} of tenant {link.tenant_id}. Nothing was changed.")


def _nothing_to_change(alert: Alert, link: ActionLink) -> HTMLResponse:
    summary = AlertSummary.of(alert)
    return page(200, heading="Nothing to change",
                message=f"The alert is already {summary.status}: “{ACTION_LABELS[link.action]}” would change "
                "nothing, so nothing was recorded (and the link was not used).",
                alert=summary, recipient=link.recipient, advice=DASHBOARD_ADVICE)


async def _known_alert(pool: asyncpg.Pool, link: ActionLink) -> tuple[Alert, bool]:
    """The alert as last recorded, and whether the link was used; :class:`Refusal` 404 if unknown."""
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            """SELECT s.alert, EXISTS (SELECT 1 FROM used_action_links u WHERE u.link_id = $3) AS used
               FROM ingest_alert_state s WHERE s.tenant_id = $1 AND s.alert_id = $2""",
            link.tenant_id, link.alert_id, link.link_id)
    if row is None:
        raise _not_found(link)
    return Alert.model_validate_json(row["alert"]), row["used"]


@router.get(
    "/{token}",
    response_class=HTMLResponse,
    responses={**REFUSALS, 409: refusal_doc("The link was already used (it works once)")},
    openapi_extra=NO_KEY,
    summary="The confirmation page of a one-click response link (changes nothing)",
)
@takes_no_key
async def show_action(token: Token, request: Request, settings: SettingsDep, pool: PoolDep) -> Response:
    """Shows the alert, the action and the recipient, and a form that confirms it (`POST` to the same
    URL). Changes nothing: mail scanners open links. No key: the signed link is the credential."""
    try:
        link = _read(token, settings)
        try:
            alert, used = await _known_alert(pool, link)
        except DEPENDENCY_ERRORS as exc:
            log.warning("one-click page: the database is unavailable: %s", type(exc).__name__)
            raise unavailable() from None
        if used:
            raise used_refusal()
    except Refusal as refusal:
        return refused(request, refusal)
    reason = alert.resolved_reason.value if alert.resolved_reason else None
    if change_for(link.action, alert.status.value, reason) is None:
        return _nothing_to_change(alert, link)
    label = ACTION_LABELS[link.action]
    return page(200, heading=f"{label}?", message=f"Confirm to record “{label}” for this alert as its response.",
                alert=AlertSummary.of(alert), recipient=link.recipient, confirm_label=label,
                expires=link.issued_at + max_age(settings))


# HEAD answers as GET does, without a body (a link checker's request).
router.head("/{token}", include_in_schema=False)(show_action)


@router.post(
    "/{token}",
    response_class=HTMLResponse,
    responses={**REFUSALS, 409: refusal_doc("The link was already used (it works once): nothing changed")},
    openapi_extra=NO_KEY,
    summary="Confirm a one-click response: record it as the link's recipient",
)
@takes_no_key
async def confirm_action(token: Token, request: Request, settings: SettingsDep, pool: PoolDep) -> Response:
    """Records the link's action on its alert, by its recipient, now (the response clock stops), and
    uses the link up. A form post from the confirmation page; any body is ignored. No key: the signed
    link is the credential."""
    try:
        link = _read(token, settings)
        recording = LinkRecording(link)
        try:
            events = await record_alerts(pool, settings, link.tenant_id, [Alert(id=link.alert_id)],
                                         api_actor=recording.actor, patch=recording.patch,
                                         adjust=recording.refuse_used, after=recording.use)
        except LinkUsed:
            raise used_refusal() from None
        except Problem as problem:
            if problem.status == 404:
                raise _not_found(link) from None
            if problem.status == 503:
                raise unavailable() from None
            raise Refusal(problem.status, problem.title, problem.detail or problem.title) from None
        except DEPENDENCY_ERRORS as exc:
            log.warning("one-click response: the database is unavailable: %s", type(exc).__name__)
            raise unavailable() from None
    except Refusal as refusal:
        return refused(request, refusal)
    if not events:
        return _nothing_to_change(recording.before[link.alert_id], link)
    log.info("one-click response %s on alert %s of tenant %s recorded", link.action.value, link.alert_id,
             link.tenant_id)
    return page(200, heading="Recorded",
                message=f"“{ACTION_LABELS[link.action]}” is recorded as this alert's response, by {link.recipient}, "
                f"at {recording.at:%Y-%m-%d %H:%M:%S} UTC.",
                alert=AlertSummary.of(events[0].alert), recipient=link.recipient)

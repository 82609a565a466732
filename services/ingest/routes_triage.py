"""Triage of one alert on the write API (#18): its assignee and its notes.

- ``PUT /alerts/{alertId}/assignee`` ``{"assignee": "<e-mail>"}`` assigns the alert to that person,
  ``DELETE`` unassigns it, ``GET`` tells who has it; each answers the assignment. The same assignee
  again (or nobody again) is a 200 that changes nothing.
- ``POST /alerts/{alertId}/notes`` ``{"text": "..."}`` adds a note (201, ``Location``), ``GET`` lists
  the alert's notes newest first in pages, ``GET .../notes/{noteId}`` one of them.

Changing takes the permission a status change takes (``update-alerts``: adminAgent,
securityAdministrator); reading, the read one. The actor is the key's user. Each change is its row and
its event (``alert-assigned`` / ``alert-note-added`` on the ``alert-triage`` topic) in one transaction
(``triage_store``). Neither is a status change nor a response: no ``alert-updated``, the Partner Center
clock keeps running, and nothing of it is sent to Partner Center. An alert the tenant does not have is 404.
"""

from __future__ import annotations

import re
import uuid
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import AfterValidator, ConfigDict, Field

from services.ingest import triage_store
from services.ingest.contact import Email
from services.ingest.deps import AlertUpdaterDep, PoolDep, SettingsDep, TenantReaderDep, wake_relay_after_write
from services.ingest.outgoing import EventTooLarge
from services.ingest.paging import NextLinkPage
from services.ingest.routes_alerts import AlertId
from shared.auth import Principal
from shared.events import Actor, ActorType
from shared.http import Problem, TenantIdPath
from shared.wire import OptionalUtcDateTime, UtcDateTime, WireModel

router = APIRouter(prefix="/v1/tenants/{tenant_id}/alerts/{alert_id}", tags=["triage"],
                   dependencies=[Depends(wake_relay_after_write)])

NOTE_MAX_CHARACTERS = 4000
MAX_PAGE = 1000
# Control characters (Unicode's Cc: C0, DEL, C1) but line breaks (\r\n and \r kept as \n) and tabs,
# a note's layout.
_REFUSED_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def actor_of(caller: Principal) -> Actor:
    return Actor(type=ActorType.user, id=caller.user_id)


def too_large(exc: EventTooLarge) -> Problem:
    return Problem(413, "Too large", f"the change makes a {exc.size}-byte event; at most {exc.limit} bytes")


def _unknown_alert(tenant_id: str, alert_id: str) -> Problem:
    return Problem(404, "Not found", f"no alert {alert_id!r} for tenant {tenant_id}")


# --- assignment ------------------------------------------------------------------------------------


class AssignmentIn(WireModel):
    model_config = ConfigDict(extra="forbid")

    assignee: Email = Field(description="The person's e-mail address (normalised as the security contact's).")


class AssignmentOut(WireModel):
    alert_id: str
    assignee: str | None = Field(description="Who has the alert (an e-mail address); null: nobody.")
    assigned_by: str | None = Field(description="The user of the key that made the last change; null: never assigned.")
    assigned_date_time: OptionalUtcDateTime = Field(description="When; null: never assigned.")


def _assignment_out(assignment: triage_store.Assignment) -> AssignmentOut:
    return AssignmentOut(alert_id=assignment.alert_id, assignee=assignment.assignee,
                         assigned_by=assignment.assigned_by, assigned_date_time=assignment.assigned_at)


async def _assign(
    pool, settings, tenant_id: str, alert_id: str, assignee: str | None, caller: Principal
) -> AssignmentOut:
    try:
        changes = await triage_store.assign(pool, tenant_id, [alert_id], assignee, actor=actor_of(caller),
                                            max_event_bytes=settings.max_event_bytes)
    except EventTooLarge as exc:
        raise too_large(exc) from None
    if alert_id not in changes:
        raise _unknown_alert(tenant_id, alert_id)
    return _assignment_out(changes[alert_id].assignment)


_NOT_FOUND = {404: {"description": "The tenant has no such alert"}}


@router.put("/assignee", response_model=AssignmentOut, responses=_NOT_FOUND,
            summary="Assign the alert to a person (not a response: the Partner Center clock keeps running)")
async def put_assignee(tenant_id: TenantIdPath, alert_id: AlertId, body: AssignmentIn, caller: AlertUpdaterDep,
                       pool: PoolDep, settings: SettingsDep) -> AssignmentOut:
    """Tells `alert-assigned` (with the previous assignee) unless the alert already has this assignee."""
    return await _assign(pool, settings, tenant_id, alert_id, body.assignee, caller)


@router.delete("/assignee", response_model=AssignmentOut, responses=_NOT_FOUND,
               summary="Unassign the alert")
async def delete_assignee(tenant_id: TenantIdPath, alert_id: AlertId, caller: AlertUpdaterDep, pool: PoolDep,
                          settings: SettingsDep) -> AssignmentOut:
    """Tells `alert-assigned` with a null assignee unless nobody has the alert."""
    return await _assign(pool, settings, tenant_id, alert_id, None, caller)


@router.get("/assignee", response_model=AssignmentOut, responses=_NOT_FOUND, summary="Who has the alert")
async def get_assignee(tenant_id: TenantIdPath, alert_id: AlertId, _: TenantReaderDep, pool: PoolDep) -> AssignmentOut:
    assignment = await triage_store.assignment_of(pool, tenant_id, alert_id)
    if assignment is None:
        raise _unknown_alert(tenant_id, alert_id)
    return _assignment_out(assignment)


# --- notes -----------------------------------------------------------------------------------------


def note_text(value: str) -> str:
    """A note as kept: any line break (\\r\\n, \\r) made \\n, trimmed, 1..4000 characters; no control
    character but line breaks and tabs, anywhere (also where trimming would drop it)."""
    if refused := _REFUSED_CONTROL.search(value):
        raise ValueError(f"control character U+{ord(refused.group()):04X} at position {refused.start()}: only "
                         "line breaks and tabs may be in a note")
    text = value.replace("\r\n", "\n").replace("\r", "\n").strip()
    if not text:
        raise ValueError("must not be empty (spaces and line breaks alone are trimmed away)")
    if len(text) > NOTE_MAX_CHARACTERS:
        raise ValueError(f"at most {NOTE_MAX_CHARACTERS} characters (after trimming); this has {len(text)}")
    return text


NoteText = Annotated[str, Field(min_length=1), AfterValidator(note_text)]


class NoteIn(WireModel):
    model_config = ConfigDict(extra="forbid")

    text: NoteText = Field(description=f"The note: 1 to {NOTE_MAX_CHARACTERS} characters once trimmed; no control "
                           "characters but line breaks (kept as \\n) and tabs.")


class NoteOut(WireModel):
    id: uuid.UUID
    alert_id: str
    text: str
    author: str = Field(description="The user of the key that wrote it.")
    created_date_time: UtcDateTime


class NotePage(NextLinkPage):
    value: list[NoteOut] = Field(description="Notes, newest first.")


def _note_out(note: triage_store.Note) -> NoteOut:
    return NoteOut(id=note.note_id, alert_id=note.alert_id, text=note.text, author=note.author,
                   created_date_time=note.created_at)


@router.post("/notes", status_code=201, response_model=NoteOut, responses=_NOT_FOUND,
             summary="Add a note to the alert, for the people triaging it (never sent to Partner Center)")
async def post_note(tenant_id: TenantIdPath, alert_id: AlertId, body: NoteIn, caller: AlertUpdaterDep,
                    pool: PoolDep, settings: SettingsDep, response: Response) -> NoteOut:
    """Tells `alert-note-added`; the note's `Location` is its own URL."""
    try:
        note = await triage_store.add_note(pool, tenant_id, alert_id, body.text, author=actor_of(caller),
                                           max_event_bytes=settings.max_event_bytes)
    except EventTooLarge as exc:
        raise too_large(exc) from None
    if note is None:
        raise _unknown_alert(tenant_id, alert_id)
    # Relative (never built from the client's Host header); the alert id encoded as one path segment.
    response.headers["Location"] = f"/v1/tenants/{tenant_id}/alerts/{quote(alert_id, safe='')}/notes/{note.note_id}"
    return _note_out(note)


@router.get("/notes", response_model=NotePage, responses=_NOT_FOUND,
            summary="The alert's notes, newest first, in pages")
async def list_notes(
    tenant_id: TenantIdPath, alert_id: AlertId, _: TenantReaderDep, pool: PoolDep, request: Request,
    top: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Page size.")] = 100,
    skiptoken: Annotated[str | None, Query(max_length=512, description="Where the page starts; from "
                                           "`@odata.nextLink`, opaque.")] = None,
) -> NotePage:
    after = triage_store.note_position(skiptoken) if skiptoken else None
    if not await triage_store.known_alert_ids(pool, tenant_id, [alert_id]):
        raise _unknown_alert(tenant_id, alert_id)
    notes = await triage_store.newest_notes(pool, tenant_id, alert_id, limit=top + 1, after=after)
    next_link = None
    if len(notes) > top:
        # By position: notes added meanwhile do not shift the next page. Relative, as every nextLink.
        position = triage_store.note_position_token(notes[top - 1])
        following = request.url.include_query_params(top=top, skiptoken=position)
        next_link = f"{following.path}?{following.query}"
    return NotePage(value=[_note_out(n) for n in notes[:top]], next_link=next_link)


@router.get("/notes/{note_id}", response_model=NoteOut,
            responses={404: {"description": "The tenant has no such alert, or it no such note"}},
            summary="One note of the alert")
async def get_note(tenant_id: TenantIdPath, alert_id: AlertId, note_id: Annotated[uuid.UUID, Path()],
                   _: TenantReaderDep, pool: PoolDep) -> NoteOut:
    note = await triage_store.note_of(pool, tenant_id, alert_id, note_id)
    if note is None:
        raise Problem(404, "Not found", f"no note {note_id} of alert {alert_id!r} for tenant {tenant_id}")
    return _note_out(note)

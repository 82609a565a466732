"""``PUT | GET | DELETE /security-contact`` of the write API (SPEC §5, §6).

A change of the contact is a ``SecurityContactChanged`` event (compacted topic, keyed by tenant:
the notifier learns where to send mail) and a ``securityContactProvided`` status observation. The
row, the change's audit entry (``security-contact-set`` or ``-cleared``) and both events (in the
outbox) are written in one transaction: all of them or none.

The change's time is taken under the tenant's lock and is strictly later than the previous
change's (``next_change_time``): scoring keeps the newest observation, so the last committed change
always wins, and successive changes reach the topics in the order they were committed (the outbox
rows of a later change come after those of the earlier one). The relay publishes the two events of a
change one after the other, the status first; a consumer may see one a moment before the other.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Response

from services.ingest import signals_store as store
from services.ingest.contact import SecurityContactIn, contact_status, next_change_time
from services.ingest.deps import CallerDep, PoolDep, SettingsDep, TenantReaderDep, wake_relay_after_write
from services.ingest.outgoing import EventTooLarge, enqueue
from shared.auth import AuditAction, AuditActor, Permission, Principal, authorize, record_audit
from shared.events import Actor, ActorType, SecurityContactChanged, Topic
from shared.http import Problem, TenantIdPath
from shared.wire import UtcDateTime, WireModel, utcnow

router = APIRouter(prefix="/v1/tenants/{tenant_id}", tags=["security contact"],
                   dependencies=[Depends(wake_relay_after_write)])


async def _setter(tenant_id: TenantIdPath, caller: CallerDep) -> Principal:
    return authorize(caller, Permission.set_contact, tenant_id)


SetterDep = Annotated[Principal, Depends(_setter)]


class SecurityContactOut(WireModel):
    name: str
    email: str
    phone: str
    updated_date_time: UtcDateTime
    updated_by: str


def _out(stored: store.StoredContact) -> SecurityContactOut:
    return SecurityContactOut(
        name=stored.contact.name,
        email=stored.contact.email,
        phone=stored.contact.phone or "",
        updated_date_time=stored.updated_at,
        updated_by=stored.updated_by,
    )


def _changed(tenant_id: str, caller: Principal, contact, now: datetime) -> list:
    changed = SecurityContactChanged(
        tenant_id=tenant_id,
        occurred_date_time=now,
        contact=contact,
        actor=Actor(type=ActorType.user, id=caller.user_id),
    )
    return [
        (Topic.requirement_status, contact_status(tenant_id, contact, now)),
        (Topic.security_contacts, changed),
    ]


async def _enqueue(conn, settings, events: list) -> None:
    """Both events into the outbox, in the change's transaction."""
    try:
        await enqueue(conn, events, max_event_bytes=settings.max_event_bytes)
    except EventTooLarge as exc:  # the contact's fields are bounded far below; kept a 4xx regardless
        raise Problem(413, "Contact too large", str(exc)) from None


async def _audit(conn, tenant_id: str, caller: Principal, action: AuditAction, now: datetime, changes: dict) -> None:
    # In the change's transaction: a change that rolls back takes its entry with it.
    await record_audit(conn, tenant_id=tenant_id, actor=AuditActor.of(caller), action=action,
                       target="security-contact", changes=changes, occurred_at=now)


async def _change_time(conn, tenant_id: str) -> datetime:
    return next_change_time(utcnow(), await store.last_contact_change(conn, tenant_id))


@router.put(
    "/security-contact",
    response_model=SecurityContactOut,
    summary="Set the security contact: securityContactProvided becomes compliant",
)
async def put_contact(
    tenant_id: TenantIdPath,
    body: SecurityContactIn,
    caller: SetterDep,
    settings: SettingsDep,
    pool: PoolDep,
) -> SecurityContactOut:
    contact = body.contact()
    async with store.tenant_transaction(pool, tenant_id, "contact") as conn:
        previous = await store.current_contact(conn, tenant_id)
        if previous is not None and previous.contact == contact:
            return _out(previous)  # nothing changed: no event
        now = await _change_time(conn, tenant_id)
        await store.save_contact(conn, tenant_id, contact, caller.user_id, now)
        await store.record_contact_change(conn, tenant_id, now)
        await _audit(conn, tenant_id, caller, AuditAction.security_contact_set, now,
                     {"name": contact.name, "email": contact.email, "phone": contact.phone})
        await _enqueue(conn, settings, _changed(tenant_id, caller, contact, now))
    return _out(store.StoredContact(contact, caller.user_id, now))


@router.get(
    "/security-contact",
    response_model=SecurityContactOut,
    summary="The security contact in force",
    responses={404: {"description": "No contact set"}},
)
async def get_contact(tenant_id: TenantIdPath, _: TenantReaderDep, pool: PoolDep) -> SecurityContactOut:
    stored = await store.current_contact(pool, tenant_id)
    if stored is None:
        raise Problem(404, "No security contact", f"tenant {tenant_id} has no security contact; PUT one")
    return _out(stored)


@router.delete(
    "/security-contact",
    status_code=204,
    summary="Clear the security contact: securityContactProvided becomes noncompliant",
)
async def delete_contact(
    tenant_id: TenantIdPath, caller: SetterDep, settings: SettingsDep, pool: PoolDep
) -> Response:
    async with store.tenant_transaction(pool, tenant_id, "contact") as conn:
        # Deleting what is not there is done already (a retried DELETE): 204, no event.
        if await store.delete_contact(conn, tenant_id):
            now = await _change_time(conn, tenant_id)
            await store.record_contact_change(conn, tenant_id, now)
            await _audit(conn, tenant_id, caller, AuditAction.security_contact_cleared, now, {})
            await _enqueue(conn, settings, _changed(tenant_id, caller, None, now))
    return Response(status_code=204)

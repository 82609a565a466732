"""Helpers of the notifier's integration tests."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from shared.alerts import Alert, AlertStatus
from shared.events import (
    Actor,
    ActorType,
    AlertCreated,
    AlertUpdated,
    ChannelConfig,
    FieldChange,
    NotificationChannelChanged,
    SecurityContact,
    SecurityContactChanged,
    StatusChange,
    Topic,
)
from shared.sealed import seal
from shared.settings import DEV_SEALING_KEY
from shared.wire import utcnow
from tests.support.polling import eventually

SECRET = "whsec_c2VjcmV0LWZvci10ZXN0cy0xMjM0NQ=="
OTHER_SECRET = "whsec_YW5vdGhlci1zZWNyZXQtZm9yLXRlc3Rz"  # the one a rotation brings in


def alert_created(tenant_id: str, alert_id: str, **fields: Any) -> AlertCreated:
    alert = {
        "id": alert_id,
        "displayName": f"Unusual activity {alert_id}",
        "severity": "high",
        "alertType": "unusualActivity",
        "customerTenantId": "cust-1",
        "detectedDateTime": utcnow().isoformat(),
        **fields,
    }
    return AlertCreated(tenant_id=tenant_id, alert=Alert.model_validate(alert))


def _status_update(created: AlertCreated, to: AlertStatus, actor: Actor) -> AlertUpdated:
    """``created`` moved from active to ``to`` by ``actor``, now."""
    now = utcnow()
    alert = created.alert.model_copy(update={"status": to})
    change = {"field": "status", "from": "active", "to": to.value}
    return AlertUpdated(
        tenant_id=created.tenant_id,
        alert_id=created.alert.id,
        actor=actor,
        changed_date_time=now,
        alert=alert,
        changes=[FieldChange.model_validate(change)],
        status_changes=[StatusChange.model_validate({**change, "actor": actor, "changedDateTime": now})],
    )


def partner_response(created: AlertCreated, user: str = "alice@partner.example") -> AlertUpdated:
    """A partner user takes the alert (active → investigating): the response stops the clock."""
    return _status_update(created, AlertStatus.investigating, Actor(type=ActorType.user, id=user))


def system_resolution(created: AlertCreated) -> AlertUpdated:
    """The alert resolved by the system (Partner Center closed it): no partner response (SPEC §3)."""
    return _status_update(created, AlertStatus.resolved, Actor(type=ActorType.system))


def contact_changed(tenant_id: str, address: str) -> SecurityContactChanged:
    return SecurityContactChanged(
        tenant_id=tenant_id,
        contact=SecurityContact(name="SOC", email=address),
        actor=Actor(type=ActorType.user, id="admin"),
    )


async def set_contact(publish, pool: asyncpg.Pool, tenant_id: str, address: str) -> None:
    await publish(Topic.security_contacts, contact_changed(tenant_id, address))
    await eventually(
        lambda: pool.fetchval("SELECT email FROM notifier_contacts WHERE tenant_id = $1", tenant_id),
        what="the notifier to store the contact",
    )


def channel_changed(
    tenant_id: str,
    name: str,
    url: str | None,
    *,
    secret: str = SECRET,
    previous_secret: str | None = None,
    previous_secret_until: datetime | None = None,
    routes: list | None = None,
    escalation: bool = False,
    occurred: datetime | None = None,
    sealing_keys: Sequence[str] = (DEV_SEALING_KEY,),
) -> NotificationChannelChanged:
    """The write API's event about channel ``name``, its secrets sealed with ``sealing_keys`` (the
    tests' deployment's by default); ``url`` None: the channel deleted."""
    channel = None if url is None else ChannelConfig(
        url=url,
        secret=seal(secret, sealing_keys),
        previous_secret=seal(previous_secret, sealing_keys) if previous_secret else None,
        previous_secret_until=previous_secret_until,
        routes=routes or [],
        escalation=escalation,
    )
    return NotificationChannelChanged(
        tenant_id=tenant_id, name=name, channel=channel, occurred_date_time=occurred or utcnow()
    )


async def applied(pool: asyncpg.Pool, *event_ids) -> bool:
    """Every given event applied by the notifier (in its ledger)."""
    count = await pool.fetchval(
        "SELECT count(*) FROM processed_events WHERE event_id = ANY($1::uuid[])", list(event_ids)
    )
    return count == len(set(event_ids))


async def set_channel(
    pool: asyncpg.Pool,
    tenant_id: str,
    name: str,
    url: str,
    routes: list | None = None,
    escalation: bool = False,
    secret: str = SECRET,
) -> None:
    """The channel written straight into the notifier's own copy (for tests about something else
    than how channels arrive: that is test_events.py's)."""
    await pool.execute(
        """INSERT INTO notification_channels (tenant_id, name, url, secret, routes, escalation)
           VALUES ($1, $2, $3, $4, $5::jsonb, $6)
           ON CONFLICT (tenant_id, name) DO UPDATE SET url = excluded.url, secret = excluded.secret,
               routes = excluded.routes, escalation = excluded.escalation""",
        tenant_id, name, url, secret, json.dumps(routes or []), escalation,
    )


async def deliveries(pool: asyncpg.Pool, tenant_id: str, **where: str) -> list[asyncpg.Record]:
    rows = await pool.fetch(
        "SELECT * FROM notification_deliveries WHERE tenant_id = $1 ORDER BY created_at", tenant_id
    )
    return [r for r in rows if all(r[k] == v for k, v in where.items())]


async def settled(pool: asyncpg.Pool, tenant_id: str, *event_ids) -> bool:
    """Every given event applied and no delivery of the tenant still pending."""
    # Applied first: the rows an event adds commit with its claim, so counting the pending ones after
    # seeing it applied sees them too (counted before, they could commit in between, unseen).
    if not await applied(pool, *event_ids):
        return False
    pending = await pool.fetchval(
        "SELECT count(*) FROM notification_deliveries WHERE tenant_id = $1 AND state = 'pending'", tenant_id
    )
    return pending == 0


async def waits_for_a_lock(observer: asyncpg.Connection, pid: int) -> None:
    """Until the session ``pid`` waits for a lock (a row, a table or an advisory lock)."""
    deadline = asyncio.get_running_loop().time() + 20
    while await observer.fetchval("SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1", pid) != "Lock":
        assert asyncio.get_running_loop().time() < deadline, "the transaction never reached its lock"
        await asyncio.sleep(0.02)

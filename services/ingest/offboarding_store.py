"""Everything the write API holds of a tenant, counted (a dry run) or deleted (an offboarding, #18).

What it holds: a row in each table with a tenant column (:data:`TENANT_TABLES`), and the key store's
keys of the tenant and its audit log (``auth``). What it published for the tenant on compacted topics
stays there until a tombstone deletes its key: the keys are read from the tables before they are
emptied (:class:`HeldKeys`, :func:`tombstone_keys`).

An offboarding is one transaction: every row of the tenant deleted, a tombstone for every key in the
outbox, the tenant recorded as offboarded (``shared.offboarding``; its writes are refused from then
on), ``tenant-offboarded`` on ``tenants`` after the tombstones (the other services delete what they hold
on it), and an audit entry in the deployment's log (the tenant's own log is deleted with it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from shared import offboarding, outbox
from shared.auth import AuditAction, AuditActor, record_audit
from shared.events import Actor, ActorType, TenantOffboarded, Topic

# The write API's tables with a tenant column (schema ingest), in the order they are emptied.
TENANT_TABLES: tuple[str, ...] = (
    "ingest_alert_state", "ingest_webhook_ids", "alert_assignments", "alert_notes", "used_action_links",
    "graph_alert_sync", "graph_connections", "security_contacts", "security_contact_changes", "channels",
    "escalation_chains", "signal_reports", "customer_mfa", "customer_spending", "spending_notifications",
    "deliveries", "ingest_webhook_secrets",
)
# The key store's, which the write API manages (qualified: its pool sees the ingest schema alone).
AUTH_TABLES: tuple[str, ...] = ("auth.api_keys", "auth.audit_log")


@dataclass(frozen=True)
class HeldKeys:
    """What the write API told of the tenant on compacted topics, as its tables know it."""

    security_contact: bool  # set at least once (a cleared one was told too)
    channels: list[str]  # names of its channels, and of those it deleted (from the audit log)
    customers: list[str]  # customers whose MFA figures it holds
    synced_alerts: list[str]  # alerts whose sync with Partner Center it told
    escalation_chain: bool  # set at least once (a cleared one keeps its row)
    assignments: list[str]  # alerts ever assigned
    notes: list[tuple[str, str]]  # (alert, note id) of each note


def tombstone_keys(tenant_id: str, held: HeldKeys, requirement_types: list[str]) -> dict[Topic, list[bytes]]:
    """Each compacted topic's keys to tombstone for the tenant (topics without one left out), sorted.

    ``requirement_types``: the statuses the write API publishes. It keeps no trace of some (an admin-MFA
    report, a status posted as it is), so every one is tombstoned: a tombstone of a key never written
    costs one empty record.
    """
    def keyed(*parts: str) -> bytes:
        return ":".join((tenant_id, *parts)).encode()

    keys = {
        Topic.security_contacts: [tenant_id.encode()] if held.security_contact else [],
        Topic.notification_channels: [keyed(name) for name in sorted(set(held.channels))],
        Topic.customer_mfa: [keyed(customer) for customer in sorted(held.customers)],
        Topic.alert_sync: [keyed(alert) for alert in sorted(held.synced_alerts)],
        Topic.escalation_chains: [tenant_id.encode()] if held.escalation_chain else [],
        Topic.alert_triage: sorted([keyed(alert, "assignee") for alert in held.assignments]
                                   + [keyed(alert, "note", note) for alert, note in held.notes]),
        Topic.requirement_status: [keyed(requirement) for requirement in sorted(requirement_types)],
    }
    return {topic: topic_keys for topic, topic_keys in keys.items() if topic_keys}


async def held_keys(conn: asyncpg.Connection, tenant_id: str) -> HeldKeys:
    async def values(sql: str) -> list:
        return [row[0] for row in await conn.fetch(sql, tenant_id)]

    return HeldKeys(
        security_contact=bool(await values(
            """SELECT 1 FROM security_contacts WHERE tenant_id = $1
               UNION ALL SELECT 1 FROM security_contact_changes WHERE tenant_id = $1""")),
        # A deleted channel's row is gone, but its deletion was told under its key: the audit log names it.
        channels=await values(
            """SELECT name FROM channels WHERE tenant_id = $1
               UNION SELECT substr(target, length('channels/') + 1) FROM auth.audit_log
               WHERE tenant_id = $1 AND target LIKE 'channels/%'"""),
        customers=await values("SELECT customer_tenant_id FROM customer_mfa WHERE tenant_id = $1"),
        synced_alerts=await values("SELECT alert_id FROM graph_alert_sync WHERE tenant_id = $1"),
        escalation_chain=bool(await values("SELECT 1 FROM escalation_chains WHERE tenant_id = $1")),
        assignments=await values("SELECT alert_id FROM alert_assignments WHERE tenant_id = $1"),
        notes=[(row["alert_id"], str(row["note_id"])) for row in await conn.fetch(
            "SELECT alert_id, note_id FROM alert_notes WHERE tenant_id = $1", tenant_id)],
    )


async def _rows(conn: asyncpg.Connection, tenant_id: str) -> dict[str, int]:
    counts = " UNION ALL ".join(
        f"SELECT '{_qualified(table)}', count(*) FROM {table} WHERE tenant_id = $1" for table in _all_tables())
    return dict(sorted((row[0], row[1]) for row in await conn.fetch(counts, tenant_id)))


def _all_tables() -> tuple[str, ...]:
    return TENANT_TABLES + AUTH_TABLES


def _qualified(table: str) -> str:
    return table if "." in table else f"ingest.{table}"


@dataclass(frozen=True)
class Inventory:
    """What an offboarding of the tenant deletes (or, done, deleted)."""

    rows: dict[str, int]  # per table (schema-qualified): the tenant's rows
    tombstones: dict[Topic, list[bytes]]  # per compacted topic: the keys tombstoned
    offboarded_at: datetime | None  # when the tenant was offboarded; None: it is not
    key_digests: list[str]  # of the API keys deleted (a dry run: none)


async def inventory(pool: asyncpg.Pool, tenant_id: str, requirement_types: list[str]) -> Inventory:
    """A dry run: what an offboarding would delete now; nothing changes."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        return Inventory(await _rows(conn, tenant_id),
                         tombstone_keys(tenant_id, await held_keys(conn, tenant_id), requirement_types),
                         await offboarding.offboarded_at(conn, tenant_id), [])


async def offboard(
    pool: asyncpg.Pool, tenant_id: str, requirement_types: list[str], *, actor: AuditActor, now: datetime
) -> Inventory:
    """Delete everything of the tenant, tombstone its keys, tell the others, audit it: one transaction.

    Again for an offboarded tenant: deletes what a write in flight at the first time may have left,
    tells the others again; the first time stays the tenant's ``offboarded_at``.
    """
    async with pool.acquire() as conn, conn.transaction():
        await offboarding.lock_for_offboarding(conn, tenant_id)  # one offboarding of a tenant at a time
        tombstones = tombstone_keys(tenant_id, await held_keys(conn, tenant_id), requirement_types)
        rows: dict[str, int] = {}
        for table in TENANT_TABLES + ("auth.audit_log",):
            status = await conn.execute(f"DELETE FROM {table} WHERE tenant_id = $1", tenant_id)
            rows[_qualified(table)] = int(status.split()[-1])
        digests = [row["key_digest"] for row in await conn.fetch(
            "DELETE FROM auth.api_keys WHERE tenant_id = $1 RETURNING key_digest", tenant_id)]
        rows["auth.api_keys"] = len(digests)
        for topic, keys in tombstones.items():
            await outbox.enqueue_tombstones(conn, topic, keys)
        await offboarding.record_offboarded(conn, tenant_id, now)
        offboarded_at = await offboarding.offboarded_at(conn, tenant_id)
        event = TenantOffboarded(tenant_id=tenant_id, occurred_date_time=now,
                                 actor=Actor(type=ActorType.user, id=actor.user_id))
        await outbox.enqueue(conn, Topic.tenants, event)
        await record_audit(conn, tenant_id=None, actor=actor, action=AuditAction.tenant_offboarded,
                           target=f"tenants/{tenant_id}", occurred_at=now,
                           changes={"rows": dict(sorted(rows.items())), "tombstones": _counts(tombstones)})
    return Inventory(dict(sorted(rows.items())), tombstones, offboarded_at, digests)


def _counts(tombstones: dict[Topic, list[bytes]]) -> dict[str, int]:
    return {topic.value: len(keys) for topic, keys in sorted(tombstones.items())}

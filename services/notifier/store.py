"""PostgreSQL I/O of the notifier: the delivery log, the timers, the contact, the channels, the
escalation chains.

Every event is applied in one transaction with its ``processed_events`` record (:func:`claim`, which
also drops the events of an offboarded tenant), and every delivery row is keyed by (tenant, subject,
channel, kind) and inserted ``ON CONFLICT DO NOTHING``: a redelivered event or a second event about the
same thing adds nothing.

Every change of a delivery's state or attempts enqueues its ``delivery-changed`` event (the delivery
after the change) in the transaction that makes it, and a death its dead letter besides
(``shared/outbox.py``): one ``enqueue_many`` per statement, after the statement that locked the rows,
so the events of one delivery go out in the order of its changes. The alert deliveries a batch logs
grouped into a storm's digest are one ``deliveries-grouped`` event per digest (:func:`_grouped_events`).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import asyncpg

from services.notifier import domain
from services.notifier.domain import ChannelRule, Kind
from shared import outbox, tracing
from shared.channels import ChannelKind, Route
from shared.db import claim_event
from shared.events import (
    AlertCreated,
    AlertUpdated,
    DeliveriesGrouped,
    DeliveryChanged,
    DeliveryView,
    EscalationChainChanged,
    EscalationStep,
    Event,
    GroupedDelivery,
    NotificationChannelChanged,
    RedeliveryRequested,
    SecurityContactChanged,
    SpendingBudgetThresholdReached,
    Topic,
)
from shared.offboarding import claim_events, is_offboarded
from shared.wire import built_of_checked_text, utcnow

CONSUMER = "notifier"

log = logging.getLogger(__name__)


def _current_traceparent() -> str | None:
    """The W3C trace context of the current span (``shared.tracing``): None with tracing off (the
    default: a check, nothing stored) or outside any span."""
    return tracing.trace_headers().get(tracing.TRACEPARENT)


# --- the delivery log's events ---------------------------------------------------------------------

# What a delivery-changed event tells of a row.
DELIVERY_COLUMNS = """delivery_id, tenant_id, subject_id, alert_id, channel, kind, state, recipient, attempts,
    redeliveries, next_attempt_at, last_attempt_at, last_status_code, last_error, delivered_at, dead_at,
    created_at, digest_id"""
# ...and when it changed, for RETURNING: the clock once the statement holds the row, not now() (the
# transaction's start: one that started earlier may change the row later), so each change of a
# delivery is later than the one before, and consumers that keep the newest keep the last.
DELIVERY_CHANGE = f"{DELIVERY_COLUMNS}, clock_timestamp() AS changed_at"


def delivery_view(row: asyncpg.Record) -> DeliveryView:
    """The delivery as the rest of the system sees it (a row of DELIVERY_COLUMNS)."""
    return DeliveryView(
        id=row["delivery_id"],
        alert_id=row["alert_id"],
        subject=row["subject_id"],
        channel=row["channel"],
        kind=row["kind"],
        state=row["state"],
        recipient=row["recipient"],
        attempts=row["attempts"],
        redeliveries=row["redeliveries"],
        # Meaningful only while pending: the next attempt (or the end of the lease of one in flight).
        next_attempt_date_time=row["next_attempt_at"] if row["state"] == "pending" else None,
        last_attempt_date_time=row["last_attempt_at"],
        last_status_code=row["last_status_code"],
        last_error=row["last_error"],
        delivered_date_time=row["delivered_at"],
        dead_lettered_date_time=row["dead_at"],
        created_date_time=row["created_at"],
        digest_id=row["digest_id"],
    )


async def _publish_changes(conn: asyncpg.Connection, rows: Sequence[asyncpg.Record]) -> None:
    """The delivery-changed event of each row (DELIVERY_CHANGE, as the change left it), published once
    the caller's transaction commits; the caller's statement holds the rows' locks."""
    with built_of_checked_text():  # the rows hold what the notifier stored: checked text
        changes = [(Topic.deliveries, DeliveryChanged(tenant_id=row["tenant_id"], occurred_date_time=row["changed_at"],
                                                      delivery=delivery_view(row)))
                   for row in rows]
    await outbox.enqueue_many(conn, changes)


def _grouped_events(rows: Sequence[asyncpg.Record]) -> list[DeliveriesGrouped]:
    """The deliveries-grouped events of alert deliveries logged grouped in one statement (DELIVERY_CHANGE
    rows, in order): one per digest, naming its rows in their order (#15: a storm's alerts are one event
    per digest and batch on the topic, not one each)."""
    by_digest: dict[uuid.UUID, list[asyncpg.Record]] = {}
    for row in rows:
        by_digest.setdefault(row["digest_id"], []).append(row)
    with built_of_checked_text():  # the rows hold what the notifier stored: checked text
        return [DeliveriesGrouped(tenant_id=taken[0]["tenant_id"], occurred_date_time=taken[-1]["changed_at"],
                                  digest_id=digest_id, channel=taken[0]["channel"],
                                  created_date_time=taken[0]["created_at"],
                                  deliveries=[GroupedDelivery(id=row["delivery_id"], alert_id=row["subject_id"])
                                              for row in taken])
                for digest_id, taken in by_digest.items()]


async def _publish_grouped(conn: asyncpg.Connection, batch: AlertsBatch) -> None:
    """The batch's digests' changes and its deliveries-grouped events, once it is applied."""
    await _publish_changes(conn, batch.grouped_changes)
    if batch.grouped_events:
        await outbox.enqueue_many(conn, [(Topic.deliveries, event) for event in batch.grouped_events])
        batch.grouped_events = []


async def _publish_dead_letter(conn: asyncpg.Connection, row: asyncpg.Record) -> None:
    """The dead letter of a delivery that went dead, published once the caller's transaction commits:
    the record ``shared.dead_letters.publish_dead_letter`` would send."""
    letter = domain.dead_letter(row["tenant_id"], delivery_view(row))
    await outbox.enqueue_record(conn, Topic.dead_letter, key=letter.kafka_key(),
                                value=letter.model_dump_json().encode(), headers=letter.headers())


# --- applying events ------------------------------------------------------------------------------------


async def claim(conn: asyncpg.Connection, event: Event) -> bool:
    """Whether to apply ``event``, in the caller's transaction: False if it was applied before, or if
    its tenant is offboarded (dropped, its id claimed all the same). Holds the tenant's offboarding
    lock shared until the transaction ends (``shared.offboarding``): an offboarding under way is waited
    for, then seen, and none starts before this transaction ends, so nothing it writes is left behind."""
    if not await claim_event(conn, CONSUMER, event.event_id):
        return False
    if await is_offboarded(conn, event.tenant_id):
        log.debug("event %s of offboarded tenant %s dropped", event.event_id, event.tenant_id)
        return False
    return True


async def channel_rules(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: str) -> list[ChannelRule]:
    rows = await conn.fetch(
        "SELECT name, routes, escalation, kind FROM notification_channels WHERE tenant_id = $1 AND NOT deleted",
        tenant_id,
    )
    return [
        ChannelRule(
            r["name"], tuple(Route.model_validate(x) for x in json.loads(r["routes"])), r["escalation"],
            ChannelKind(r["kind"]),
        )
        for r in rows
    ]


async def _insert_delivery_rows(
    conn: asyncpg.Connection,
    tenant_id: str,
    subject_id: str,
    alert_id: str | None,
    channels: Sequence[str],
    kind: Kind,
    payload: str,
    *,
    no_contact: bool = False,
    traceparent: str | None = None,
) -> list[asyncpg.Record]:
    """The delivery rows of one subject (:func:`_insert_wanted`); returns those that were new.

    ``no_contact``: the tenant has no security contact (read under :func:`_lock_tenant_contact`, held
    until the caller's transaction ends), so the e-mail to the contact is logged skipped, waiting for
    one, as the worker would have found it: no claim, no send, no second change to announce.
    ``traceparent``: the trace the rows are sent in (else the current span's, :func:`_insert_wanted`)."""
    return await _insert_wanted(conn, [
        Wanted(tenant_id, subject_id, alert_id, channel, kind, payload, no_contact and channel == domain.CONTACT_EMAIL,
               traceparent)
        for channel in channels])


class Wanted(NamedTuple):
    """A delivery to log: ``skip``, logged skipped for want of a contact (:func:`_insert_delivery_rows`);
    ``traceparent``, the trace its send belongs to (#16: the alert's; None: the current span's, if any)."""

    tenant_id: str
    subject_id: str
    alert_id: str | None
    channel: str
    kind: Kind
    payload: str
    skip: bool = False
    traceparent: str | None = None


async def _insert_wanted(conn: asyncpg.Connection, wanted: Sequence[Wanted]) -> list[asyncpg.Record]:
    """The delivery rows, in one statement, each announced as it is inserted; returns those that were
    new (a row of the same key already there adds nothing). A row without a ``traceparent`` of its own
    is sent in the trace of the code writing it, if any (as ``shared.outbox`` does for an event)."""
    if not wanted:
        return []
    current = _current_traceparent()
    inserted = await conn.fetch(
        f"""INSERT INTO notification_deliveries AS d
               (delivery_id, tenant_id, subject_id, alert_id, channel, kind, payload, state, last_error,
                last_attempt_at, awaiting_contact, traceparent)
           SELECT id, tenant_id, subject_id, alert_id, channel, kind, payload::jsonb,
                  CASE WHEN skip THEN 'skipped' ELSE 'pending' END,
                  CASE WHEN skip THEN $9 END,
                  CASE WHEN skip THEN now() END,
                  -- as record_outcome: an alert answered or resolved already waits for nobody
                  skip AND NOT EXISTS (SELECT 1 FROM notifier_closed_alerts c
                                       WHERE c.tenant_id = t.tenant_id AND c.alert_id = t.alert_id),
                  traceparent
           FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                       $8::boolean[], $10::text[])
                AS t(id, tenant_id, subject_id, alert_id, channel, kind, payload, skip, traceparent)
           ON CONFLICT (tenant_id, subject_id, channel, kind) DO NOTHING
           RETURNING {DELIVERY_CHANGE}""",
        [domain.delivery_id(w.tenant_id, w.subject_id, w.channel, w.kind) for w in wanted],
        [w.tenant_id for w in wanted],
        [w.subject_id for w in wanted],
        [w.alert_id for w in wanted],
        [w.channel for w in wanted],
        [w.kind.value for w in wanted],
        [w.payload for w in wanted],
        [w.skip for w in wanted],
        domain.NO_CONTACT.error,
        [w.traceparent or current for w in wanted],
    )
    await _publish_changes(conn, inserted)
    return inserted


async def _has_no_contact(conn: asyncpg.Connection, tenant_id: str, known: dict[str, bool]) -> bool:
    """Whether the tenant has no security contact, read under its contact lock (shared: held until the
    transaction ends, so a contact cannot arrive unseen before it commits; one that arrives after finds
    the e-mails logged as waiting for it). ``known``: the answers already read in this transaction."""
    if tenant_id not in known:
        await _lock_tenant_contact(conn, tenant_id, shared=True)
        known[tenant_id] = await conn.fetchval(
            "SELECT email IS NULL FROM notifier_contacts WHERE tenant_id = $1", tenant_id) in (None, True)
    return known[tenant_id]


async def escalation_chain(db: asyncpg.Connection | asyncpg.Pool, tenant_id: str) -> domain.Chain | None:
    """The tenant's escalation chain in force; None if it has none (never set, or removed)."""
    steps = await db.fetchval("SELECT steps FROM escalation_chains WHERE tenant_id = $1", tenant_id)
    if steps is None:
        return None
    return tuple(EscalationStep.model_validate(step) for step in json.loads(steps))


async def record_escalation_chain(
    pool: asyncpg.Pool, event: EscalationChainChanged, chain: domain.Chain | None
) -> bool | None:
    """The tenant's chain as ``event`` says it now is (``chain``, from ``domain.usable_chain``; None:
    removed, kept as a row without steps). An event older than the one in force changes nothing.
    Returns whether it changed the chain (None if the event was applied before or dropped (:func:`claim`)).
    Timers already scheduled keep their steps: each reads the chain in force when it fires."""
    async with pool.acquire() as conn, conn.transaction():
        if not await claim(conn, event):
            return None
        steps = None if chain is None else json.dumps([step.model_dump(mode="json") for step in chain])
        status = await conn.execute(
            """INSERT INTO escalation_chains AS c (tenant_id, steps, occurred_at) VALUES ($1, $2::jsonb, $3)
               ON CONFLICT (tenant_id) DO UPDATE SET steps = excluded.steps, occurred_at = excluded.occurred_at,
                   updated_at = now()
               WHERE c.occurred_at <= excluded.occurred_at""",
            event.tenant_id,
            steps,
            event.occurred_date_time,
        )
        return status.endswith(" 1")


class OpeningDigest(NamedTuple):
    """A digest a batch opens: its row's fields but its alerts (``AlertsBatch.digest_appends``)."""

    tenant_id: str
    subject: str
    channel: str
    earlier: int  # the alerts the channel had one by one within the window before it
    traceparent: str | None  # the trace of the alert that opened it (#16): the digest is sent in it


@dataclass
class AlertsBatch:
    """What one transaction of alert events has read of each tenant (its channels, its chain, whether
    it has a contact): read once per batch, not once per event."""

    reminder_after: float
    escalation_after: float
    storm: domain.StormPolicy | None = None
    rules: dict[str, list[ChannelRule]] = field(default_factory=dict)
    chains: dict[str, domain.Chain | None] = field(default_factory=dict)
    no_contact: dict[str, bool] = field(default_factory=dict)
    # New alerts each (tenant, channel that groups) was given within the storm window: counted once
    # per batch, then kept up to date as the batch gives it more (the batch holds the tenant's storm
    # lock throughout, so nobody else gives it any meanwhile).
    recent: dict[tuple[str, str], int] = field(default_factory=dict)
    # Tenants whose storm lock the transaction holds (taken once, not once per alert).
    storm_locked: set[str] = field(default_factory=set)
    # The trace context (traceparent) of each event's record, by event id (the handler's, with tracing on
    # only): the trace its deliveries and timers are sent in (#16). Empty: the current span's, if any.
    traces: dict[str, str] = field(default_factory=dict)
    # Each (tenant, channel)'s open digest this transaction holds (its row locked, or inserted by it: no
    # one else adds to it or claims it before the commit), and how many alerts it has: found once.
    open_digests: dict[tuple[str, str], tuple[uuid.UUID, int]] = field(default_factory=dict)
    # The alerts (their payloads, in order) each open digest is given by this batch, written together
    # (:func:`_append_to_digests`): one statement for the batch, not one rewrite of the digest per alert.
    digest_appends: dict[uuid.UUID, list[str]] = field(default_factory=dict)
    # The digests the batch opens, inserted with their alerts at its end (:func:`_append_to_digests`).
    opening: dict[uuid.UUID, OpeningDigest] = field(default_factory=dict)
    # The changes of the digests, and the deliveries-grouped events of the alerts they took in, published
    # together once the batch is applied (in their order: a key's changes keep theirs).
    grouped_changes: list[asyncpg.Record] = field(default_factory=list)
    grouped_events: list[DeliveriesGrouped] = field(default_factory=list)
    # The rows the batch's new alerts add, written together (:func:`_write_pending`): one statement each
    # for the batch, not one per alert (#15). Written before an update of the batch (it may cancel them)
    # and before the digests are appended to.
    grouped_rows: list[tuple] = field(default_factory=list)  # alert deliveries logged 'grouped'
    timers: list[tuple] = field(default_factory=list)  # each new alert's reminder and escalation timers

    def groups(self) -> bool:
        return self.storm is not None and self.storm.threshold > 0


async def apply_alert_events(
    pool: asyncpg.Pool, events: Sequence[AlertCreated | AlertUpdated], batch: AlertsBatch
) -> tuple[int, int]:
    """Apply a batch of ``alerts`` events, in their order, in one transaction: (new alerts recorded,
    timers cancelled by responses).

    Each event id is claimed in ``processed_events`` in that transaction (one statement for the
    batch), so a redelivered event, or a batch consumed again after a crash before its offsets were
    committed, adds nothing; an id twice in the batch counts once; the events of an offboarded tenant
    are dropped (their ids claimed all the same). The per-tenant locks a new alert takes are taken for
    the whole batch first, in the order of their keys (offboarding and contact, shared; then storm
    counting), so two batches never wait for each other in a circle.
    """
    if not events:
        return 0, 0
    created = cancelled = 0
    async with pool.acquire() as conn, conn.transaction():
        todo = await claim_events(conn, CONSUMER, events)
        # In the order a single alert takes them (its contact, then its storm count).
        new_alert_tenants = sorted({e.tenant_id for e in todo if isinstance(e, AlertCreated)})
        for tenant_id in new_alert_tenants:
            await _has_no_contact(conn, tenant_id, batch.no_contact)
        for tenant_id in new_alert_tenants if batch.groups() else ():
            await _lock_tenant_storm(conn, tenant_id, batch)
        for event in todo:
            if isinstance(event, AlertCreated):
                await _apply_alert_created(conn, event, batch)
                created += 1
            else:
                await _write_pending(conn, batch)
                cancelled += await _apply_alert_updated(conn, event) or 0
        await _write_pending(conn, batch)
        await _append_to_digests(conn, batch)
        await _publish_grouped(conn, batch)
    return created, cancelled


async def record_alert_created(
    pool: asyncpg.Pool, event: AlertCreated, reminder_after: float, escalation_after: float,
    storm: domain.StormPolicy | None = None,
) -> bool:
    """One new alert (:func:`_apply_alert_created`) in a transaction of its own; False if the event was
    applied before or dropped (:func:`claim`)."""
    async with pool.acquire() as conn, conn.transaction():
        if not await claim(conn, event):
            return False
        batch = AlertsBatch(reminder_after, escalation_after, storm)
        await _apply_alert_created(conn, event, batch)
        await _write_pending(conn, batch)
        await _append_to_digests(conn, batch)
        await _publish_grouped(conn, batch)
        return True


async def _apply_alert_created(conn: asyncpg.Connection, event: AlertCreated, batch: AlertsBatch) -> None:
    """The new alert's deliveries and its timers (the reminder, and the deployment's escalation or a
    timer per step of the tenant's chain). In a storm (``batch.storm``), the channels people read give
    the alert to a digest instead (``_group_into_digests``). For a tenant without a contact the e-mail
    to the contact is logged skipped, waiting for one (:func:`_insert_delivery_rows`); it counts towards
    a storm like any e-mail the contact was given."""
    alert, tenant_id = event.alert, event.tenant_id
    payload = event.model_dump_json()
    # The trace of the alert's webhook or POST (its record's), so its e-mails are sent in it (#16); else the
    # current span's. None with tracing off.
    traceparent = (batch.traces.get(str(event.event_id)) if batch.traces else None) or _current_traceparent()
    no_contact = await _has_no_contact(conn, tenant_id, batch.no_contact)
    if tenant_id not in batch.rules:
        batch.rules[tenant_id] = await channel_rules(conn, tenant_id)
    rules = batch.rules[tenant_id]
    channels = domain.alert_channels(rules, alert)
    if batch.groups():
        kinds = {rule.name: rule.kind for rule in rules}
        grouped = await _group_into_digests(
            conn, event, [c for c in channels if domain.groups_in_storms(c, kinds)], payload, batch, traceparent)
        channels = [c for c in channels if c not in grouped]
    for row in await _insert_delivery_rows(conn, tenant_id, alert.id, alert.id, channels, Kind.alert, payload,
                                           no_contact=no_contact, traceparent=traceparent):
        if (tenant_id, row["channel"]) in batch.recent:
            batch.recent[tenant_id, row["channel"]] += 1
    chain = None
    if domain.needs_timers(event):
        if tenant_id not in batch.chains:
            batch.chains[tenant_id] = await escalation_chain(conn, tenant_id)
        chain = batch.chains[tenant_id]
    due = domain.timers_for_new_alert(event, batch.reminder_after, batch.escalation_after, utcnow(), chain)
    # Each keeps the alert's trace for the reminder or escalation it fires (fire_due_timers).
    # No copy of the alert: each reads it from the alert's delivery to the contact when it fires (migration 0082).
    batch.timers.extend((tenant_id, alert.id, timer.kind.value, timer.step, at, traceparent)
                        for timer, at in due.items())


async def _write_pending(conn: asyncpg.Connection, batch: AlertsBatch) -> None:
    """Write the rows the batch's new alerts added so far (``batch.grouped_rows``, ``batch.timers``): a
    statement each. The grouped rows' changes join ``batch.grouped_changes``, in the alerts' order."""
    if batch.grouped_rows:
        rows, batch.grouped_rows = batch.grouped_rows, []
        columns = [list(column) for column in zip(*rows, strict=True)]
        logged = await conn.fetch(
            f"""INSERT INTO notification_deliveries
                   (delivery_id, tenant_id, subject_id, alert_id, channel, kind, payload, state, digest_id,
                    traceparent)
                SELECT delivery_id, tenant_id, subject_id, subject_id, channel, 'alert', payload::jsonb, 'grouped',
                       digest_id, traceparent
                FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::uuid[], $7::text[])
                     WITH ORDINALITY AS r(delivery_id, tenant_id, subject_id, channel, payload, digest_id, traceparent,
                                          position)
                ORDER BY position
                ON CONFLICT (tenant_id, subject_id, channel, kind) DO NOTHING
                RETURNING {DELIVERY_CHANGE}""",
            *columns)
        order = {delivery_id: position for position, delivery_id in enumerate(columns[0])}
        batch.grouped_events.extend(_grouped_events(sorted(logged, key=lambda row: order[row["delivery_id"]])))
    if batch.timers:
        timers, batch.timers = batch.timers, []
        await conn.execute(
            """INSERT INTO notification_timers (tenant_id, alert_id, kind, step, due_at, traceparent)
               SELECT tenant_id, alert_id, kind, step, due_at, traceparent
               FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::timestamptz[], $6::text[])
                    AS t(tenant_id, alert_id, kind, step, due_at, traceparent)
               ON CONFLICT (tenant_id, alert_id, kind, step) DO NOTHING""",
            *(list(column) for column in zip(*timers, strict=True)))


async def _lock_tenant_storm(conn: asyncpg.Connection, tenant_id: str, batch: AlertsBatch) -> None:
    """One storm count at a time per tenant, until the transaction ends: two alerts counted at once
    would both see the calm before. Taken once per transaction (``batch.storm_locked``)."""
    if tenant_id not in batch.storm_locked:
        await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('notifier-storm:' || $1, 0))", tenant_id)
        batch.storm_locked.add(tenant_id)


async def _group_into_digests(
    conn: asyncpg.Connection, event: AlertCreated, channels: Sequence[str], payload: str, batch: AlertsBatch,
    traceparent: str | None = None,
) -> set[str]:
    """The channels (of ``channels``, those that group) in a storm for this new alert: on each, the
    alert joins the channel's open digest, or opens one, and its own delivery is logged 'grouped',
    naming the digest. Returns them; the caller sends the alert on its own to the others (and counts
    them in ``batch.recent``). The changes go to ``batch.grouped_changes``, published by the caller.

    ``traceparent`` (the alert's trace, #16): a digest is sent in the trace of the alert that opened it;
    each grouped row keeps its own alert's, which the digest's send links to (:func:`digest_traceparents`)."""
    if not channels:
        return set()
    storm, recent = batch.storm, batch.recent
    assert storm is not None
    tenant_id, alert_id = event.tenant_id, event.alert.id
    await _lock_tenant_storm(conn, tenant_id, batch)
    if uncounted := [c for c in channels if (tenant_id, c) not in recent]:
        counted = dict(await conn.fetch(
            """SELECT channel, count(*) FROM notification_deliveries
               WHERE tenant_id = $1 AND kind = 'alert' AND channel = ANY($2::text[])
                 AND created_at > now() - make_interval(secs => $3)
               GROUP BY channel""",
            tenant_id, uncounted, storm.window_seconds))
        recent.update({(tenant_id, c): counted.get(c, 0) for c in uncounted})
    grouped: set[str] = set()
    for channel in channels:
        earlier = recent[tenant_id, channel]
        if not domain.in_storm(earlier, storm):
            continue
        digest = batch.open_digests.get((tenant_id, channel))
        if digest is None:
            # The digest still open (never tried yet) with room; its row lock keeps the worker from
            # claiming it while alerts are added (a digest claimed first is no longer open).
            found = await conn.fetchrow(
                """SELECT delivery_id, jsonb_array_length(payload -> 'alerts') AS alerts
                   FROM notification_deliveries
                   WHERE tenant_id = $1 AND channel = $2 AND kind = 'digest' AND state = 'pending' AND attempts = 0
                     AND redeliveries = 0 AND jsonb_array_length(payload -> 'alerts') < $3
                   ORDER BY created_at DESC LIMIT 1 FOR UPDATE""",
                tenant_id, channel, storm.digest_max_alerts)
            digest = None if found is None else (found["delivery_id"], found["alerts"])
        if digest is not None:
            digest_id, alerts = digest
            batch.digest_appends.setdefault(digest_id, []).append(payload)
            alerts += 1
        else:
            # Opened with every alert of the batch it takes, at the batch's end (_append_to_digests): its row
            # written once, not written and then rewritten with the rest.
            subject = domain.digest_subject(alert_id)
            digest_id = domain.delivery_id(tenant_id, subject, channel, Kind.digest)
            batch.opening[digest_id] = OpeningDigest(tenant_id, subject, channel, earlier, traceparent)
            batch.digest_appends[digest_id] = [payload]
            alerts = 1
        if alerts < storm.digest_max_alerts:
            batch.open_digests[tenant_id, channel] = (digest_id, alerts)
        else:
            batch.open_digests.pop((tenant_id, channel), None)  # full: due now, the next alert opens one
        # Logged 'grouped' with the batch's others (_write_pending), and counted now: a row of the same key
        # already there (this alert given to the channel before) would not be added, but is already counted
        # in the window then.
        batch.grouped_rows.append((domain.delivery_id(tenant_id, alert_id, channel, Kind.alert), tenant_id,
                                   alert_id, channel, payload, digest_id, traceparent))
        recent[tenant_id, channel] += 1
        grouped.add(channel)
    return grouped


async def _append_to_digests(conn: asyncpg.Connection, batch: AlertsBatch) -> None:
    """Open the digests the batch opened, each with the alerts the batch gave it, and add to each digest
    opened before the alerts the batch gave it: a statement each; a digest this fills falls due at once.
    Before the batch's changes are published (an opened or full digest's change is among them)."""
    if not batch.digest_appends or batch.storm is None:
        return
    if batch.opening:
        opening, batch.opening = batch.opening, {}
        ids = list(opening)
        opened = await conn.fetch(
            f"""INSERT INTO notification_deliveries
                   (delivery_id, tenant_id, subject_id, alert_id, channel, kind, payload, next_attempt_at,
                    traceparent)
                SELECT id, tenant_id, subject_id, NULL, channel, 'digest',
                       jsonb_build_object('alerts', alerts, 'earlier', earlier),
                       now() + make_interval(secs => CASE WHEN jsonb_array_length(alerts) >= $7 THEN 0 ELSE $8 END),
                       traceparent
                FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::jsonb[], $6::int[], $9::text[])
                     WITH ORDINALITY AS o(id, tenant_id, subject_id, channel, alerts, earlier, traceparent, position)
                ORDER BY position
                ON CONFLICT (tenant_id, subject_id, channel, kind) DO NOTHING
                RETURNING {DELIVERY_CHANGE}""",
            ids, [opening[i].tenant_id for i in ids], [opening[i].subject for i in ids],
            [opening[i].channel for i in ids], ["[" + ",".join(batch.digest_appends[i]) + "]" for i in ids],
            [opening[i].earlier for i in ids], batch.storm.digest_max_alerts, batch.storm.digest_wait_seconds,
            [opening[i].traceparent for i in ids])
        batch.grouped_changes.extend(opened)
        for row in opened:
            del batch.digest_appends[row["delivery_id"]]
        # A digest of the same key there before (its first alert given to the channel twice: not met in
        # practice) is added to like any open digest, below: its grouped rows name it.
    if not batch.digest_appends:
        return
    ids = list(batch.digest_appends)
    added = ["[" + ",".join(batch.digest_appends[digest_id]) + "]" for digest_id in ids]
    changed = await conn.fetch(
        f"""UPDATE notification_deliveries
            SET payload = jsonb_set(payload, '{{alerts}}', (payload -> 'alerts') || a.added),
                next_attempt_at = CASE WHEN jsonb_array_length(payload -> 'alerts') + jsonb_array_length(a.added) >= $3
                                       THEN now() ELSE next_attempt_at END,
                updated_at = now()
            FROM unnest($1::uuid[], $2::jsonb[]) AS a(appended_to, added)
            WHERE delivery_id = a.appended_to
            RETURNING {DELIVERY_CHANGE}""",
        ids, added, batch.storm.digest_max_alerts)
    # (A digest changes as the log shows it only when it falls due at once: it is full.)
    batch.grouped_changes.extend(row for row in changed if row["next_attempt_at"] <= row["changed_at"])
    batch.digest_appends.clear()


async def record_alert_updated(pool: asyncpg.Pool, event: AlertUpdated) -> int | None:
    """One alert update (:func:`_apply_alert_updated`) in a transaction of its own; how many timers it
    cancelled (None if the event was applied before or dropped (:func:`claim`))."""
    async with pool.acquire() as conn, conn.transaction():
        if not await claim(conn, event):
            return None
        return await _apply_alert_updated(conn, event)


async def _apply_alert_updated(conn: asyncpg.Connection, event: AlertUpdated) -> int:
    """A partner response or a resolution closes the alert: it cancels its reminder and escalation,
    and no e-mail about it is sent late any more; returns how many timers were cancelled."""
    reason = domain.why_timers_end(event)
    if reason is None:
        return 0
    # Shared: answers to a tenant's alerts do not wait for each other, only for a contact
    # arriving or a "no contact" skip being recorded, each of which sees the mark or is undone.
    await _lock_tenant_contact(conn, event.tenant_id, shared=True)
    await conn.execute(
        """INSERT INTO notifier_closed_alerts (tenant_id, alert_id, reason) VALUES ($1, $2, $3)
           ON CONFLICT (tenant_id, alert_id) DO NOTHING""",
        event.tenant_id,
        event.alert_id,
        reason,
    )
    timers = await conn.execute(
        """UPDATE notification_timers SET state = 'cancelled', updated_at = now()
           WHERE tenant_id = $1 AND alert_id = $2 AND state = 'scheduled'""",
        event.tenant_id,
        event.alert_id,
    )
    # An e-mail about it that waited for a contact is no longer worth sending.
    await conn.execute(
        """UPDATE notification_deliveries SET awaiting_contact = false, updated_at = now()
           WHERE tenant_id = $1 AND subject_id = $2 AND awaiting_contact""",
        event.tenant_id,
        event.alert_id,
    )
    # Nor is a reminder already fired but still waiting for a retry, or an e-mail made due again
    # by a contact but not sent yet. (A catch-up's last error is only the skip it caught up.)
    cancelled = await conn.fetch(
        f"""UPDATE notification_deliveries SET state = 'cancelled', updated_at = now(),
                  last_error = CASE WHEN catch_up THEN 'cancelled: ' || $3
                                    ELSE coalesce(last_error, 'cancelled: ' || $3) END
           WHERE tenant_id = $1 AND subject_id = $2 AND state = 'pending'
             AND (kind IN ('reminder', 'escalation') OR catch_up)
           RETURNING {DELIVERY_CHANGE}""",
        event.tenant_id,
        event.alert_id,
        reason,
    )
    await _publish_changes(conn, cancelled)
    return int(timers.split()[-1])


async def _lock_tenant_contact(conn: asyncpg.Connection, tenant_id: str, *, shared: bool = False) -> None:
    """Serializes, per tenant and until the transaction ends, a contact change, the recording of a
    send that found no contact, and (``shared``, so not with one another) the closing of an alert.

    Without it, a send could read "no contact", the contact arrive and look for skipped e-mails
    (finding the row still pending), and only then the send record its skip: lost for good. And a
    catch-up could read an alert as open while its answer, not yet committed, found nothing to undo.
    """
    function = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
    await conn.execute(f"SELECT {function}(hashtextextended('notifier-contact:' || $1, 0))", tenant_id)


# Whether the alert of a delivery was answered or resolved (record_alert_updated): read under the lock.
_CLOSED = """EXISTS (SELECT 1 FROM notifier_closed_alerts c
                     WHERE c.tenant_id = d.tenant_id AND c.alert_id = d.alert_id)"""


async def record_contact(
    pool: asyncpg.Pool, event: SecurityContactChanged, catch_up_seconds: float
) -> int | None:
    """The tenant's contact; with an address, the e-mails that waited for one are due again.

    Returns how many e-mails are due again (None if the event was applied before or dropped (:func:`claim`)).
    """
    contact = event.contact
    async with pool.acquire() as conn, conn.transaction():
        if not await claim(conn, event):
            return None
        await _lock_tenant_contact(conn, event.tenant_id)
        await conn.execute(
            """INSERT INTO notifier_contacts (tenant_id, name, email, occurred_at) VALUES ($1, $2, $3, $4)
               ON CONFLICT (tenant_id) DO UPDATE SET name = excluded.name, email = excluded.email,
                   occurred_at = excluded.occurred_at, updated_at = now()
               WHERE notifier_contacts.occurred_at <= excluded.occurred_at""",
            event.tenant_id,
            contact.name if contact else None,
            contact.email if contact else None,
            event.occurred_date_time,
        )
        # The contact in force (an older event does not replace a newer one).
        if not await conn.fetchval("SELECT email FROM notifier_contacts WHERE tenant_id = $1", event.tenant_id):
            return 0
        return await _send_what_awaited_the_contact(conn, event.tenant_id, catch_up_seconds)


async def _send_what_awaited_the_contact(conn: asyncpg.Connection, tenant_id: str, catch_up_seconds: float) -> int:
    """Make due again the e-mails skipped for want of a contact that are still worth sending.

    Worth sending (``domain.worth_sending_late``): skipped less than ``catch_up_seconds`` ago, about
    an alert that arrived open and is not closed (answered or resolved) since, or a spending
    notification. The caller holds the tenant's lock, so no answer is half-applied meanwhile; one
    applied after this cancels what this made due (``catch_up``) if it is not sent yet.
    """
    waiting = await conn.fetch(
        f"""SELECT d.delivery_id, d.kind, d.payload, {_CLOSED} AS closed FROM notification_deliveries d
            WHERE d.tenant_id = $1 AND d.awaiting_contact AND d.state = 'skipped'
              AND d.last_attempt_at > now() - make_interval(secs => $2)
            FOR UPDATE OF d""",
        tenant_id,
        catch_up_seconds,
    )
    due = [
        r["delivery_id"]
        for r in waiting
        if domain.worth_sending_late(Kind(r["kind"]), r["payload"], closed_since=r["closed"])
    ]
    # Those not worth it now never will be; those outside the window stay marked, and are never picked.
    updated = await conn.fetch(
        f"""UPDATE notification_deliveries
           SET awaiting_contact = false, updated_at = now(),
               catch_up = catch_up OR delivery_id = ANY($2::uuid[]),
               state = CASE WHEN delivery_id = ANY($2::uuid[]) THEN 'pending' ELSE state END,
               next_attempt_at = CASE WHEN delivery_id = ANY($2::uuid[]) THEN now() ELSE next_attempt_at END
           WHERE delivery_id = ANY($1::uuid[])
           RETURNING {DELIVERY_CHANGE}""",
        [r["delivery_id"] for r in waiting],
        due,
    )
    # Only those due again changed as the rest of the system sees them (awaiting_contact is the notifier's).
    await _publish_changes(conn, [r for r in updated if r["state"] == "pending"])
    return len(due)


async def record_spending(pool: asyncpg.Pool, event: SpendingBudgetThresholdReached) -> bool:
    async with pool.acquire() as conn, conn.transaction():
        if not await claim(conn, event):
            return False
        await _insert_delivery_rows(
            conn,
            event.tenant_id,
            domain.spending_subject(event),
            None,
            [domain.CONTACT_EMAIL],
            Kind.spending,
            event.model_dump_json(),
        )
        return True


async def record_channel(
    pool: asyncpg.Pool, event: NotificationChannelChanged, channel: domain.OpenChannel | None
) -> bool | None:
    """The channel as ``event`` says it now is, opened (``channel``; None: deleted, kept as a tombstone
    without URL or secrets). An event older than the one in force changes nothing. Returns whether
    it changed the channel (None if the event was applied before or dropped (:func:`claim`))."""
    async with pool.acquire() as conn, conn.transaction():
        if not await claim(conn, event):
            return None
        status = await conn.execute(
            """INSERT INTO notification_channels AS c
                   (tenant_id, name, url, secret, previous_secret, previous_secret_until, routes, escalation,
                    deleted, occurred_at, kind)
               VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9, $10, $11)
               ON CONFLICT (tenant_id, name) DO UPDATE SET url = excluded.url, secret = excluded.secret,
                   previous_secret = excluded.previous_secret,
                   previous_secret_until = excluded.previous_secret_until, routes = excluded.routes,
                   escalation = excluded.escalation, deleted = excluded.deleted, kind = excluded.kind,
                   occurred_at = excluded.occurred_at, updated_at = now()
               WHERE c.occurred_at IS NULL OR c.occurred_at <= excluded.occurred_at""",
            event.tenant_id,
            event.name,
            channel.url if channel else None,
            channel.secret if channel else None,
            channel.previous_secret if channel else None,
            channel.previous_secret_until if channel else None,
            json.dumps([route.model_dump(mode="json") for route in channel.routes] if channel else []),
            channel.escalation if channel else False,
            channel is None,
            event.occurred_date_time,
            (channel.kind if channel else ChannelKind.webhook).value,
        )
        return status.endswith(" 1")


async def requeue_dead(pool: asyncpg.Pool, event: RedeliveryRequested) -> tuple[bool, str | None] | None:
    """Put the delivery back in the queue with fresh attempts if (and only if) it is dead.

    Returns (requeued, its state now: None if unknown), or None if the event was applied before or
    dropped (:func:`claim`). With tracing on, the redelivery is sent in the trace of the command (the
    person's request, ``shared.tracing``), not the alert's of long ago; with it off, the row's stays.
    """
    async with pool.acquire() as conn, conn.transaction():
        if not await claim(conn, event):
            return None
        row = await conn.fetchrow(
            f"""UPDATE notification_deliveries
                SET state = 'pending', attempts = 0, redeliveries = redeliveries + 1, next_attempt_at = now(),
                    dead_at = NULL, updated_at = now(), traceparent = coalesce($3, traceparent)
                WHERE tenant_id = $1 AND delivery_id = $2 AND state = 'dead'
                RETURNING {DELIVERY_CHANGE}""",
            event.tenant_id,
            event.delivery_id,
            _current_traceparent(),
        )
        if row is None:
            return False, await conn.fetchval(
                "SELECT state FROM notification_deliveries WHERE tenant_id = $1 AND delivery_id = $2",
                event.tenant_id,
                event.delivery_id,
            )
        await _publish_changes(conn, [row])
        return True, row["state"]


async def closed_alerts(pool: asyncpg.Pool, tenant_id: str, alert_ids: Sequence[str]) -> set[str]:
    """Which of the tenant's ``alert_ids`` were answered or resolved (``record_alert_updated``)."""
    rows = await pool.fetch(
        "SELECT alert_id FROM notifier_closed_alerts WHERE tenant_id = $1 AND alert_id = ANY($2::text[])",
        tenant_id, list(alert_ids))
    return {row["alert_id"] for row in rows}


async def contact_email(pool: asyncpg.Pool, tenant_id: str) -> str | None:
    return await pool.fetchval("SELECT email FROM notifier_contacts WHERE tenant_id = $1", tenant_id)


@dataclass(frozen=True)
class ChannelTarget:
    """Where and how a delivery to a channel goes, as the channel is when it is sent."""

    url: str
    kind: ChannelKind
    secrets: list[str]  # what signs a webhook's delivery (none for a Teams channel)


async def channel_target(pool: asyncpg.Pool, tenant_id: str, name: str) -> ChannelTarget | None:
    """The channel's URL, its kind and the secrets that sign for it: the current one, and the one it
    replaced while their overlap lasts (rotation). None if there is no such channel (any more)."""
    row = await pool.fetchrow(
        """SELECT url, kind, secret, CASE WHEN previous_secret_until > now() THEN previous_secret END AS previous
           FROM notification_channels WHERE tenant_id = $1 AND name = $2 AND NOT deleted""", tenant_id, name
    )
    if row is None:
        return None
    secrets = [secret for secret in (row["secret"], row["previous"]) if secret]
    return ChannelTarget(row["url"], ChannelKind(row["kind"]), secrets)


# --- the worker's side ------------------------------------------------------------------------------


async def fire_due_timers(pool: asyncpg.Pool, *, escalation_email: bool, limit: int) -> int:
    """Turn due timers into delivery rows, in the transaction that marks them fired; a timer with
    nobody left to tell (a test alert's, an unreadable one, a step its chain no longer has) is
    marked cancelled instead."""
    async with pool.acquire() as conn, conn.transaction():
        # The alert: the timer's own copy (rows of before migration 0082), else its delivery to the contact's.
        due = await conn.fetch(
            """SELECT t.tenant_id, t.alert_id, t.kind, t.step, COALESCE(t.payload, d.payload) AS payload,
                      t.traceparent
               FROM notification_timers t
               LEFT JOIN notification_deliveries d
                      ON t.payload IS NULL AND d.tenant_id = t.tenant_id AND d.subject_id = t.alert_id
                     AND d.channel = $2 AND d.kind = 'alert'
               WHERE t.state = 'scheduled' AND t.due_at <= now()
               ORDER BY t.due_at LIMIT $1 FOR UPDATE OF t SKIP LOCKED""",
            limit, domain.CONTACT_EMAIL,
        )
        rules: dict[str, list[ChannelRule]] = {}
        chains: dict[str, domain.Chain | None] = {}
        no_contact: dict[str, bool] = {}
        wanted: list[Wanted] = []
        ends: list[tuple[str, str, str, int, str]] = []
        for timer in due:
            tenant_id, alert_id, kind, step = timer["tenant_id"], timer["alert_id"], Kind(timer["kind"]), timer["step"]
            try:
                if timer["payload"] is None:
                    raise ValueError("its alert's delivery to the contact is gone")
                event = AlertCreated.model_validate_json(timer["payload"])
            except ValueError as exc:  # one unreadable row must not stop every other timer (ValidationError too)
                log.error("timer %s/%s/%s/%d has an unreadable payload; cancelled: %s",
                          tenant_id, alert_id, kind.value, step, " ".join(str(exc).split()))
                event = None
            channels: list[str] = []
            # A timer scheduled by an older version for an alert that needs none (a test alert) ends here.
            if event is not None and domain.needs_timers(event):
                if kind is Kind.reminder:
                    channels = domain.reminder_channels()
                else:
                    if tenant_id not in rules:
                        rules[tenant_id] = await channel_rules(conn, tenant_id)
                        chains[tenant_id] = await escalation_chain(conn, tenant_id)
                    channels = domain.escalation_step_channels(
                        step, chains[tenant_id], rules[tenant_id], event.alert, escalation_email=escalation_email
                    )
                nobody = domain.CONTACT_EMAIL in channels and await _has_no_contact(conn, tenant_id, no_contact)
                # In the alert's trace (its timer's, #16): the reminder is the alert's journey going on.
                wanted.extend(Wanted(tenant_id, alert_id, alert_id, channel, kind, timer["payload"],
                                     nobody and channel == domain.CONTACT_EMAIL, timer["traceparent"])
                              for channel in channels)
            ends.append((tenant_id, alert_id, kind.value, step, "fired" if channels else "cancelled"))
        # The whole pass in two statements: its deliveries, then its timers marked.
        await _insert_wanted(conn, wanted)
        if ends:
            await conn.execute(
                """UPDATE notification_timers t SET state = e.state, updated_at = now()
                   FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::text[])
                        AS e(tenant_id, alert_id, kind, step, state)
                   WHERE t.tenant_id = e.tenant_id AND t.alert_id = e.alert_id AND t.kind = e.kind
                     AND t.step = e.step""",
                *(list(column) for column in zip(*ends, strict=True)),
            )
        return len(due)


async def claim_due_deliveries(
    pool: asyncpg.Pool, *, limit: int, lease_seconds: float
) -> list[asyncpg.Record]:
    """Take due deliveries for one attempt each: the lease is next_attempt_at pushed ahead.

    A process killed mid-send leaves the row pending; it is due again when the lease expires. An
    attempt in flight is no news to the rest of the system: its outcome (``record_outcome``) is,
    with the attempt counted.
    """
    return await pool.fetch(
        """WITH due AS (
               SELECT delivery_id FROM notification_deliveries
               WHERE state = 'pending' AND next_attempt_at <= now()
               ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED)
           UPDATE notification_deliveries d
           SET attempts = d.attempts + 1, last_attempt_at = now(), updated_at = now(),
               next_attempt_at = now() + make_interval(secs => $2)
           FROM due WHERE d.delivery_id = due.delivery_id
           RETURNING d.delivery_id, d.tenant_id, d.subject_id, d.alert_id, d.channel, d.kind, d.payload,
                     d.attempts, d.redeliveries, d.traceparent""",
        limit,
        lease_seconds,
    )


async def digest_traceparents(pool: asyncpg.Pool, digest_id: uuid.UUID) -> list[str]:
    """The trace context of each alert a digest lists, in its order (its grouped row's, #16): what the
    digest's send links to. Found through the alert ids of the digest's payload (the log's key), not a
    scan of the tenant's rows; those without one (tracing off when they came) are left out."""
    rows = await pool.fetch(
        """SELECT g.traceparent
           FROM notification_deliveries digest
           CROSS JOIN LATERAL jsonb_array_elements(digest.payload -> 'alerts') WITH ORDINALITY AS a(event, n)
           JOIN notification_deliveries g
             ON g.tenant_id = digest.tenant_id AND g.subject_id = a.event -> 'alert' ->> 'id'
            AND g.channel = digest.channel AND g.kind = 'alert' AND g.digest_id = digest.delivery_id
           WHERE digest.delivery_id = $1 AND g.traceparent IS NOT NULL
           ORDER BY a.n""",
        digest_id,
    )
    return [row["traceparent"] for row in rows]


async def record_outcome(
    pool: asyncpg.Pool, row: asyncpg.Record, decision: domain.Decision, attempt: domain.Attempt
) -> str | None:
    """Record one attempt's outcome; returns the state recorded, None if the row moved on meanwhile
    (lease lost, cancelled).

    A skip for want of a contact is recorded as waiting for one, unless its alert was answered or
    resolved while the send looked for it (then nothing is left to wait for), or else the contact
    arrived meanwhile (then the e-mail is due again at once, as a catch-up).
    """
    awaits_contact = caught_up = False
    async with pool.acquire() as conn, conn.transaction():
        if attempt.awaits_contact:
            await _lock_tenant_contact(conn, row["tenant_id"])
            closed = await conn.fetchval(
                f"SELECT {_CLOSED} FROM notification_deliveries d WHERE d.delivery_id = $1", row["delivery_id"]
            )
            has_contact = await conn.fetchval(
                "SELECT email IS NOT NULL FROM notifier_contacts WHERE tenant_id = $1", row["tenant_id"]
            )
            if has_contact and not closed:
                decision, caught_up = domain.Decision("pending"), True
            awaits_contact = not has_contact and not closed
        changed = await conn.fetchrow(
            f"""UPDATE notification_deliveries
               SET state = $3, next_attempt_at = now() + make_interval(secs => $4), last_status_code = $5,
                   last_error = $6, recipient = coalesce($7, recipient), updated_at = now(),
                   awaiting_contact = ($3 = 'skipped' AND $8), catch_up = catch_up OR $9,
                   delivered_at = CASE WHEN $3 = 'delivered' THEN now() ELSE delivered_at END,
                   dead_at = CASE WHEN $3 = 'dead' THEN now() ELSE dead_at END
               WHERE delivery_id = $1 AND attempts = $2
                 AND (state = 'pending' OR (state = 'cancelled' AND $3 = 'delivered'))
               RETURNING {DELIVERY_CHANGE}""",
            row["delivery_id"],
            row["attempts"],
            decision.state,
            decision.delay_seconds,
            attempt.status_code,
            attempt.error,
            attempt.recipient,
            awaits_contact,
            caught_up,
        )
        if changed is None:
            return None
        await _publish_changes(conn, [changed])
        if changed["state"] == "dead":
            await _publish_dead_letter(conn, changed)
    return decision.state


async def announce_unannounced_deliveries(pool: asyncpg.Pool, batch_size: int = 500) -> int:
    """Publish, once, the deliveries logged before each change was published (migration 0073), with
    the dead letter of a dead one that the notifier of then had not published yet; returns how many.

    Several processes may run it at once: each takes rows the others have not locked.
    """
    announced = 0
    while True:
        async with pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                f"""SELECT {DELIVERY_CHANGE}, dead_letter_published FROM notification_deliveries
                    WHERE NOT announced LIMIT $1 FOR UPDATE SKIP LOCKED""",
                batch_size,
            )
            if not rows:
                return announced
            await _publish_changes(conn, rows)
            for row in rows:
                if row["state"] == "dead" and not row["dead_letter_published"]:
                    await _publish_dead_letter(conn, row)
            await conn.execute(
                """UPDATE notification_deliveries SET announced = true, dead_letter_published = true
                   WHERE delivery_id = ANY($1::uuid[])""",
                [row["delivery_id"] for row in rows],
            )
        announced += len(rows)


async def prune_finished(pool: asyncpg.Pool, keep_days: float) -> tuple[int, int, int]:
    """Delete finished deliveries and timers untouched for ``keep_days``, and the marks of alerts
    closed as long ago that no delivery is left of; (deliveries, timers, marks) deleted.

    A dead delivery whose dead letter is still to publish (one of before migration 0073 not yet
    announced) is kept until it is.
    """
    async with pool.acquire() as conn, conn.transaction():
        # An alert's delivery to the contact stays while a timer of the alert is to fire: it reads the alert there.
        deliveries = await conn.execute(
            """DELETE FROM notification_deliveries d
               WHERE state IN ('delivered', 'dead', 'skipped', 'cancelled', 'grouped') AND dead_letter_published
                 AND updated_at < now() - make_interval(secs => $1)
                 AND NOT (d.kind = 'alert' AND d.channel = $2 AND EXISTS (
                     SELECT 1 FROM notification_timers t
                     WHERE t.tenant_id = d.tenant_id AND t.alert_id = d.subject_id AND t.state = 'scheduled'
                       AND t.payload IS NULL))""",
            keep_days * 86400, domain.CONTACT_EMAIL,
        )
        timers = await conn.execute(
            """DELETE FROM notification_timers
               WHERE state IN ('fired', 'cancelled') AND updated_at < now() - make_interval(secs => $1)""",
            keep_days * 86400,
        )
        # A mark outlives every delivery of its alert: one still waiting for a contact needs it.
        marks = await conn.execute(
            """DELETE FROM notifier_closed_alerts c WHERE c.closed_at < now() - make_interval(secs => $1)
                 AND NOT EXISTS (SELECT 1 FROM notification_deliveries d
                                 WHERE d.tenant_id = c.tenant_id AND d.subject_id = c.alert_id)""",
            keep_days * 86400,
        )
    return int(deliveries.split()[-1]), int(timers.split()[-1]), int(marks.split()[-1])

"""PostgreSQL I/O of the at-risk warnings (``warnings`` holds the rules): the last state of each
requirement, and the warning deliveries a change of state calls for, in one transaction with the
event's claim (a redelivered event warns nobody twice)."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from services.notifier import domain, store, warnings
from services.notifier.domain import Kind
from shared.events import ComplianceStatus, RequirementStatusObserved
from shared.wire import WireModel


class WarningPayload(WireModel):
    """What a warning delivery carries: the status that caused it, and why."""

    event: RequirementStatusObserved
    reason: warnings.WarningReason


def recipients(chain: domain.Chain | None, *, escalation_email: bool) -> list[str]:
    """The contact, and the people who would be told of an unanswered alert: each address of the
    tenant's escalation chain, all at once (a warning waits for no delay), once each; without a
    chain, the deployment's escalation address if there is one. A chain's channels are not told:
    a warning is an e-mail."""
    if chain is None:
        return [domain.CONTACT_EMAIL, *([domain.ESCALATION_EMAIL] if escalation_email else [])]
    addresses = dict.fromkeys(domain.email_channel(step.email) for step in chain if step.email is not None)
    return [domain.CONTACT_EMAIL, *addresses]


async def record_requirement_status(
    pool: asyncpg.Pool, event: RequirementStatusObserved, *, now: datetime, escalation_email: bool
) -> int | None:
    """Apply the status; the number of warning deliveries it made (None: the event was applied before, or
    its tenant is offboarded).
    An observation older than the one recorded changes nothing."""
    current = warnings.state_of(event)
    async with pool.acquire() as conn, conn.transaction():
        if not await store.claim(conn, event):
            return None
        row = await conn.fetchrow(
            """SELECT compliance_status, at_risk, near_limit, observed_at FROM requirement_states
               WHERE tenant_id = $1 AND requirement_type = $2 FOR UPDATE""",
            event.tenant_id, event.requirement_type,
        )
        if row is not None and row["observed_at"] >= event.observed_date_time:
            return 0
        previous = (warnings.RequirementState(ComplianceStatus(row["compliance_status"]), row["at_risk"],
                                              row["near_limit"])
                    if row is not None else None)
        await conn.execute(
            """INSERT INTO requirement_states (tenant_id, requirement_type, compliance_status, at_risk, near_limit,
                                                observed_at)
               VALUES ($1, $2, $3, $4, $5, $6)
               ON CONFLICT (tenant_id, requirement_type) DO UPDATE SET compliance_status = excluded.compliance_status,
                   at_risk = excluded.at_risk, near_limit = excluded.near_limit, observed_at = excluded.observed_at""",
            event.tenant_id, event.requirement_type, current.compliance.value, current.at_risk, current.near_limit,
            event.observed_date_time,
        )
        reasons = warnings.warnings_for(previous, current, observed=event.observed_date_time, now=now)
        if not reasons:
            return 0
        told = recipients(await store.escalation_chain(conn, event.tenant_id), escalation_email=escalation_email)
        made = 0
        for reason in reasons:
            payload = WarningPayload(event=event, reason=reason).model_dump_json()
            subject = warnings.warning_subject(event.requirement_type, reason, event.observed_date_time)
            made += len(await store._insert_delivery_rows(  # the delivery log's one way in
                conn, event.tenant_id, subject, None, told, Kind.warning, payload,
            ))
        return made

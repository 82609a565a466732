"""Status events applied in batches (#15, ``store.apply_observations``), on the real PostgreSQL: a batch
leaves what applying its events one transaction each leaves (statuses, score, history, score-changed
events), outcome by outcome, with duplicates and an offboarded tenant's events dropped."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from services.scoring import store
from shared.catalogue import Catalogue, Kind, Requirement
from shared.events import ComplianceStatus, RequirementStatusObserved
from shared.offboarding import record_offboarded

T0 = datetime(2026, 11, 27, 6, 0, tzinfo=UTC)
NOW = T0 + timedelta(hours=1)
CATALOGUE = Catalogue(requirements=(
    Requirement(requirement_type="a", kind=Kind.mandatory, max_score=20),
    Requirement(requirement_type="b", kind=Kind.mandatory, max_score=10),
))


def statuses_of(tenant: str) -> list[RequirementStatusObserved]:
    """A, b, an older a (superseded by nothing: it loses), a newer a; each with its own id."""
    def observed(requirement: str, status: ComplianceStatus, minutes: int) -> RequirementStatusObserved:
        return RequirementStatusObserved(tenant_id=tenant, requirement_type=requirement, compliance_status=status,
                                         observed_date_time=T0 + timedelta(minutes=minutes), source="test",
                                         insights={"n": minutes})
    return [observed("a", ComplianceStatus.compliant, 1), observed("b", ComplianceStatus.compliant, 2),
            observed("a", ComplianceStatus.noncompliant, 0), observed("a", ComplianceStatus.noncompliant, 3)]


async def recorded(pool, tenant: str) -> dict:
    statuses = await pool.fetch(
        "SELECT requirement_type, compliance_status, observed_at, insights FROM requirement_status "
        "WHERE tenant_id = $1 ORDER BY requirement_type", tenant)
    history = await pool.fetch(
        "SELECT score, previous_score, compliant_requirements_count FROM score_history WHERE tenant_id = $1 "
        "ORDER BY created_at, score", tenant)
    events = await pool.fetch(
        "SELECT value FROM outbox WHERE topic = 'score-changes' AND key = $1 ORDER BY id", tenant.encode())
    state = await pool.fetchrow(
        "SELECT current_score, projected_score, compliant_requirements_count FROM score_state WHERE tenant_id = $1",
        tenant)
    return {
        "statuses": [(r["requirement_type"], r["compliance_status"], r["observed_at"], json.loads(r["insights"]))
                     for r in statuses],
        "history": [tuple(r) for r in history],
        "events": [(json.loads(bytes(r["value"]))["currentScore"], json.loads(bytes(r["value"]))["previousScore"])
                   for r in events],
        "state": tuple(state) if state else None,
    }


async def test_a_batch_leaves_what_one_transaction_per_event_leaves(scoring_pool, tenant_id):
    one_by_one, batched, other = f"{tenant_id}-single", f"{tenant_id}-batch", f"{tenant_id}-other"
    singles = [await store.apply_observation(scoring_pool, CATALOGUE, event, NOW)
               for event in statuses_of(one_by_one)]
    mine, theirs = statuses_of(batched), statuses_of(other)
    # Two tenants interleaved, and a record of the batch twice (the same event id).
    batch = [mine[0], theirs[0], mine[1], theirs[1], mine[2], mine[2], theirs[2], mine[3], theirs[3]]
    outcomes = await store.apply_observations(scoring_pool, CATALOGUE, batch, NOW)

    assert [outcomes[i] for i in (0, 2, 4, 7)] == singles
    assert outcomes[5] == store.Applied(claimed=False, superseded=False, score_changed=False)  # the repeat
    assert [outcomes[i] for i in (1, 3, 6, 8)] == singles
    expected = await recorded(scoring_pool, one_by_one)
    assert expected["history"] and expected["events"]  # the score did change along the way
    assert await recorded(scoring_pool, batched) == expected
    assert await recorded(scoring_pool, other) == expected

    # The batch again (a redelivery after a crash before its offsets were committed): nothing more.
    again = await store.apply_observations(scoring_pool, CATALOGUE, batch, NOW)
    assert not any(outcome.claimed for outcome in again)
    assert await recorded(scoring_pool, batched) == expected


async def test_the_events_of_an_offboarded_tenant_in_a_batch_are_dropped(scoring_pool, tenant_id):
    gone, kept = f"{tenant_id}-gone", f"{tenant_id}-kept"
    await record_offboarded(scoring_pool, gone, NOW)
    outcomes = await store.apply_observations(scoring_pool, CATALOGUE, statuses_of(gone)[:1] + statuses_of(kept)[:1],
                                              NOW)
    assert [outcome.claimed for outcome in outcomes] == [False, True]
    assert (await recorded(scoring_pool, gone))["statuses"] == []
    assert [s[:2] for s in (await recorded(scoring_pool, kept))["statuses"]] == [("a", "compliant")]

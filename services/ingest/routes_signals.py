"""Requirement signals of the write API (SPEC §4, §6): admin MFA, customers' MFA, spending, any status.

Each signal becomes a ``RequirementStatusObserved`` event (the scoring service keeps the newest per
tenant and requirement). Customer MFA and spending reports also replace the tenant's stored figures
(a customer-MFA report tells each customer's figures as a ``CustomerMfaObserved`` event), and a
spending report publishes the 80 % budget notifications not sent yet. The state, the notification
ledger and the events (in the outbox) commit in one transaction, then the request is answered: a
broker outage delays the events, it loses none and refuses nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Depends, Path
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from services.ingest import signals_store as store
from services.ingest.config import Settings
from services.ingest.deps import CatalogueDep, PoolDep, SettingsDep, TenantManagerDep, wake_relay_after_write
from services.ingest.outgoing import EventTooLarge, enqueue
from services.ingest.signals_models import (
    AdminMfaReport,
    CustomerMfaReport,
    RequirementStatusIn,
    SpendingReport,
)
from services.ingest.signals_rules import (
    STATUS_OWNERS,
    admin_mfa_status,
    customer_mfa_observations,
    customer_mfa_status,
    future_problem,
    generic_status,
    spending_status,
    threshold_notifications,
)
from shared.events import Event, RequirementStatusObserved, Topic
from shared.http import Problem, TenantIdPath
from shared.wire import utcnow


async def _known_requirement(requirement_type: Annotated[str, Path()], catalogue: CatalogueDep) -> str:
    if catalogue.get(requirement_type) is None:
        known = ", ".join(sorted(r.requirement_type for r in catalogue.requirements))
        raise Problem(404, "Unknown requirement", f"no requirement type {requirement_type!r}; known: {known}")
    return requirement_type


KnownRequirement = Annotated[str, Depends(_known_requirement)]


class Notified(BaseModel):
    customerTenantId: str
    month: str


class SignalAccepted(BaseModel):
    requirementType: str
    complianceStatus: str
    observedDateTime: str
    insights: dict[str, Any]
    applied: bool = Field(
        description="False when a report observed later was already applied: nothing changed."
    )
    notifications: list[Notified] | None = Field(
        None, description="Spending only: the 80 % notifications this report published."
    )


async def enqueue_all(conn: asyncpg.Connection, settings: Settings, events: list[tuple[Topic, Event]]) -> None:
    """The events into the outbox, in the caller's transaction (they commit with its state)."""
    try:
        await enqueue(conn, events, max_event_bytes=settings.max_event_bytes)
    except EventTooLarge as exc:  # signals are bounded far below; kept a 4xx regardless
        raise Problem(413, "Report too large", str(exc)) from None


async def enqueue_alone(pool: asyncpg.Pool, settings: Settings, events: list[tuple[Topic, Event]]) -> None:
    """The events of a signal that changes no state of its own, in a transaction of their own."""
    async with pool.acquire() as conn, conn.transaction():
        await enqueue_all(conn, settings, events)


# Bodies are bounded (and the key checked) before they are read by shared.http_guards.RequestGuard.
router = APIRouter(prefix="/v1/tenants/{tenant_id}", tags=["signals"], dependencies=[Depends(wake_relay_after_write)])


def refuse_future(observed: datetime | None, now: datetime) -> None:
    if (problem := future_problem(observed, now)) is not None:
        raise Problem(
            422,
            "Invalid request",
            f"observedDateTime: {problem}",
            errors=[{"field": "observedDateTime", "message": problem}],
        )


def _accepted(
    status: RequirementStatusObserved, *, applied: bool = True, notifications: list[Notified] | None = None
) -> JSONResponse:
    body = SignalAccepted(
        requirementType=status.requirement_type,
        complianceStatus=status.compliance_status.value,
        observedDateTime=status.model_dump(mode="json")["observedDateTime"],
        insights=status.insights,
        applied=applied,
        notifications=notifications,
    )
    return JSONResponse(body.model_dump(exclude_none=True), status_code=202)


@router.post(
    "/signals/admin-mfa",
    status_code=202,
    response_model=SignalAccepted,
    summary="Admin MFA counts of the partner tenant: mfaEnforcedForAdmins",
)
async def post_admin_mfa(
    tenant_id: TenantIdPath, report: AdminMfaReport, _: TenantManagerDep, settings: SettingsDep, pool: PoolDep
) -> JSONResponse:
    now = utcnow()
    refuse_future(report.observed_date_time, now)
    status = admin_mfa_status(tenant_id, report, now)
    await enqueue_alone(pool, settings, [(Topic.requirement_status, status)])
    return _accepted(status)


@router.post(
    "/signals/customer-mfa",
    status_code=202,
    response_model=SignalAccepted,
    summary="Every customer's MFA statistics: mfaEnforcedForAdminsOfCustomers (replaces the last report)",
)
async def post_customer_mfa(
    tenant_id: TenantIdPath,
    report: CustomerMfaReport,
    _: TenantManagerDep,
    settings: SettingsDep,
    pool: PoolDep,
) -> JSONResponse:
    now = utcnow()
    refuse_future(report.observed_date_time, now)
    status = customer_mfa_status(tenant_id, report, now)
    async with store.tenant_transaction(pool, tenant_id, "customer-mfa") as conn:
        if not await store.claim_report(conn, tenant_id, "customer-mfa", status.observed_date_time):
            return _accepted(status, applied=False)
        await store.replace_customer_mfa(conn, tenant_id, report.customers, status.observed_date_time)
        customers = customer_mfa_observations(tenant_id, report, status.observed_date_time, now)
        await enqueue_all(conn, settings,
                          [(Topic.requirement_status, status)] + [(Topic.customer_mfa, c) for c in customers])
    return _accepted(status)


@router.post(
    "/signals/spending",
    status_code=202,
    response_model=SignalAccepted,
    summary="Every customer's Azure budget and spend: spendingBudgetSetForCustomerAzureSubscriptions",
)
async def post_spending(
    tenant_id: TenantIdPath,
    report: SpendingReport,
    _: TenantManagerDep,
    settings: SettingsDep,
    pool: PoolDep,
) -> JSONResponse:
    now = utcnow()
    refuse_future(report.observed_date_time, now)
    status = spending_status(tenant_id, report, now)
    async with store.tenant_transaction(pool, tenant_id, "spending") as conn:
        if not await store.claim_report(conn, tenant_id, "spending", status.observed_date_time):
            return _accepted(status, applied=False, notifications=[])
        await store.replace_spending(
            conn, tenant_id, report.budget_month(now), report.customers, status.observed_date_time
        )
        # The ledger rows and the notifications' outbox rows commit together: each notification is
        # published once it is claimed, and never claimed without being published.
        notifications = await store.claim_notifications(conn, threshold_notifications(tenant_id, report, now))
        await enqueue_all(
            conn,
            settings,
            [(Topic.requirement_status, status)] + [(Topic.notifications, n) for n in notifications],
        )
    return _accepted(
        status,
        notifications=[Notified(customerTenantId=n.customer_tenant_id, month=n.month) for n in notifications],
    )


@router.post(
    "/requirements/{requirement_type}/status",
    status_code=202,
    response_model=SignalAccepted,
    summary="A requirement's status observed elsewhere",
    responses={
        404: {"description": "Unknown requirement type"},
        409: {"description": "The type's status is owned by its own endpoint or service"},
    },
)
async def post_requirement_status(
    tenant_id: TenantIdPath,
    requirement_type: KnownRequirement,
    body: RequirementStatusIn,
    _: TenantManagerDep,
    settings: SettingsDep,
    pool: PoolDep,
) -> JSONResponse:
    if (owner := STATUS_OWNERS.get(requirement_type)) is not None:
        raise Problem(
            409,
            "Status owned by another source",
            f"{requirement_type} is set only by {owner}; the generic status endpoint does not set it",
            requirementType=requirement_type,
            owner=owner,
        )
    now = utcnow()
    refuse_future(body.observed_date_time, now)
    status = generic_status(tenant_id, requirement_type, body, now)
    await enqueue_alone(pool, settings, [(Topic.requirement_status, status)])
    return _accepted(status)

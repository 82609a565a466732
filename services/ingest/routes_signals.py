"""Requirement signals of the write API (SPEC §4, §6): admin MFA, customers' MFA, spending, any status.

Each signal becomes a ``RequirementStatusObserved`` event (the scoring service keeps the newest per
tenant and requirement). Customer MFA and spending reports also replace the tenant's stored figures,
and a spending report publishes the 80 % budget notifications not sent yet; state and ledger commit
only after the broker acknowledged the events, so a broker failure loses nothing (503, retry).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from services.ingest import signals_store as store
from services.ingest.config import Settings
from services.ingest.deps import CallerDep, CatalogueDep, EventPublisherDep, PoolDep, SettingsDep
from services.ingest.publisher import EventPublisher, EventTooLarge, PublishFailed
from services.ingest.signals_models import (
    AdminMfaReport,
    CustomerMfaReport,
    RequirementStatusIn,
    SpendingReport,
)
from services.ingest.signals_rules import (
    STATUS_OWNERS,
    admin_mfa_status,
    customer_mfa_status,
    future_problem,
    generic_status,
    spending_status,
    threshold_notifications,
)
from shared.auth import Permission, Principal, authorize
from shared.events import Event, RequirementStatusObserved, Topic
from shared.http import Problem, TenantIdPath
from shared.wire import utcnow

log = logging.getLogger(__name__)



# Dependencies, so a caller who may not send signals learns that before anything about the body.
async def _manager(tenant_id: TenantIdPath, caller: CallerDep) -> Principal:
    return authorize(caller, Permission.manage, tenant_id)


async def _known_requirement(requirement_type: Annotated[str, Path()], catalogue: CatalogueDep) -> str:
    if catalogue.get(requirement_type) is None:
        known = ", ".join(sorted(r.requirement_type for r in catalogue.requirements))
        raise Problem(404, "Unknown requirement", f"no requirement type {requirement_type!r}; known: {known}")
    return requirement_type


ManagerDep = Annotated[Principal, Depends(_manager)]
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


async def publish_all(
    publisher: EventPublisher, settings: Settings, events: list[tuple[Topic, Event]]
) -> None:
    """Publish the events in one Kafka transaction; 503 with Retry-After if the broker did not commit it.

    Callers that changed state publish inside their transaction, so a 503 here rolls it back. The
    transactional publisher replaces a producer a failure left unusable: an idempotent producer
    whose batch expired during an outage refuses every later record (OutOfOrderSequenceNumber).
    """
    try:
        await publisher.publish_together(events)
    except EventTooLarge as exc:  # signals are bounded far below; kept a 4xx regardless
        raise Problem(413, "Report too large", str(exc)) from None
    except PublishFailed as exc:
        log.warning("broker unavailable, %d events not accepted: %s", len(events), exc)
        raise broker_unavailable(settings, "the events") from None


def broker_unavailable(settings: Settings, what: str) -> Problem:
    """503 with Retry-After: the broker did not take ``what``; the caller's transaction rolls back."""
    return Problem(503, "Broker unavailable", f"{what} could not be stored; retry later",
                   headers={"Retry-After": str(settings.retry_after_seconds)})


# Bodies are bounded (and the key checked) before they are read by shared.http_guards.RequestGuard.
router = APIRouter(prefix="/v1/tenants/{tenant_id}", tags=["signals"])


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
    tenant_id: TenantIdPath, report: AdminMfaReport, _: ManagerDep, settings: SettingsDep, publisher: EventPublisherDep
) -> JSONResponse:
    now = utcnow()
    refuse_future(report.observed_date_time, now)
    status = admin_mfa_status(tenant_id, report, now)
    await publish_all(publisher, settings, [(Topic.requirement_status, status)])
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
    _: ManagerDep,
    settings: SettingsDep,
    pool: PoolDep,
    publisher: EventPublisherDep,
) -> JSONResponse:
    now = utcnow()
    refuse_future(report.observed_date_time, now)
    status = customer_mfa_status(tenant_id, report, now)
    async with store.tenant_transaction(pool, tenant_id, "customer-mfa") as conn:
        if not await store.claim_report(conn, tenant_id, "customer-mfa", status.observed_date_time):
            return _accepted(status, applied=False)
        await store.replace_customer_mfa(conn, tenant_id, report.customers, status.observed_date_time)
        await publish_all(publisher, settings, [(Topic.requirement_status, status)])
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
    _: ManagerDep,
    settings: SettingsDep,
    pool: PoolDep,
    publisher: EventPublisherDep,
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
        # The ledger rows and the notifications commit together, after the broker's ack: a failed
        # publish rolls the rows back, so the next report notifies again rather than never.
        notifications = await store.claim_notifications(conn, threshold_notifications(tenant_id, report, now))
        await publish_all(
            publisher,
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
    _: ManagerDep,
    settings: SettingsDep,
    publisher: EventPublisherDep,
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
    await publish_all(publisher, settings, [(Topic.requirement_status, status)])
    return _accepted(status)

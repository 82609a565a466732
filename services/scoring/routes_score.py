"""``GET /security-score``, ``/security-score/requirements`` and ``/security-score/history`` (SPEC §4, §6).

Score and requirements are computed at read time from the Redis cache (so a preview requirement
counts from its effective date on, with no event); history comes from PostgreSQL. While the cache is
being rebuilt, or Redis does not answer, the first two answer 503 with ``Retry-After``: never a
score computed from partial data.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import Field

from services.scoring import domain, store
from services.scoring.deps import CachedTenantDep, CatalogueDep, PoolDep, ReaderDep, read_tenant_for_reader
from services.scoring.insights import insight_summary
from shared.catalogue import Kind, State
from shared.events import ComplianceStatus
from shared.http import TenantIdPath
from shared.http_guards import authenticates
from shared.wire import OptionalUtcDateTime, UtcDateTime, WireModel, utcnow

router = APIRouter(prefix="/v1/tenants/{tenant_id}", tags=["security score"])

_UNAVAILABLE = {503: {"description": "The score cache is being rebuilt; retry after `Retry-After` seconds."}}


class SecurityScore(WireModel):
    """Graph's ``partnerSecurityScore``."""

    current_score: float = Field(description="100 × Σ score / Σ maxScore over the active requirements.")
    max_score: int = Field(100, description="Always 100.")
    projected_score: float = Field(description="The same over active and preview requirements.")
    last_refresh_date_time: OptionalUtcDateTime = Field(
        description="When a status was last applied; null if never."
    )
    updated_date_time: OptionalUtcDateTime = Field(description="When the score last changed; null if never.")


class SecurityRequirement(WireModel):
    """Graph's ``securityRequirement``, with the catalogue's text and where the status came from."""

    id: str
    requirement_type: str
    kind: Kind
    state: State
    effective_date_time: OptionalUtcDateTime = None
    compliance_status: ComplianceStatus = Field(
        description="With no status received yet, the catalogue's `unobservedComplianceStatus`: "
        "noncompliant, except `securityAlertsPromptlyResolved` (no responded alert is compliant)."
    )
    score: int
    max_score: int
    action_url: str | None = None
    help_url: str | None = None
    updated_date_time: OptionalUtcDateTime = Field(
        None, description="When this status was applied; null if never."
    )
    observed_date_time: OptionalUtcDateTime = Field(None, description="When the status was observed.")
    source: str | None = Field(None, description="What observed it.")
    insights: dict[str, Any] = Field(default_factory=dict, description="Figures behind the status.")
    insight_summary: str | None = Field(
        None, description="The insights in one short sentence (e.g. \"3 of 4 admins have MFA\"); null when "
        "there is nothing to say (no status yet, or insights of a requirement type this service does not know).")
    display_name: str = ""
    description: str = ""


class SecurityRequirements(WireModel):
    value: list[SecurityRequirement]


class ScoreHistoryEntry(WireModel):
    """Graph's ``securityScoreHistory``."""

    created_date_time: UtcDateTime
    score: float
    projected_score: float
    compliant_requirements_count: int
    total_requirements_count: int


class ScoreHistory(WireModel):
    value: list[ScoreHistoryEntry]


@router.get(
    "/security-score",
    summary="The tenant's live security score",
    response_model=SecurityScore,
    responses=_UNAVAILABLE,
)
@authenticates
async def get_security_score(request: Request, tenant_id: TenantIdPath) -> Response:
    # The busiest route takes no dependency but its path (each dependency costs on every read) and answers
    # its JSON bytes itself (#15); ``response_model`` documents them.
    found = await read_tenant_for_reader(request, tenant_id)
    summary = domain.summarise(request.app.state.catalogue, found.statuses, utcnow())
    # Built from values already checked (the cache's, the domain's): not validated again.
    score = SecurityScore.model_construct(
        current_score=summary.current_score,
        max_score=100,
        projected_score=summary.projected_score,
        last_refresh_date_time=found.refreshed_at,
        updated_date_time=found.score_updated_at,
    )
    return Response(score.model_dump_json(), media_type="application/json")


def _requirement(view: domain.RequirementView) -> SecurityRequirement:
    r, status = view.requirement, view.status
    return SecurityRequirement(
        id=r.requirement_type,
        requirement_type=r.requirement_type,
        kind=r.kind,
        state=view.state,
        effective_date_time=r.effective_date_time,
        compliance_status=view.compliance_status,
        score=view.score,
        max_score=r.max_score,
        action_url=r.action_url,
        help_url=r.help_url,
        updated_date_time=status.applied_at if status else None,
        observed_date_time=status.observed_at if status else None,
        source=status.source if status else None,
        insights=status.insights if status else {},
        insight_summary=insight_summary(r.requirement_type, status.insights) if status else None,
        display_name=r.display_name,
        description=r.description,
    )


@router.get(
    "/security-score/requirements",
    summary="Each requirement with its status and score",
    response_model=SecurityRequirements,
    responses=_UNAVAILABLE,
)
async def list_requirements(
    caller: ReaderDep, found: CachedTenantDep, catalogue: CatalogueDep
) -> SecurityRequirements:
    now: datetime = utcnow()
    return SecurityRequirements(
        value=[_requirement(v) for v in domain.requirement_views(catalogue, found.statuses, now)]
    )


@router.get(
    "/security-score/history", summary="One entry per score change, newest first", response_model=ScoreHistory
)
async def get_history(
    tenant_id: str,
    caller: ReaderDep,
    pool: PoolDep,
    top: Annotated[int, Query(ge=1, le=1000, description="At most this many entries.")] = 100,
) -> ScoreHistory:
    rows = await store.history(pool, tenant_id, top)
    return ScoreHistory(
        value=[
            ScoreHistoryEntry(
                created_date_time=row["created_at"],
                score=row["score"],
                projected_score=row["projected_score"],
                compliant_requirements_count=row["compliant_requirements_count"],
                total_requirements_count=row["total_requirements_count"],
            )
            for row in rows
        ]
    )

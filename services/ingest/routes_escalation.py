"""``PUT | GET | DELETE /escalation-chain`` of the write API: each tenant's escalation chain (#13).

A chain is 1 to 10 steps, in order, each telling one recipient (an e-mail address or one of the
tenant's channels, by name) ``afterMinutes`` after an alert's detection if it is still unanswered
then; the delays never decrease. It replaces the deployment's single escalation address for that
tenant: the notifier learns it from the ``escalation-chain-changed`` events alone (compacted
``escalation-chains`` topic, key the tenant; ``steps`` null once removed). A channel named here need
not exist yet: the notifier skips a step whose channel is not there when the step is due.

Managing a chain takes the permission that manages channels; reading it, the read permission. The
row, the audit entry and the event are written in one transaction (``escalation_store``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response
from pydantic import Field, field_validator, model_validator

from services.ingest import escalation_store
from services.ingest.contact import Email
from services.ingest.deps import PoolDep, TenantManagerDep, TenantReaderDep, wake_relay_after_write
from shared.auth import AuditActor
from shared.channels import CHANNEL_NAME_MAX_LENGTH, CHANNEL_NAME_PATTERN
from shared.events import EscalationStep
from shared.http import Problem, TenantIdPath
from shared.wire import UtcDateTime, WireModel

router = APIRouter(prefix="/v1/tenants/{tenant_id}", tags=["escalation chain"],
                   dependencies=[Depends(wake_relay_after_write)])

MAX_STEPS = 10
MAX_AFTER_MINUTES = 7 * 24 * 60  # a week: what the event allows



# A channel's name, as /channels/{name} takes it.
ChannelName = Annotated[str, Field(min_length=1, max_length=CHANNEL_NAME_MAX_LENGTH, pattern=CHANNEL_NAME_PATTERN)]


class EscalationStepIn(WireModel):
    after_minutes: int = Field(
        ge=0, le=MAX_AFTER_MINUTES, strict=True,
        description="Minutes after the alert's detection, if it is still unanswered then (0 to 10080).",
    )
    email: Email | None = Field(None, description="An e-mail address to tell; or give `channel`.")
    channel: ChannelName | None = Field(
        None, description="The name of one of the tenant's channels to tell (it need not exist yet); or give `email`."
    )

    @model_validator(mode="after")
    def _one_recipient(self) -> EscalationStepIn:
        if (self.email is None) == (self.channel is None):
            raise ValueError("give exactly one of email and channel")
        return self

    def step(self) -> EscalationStep:
        return EscalationStep(after_minutes=self.after_minutes, email=self.email, channel=self.channel)


class EscalationChainIn(WireModel):
    steps: list[EscalationStepIn] = Field(
        min_length=1, max_length=MAX_STEPS,
        description="1 to 10 steps, in order; their `afterMinutes` never decrease.",
    )

    @field_validator("steps")
    @classmethod
    def _delays_never_decrease(cls, steps: list[EscalationStepIn]) -> list[EscalationStepIn]:
        for index in range(1, len(steps)):
            if steps[index].after_minutes < steps[index - 1].after_minutes:
                raise ValueError(
                    f"steps[{index}].afterMinutes ({steps[index].after_minutes}) is less than "
                    f"steps[{index - 1}].afterMinutes ({steps[index - 1].after_minutes}): the steps go in "
                    "the order they are due"
                )
        return steps


class EscalationChainOut(WireModel):
    steps: list[EscalationStep] = Field(
        description="The steps, in order: each an `email` or a `channel`, the other null."
    )
    created_date_time: UtcDateTime = Field(description="When this chain was set after none.")
    updated_date_time: UtcDateTime = Field(description="Its last change (the time its event carries).")
    updated_by: str = Field(description="The user of the key that made the last change.")


def _out(chain: escalation_store.StoredChain) -> EscalationChainOut:
    return EscalationChainOut(steps=chain.steps, created_date_time=chain.created_at,
                              updated_date_time=chain.updated_at, updated_by=chain.updated_by)


def _none(tenant_id: str) -> Problem:
    return Problem(404, "No escalation chain", f"tenant {tenant_id} has no escalation chain; PUT one")


@router.put(
    "/escalation-chain",
    response_model=EscalationChainOut,
    summary="Set the tenant's escalation chain (it replaces the deployment's escalation address)",
    responses={201: {"description": "Created", "model": EscalationChainOut},
               200: {"description": "Replaced, or the same chain again (nothing changed)"}},
)
async def put_chain(
    tenant_id: TenantIdPath, body: EscalationChainIn, caller: TenantManagerDep, pool: PoolDep, response: Response
) -> EscalationChainOut:
    chain, created = await escalation_store.set_chain(pool, tenant_id, [s.step() for s in body.steps],
                                                      actor=AuditActor.of(caller))
    response.status_code = 201 if created else 200
    return _out(chain)


@router.get(
    "/escalation-chain",
    response_model=EscalationChainOut,
    summary="The tenant's escalation chain",
    responses={404: {"description": "No chain set"}},
)
async def get_chain(tenant_id: TenantIdPath, _: TenantReaderDep, pool: PoolDep) -> EscalationChainOut:
    chain = await escalation_store.current_chain(pool, tenant_id)
    if chain is None:
        raise _none(tenant_id)
    return _out(chain)


@router.delete(
    "/escalation-chain",
    status_code=204,
    summary="Remove the tenant's escalation chain: the deployment's escalation address applies again",
    responses={404: {"description": "No chain set"}},
)
async def delete_chain(tenant_id: TenantIdPath, caller: TenantManagerDep, pool: PoolDep) -> Response:
    if not await escalation_store.clear_chain(pool, tenant_id, actor=AuditActor.of(caller)):
        raise _none(tenant_id)
    return Response(status_code=204)

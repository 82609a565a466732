"""``GET /v1/me``: who the calling key is and what its role may do, so a client (the dashboard) shows
only the controls the key may use. Any valid key may call it, a tenant's key included.

The request guard (``shared.http_guards``) lets a tenant's key reach only its tenant's routes under
``/v1/`` and keeps every other ``/v1/`` route for operators, but for the routes about the key itself
(``ANY_KEY_PATHS``): this one tells the caller only about itself.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request
from pydantic import Field

from shared.auth import ROLE_PERMISSIONS, Permission, Principal, Role
from shared.http_guards import authenticated_caller, authenticates
from shared.wire import WireModel

router = APIRouter(prefix="/v1", tags=["caller"])


class Me(WireModel):
    user_id: str = Field(description="The user the key acts as.")
    role: Role
    tenant_id: str | None = Field(description="The tenant the key acts for; null: every tenant (an operator).")
    key_id: str | None = Field(description="The key's public id (`operator` for the operator key).")
    permissions: list[Permission] = Field(description="What the role may do, in this order: read, "
                                          "update-alerts, set-contact, manage.")


@authenticates
async def _caller(request: Request, authorization: Annotated[str | None, Header()] = None) -> Principal:
    return await authenticated_caller(request, authorization)


@router.get("/me", response_model=Me, summary="The calling key: its user, role, tenant and permissions")
async def get_me(caller: Annotated[Principal, Depends(_caller)]) -> Me:
    return Me(user_id=caller.user_id, role=caller.role, tenant_id=caller.tenant_id, key_id=caller.key_id,
              permissions=[p for p in Permission if p in ROLE_PERMISSIONS[caller.role]])

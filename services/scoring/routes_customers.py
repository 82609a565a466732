"""``GET /customers/mfa`` of the read API: each customer's MFA figures, searchable by name (SPEC §4, §6).

The figures are those of the tenant's latest customer-MFA report, as the write API publishes them on
``customer-mfa`` (one event per customer) and the read model keeps them (``read_model.py``).
"""

from __future__ import annotations

import unicodedata
from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import Field

from services.scoring import read_model
from services.scoring.deps import PoolDep, ReaderDep
from shared.http import Problem
from shared.wire import UtcDateTime, WireModel

router = APIRouter(prefix="/v1/tenants/{tenant_id}", tags=["customers"])

MAX_PAGE = 500


class CustomerMfaItem(WireModel):
    customer_tenant_id: str
    customer_name: str
    admins: int
    admins_with_mfa: int
    admins_without_mfa: int
    non_admins_with_mfa: int
    total_users: int
    compliant: bool = Field(description="Every admin of the customer has MFA.")
    observed_date_time: UtcDateTime = Field(
        description="When the report these figures come from was observed."
    )


class CustomerMfaPage(WireModel):
    value: list[CustomerMfaItem]
    count: int = Field(alias="@odata.count", description="Customers matching, over every page.")
    next_link: str | None = Field(
        None, alias="@odata.nextLink", description="The next page; absent on the last."
    )


def control_character(text: str) -> str | None:
    """The first control character (NUL included) or lone surrogate in ``text``, if any."""
    return next(
        (c for c in text if unicodedata.category(c) in ("Cc", "Cs")), None
    )


def like_pattern(search: str) -> str:
    """``search`` as a case-insensitive substring pattern, its own ``%``, ``_`` and ``\\`` taken literally."""
    escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


@router.get(
    "/customers/mfa",
    response_model=CustomerMfaPage,
    response_model_exclude_none=True,
    summary="Each customer's admins, admins with MFA, non-admins with MFA and users; search by name",
)
async def list_customer_mfa(
    tenant_id: str,
    request: Request,
    _: ReaderDep,
    pool: PoolDep,
    search: Annotated[
        str | None,
        Query(
            max_length=200,
            # No control characters (C0, DEL, C1): they are in no customer's name.
            pattern=r"^[^\x00-\x1f\x7f-\x9f]*$",
            description="Part of the customer's name, any case; no control characters.",
        ),
    ] = None,
    compliant: Annotated[
        bool | None, Query(description="Only customers whose admins all have MFA (or not).")
    ] = None,
    top: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Page size.")] = 100,
    skip: Annotated[int, Query(ge=0, le=10_000_000, description="Customers to skip.")] = 0,
) -> CustomerMfaPage:
    if (bad := control_character(tenant_id)) is not None:
        raise Problem(422, "Invalid request", f"path.tenant_id: control characters are not allowed (U+{ord(bad):04X})",
                      errors=[{"field": "path.tenant_id", "message": "control characters are not allowed"}])
    if search is not None and (bad := control_character(search)) is not None:
        raise Problem(
            422,
            "Invalid request",
            f"query.search: control characters are not allowed (found U+{ord(bad):04X})",
            errors=[{"field": "query.search", "message": "control characters are not allowed"}],
        )
    pattern = like_pattern(search.strip()) if search and search.strip() else None
    total, rows = await read_model.customer_mfa_page(
        pool, tenant_id, pattern=pattern, compliant=compliant, top=top, skip=skip
    )
    items = [
        CustomerMfaItem(
            customer_tenant_id=r["customer_tenant_id"],
            customer_name=r["customer_name"],
            admins=r["admins"],
            admins_with_mfa=r["admins_with_mfa"],
            admins_without_mfa=r["admins"] - r["admins_with_mfa"],
            non_admins_with_mfa=r["non_admins_with_mfa"],
            total_users=r["total_users"],
            compliant=r["admins_with_mfa"] == r["admins"],
            observed_date_time=r["observed_at"],
        )
        for r in rows
    ]
    # Relative (path and query): the Host header is the client's to write, never a link's origin.
    next_link = None
    if skip + top < total:
        following = request.url.include_query_params(top=top, skip=skip + top)
        next_link = f"{following.path}?{following.query}"
    return CustomerMfaPage(value=items, count=total, next_link=next_link)

"""Events of the read model's topics as their owners publish them: an alert's response time (the
response-time service), a delivery (the notifier), a customer's MFA figures and an alert's sync state
with Partner Center (the write API)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from shared.events import (
    AlertResponseTimeChanged,
    AlertSyncChanged,
    CustomerMfaObserved,
    DeliveryChanged,
    DeliveryView,
    PartnerCenterSync,
)
from shared.response_time import latency_us
from shared.wire import format_utc, utcnow

PARTNER = "ana@partner.example"


def alert_response_time(
    tenant_id: str,
    alert_id: str,
    clock_started_at: datetime,
    *,
    responded_at: datetime | None = None,
    responded_by: str | None = PARTNER,
    status: str = "active",
    is_test: bool = False,
    occurred: datetime | None = None,
    **alert: Any,
) -> AlertResponseTimeChanged:
    """The alert ``alert_id`` as response time knows it; ``alert`` adds SPEC §2 fields (camelCase)."""
    return AlertResponseTimeChanged(
        tenant_id=tenant_id,
        occurred_date_time=occurred or utcnow(),
        alert_id=alert_id,
        alert={"id": alert_id, "status": status, "isTest": is_test,
               "detectedDateTime": format_utc(clock_started_at), "severity": "high", **alert},
        status=status,
        is_test=is_test,
        clock_started_date_time=clock_started_at,
        responded_date_time=responded_at,
        responded_by=responded_by if responded_at else None,
        latency_us=latency_us(clock_started_at, responded_at) if responded_at else None,
    )


def delivery_changed(
    tenant_id: str,
    delivery_id: uuid.UUID,
    created_at: datetime,
    *,
    state: str = "pending",
    alert_id: str | None = "a1",
    occurred: datetime | None = None,
    **view: Any,
) -> DeliveryChanged:
    """The delivery ``delivery_id`` as the notifier shows it; ``view`` sets more of its fields."""
    return DeliveryChanged(
        tenant_id=tenant_id,
        occurred_date_time=occurred or utcnow(),
        delivery=DeliveryView(**{
            "id": delivery_id,
            "alert_id": alert_id,
            "subject": alert_id or "spending:c1:2026-11",
            "channel": "webhook:jira",
            "kind": "alert",
            "state": state,
            "created_date_time": created_at,
            **view,
        }),
    )


def customer_mfa(
    tenant_id: str,
    customer_tenant_id: str,
    name: str,
    observed: datetime,
    *,
    admins: int = 2,
    admins_with_mfa: int = 2,
    non_admins_with_mfa: int = 5,
    total_users: int = 10,
) -> CustomerMfaObserved:
    """One customer's figures of the tenant's report observed at ``observed``."""
    return CustomerMfaObserved(
        tenant_id=tenant_id,
        occurred_date_time=observed,
        customer_tenant_id=customer_tenant_id,
        customer_name=name,
        admins=admins,
        admins_with_mfa=admins_with_mfa,
        non_admins_with_mfa=non_admins_with_mfa,
        total_users=total_users,
        observed_date_time=observed,
    )


def alert_sync_changed(
    tenant_id: str,
    alert_id: str,
    state: str,
    *,
    occurred: datetime | None = None,
    **sync: Any,
) -> AlertSyncChanged:
    """The alert's sync state with Partner Center as the write API's Graph connector tells it; ``sync``
    sets more of its fields (snake_case)."""
    return AlertSyncChanged(
        tenant_id=tenant_id,
        occurred_date_time=occurred or utcnow(),
        alert_id=alert_id,
        sync=PartnerCenterSync(state=state, **sync),
    )

"""PostgreSQL I/O of the response-time service."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from shared.db import claim_event
from shared.events import AlertCreated, AlertUpdated

CONSUMER = "response-time"


async def apply_alert_created(pool: asyncpg.Pool, event: AlertCreated, clock_started_at: datetime) -> bool:
    alert = event.alert
    async with pool.acquire() as conn, conn.transaction():
        if not await claim_event(conn, CONSUMER, event.event_id):
            return False
        await conn.execute(
            """INSERT INTO alerts (tenant_id, alert_id, display_name, alert_type, severity, status,
                                   customer_tenant_id, is_test, detected_at, clock_started_at, alert)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::jsonb)
               ON CONFLICT (tenant_id, alert_id) DO NOTHING""",
            event.tenant_id, alert.id, alert.display_name, alert.alert_type,
            alert.severity.value if alert.severity else None, (alert.status or "active").value if alert.status else "active",
            alert.customer_tenant_id, alert.is_test, alert.detected_date_time, clock_started_at,
            alert.model_dump_json(),
        )
        return True


async def apply_alert_updated(pool: asyncpg.Pool, event: AlertUpdated) -> bool:
    alert = event.alert
    async with pool.acquire() as conn, conn.transaction():
        if not await claim_event(conn, CONSUMER, event.event_id):
            return False
        await conn.execute(
            """UPDATE alerts SET display_name = $3, alert_type = $4, severity = $5, status = $6, is_test = $7,
                                 alert = $8::jsonb, updated_at = now()
               WHERE tenant_id = $1 AND alert_id = $2""",
            event.tenant_id, alert.id, alert.display_name, alert.alert_type,
            alert.severity.value if alert.severity else None, alert.status.value if alert.status else "active",
            alert.is_test, alert.model_dump_json(),
        )
        return True

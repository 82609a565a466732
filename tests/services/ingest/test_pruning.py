"""What the write API forgets, and when: used one-click links and webhook-ids (real PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

from services.ingest.store import (
    USED_LINK_MEMORY,
    WEBHOOK_ID_MEMORY,
    prune_used_action_links,
    prune_webhook_ids,
)
from shared.settings import ACTION_LINK_MAX_AGE_HOURS_LIMIT
from shared.wire import utcnow


async def test_a_used_link_is_forgotten_only_once_it_is_expired_under_any_setting(tenant_id, db_pool):
    # A link issued longer ago than the largest ACTION_LINK_MAX_AGE_HOURS (and a day for clocks) can never
    # work again, so its row may go; a younger one stays, or raising the setting would let it work twice.
    assert USED_LINK_MEMORY > timedelta(hours=ACTION_LINK_MAX_AGE_HOURS_LIMIT)
    now = utcnow()
    for link_id, issued_ago in ((f"{tenant_id}-old", USED_LINK_MEMORY + timedelta(hours=1)),
                                (f"{tenant_id}-young", USED_LINK_MEMORY - timedelta(hours=1))):
        await db_pool.execute(
            """INSERT INTO used_action_links (link_id, tenant_id, alert_id, action, recipient, issued_at, used_at)
               VALUES ($1, $2, 'a1', 'acknowledge', 'soc@partner.example', $3, $3)""", link_id, tenant_id,
            now - issued_ago)
    assert await prune_used_action_links(db_pool) >= 1
    left = await db_pool.fetch("SELECT link_id FROM used_action_links WHERE tenant_id = $1", tenant_id)
    assert [r["link_id"] for r in left] == [f"{tenant_id}-young"]


async def test_a_webhook_id_is_forgotten_after_its_memory_a_batch_at_a_time(tenant_id, db_pool):
    now = utcnow()
    await db_pool.execute(
        """INSERT INTO ingest_webhook_ids (tenant_id, webhook_id, received_at)
           SELECT $1, 'old-' || i, $2::timestamptz FROM generate_series(1, 3) AS i
           UNION ALL SELECT $1, 'fresh', $3::timestamptz""",
        tenant_id, now - WEBHOOK_ID_MEMORY - timedelta(minutes=1), now)
    # A batch at a time (other tests' old ids, or a concurrent prune, may share the batches).
    while forgotten := await prune_webhook_ids(db_pool, batch=2):
        assert forgotten <= 2
    left = await db_pool.fetch("SELECT webhook_id FROM ingest_webhook_ids WHERE tenant_id = $1", tenant_id)
    assert [r["webhook_id"] for r in left] == ["fresh"]

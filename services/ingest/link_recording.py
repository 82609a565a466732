"""How a signed link's response is recorded (``routes_actions``: one alert; ``routes_bulk_actions``: a
storm digest's bulk acknowledge): ``record_alerts``'s ``patch`` and hooks, run in the transaction that
holds the alerts' row locks. A used link changes nothing; a link whose response changed any alert is
used up (``used_action_links``) and the responses queued for Partner Center (alerts that came from
there); a link whose response changed nothing stays unused."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from services.ingest.domain import acted_on
from services.ingest.graph.writeback import queue_writebacks
from services.ingest.recording import AlertEvents
from services.ingest.store import AlertStates
from shared.action_links import ActionLink, BulkLink
from shared.alerts import Alert
from shared.events import Actor, ActorType


class LinkUsed(Exception):
    """The link was used already (found so before the change, or by a concurrent one at its end)."""


class LinkRecording:
    def __init__(self, link: ActionLink | BulkLink) -> None:
        self.link = link
        self.actor = Actor(type=ActorType.user, id=link.recipient)
        self.before: dict[str, Alert] = {}  # the alerts as the transaction found them, by id
        self.at: datetime | None = None  # the time of the response

    def patch(self, previous: Alert, now: datetime) -> Alert:
        self.before[previous.id], self.at = previous, now
        return acted_on(previous, self.link.action, self.actor, now)

    async def refuse_used(self, conn: asyncpg.Connection, states: AlertStates, alerts: list[Alert],
                          now: datetime) -> list[Alert]:
        if await conn.fetchval("SELECT true FROM used_action_links WHERE link_id = $1", self.link.link_id):
            raise LinkUsed
        return alerts

    async def use(self, conn: asyncpg.Connection, states: AlertStates, events: AlertEvents, now: datetime) -> None:
        if not events:
            return  # nothing changed: the link stays unused
        link = self.link
        # One alert per used link: a bulk link is recorded under the first alert it acknowledged.
        used = await conn.fetchval(
            """INSERT INTO used_action_links (link_id, tenant_id, alert_id, action, recipient, issued_at, used_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (link_id) DO NOTHING RETURNING true""",
            link.link_id, link.tenant_id, events[0].alert.id, link.action.value, link.recipient, link.issued_at, now)
        if not used:
            raise LinkUsed
        await queue_writebacks(conn, states, events, now)

"""A channel as the event that tells of it (pure): its kind and configuration, the secrets sealed.

The write API owns each channel's configuration; the notifier learns it only from these events on the
compacted ``notification-channels`` topic, which keeps each channel's latest for as long as it lives.
Anyone who can read that topic must not read a signing secret, so the secret and the one it replaced
travel sealed with the deployment's ``SEALING_KEYS`` (``shared.sealed``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from shared.channels import ChannelKind
from shared.events import ChannelConfig, NotificationChannelChanged
from shared.sealed import seal


def channel_changed(
    tenant_id: str, name: str, row: Mapping[str, Any] | None, sealing_keys: Sequence[str],
    changed_at: datetime | None = None,
) -> NotificationChannelChanged:
    """The event for channel ``name`` now stored as ``row`` (a ``channels`` row); ``None``: deleted.

    Its time is the database's clock once the statement held the row (``changed_at``, or the row's
    ``changed_at`` column), not this host's: the notifier keeps the newest, and hosts' clocks differ.
    """
    when = changed_at if changed_at is not None else (row.get("changed_at") if row is not None else None)
    stamp = {"occurred_date_time": when} if when is not None else {}
    if row is None:
        return NotificationChannelChanged(tenant_id=tenant_id, name=name, channel=None, **stamp)
    routes = row["routes"]
    config = ChannelConfig(
        kind=row.get("kind") or ChannelKind.webhook,
        url=row["url"],
        secret=seal(row["secret"], sealing_keys) if row["secret"] else None,  # a Teams channel has none
        previous_secret=seal(row["previous_secret"], sealing_keys) if row["previous_secret"] else None,
        previous_secret_until=row["previous_secret_until"],
        routes=json.loads(routes) if isinstance(routes, str) else routes,
        escalation=row["escalation"],
    )
    return NotificationChannelChanged(tenant_id=tenant_id, name=name, channel=config, **stamp)

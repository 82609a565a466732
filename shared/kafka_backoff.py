"""A pause after a failed metadata refresh in aiokafka (pinned below 0.15), so no client spins.

aiokafka refreshes the cluster's metadata at once whenever asked, and its fetcher and sender ask in
a loop while a partition has no known leader. With the broker gone each refresh fails at once, so
that loop burned a whole core in whichever service had a consumer or a pending batch (measured by
the fault suite: up to 0.97 of a core; ``retry_backoff_ms`` does not reach that loop). After a
failed refresh the client now waits its ``retry_backoff_ms`` before answering, which paces every
caller of the loop; a successful refresh is not delayed.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka.client import AIOKafkaClient

_original_metadata_update = AIOKafkaClient._metadata_update


async def _metadata_update_paced(self: AIOKafkaClient, cluster_metadata: Any, topics: Any) -> bool:
    updated = await _original_metadata_update(self, cluster_metadata, topics)
    if not updated:
        await asyncio.sleep(self._retry_backoff)
    return updated


def install() -> None:
    """Pace aiokafka's metadata refreshes in this process (idempotent)."""
    AIOKafkaClient._metadata_update = _metadata_update_paced  # type: ignore[method-assign]

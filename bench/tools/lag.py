"""Consumer lag of the stack's consumer groups, from the Kafka admin API (aiokafka), and the wait until
every group has drained.

A group's partitions are those its members are assigned (from the group's description) and those it has
committed offsets for; its lag is the sum over them of the partition's end offset (high watermark) minus
the group's committed offset (0 when it has none: the bench's topics are new, so every record counts).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment
from aiokafka.protocol.admin import DescribeGroupsRequest_v1, DescribeGroupsRequest_v2
from aiokafka.protocol.api import Request
from aiokafka.structs import TopicPartition


class _DescribeGroups(Request[DescribeGroupsRequest_v1 | DescribeGroupsRequest_v2]):
    """DescribeGroups up to v2: aiokafka 0.14 decodes a v3 answer (which Kafka 4 sends) with the v2 schema
    and fails, and Kafka 4 no longer speaks v0."""

    API_KEY = 15

    def __init__(self, groups: list[str]) -> None:
        self._groups = groups

    def build(self, request_struct_class):
        return request_struct_class(self._groups)


class GroupLag:
    def __init__(self, bootstrap: str, prefix: str, names: list[str]) -> None:
        # Reported by the service's part of the name (the groups are the run's topic prefix + it).
        self.names = {f"{prefix}{name}": name for name in names}
        self.groups = list(self.names)
        self._admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="bench-lag")
        # No group: only asks for end offsets.
        self._ends = AIOKafkaConsumer(bootstrap_servers=bootstrap, client_id="bench-lag", enable_auto_commit=False)

    async def __aenter__(self) -> GroupLag:
        await self._admin.start()
        await self._ends.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._ends.stop()
        await self._admin.close()

    async def _describe(self) -> list[tuple]:
        """Each group's description: (error, group, state, protocol type, protocol, members)."""
        found = []
        for group in self.groups:
            coordinator = await self._admin.find_coordinator(group)
            response = await self._admin._send_request(_DescribeGroups([group]), coordinator)
            found.extend(response.groups)
        return found

    async def members(self) -> dict[str, int]:
        """Members per group (0: the group has none now)."""
        found = dict.fromkeys(self.names.values(), 0)
        for group in await self._describe():
            found[self.names[group[1]]] = len(group[5])
        return found

    async def _assigned(self) -> dict[str, set[TopicPartition]]:
        assigned: dict[str, set[TopicPartition]] = {g: set() for g in self.groups}
        for group in await self._describe():
            for member in group[5]:
                if member[-1]:
                    assigned[group[1]].update(ConsumerProtocolMemberAssignment.decode(member[-1]).partitions())
        return assigned

    async def lag(self) -> dict[str, int]:
        return {group: sum(by_partition.values()) for group, by_partition in (await self.by_partition()).items()}

    async def by_partition(self) -> dict[str, dict[TopicPartition, int]]:
        """Each group's lag on each of its partitions."""
        assigned = await self._assigned()
        committed = {g: await self._admin.list_consumer_group_offsets(g) for g in self.groups}
        partitions = set().union(*assigned.values(), *(c.keys() for c in committed.values()))
        ends = await self._ends.end_offsets(list(partitions)) if partitions else {}
        lags = {}
        for group in self.groups:
            lags[self.names[group]] = by_partition = {}
            for tp in assigned[group] | committed[group].keys():
                done = committed[group].get(tp)
                position = done.offset if done is not None and done.offset >= 0 else 0
                by_partition[tp] = max(0, ends.get(tp, 0) - position)
        return lags


@dataclass
class Drain:
    drained: bool
    seconds: float  # from the call until drained (or until the deadline)
    lag: dict[str, int]  # at the end
    outbox: int  # events still waiting in the services' outboxes at the end


async def wait_drained(
    lag: GroupLag,
    outbox_waiting: Callable[[], Awaitable[int]],
    within_seconds: float,
    progress: Callable[[str], None],
    every_seconds: float = 10,
) -> Drain:
    """Until every group's lag is 0 and every outbox is empty, twice in a row (an event may sit in an
    outbox between one consumer's commit and the next topic), or until ``within_seconds``."""
    started = time.monotonic()
    last_note = started
    calm = 0
    while True:
        lags, waiting = await lag.lag(), await outbox_waiting()
        calm = calm + 1 if not any(lags.values()) and waiting == 0 else 0
        now = time.monotonic()
        if calm >= 2:
            return Drain(True, now - started, lags, waiting)
        if now - started > within_seconds:
            return Drain(False, now - started, lags, waiting)
        if now - last_note >= every_seconds:
            last_note = now
            progress(f"draining, {now - started:.0f} s: lag " + ", ".join(f"{g} {n}" for g, n in lags.items())
                     + f"; outbox {waiting}")
        await asyncio.sleep(0.25)

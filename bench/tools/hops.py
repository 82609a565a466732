"""Where write → visible time goes, hop by hop (#15).

An alert posted to the write API reaches ``GET /alerts/{id}`` of the read API over one hop of Kafka:
the write API's relay publishes its ``alert-created``, and the read API consumes it into the row the
route answers from (with the state response time's first event of it will bring). Response time
consumes the same record, and its relay publishes the alert's ``alert-response-time-changed``, which
the read API applies over that row: beside the path, not on it (before 2026-12-03 it was on it: the
read API showed an alert only from that event). Each record carries the time its producer made it
(Kafka's CreateTime, this machine's clock), so with the POST's answer and the read API's 200 every
alert's time splits into two, with response time's beside them:

- **write API's relay**: the POST's answer until its event's record was made (the relay woken by the
  commit; can be a little below zero: the relay may send before the answer reaches the client);
- **read API**: that record until ``GET /alerts/{id}`` answered 200 (the broker, the read API's fetch
  wait and batch, the change stream's hint and the read);
- **response time (beside)**: that record until response time's record of the alert was made (the
  broker, the consumer's fetch wait, its batch's transaction, its relay).

The watcher reads both topics as a consumer outside any group (assigned every partition, from their
ends when it starts, ``read_committed`` like the services), so it changes nothing the services do.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.support import percentile

HOPS = ("write API's relay", "read API", "response time (beside)")


@dataclass
class Hops:
    bootstrap: str
    topic_prefix: str
    tenant: str
    # alert id -> when the first record of it was made on each topic (seconds, wall clock)
    alert_records: dict[str, float] = field(default_factory=dict)
    response_time_records: dict[str, float] = field(default_factory=dict)
    _consumer: AIOKafkaConsumer | None = None
    _task: asyncio.Task | None = None

    async def __aenter__(self) -> Hops:
        alerts, response_times = f"{self.topic_prefix}alerts", f"{self.topic_prefix}alert-response-times"
        self._consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False,
                                          isolation_level="read_committed",
                                          # When a record is read changes nothing (its CreateTime is what counts):
                                          # few, large fetches, so the watcher takes little of the machine's CPU.
                                          fetch_max_wait_ms=500, fetch_min_bytes=262_144)
        await self._consumer.start()
        try:
            partitions = [TopicPartition(topic, p) for topic in (alerts, response_times)
                          for p in sorted(self._consumer.partitions_for_topic(topic)
                                          or await self._partitions(topic))]
            self._consumer.assign(partitions)
            await self._consumer.seek_to_end(*partitions)
            for partition in partitions:  # the ends resolved now, not at the first fetch (after the first posts)
                await self._consumer.position(partition)
        except BaseException:
            await self._consumer.stop()
            raise
        self._task = asyncio.create_task(self._read(alerts))
        return self

    async def _partitions(self, topic: str) -> set[int]:
        await self._consumer._client.force_metadata_update()  # noqa: SLF001 - aiokafka has no public refresh
        return self._consumer.partitions_for_topic(topic) or set()

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()

    async def _read(self, alerts_topic: str) -> None:
        own = f"{self.tenant}:".encode()
        while True:
            batches = await self._consumer.getmany(timeout_ms=200)
            for partition, records in batches.items():
                seen = self.alert_records if partition.topic == alerts_topic else self.response_time_records
                for record in records:
                    if record.key and record.key.startswith(own):
                        seen.setdefault(record.key[len(own):].decode(), record.timestamp / 1000)

    async def settle(self, seconds: float = 1.5) -> None:
        """Give the watcher a moment to read the records of the last alerts made visible."""
        await asyncio.sleep(seconds)

    def split(self, answered: dict[str, float], visible_ms: dict[str, float],
              to_wall: float | None = None) -> dict[str, list[float]]:
        """Each hop's milliseconds, over the alerts visible whose two records were both read.
        ``answered``: ``time.perf_counter()`` of each POST's answer (the probe's); ``to_wall``: what turns
        that clock into the wall clock (by default, as the two read now)."""
        if to_wall is None:
            to_wall = time.time() - time.perf_counter()
        hops: dict[str, list[float]] = {name: [] for name in HOPS}
        for alert_id, visible in visible_ms.items():
            made, timed = self.alert_records.get(alert_id), self.response_time_records.get(alert_id)
            if made is None or timed is None:
                continue
            answered_at = answered[alert_id] + to_wall
            for name, ms in zip(HOPS, ((made - answered_at) * 1000, (answered_at + visible / 1000 - made) * 1000,
                                       (timed - made) * 1000), strict=True):
                hops[name].append(ms)
        return hops


def hops_cell(hops: dict[str, list[float]]) -> str:
    """``write API's relay 1 / 9 ms; read API ...`` (p50 / p99), and how many alerts it covers."""
    counted = len(next(iter(hops.values()), []))
    if not counted:
        return "no alert's two records were read"
    parts = [f"{name} {round(percentile(ms, 50))} / {round(percentile(ms, 99))} ms" for name, ms in hops.items()]
    return f"{'; '.join(parts)} (p50 / p99, {counted:,} alert{'' if counted == 1 else 's'})"

"""``shared.auth.KeyStore`` with no I/O: a fake pool counts look-ups and last-used writes, a fake clock
stands still or moves when told. What a flood of keys (bogus or real) may cost a process, and that a
slow database never holds a request up for a last-used time."""

from __future__ import annotations

import asyncio
import logging
import secrets
import uuid

import pytest

from shared.auth import KeyStore, Principal, key_digest
from shared.problems import Problem
from shared.settings import ApiKeySettings

OPERATOR_KEY = "operator-key-of-these-tests-0123456789"
CACHE_SECONDS = 30.0
LAST_USED_INTERVAL_SECONDS = 60.0
PROMPTLY = 0.5  # seconds: far more than a cached authentication takes, far less than a hung write


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakePool:
    """Stands in for ``asyncpg.Pool``: the ``api_keys`` rows by digest, the queries it was sent."""

    def __init__(self, *, write_failure: Exception | None = None, write_seconds: float = 0.0) -> None:
        self.rows: dict[str, dict] = {}
        self.lookups = 0
        self.writes: list[uuid.UUID] = []  # last-used writes begun
        self.writes_done = 0  # ended well
        self.writes_cancelled = 0
        self.writes_ended = 0  # well, failed or cancelled
        self._a_write_ended = asyncio.Event()
        self.write_failure = write_failure
        self.write_seconds = write_seconds  # inf: the write hangs (a database that does not answer)

    def add_key(self, **row) -> str:
        key = "csp_" + secrets.token_urlsafe(32)
        self.rows[key_digest(key)] = {"key_id": uuid.uuid4(), "tenant_id": "contoso", "role": "securityReader",
                                      "user_id": "rita@partner.example", "expires_at": None,
                                      "rate_per_second": None, "rate_burst": None, **row}
        return key

    async def fetchrow(self, query: str, digest: str) -> dict | None:
        self.lookups += 1
        return self.rows.get(digest)

    async def execute(self, query: str, key_id: uuid.UUID) -> str:
        self.writes.append(key_id)
        try:
            if self.write_seconds:
                await asyncio.sleep(min(self.write_seconds, 3600))
            if self.write_failure is not None:
                raise self.write_failure
        except asyncio.CancelledError:
            self.writes_cancelled += 1
            raise
        finally:
            self.writes_ended += 1
            self._a_write_ended.set()
        self.writes_done += 1
        return "UPDATE 1"

    async def ended(self, count: int) -> None:
        """Until ``count`` last-used writes (begun in the background) have ended."""
        async with asyncio.timeout(5):
            while self.writes_ended < count:
                self._a_write_ended.clear()
                await self._a_write_ended.wait()


def key_store(pool: FakePool, clock: Clock | None = None, *,
              last_used_interval: float = LAST_USED_INTERVAL_SECONDS) -> KeyStore:
    settings = ApiKeySettings(api_key_cache_seconds=CACHE_SECONDS, api_key_rate_per_second=20,
                              api_key_rate_burst=100, api_key_last_used_interval_seconds=last_used_interval)
    return KeyStore(OPERATOR_KEY, pool, settings=settings, clock=clock or Clock())


def bearer(key: str) -> str:
    return f"Bearer {key}"


async def refused(keys: KeyStore, key: str) -> Problem:
    with pytest.raises(Problem) as raised:
        await keys.authenticate(bearer(key))
    return raised.value


# --- the key cache ----------------------------------------------------------------------------------


async def test_many_unknown_keys_neither_evict_a_cached_key_nor_grow_the_caches_past_their_bounds():
    pool = FakePool()
    key = pool.add_key()
    keys = key_store(pool)
    await keys.authenticate(bearer(key))
    assert pool.lookups == 1

    bogus = KeyStore.MAX_KNOWN_KEYS + 2_000  # more than either cache holds
    for n in range(bogus):
        assert (await refused(keys, f"csp_bogus-{n}")).status == 401
    assert pool.lookups == 1 + bogus  # a key never seen costs its look-up: it may have just been made

    await keys.authenticate(bearer(key))
    assert pool.lookups == 1 + bogus, "the valid key was evicted by bogus ones"
    assert len(keys._unknown_keys) <= KeyStore.MAX_UNKNOWN_KEYS
    assert len(keys._known_keys) == 1


async def test_an_unknown_key_is_looked_up_once_per_cache_time():
    pool, clock = FakePool(), Clock()
    keys = key_store(pool, clock)
    for _ in range(5):
        assert (await refused(keys, "csp_not-a-key")).status == 401
    assert pool.lookups == 1
    clock.now += CACHE_SECONDS + 1
    await refused(keys, "csp_not-a-key")
    assert pool.lookups == 2


async def test_a_known_key_is_looked_up_again_after_the_cache_time_and_at_once_when_forgotten():
    pool, clock = FakePool(), Clock()
    key = pool.add_key()
    keys = key_store(pool, clock)
    await keys.authenticate(bearer(key))
    clock.now += CACHE_SECONDS - 1
    await keys.authenticate(bearer(key))
    assert pool.lookups == 1
    clock.now += 2
    await keys.authenticate(bearer(key))
    assert pool.lookups == 2

    del pool.rows[key_digest(key)]  # revoked by this process: it stops at once
    keys.forget(key_digest(key))
    assert (await refused(keys, key)).status == 401


async def test_the_operator_key_needs_no_look_up():
    pool = FakePool()
    keys = key_store(pool)
    principal = await keys.authenticate(bearer(OPERATOR_KEY))
    assert principal.is_operator and pool.lookups == 0 and pool.writes == []


# --- rate-limit buckets -----------------------------------------------------------------------------


async def test_buckets_stay_bounded_with_more_active_keys_than_the_bound():
    pool = FakePool()
    many = [pool.add_key() for _ in range(KeyStore.MAX_BUCKETS + 500)]
    keys = key_store(pool, last_used_interval=LAST_USED_INTERVAL_SECONDS)
    async with asyncio.timeout(10):  # a rescan of every bucket per new key would take minutes
        for key in many:
            await keys.authenticate(bearer(key))  # the clock stands still: no bucket is full again
            await asyncio.sleep(0)
    assert len(keys._buckets) <= KeyStore.MAX_BUCKETS


async def test_the_least_recently_used_bucket_is_the_one_forgotten():
    pool = FakePool()
    busy = pool.add_key(rate_burst=2)
    keys = key_store(pool)
    for _ in range(2):
        await keys.authenticate(bearer(busy))
    assert (await refused(keys, busy)).status == 429
    for _ in range(KeyStore.MAX_BUCKETS - 1):  # one fewer than the bound: the busy key's bucket is kept
        await keys.authenticate(bearer(pool.add_key()))
        await asyncio.sleep(0)
    limited = await refused(keys, busy)
    assert limited.status == 429 and limited.headers["Retry-After"] == "1"


# --- last-used writes -------------------------------------------------------------------------------


async def test_a_key_at_the_bound_of_the_last_used_throttle_does_not_reset_it_for_the_others():
    pool = FakePool()
    many = [pool.add_key() for _ in range(KeyStore.MAX_LAST_USED_MARKS + 1)]
    keys = key_store(pool)
    for key in many:
        await keys.authenticate(bearer(key))
        await asyncio.sleep(0)
    await pool.ended(len(many))
    assert len(pool.writes) == len(many)
    # Within the interval the keys used last are not written again (only the least recently used
    # one was forgotten): no burst of UPDATEs when the throttle is full.
    for key in many[-100:]:
        await keys.authenticate(bearer(key))
        await asyncio.sleep(0)
    assert len(pool.writes) == len(many)


async def test_authentication_does_not_wait_for_a_last_used_write_that_hangs():
    pool = FakePool(write_seconds=float("inf"))
    key = pool.add_key()
    keys = key_store(pool, last_used_interval=0)  # every request would write, but one at a time per key
    async with asyncio.timeout(PROMPTLY):
        principal = await keys.authenticate(bearer(key))
    assert isinstance(principal, Principal) and principal.tenant_id == "contoso"
    await asyncio.sleep(0.01)
    assert len(pool.writes) == 1  # begun, in the background

    for _ in range(5):
        async with asyncio.timeout(PROMPTLY):
            await keys.authenticate(bearer(key))
    await asyncio.sleep(0.01)
    assert len(pool.writes) == 1, "a second write of the same key while one is in flight"

    await keys.close(grace_seconds=0.05)
    assert pool.writes_cancelled == 1


async def test_close_lets_a_write_in_flight_finish_and_later_requests_write_nothing():
    pool = FakePool(write_seconds=0.05)
    key = pool.add_key()
    keys = key_store(pool, last_used_interval=0)
    await keys.authenticate(bearer(key))
    await asyncio.sleep(0)
    await keys.close()
    assert (pool.writes_done, pool.writes_cancelled) == (1, 0)
    await keys.authenticate(bearer(key))  # still authenticates after close (a request in its last moments)
    await asyncio.sleep(0.01)
    assert len(pool.writes) == 1


async def test_failing_last_used_writes_are_logged_once_and_fail_no_request(caplog):
    pool = FakePool(write_failure=OSError("connection refused"))
    keys = key_store(pool)
    with caplog.at_level(logging.INFO, logger="shared.auth"):
        for _ in range(3):
            await keys.authenticate(bearer(pool.add_key()))
            await asyncio.sleep(0)
        await pool.ended(3)
        warnings = [r for r in caplog.records if r.name == "shared.auth" and r.levelno >= logging.WARNING]
        assert len(warnings) == 1, [r.getMessage() for r in warnings]
        assert "connection refused" in warnings[0].getMessage()

        pool.write_failure = None
        await keys.authenticate(bearer(pool.add_key()))
        await asyncio.sleep(0)
        await pool.ended(4)
        assert pool.writes_done == 1
        assert any("recorded again" in r.getMessage() for r in caplog.records if r.levelno == logging.INFO)
    await keys.close()

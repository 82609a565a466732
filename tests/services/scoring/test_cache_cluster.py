"""The score cache's Lua scripts on Redis Cluster: a script runs only if all its KEYS hash to one slot.

Two proofs. Every script call the cache makes, recorded through its whole life (merges of several
tenants, a rebuild begun and finished, a tenant forgotten), names keys of one slot; and on a real
three-master cluster (Debian's redis-server, started here on spare ports) the scripts run with the
cache's keys, where the keys of the previous layout are refused with CROSSSLOT.
"""

from __future__ import annotations

import ast
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot
from redis.exceptions import RedisClusterException, ResponseError

from services.scoring import cache as cache_module
from services.scoring import domain
from services.scoring.cache import ScoreCache
from services.scoring.store import TenantSnapshot
from shared.events import ComplianceStatus

T0 = datetime(2026, 11, 27, 6, 0, tzinfo=UTC)


def observation(requirement: str, compliant: bool, observed: datetime) -> domain.Observation:
    return domain.Observation(
        requirement,
        ComplianceStatus.compliant if compliant else ComplianceStatus.noncompliant,
        observed,
        uuid.uuid4().hex,
        source="test",
        insights={},
        applied_at=observed,
    )


def snapshot(tenant_id: str, at: datetime = T0) -> TenantSnapshot:
    statuses = [observation("mfaEnforcedForAdmins", True, at), observation("securityContactProvided", False, at)]
    return TenantSnapshot(tenant_id, {s.requirement_type: s for s in statuses}, at, at)


def slots(keys: list[str]) -> set[int]:
    return {key_slot(key.encode()) for key in keys}


def registered_scripts_in_the_source() -> int:
    tree = ast.parse(Path(cache_module.__file__).read_text())
    return sum(
        1 for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "register_script"
    )


def test_the_keys_of_a_tenant_and_of_a_rebuild_share_a_hash_tag():
    prefix = "scoring:"
    assert cache_module.tenant_key(prefix, "t-1") == "scoring:{t:t-1}"
    assert slots([cache_module.ready_key(prefix), cache_module.epoch_key(prefix)]) == {key_slot(b"cache")}
    # The previous layout's epoch and marker were in two slots: a cluster refused _FINISH_REBUILD.
    assert key_slot(b"scoring:epoch") != key_slot(b"scoring:ready")
    # Tenants are spread over the slots rather than all in one.
    assert len(slots([cache_module.tenant_key(prefix, f"tenant-{i}") for i in range(50)])) > 40


def test_a_prefix_with_braces_is_refused():
    with pytest.raises(ValueError, match="must not contain"):
        ScoreCache(None, "scoring{x}:")  # type: ignore[arg-type]  # refused before any use


async def test_every_script_call_of_the_cache_names_keys_of_one_slot(redis_client, monkeypatch):
    calls: list[tuple[str, list[str]]] = []
    register = redis_client.register_script

    def recording(script: str):
        registered = register(script)

        async def call(keys=(), args=(), client=None):
            calls.append((script, list(keys)))
            return await registered(keys=keys, args=args, client=client)

        return call

    monkeypatch.setattr(redis_client, "register_script", recording)
    cache = ScoreCache(redis_client, f"scoring-slots-test-{uuid.uuid4().hex[:8]}:")
    tenants = [f"tenant-{uuid.uuid4().hex[:10]}" for _ in range(5)]
    try:
        run_id = await cache.server_run_id()
        token = await cache.begin_rebuild()
        for tenant_id in tenants:
            assert await cache.merge(snapshot(tenant_id)) == 2
        assert await cache.finish_rebuild(token, run_id)
        assert await cache.is_ready()
        for tenant_id in tenants:
            assert set((await cache.read(tenant_id)).statuses) == {"mfaEnforcedForAdmins", "securityContactProvided"}
        await cache.forget(tenants[0])
    finally:
        await redis_client.delete(cache.ready_key, cache.epoch_key)
        for tenant_id in tenants:
            await redis_client.delete(cache.tenant_key(tenant_id))

    # Every script the module registers was called (none left out of this check), each call in one slot.
    assert len({script for script, _ in calls}) == registered_scripts_in_the_source() == 2
    assert len(calls) == len(tenants) + 1
    for script, keys in calls:
        assert keys and len(slots(keys)) == 1, (script.strip().splitlines()[0], keys)
    # And no script builds a key name of its own: each touches only what it is given in KEYS.
    for script, _ in calls:
        assert "..KEYS" not in script and "KEYS[1] .." not in script


# --- a real Redis Cluster --------------------------------------------------------------------------------


def _spare_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cluster_ready(port: int) -> bool:
    answer = subprocess.run(["redis-cli", "-p", str(port), "cluster", "info"], capture_output=True, text=True,
                            timeout=5)
    return "cluster_state:ok" in answer.stdout


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[int]]:
    """Three masters, no replicas, in cluster mode on spare ports; stopped (these processes only) after."""
    server = shutil.which("redis-server")
    assert server and shutil.which("redis-cli"), "redis-server and redis-cli are needed (Debian: redis-server)"
    base = tmp_path_factory.mktemp("redis-cluster")
    ports = [_spare_port() for _ in range(3)]
    processes = []
    try:
        for port in ports:
            directory = base / str(port)
            directory.mkdir()
            processes.append(subprocess.Popen(
                [server, "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                 "--cluster-port", str(_spare_port()), "--cluster-config-file", "nodes.conf",
                 "--dir", str(directory), "--save", "", "--appendonly", "no", "--daemonize", "no"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            ))
        deadline = time.monotonic() + 20
        while subprocess.run(["redis-cli", "-p", str(ports[-1]), "ping"], capture_output=True, text=True,
                             timeout=5).stdout.strip() != "PONG":
            assert time.monotonic() < deadline, "the cluster's redis-server processes did not start"
            time.sleep(0.1)
        created = subprocess.run(
            ["redis-cli", "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports),
             "--cluster-replicas", "0", "--cluster-yes"],
            capture_output=True, text=True, timeout=60,
        )
        assert created.returncode == 0, created.stdout + created.stderr
        while not all(_cluster_ready(p) for p in ports):
            assert time.monotonic() < deadline + 30, "the cluster never reached cluster_state:ok"
            time.sleep(0.2)
        yield ports
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.mark.integration  # Debian's redis-server, as the local infrastructure uses
async def test_the_cache_scripts_run_on_redis_cluster_with_the_cache_keys(redis_cluster):
    client = RedisCluster(host="127.0.0.1", port=redis_cluster[0], decode_responses=True)
    prefix = "scoring:"
    try:
        await client.initialize()
        assert len({node.port for node in client.get_primaries()}) == 3
        merge = client.register_script(cache_module._MERGE_TENANT)
        finish = client.register_script(cache_module._FINISH_REBUILD)
        epoch, ready = cache_module.epoch_key(prefix), cache_module.ready_key(prefix)

        # A rebuild: its epoch, the tenants merged (on whichever master holds each), then the marker.
        assert await client.set(epoch, "token-1", nx=True)
        tenants = [f"tenant-{i}" for i in range(12)]
        assert len({client.get_node_from_key(cache_module.tenant_key(prefix, t)).port for t in tenants}) > 1
        status = observation("mfaEnforcedForAdmins", False, T0)
        for tenant_id in tenants:
            args = [cache_module.to_micros(T0), cache_module.to_micros(T0),
                    "s:mfaEnforcedForAdmins", cache_module.to_micros(T0), status.event_id,
                    cache_module._status_json(status)]
            assert await merge(keys=[cache_module.tenant_key(prefix, tenant_id)], args=args) == 1
            assert await merge(keys=[cache_module.tenant_key(prefix, tenant_id)], args=args) == 0  # a repeat
        assert await finish(keys=[epoch, ready], args=["token-1", "run-1"]) == 1
        assert await client.get(ready) == "run-1"
        assert await finish(keys=[epoch, ready], args=["another rebuild's token", "run-2"]) == 0
        stored = await client.hgetall(cache_module.tenant_key(prefix, tenants[-1]))
        assert set(stored) == {"refreshed", "scoreUpdated", "s:mfaEnforcedForAdmins"}

        # The previous layout's keys (`scoring:epoch`, `scoring:ready`) are in two slots: redis-py refuses
        # to send the script, and the master holding one of them refuses it too (CROSSSLOT), which is
        # what this layout is for.
        old_keys = ["scoring:epoch", "scoring:ready"]
        with pytest.raises(RedisClusterException, match="same key slot"):
            await finish(keys=old_keys, args=["token-1", "run-1"])
        holder = client.get_node_from_key(old_keys[0])
        async with Redis(host=holder.host, port=holder.port, decode_responses=True) as node:
            with pytest.raises(ResponseError, match="don.t hash to the same slot"):
                await node.eval(cache_module._FINISH_REBUILD, 2, *old_keys, "token-1", "run-1")
    finally:
        await client.aclose()


"""The score cache's Lua scripts on Redis Cluster: a script runs only if all its KEYS hash to one slot.

Two proofs. Every script call the cache makes, recorded through its whole life (merges of several
tenants, a rebuild begun and finished, a tenant forgotten), names keys of one slot; and on a real
three-master cluster (Debian's redis-server, started here on spare ports) the scripts run with the
cache's keys, where the keys of the previous layout are refused with CROSSSLOT.

Then the service on that cluster (``REDIS_CLUSTER``): the cache on a cluster client (rebuild, merges,
reads, a FLUSHALL of the cluster and a restarted primary noticed), the change hints, and a scoring
process answering the score routes.
"""

from __future__ import annotations

import ast
import asyncio
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from pydantic import ValidationError
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot
from redis.exceptions import RedisClusterException, ResponseError

from services.scoring import cache as cache_module
from services.scoring import domain
from services.scoring.cache import ScoreCache, connect_redis
from services.scoring.changes import ChangeKind, Changes
from services.scoring.config import Settings
from services.scoring.deps import read_tenant
from services.scoring.store import TenantSnapshot
from shared.events import ComplianceStatus
from shared.http import Problem
from tests.services.scoring.conftest import isolated_env, read_api, status_event, wait_for_score

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

    # Every script the module registers was called (none left out of this check), each call in one slot,
    # but the read's: the ready marker beside a tenant's hash, called on one server only (on a cluster the
    # read is a pipeline; the cluster tests below read through it).
    assert len({script for script, _ in calls}) == registered_scripts_in_the_source() == 3
    one_server_only = [keys for script, keys in calls if script == cache_module._READ_TENANT]
    assert one_server_only == [[cache.ready_key, cache.tenant_key(t)] for t in tenants]
    calls = [(script, keys) for script, keys in calls if script != cache_module._READ_TENANT]
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


class LocalCluster:
    """Three masters, no replicas, in cluster mode on spare ports (these processes only)."""

    def __init__(self, server: str, base: Path) -> None:
        self.server, self.base = server, base
        self.ports = [_spare_port() for _ in range(3)]
        self._bus_ports = {port: _spare_port() for port in self.ports}
        self.processes: dict[int, subprocess.Popen] = {}

    def start_node(self, port: int) -> None:
        directory = self.base / str(port)
        directory.mkdir(exist_ok=True)
        # No RDB, no AOF: a node that restarts comes back empty (its nodes.conf keeps its slots).
        self.processes[port] = subprocess.Popen(
            [self.server, "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
             "--cluster-port", str(self._bus_ports[port]), "--cluster-config-file", "nodes.conf",
             "--dir", str(directory), "--save", "", "--appendonly", "no", "--daemonize", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )

    def stop_node(self, port: int) -> None:
        process = self.processes.pop(port)
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def wait_ready(self, within: float = 30) -> None:
        deadline = time.monotonic() + within
        while not all(_cluster_ready(p) for p in self.ports):
            assert time.monotonic() < deadline, "the cluster never reached cluster_state:ok"
            time.sleep(0.2)

    def restart_node(self, port: int) -> None:
        """Stop one node and start it again: a new run (run_id), its data gone, its slots kept."""
        self.stop_node(port)
        self.start_node(port)
        self.wait_ready()

    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}/0"


def _answers(port: int) -> bool:
    try:
        return subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True,
                              timeout=5).stdout.strip() == "PONG"
    except subprocess.TimeoutExpired:
        return False


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A three-master cluster of Debian's redis-server; stopped (these processes only) after."""
    server = shutil.which("redis-server")
    assert server and shutil.which("redis-cli"), "redis-server and redis-cli are needed (Debian: redis-server)"
    cluster = LocalCluster(server, tmp_path_factory.mktemp("redis-cluster"))
    try:
        for port in cluster.ports:
            cluster.start_node(port)
        deadline = time.monotonic() + 20
        while not all(_answers(p) for p in cluster.ports):
            assert time.monotonic() < deadline, "the cluster's redis-server processes did not start"
            time.sleep(0.1)
        created = subprocess.run(
            ["redis-cli", "--cluster", "create", *(f"127.0.0.1:{p}" for p in cluster.ports),
             "--cluster-replicas", "0", "--cluster-yes"],
            capture_output=True, text=True, timeout=60,
        )
        assert created.returncode == 0, created.stdout + created.stderr
        cluster.wait_ready(within=50)
        yield cluster
    finally:
        for port in list(cluster.processes):
            cluster.stop_node(port)


@pytest.mark.integration  # Debian's redis-server, as the local infrastructure uses
async def test_the_cache_scripts_run_on_redis_cluster_with_the_cache_keys(redis_cluster):
    client = RedisCluster(host="127.0.0.1", port=redis_cluster.ports[0], decode_responses=True)
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



# --- the service on a Redis Cluster (REDIS_CLUSTER) ------------------------------------------------------


def cluster_settings(cluster: LocalCluster) -> Settings:
    return Settings(environment="development", redis_url=cluster.url(), redis_cluster=True)


def test_a_cluster_url_naming_another_database_or_a_socket_is_refused_at_start():
    with pytest.raises(ValidationError, match="database 0 only"):
        Settings(environment="development", redis_url="redis://127.0.0.1:7000/3", redis_cluster=True)
    with pytest.raises(ValidationError, match="unix socket"):
        Settings(environment="development", redis_url="unix:///run/redis.sock", redis_cluster=True)
    # Off (the default), any database of one server, as before.
    assert Settings(environment="development", redis_url="redis://127.0.0.1:6379/3").redis_cluster is False


def test_the_setting_chooses_the_client():
    single = connect_redis(Settings(environment="development", redis_url="redis://127.0.0.1:6379/0"))
    assert type(single) is Redis
    clustered = connect_redis(Settings(environment="development", redis_url="redis://127.0.0.1:7000/0",
                                       redis_cluster=True))
    assert isinstance(clustered, RedisCluster)
    # Bounded as the single server's: each connection and command (see connect_redis).
    assert clustered.connection_kwargs["socket_timeout"] == 2.0
    assert clustered.connection_kwargs["socket_connect_timeout"] == 2.0


def a_keeper() -> SimpleNamespace:
    """A keeper that records the rebuilds a read asks for (``asked``)."""
    asked: list[bool] = []
    return SimpleNamespace(request_rebuild=lambda: asked.append(True), asked=asked)


async def rebuild(cache: ScoreCache, snapshots: list[TenantSnapshot]) -> None:
    """What ScoreKeeper.rebuild does, with these snapshots for PostgreSQL's."""
    run = await cache.server_run_id()
    token = await cache.begin_rebuild()
    for one in snapshots:
        await cache.merge(one)
    assert await cache.finish_rebuild(token, run)


@pytest.mark.integration
async def test_the_cache_on_a_cluster_client_rebuilds_merges_reads_and_notices_a_flushall(redis_cluster):
    client = connect_redis(cluster_settings(redis_cluster))
    cache = ScoreCache(client, f"scoring-cluster-{uuid.uuid4().hex[:8]}:")
    tenants = [f"tenant-{i}" for i in range(12)]
    try:
        # The marker names every primary's run: three run_ids.
        run = await cache.server_run_id()
        assert len(run.split(",")) == 3 and all(len(one) == 40 for one in run.split(","))
        assert not await cache.is_ready()
        await rebuild(cache, [snapshot(t) for t in tenants])
        assert await cache.is_ready()
        assert len({client.get_node_from_key(cache.tenant_key(t)).port for t in tenants}) == 3

        # A newer status merged in, a stale one not; each read in one pipeline, over two nodes.
        newer = observation("mfaEnforcedForAdmins", False, T0 + timedelta(minutes=5))
        assert await cache.merge(TenantSnapshot(tenants[0], {newer.requirement_type: newer}, newer.observed_at,
                                                newer.observed_at)) == 1
        stale = observation("mfaEnforcedForAdmins", True, T0)
        assert await cache.merge(TenantSnapshot(tenants[0], {stale.requirement_type: stale}, T0, T0)) == 0
        for tenant_id in tenants:
            found = await read_tenant(tenant_id, cache, a_keeper(), 1)
            assert found.ready and set(found.statuses) == {"mfaEnforcedForAdmins", "securityContactProvided"}
        found = await cache.read(tenants[0])
        assert found.statuses["mfaEnforcedForAdmins"] == newer and found.refreshed_at == newer.observed_at

        # FLUSHALL on the cluster (every primary): the marker is gone, a read answers 503 and asks for
        # the rebuild rather than a score of no status.
        await client.flushall()
        keeper = a_keeper()
        with pytest.raises(Problem) as refused:
            await read_tenant(tenants[3], cache, keeper, 1)
        assert refused.value.status == 503 and keeper.asked == [True]
        assert not await cache.is_ready()
        await rebuild(cache, [snapshot(t) for t in tenants])
        assert (await read_tenant(tenants[3], cache, a_keeper(), 1)).statuses
    finally:
        await client.flushall()
        await client.aclose()


@pytest.mark.integration
async def test_a_restart_of_a_primary_that_does_not_hold_the_marker_makes_the_cache_not_ready(redis_cluster):
    # The node that restarts comes back empty, its tenants' hashes gone; the marker is on another node and
    # stays. It names the old run of the restarted node: a read answers 503 rather than a score of nothing.
    client = connect_redis(cluster_settings(redis_cluster))
    cache = ScoreCache(client, f"scoring-cluster-{uuid.uuid4().hex[:8]}:")
    tenants = [f"tenant-{i}" for i in range(12)]
    try:
        await rebuild(cache, [snapshot(t) for t in tenants])
        before = await cache.server_run_id()
        marker_port = client.get_node_from_key(cache.ready_key).port
        victim = next(p for p in redis_cluster.ports if p != marker_port)
        lost = next(t for t in tenants if client.get_node_from_key(cache.tenant_key(t)).port == victim)
        assert (await read_tenant(lost, cache, a_keeper(), 1)).statuses

        await asyncio.to_thread(redis_cluster.restart_node, victim)
        # A read may first meet a connection the restart closed (503: Redis does not answer); then the client
        # connects again, and the new run is seen at once (not a second later): 503, being rebuilt. Never a
        # score of the emptied hash.
        titles = []
        while "Score being rebuilt" not in titles:
            assert len(titles) < 5, titles
            keeper = a_keeper()
            with pytest.raises(Problem) as refused:
                await read_tenant(lost, cache, keeper, 1)
            assert refused.value.status == 503
            titles.append(refused.value.title)
        assert keeper.asked == [True]
        assert await client.get(cache.ready_key) == before  # the marker survived, naming the old run
        assert await cache.server_run_id() != before
        assert not await cache.is_ready()

        await rebuild(cache, [snapshot(t) for t in tenants])
        assert set((await read_tenant(lost, cache, a_keeper(), 1)).statuses) == {
            "mfaEnforcedForAdmins", "securityContactProvided"}
    finally:
        await client.flushall()
        await client.aclose()


@pytest.mark.integration
async def test_change_hints_reach_the_subscribers_on_a_cluster_whichever_node_they_listen_on(redis_cluster):
    client = connect_redis(cluster_settings(redis_cluster))
    changes = Changes(client, f"scoring-cluster-{uuid.uuid4().hex[:8]}:")
    changes.start()
    tenants = [f"tenant-{i}" for i in range(8)]
    subscriptions = []
    try:
        for tenant_id in tenants:
            subscriptions.append(await changes.subscribe(tenant_id))
        # Subscribers are spread over the nodes (by their channel's slot); one batch of hints reaches all.
        assert len({s._pubsub.get_pubsub_node().port for s in subscriptions}) > 1
        for tenant_id in tenants:
            await changes.publish(tenant_id, ChangeKind.alert, alert_id=f"alert-of-{tenant_id}")
        streams = [aiter(subscription) for subscription in subscriptions]
        for tenant_id, stream in zip(tenants, streams, strict=True):
            change = await asyncio.wait_for(anext(stream), 10)
            assert change == {"kind": "alert", "alertId": f"alert-of-{tenant_id}"}
        assert changes.dropped == 0
        for stream in streams:
            await stream.aclose()
    finally:
        for subscription in subscriptions:
            await subscription.close()
        await changes.stop()
        await client.aclose()


@pytest.mark.integration
async def test_the_scoring_service_on_a_cluster_answers_the_score_then_503_after_a_flushall_then_the_rebuilt_one(
    redis_cluster, make_service, send_status, tenant_id
):
    # The read notices the loss: no periodic check during this test.
    process = make_service("scoring", **isolated_env(REDIS_URL=redis_cluster.url(), REDIS_CLUSTER="true",
                                                     CACHE_CHECK_SECONDS="3600"))
    await asyncio.to_thread(process.start)
    client = RedisCluster.from_url(redis_cluster.url(), decode_responses=True)
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            ready = await http.get(f"{process.url}/health/ready")
            assert ready.status_code == 200 and ready.json()["checks"]["redis"] == "ok", ready.text
        await send_status(status_event(tenant_id, "mfaEnforcedForAdmins", "compliant", T0))
        await send_status(status_event(tenant_id, "securityContactProvided", "compliant", T0))
        await wait_for_score(process, tenant_id, 62.5)  # 20 + 20 + 10 (no responded alert) of 80
        prefix = process.env["REDIS_KEY_PREFIX"]
        assert await client.hexists(cache_module.tenant_key(prefix, tenant_id), "s:mfaEnforcedForAdmins")

        # The first read after each loss is refused, whichever score route it is; it starts the rebuild.
        for path in ("", "/requirements"):
            await client.flushall()  # every primary
            unavailable = await read_api(process, tenant_id, path)
            assert unavailable.status_code == 503, unavailable.text
            assert unavailable.headers["retry-after"] == "1"
            assert unavailable.headers["content-type"].startswith("application/problem+json")
            await wait_for_score(process, tenant_id, 62.5)
        requirements = (await read_api(process, tenant_id, "/requirements")).json()["value"]
        assert {r["id"] for r in requirements if r["complianceStatus"] == "compliant"} == {
            "mfaEnforcedForAdmins", "securityAlertsPromptlyResolved", "securityContactProvided"}
    finally:
        await asyncio.to_thread(process.stop)
        await client.flushall()
        await client.aclose()

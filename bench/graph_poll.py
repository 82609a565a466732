"""The Partner Center poller: alerts read from Graph and recorded, beside recording them directly.

In a fresh database, in the same run:
(a) one tenant's connection polls ``BENCH_GRAPH_ALERTS`` alerts (default 5000) from the Graph emulator
    of the tests (a real HTTP server), in pages of 100: sign-in, every page over HTTP, each page
    through the write API's one recording path (``services.ingest.recording``), the sync rows;
(b) baseline: the same alerts recorded directly in lists of 100 through ``record_alerts`` (what a
    webhook post of each list costs, without HTTP);
(c) a second poll, nothing changed: every open alert read again, each a duplicate (no event).
The bench database is removed at the end.
"""

from __future__ import annotations

import os
import time
import uuid

import httpx

from bench.support import Measurement, ratio_line, run_id
from services.ingest.config import Settings
from services.ingest.graph import store
from services.ingest.graph.clients import GraphClients
from services.ingest.graph.credentials import GraphCredentials, to_sealable
from services.ingest.graph.poller import Poller
from services.ingest.recording import record_alerts
from shared.alerts import Alert
from shared.db import create_pool
from shared.sealed import seal
from tests.support.databases import migrated_database
from tests.support.graph_emulator import run_graph_emulator

ALERTS = int(os.environ.get("BENCH_GRAPH_ALERTS", "5000"))
PAGE = 100


async def main() -> None:
    os.environ.setdefault("ENVIRONMENT", "development")
    base = Settings()
    async with migrated_database(base.database_url, f"bench_graph_{run_id()}") as url:
        pool = await create_pool(url, schema="ingest")
        emulator_run = run_graph_emulator()
        emulator = next(emulator_run)
        try:
            settings = base.model_copy(update={"graph_base_url": emulator.base_url,
                                               "graph_login_base_url": emulator.base_url})
            directory, client_id, secret = str(uuid.uuid4()), str(uuid.uuid4()), uuid.uuid4().hex
            emulator.register_app(directory, client_id, secret=secret)
            emulator.set_page_size(directory, PAGE)
            raw = [emulator.add_alert(directory, displayName=f"alert {n}") for n in range(ALERTS)]
            sealed = seal(to_sealable(GraphCredentials(directory, client_id, client_secret=secret)),
                          settings.sealing_key_list)
            await store.put_connection(pool, "polled", directory_id=directory, client_id=client_id,
                                       credential_type="clientSecret", sealed_credentials=sealed,
                                       certificate_thumbprint=None)
            async with httpx.AsyncClient(timeout=30) as http:
                poller = Poller(pool, settings, GraphClients(settings, http), owner="bench")
                started = time.perf_counter()
                assert await poller.run_once()
                polled = Measurement("poll", ALERTS, time.perf_counter() - started, [])

                alerts = [Alert.model_validate(a) for a in raw]
                started = time.perf_counter()
                for i in range(0, ALERTS, PAGE):
                    await record_alerts(pool, settings, "posted", alerts[i:i + PAGE])
                direct = Measurement("record directly", ALERTS, time.perf_counter() - started, [])

                await pool.execute("UPDATE graph_connections SET next_poll_at = now()")
                started = time.perf_counter()
                assert await poller.run_once()
                again = Measurement("poll, nothing new", ALERTS, time.perf_counter() - started, [])
            state = await store.get_connection(pool, "polled")
            assert state.last_error is None and state.alerts_seen == ALERTS, state
            events = await pool.fetchval("SELECT count(*) FROM outbox WHERE topic = 'alerts'")
            assert events == 2 * ALERTS, f"{events} alert events for {ALERTS} alerts polled + {ALERTS} posted"
            for measurement in (polled, direct, again):
                print(measurement.line(), flush=True)
            print(ratio_line(polled, direct), flush=True)
            print(ratio_line(again, direct), flush=True)
        finally:
            await pool.close()
            next(emulator_run, None)

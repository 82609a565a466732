"""A schema per component (#11), on the real PostgreSQL: a fresh install, the in-place upgrade of the
single-schema layout, and what a service's pool can see. Each test makes a database of its own."""

from __future__ import annotations

import ast
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio

from shared.db import COMPONENTS, apply_migrations, create_pool
from tests.conftest import RUN_ID
from tests.support.databases import empty_database

REPO = Path(__file__).resolve().parents[2]

# The last commit of the single-schema layout: every migration in infra/migrations, one ledger
# public.schema_migrations, one public.processed_events every consumer shared.
SINGLE_SCHEMA_COMMIT = "7ded713"

# Who owns each table the single-schema layout had (processed_events: every consumer its own).
OWNERS = {
    "auth": {"api_keys", "audit_log"},
    "ingest": {"ingest_alert_state", "ingest_webhook_secrets", "ingest_webhook_ids", "security_contacts",
               "signal_reports", "customer_mfa", "customer_spending", "spending_notifications",
               "security_contact_changes"},
    "response_time": {"alerts", "response_time_dirty", "response_time_tenants", "processed_events"},
    "scoring": {"requirement_status", "score_state", "score_history", "processed_events"},
    "notifier": {"notification_channels", "notifier_contacts", "notification_deliveries", "notification_timers",
                 "notifier_closed_alerts", "processed_events"},
}
SCHEMAS = [c.schema for c in COMPONENTS]

# The consumer whose rows of the shared ledger each schema takes over (the CONSUMER of its code).
CONSUMERS = {"response_time": "response-time", "scoring": "scoring", "notifier": "notifier"}

E1, E2, E3, E4, E5 = (uuid.uuid4() for _ in range(5))

# One row in every table of the single-schema layout, as the code of 7ded713 would have written it.
ONE_ROW_EACH = f"""
INSERT INTO processed_events (consumer, event_id) VALUES
    ('response-time', '{E1}'), ('scoring', '{E2}'), ('notifier', '{E3}'), ('notifier', '{E4}'),
    ('a-consumer-long-gone', '{E5}');
INSERT INTO alerts (tenant_id, alert_id, status, clock_started_at, alert, state_as_of)
    VALUES ('t', 'a1', 'new', now(), '{{}}', now());
INSERT INTO api_keys (key_digest, role, user_id) VALUES ('digest', 'securityReader', 'ana');
INSERT INTO audit_log (user_id, key_id, action, target) VALUES ('ana', 'cli', 'key-created', 'keys/1');
INSERT INTO ingest_alert_state (tenant_id, alert_id, alert) VALUES ('t', 'a1', '{{}}');
INSERT INTO ingest_webhook_secrets (tenant_id, secret) VALUES ('t', 'whsec_c2VjcmV0');
INSERT INTO ingest_webhook_ids (tenant_id, webhook_id) VALUES ('t', 'msg_1');
INSERT INTO security_contacts (tenant_id, name, email, phone, updated_by)
    VALUES ('t', 'Ana', 'ana@partner.example', '+15555550100', 'ana');
INSERT INTO signal_reports (tenant_id, kind, observed_at) VALUES ('t', 'spending', now());
INSERT INTO customer_mfa (tenant_id, customer_tenant_id, customer_name, admins, admins_with_mfa,
                          non_admins_with_mfa, total_users, observed_at)
    VALUES ('t', 'c1', 'Contoso', 2, 1, 3, 10, now());
INSERT INTO customer_spending (tenant_id, customer_tenant_id, month, current_month_spend, observed_at)
    VALUES ('t', 'c1', '2025-01', 10, now());
INSERT INTO spending_notifications (tenant_id, customer_tenant_id, month, threshold_percent, budget, spend, event_id)
    VALUES ('t', 'c1', '2025-01', 80, 100, 85, '{uuid.uuid4()}');
INSERT INTO security_contact_changes (tenant_id, changed_at) VALUES ('t', now());
INSERT INTO response_time_dirty (tenant_id) VALUES ('t');
INSERT INTO response_time_tenants (tenant_id) VALUES ('t');
INSERT INTO requirement_status (tenant_id, requirement_type, compliance_status, observed_at, event_id, source)
    VALUES ('t', 'securityContactProvided', 'compliant', now(), '{uuid.uuid4()}', 'ingest');
INSERT INTO score_state (tenant_id) VALUES ('t');
INSERT INTO score_history (tenant_id, event_id, created_at, score, projected_score, compliant_requirements_count,
                           total_requirements_count)
    VALUES ('t', '{uuid.uuid4()}', now(), 50, 60, 1, 2);
INSERT INTO notification_channels (tenant_id, name, url, secret)
    VALUES ('t', 'jira', 'https://tickets.example/hook', 'whsec_c2VjcmV0');
INSERT INTO notifier_contacts (tenant_id, occurred_at) VALUES ('t', now());
INSERT INTO notification_deliveries (delivery_id, tenant_id, subject_id, channel, kind, payload)
    VALUES ('{uuid.uuid4()}', 't', 'a1', 'webhook:jira', 'alert', '{{}}');
INSERT INTO notification_timers (tenant_id, alert_id, kind, due_at, payload)
    VALUES ('t', 'a1', 'reminder', now(), '{{}}');
INSERT INTO notifier_closed_alerts (tenant_id, alert_id, reason) VALUES ('t', 'a1', 'responded');
"""


def single_schema_migrations(until: int | None = None) -> list[tuple[int, str, str]]:
    """The migrations of the single-schema layout as they were: (version, name, SQL), in order."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, check=True, capture_output=True, text=True).stdout

    found = []
    for path in git("ls-tree", "--name-only", f"{SINGLE_SCHEMA_COMMIT}:infra/migrations").split():
        version, _, rest = path.partition("_")
        if until is None or int(version) <= until:
            sql = git("show", f"{SINGLE_SCHEMA_COMMIT}:infra/migrations/{path}")
            found.append((int(version), rest.removesuffix(".sql"), sql))
    return found


async def build_single_schema_layout(url: str, until: int | None = None) -> None:
    """What the runner of 7ded713 made: every file in public, recorded in public.schema_migrations."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("""CREATE TABLE schema_migrations (
                                  version integer PRIMARY KEY,
                                  name text NOT NULL,
                                  applied_at timestamptz NOT NULL DEFAULT now())""")
        for version, name, sql in single_schema_migrations(until):
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", version, name)
    finally:
        await conn.close()


async def connect_plainly(url: str) -> asyncpg.Connection:
    """A session whose search path holds no schema of ours: every name it shows is qualified the same way."""
    return await asyncpg.connect(url, server_settings={"search_path": "pg_catalog"})


async def tables_by_schema(url: str) -> dict[str, set[str]]:
    conn = await connect_plainly(url)
    try:
        rows = await conn.fetch(
            """SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
                 AND n.nspname NOT LIKE 'pg_toast%'""")
    finally:
        await conn.close()
    found: dict[str, set[str]] = {}
    for row in rows:
        found.setdefault(row["nspname"], set()).add(row["relname"])
    return found


async def relations_in_public(url: str) -> set[str]:
    conn = await connect_plainly(url)
    try:
        return {r["relname"] for r in await conn.fetch(
            "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace")}
    finally:
        await conn.close()


async def structure(url: str) -> dict[str, list[tuple]]:
    """Everything that makes the schemas what they are (not their rows): columns, sequences, indexes,
    constraints, triggers, functions, extensions and each component's ledger."""
    conn = await connect_plainly(url)
    ours = SCHEMAS
    try:
        queries = {
            "columns": """SELECT table_schema, table_name, column_name, ordinal_position, data_type, udt_schema,
                                 udt_name, is_nullable, column_default, is_identity, identity_generation,
                                 is_generated, generation_expression
                          FROM information_schema.columns WHERE table_schema = ANY($1)""",
            "sequences": """SELECT sequence_schema, sequence_name, data_type, start_value, minimum_value,
                                   maximum_value, increment, cycle_option
                            FROM information_schema.sequences WHERE sequence_schema = ANY($1)""",
            "sequence owners": """SELECT s.relnamespace::regnamespace::text, s.relname, d.refobjid::regclass::text,
                                         d.refobjsubid, d.deptype
                                  FROM pg_class s JOIN pg_depend d
                                    ON d.objid = s.oid AND d.classid = 'pg_class'::regclass
                                       AND d.refclassid = 'pg_class'::regclass
                                  WHERE s.relkind = 'S' AND s.relnamespace::regnamespace::text = ANY($1)""",
            "indexes": "SELECT schemaname, tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = ANY($1)",
            "constraints": """SELECT n.nspname, c.conrelid::regclass::text, c.conname, c.contype,
                                     pg_get_constraintdef(c.oid), c.condeferrable, c.condeferred
                              FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
                              WHERE n.nspname = ANY($1)""",
            "triggers": """SELECT t.tgrelid::regclass::text, t.tgname, pg_get_triggerdef(t.oid) FROM pg_trigger t
                           JOIN pg_class c ON c.oid = t.tgrelid
                           WHERE NOT t.tgisinternal AND c.relnamespace::regnamespace::text = ANY($1)""",
            "functions": """SELECT p.pronamespace::regnamespace::text, p.proname, pg_get_functiondef(p.oid)
                            FROM pg_proc p WHERE p.pronamespace::regnamespace::text = ANY($1)""",
        }
        found = {what: sorted(tuple(r) for r in await conn.fetch(sql, ours)) for what, sql in queries.items()}
        found["extensions"] = sorted(tuple(r) for r in await conn.fetch(
            "SELECT extname, extnamespace::regnamespace::text FROM pg_extension"))
        for schema in ours:
            found[f"{schema}.schema_migrations"] = sorted(
                tuple(r) for r in await conn.fetch(f"SELECT version, name FROM {schema}.schema_migrations"))
        return found
    finally:
        await conn.close()


async def row_counts(url: str) -> dict[str, int]:
    conn = await connect_plainly(url)
    try:
        return {f"{schema}.{table}": await conn.fetchval(f"SELECT count(*) FROM {schema}.{table}")
                for schema, tables in (await tables_by_schema(url)).items() for table in tables}
    finally:
        await conn.close()


@pytest_asyncio.fixture
async def database(test_env) -> AsyncIterator[str]:
    """An empty database of this test alone."""
    async with empty_database(test_env["DATABASE_URL"], f"csp_test_{RUN_ID}_{uuid.uuid4().hex[:6]}") as url:
        yield url


@pytest_asyncio.fixture
async def fresh(test_env) -> AsyncIterator[str]:
    """A second database of this test, freshly installed: what an upgraded one is compared with."""
    async with empty_database(test_env["DATABASE_URL"], f"csp_test_{RUN_ID}_{uuid.uuid4().hex[:6]}") as url:
        await apply_migrations(url)
        yield url


async def test_a_fresh_database_has_every_table_in_its_owners_schema_and_nothing_in_public(database):
    applied = await apply_migrations(database)

    assert {name.partition("/")[0] for name in applied} == set(SCHEMAS)
    tables = await tables_by_schema(database)
    for schema, owned in OWNERS.items():
        assert owned <= tables.get(schema, set()), schema
    assert "public" not in tables
    assert await relations_in_public(database) == set()


async def test_the_single_schema_layout_upgrades_in_place_with_every_row(database):
    await build_single_schema_layout(database)
    conn = await asyncpg.connect(database)
    try:
        await conn.execute(ONE_ROW_EACH)
    finally:
        await conn.close()

    await apply_migrations(database)

    assert await relations_in_public(database) == {"schema_migrations_before_schemas", "schema_migrations_pkey"}
    counts = await row_counts(database)
    for schema, owned in OWNERS.items():
        for table in owned - {"processed_events"}:
            assert counts[f"{schema}.{table}"] == 1, f"{schema}.{table}"
    conn = await connect_plainly(database)
    try:
        for schema, consumer in CONSUMERS.items():
            rows = await conn.fetch(f"SELECT consumer, event_id FROM {schema}.processed_events")
            expected = {"response-time": {E1}, "scoring": {E2}, "notifier": {E3, E4}}[consumer]
            assert {(r["consumer"], r["event_id"]) for r in rows} == {(consumer, e) for e in expected}, schema
        history = await conn.fetch("SELECT version FROM public.schema_migrations_before_schemas ORDER BY 1")
        assert [r["version"] for r in history] == [v for v, _, _ in single_schema_migrations()]
    finally:
        await conn.close()
    # The sequences moved with their tables and go on from where they were.
    for schema, insert in (
        ("ingest", """INSERT INTO ingest_webhook_secrets (tenant_id, secret) VALUES ('t', 'whsec_bmV3')
                      RETURNING secret_id"""),
        ("auth", """INSERT INTO audit_log (user_id, key_id, action, target) VALUES ('b', 'cli', 'x', 'y')
                    RETURNING entry_id"""),
        ("scoring", f"""INSERT INTO score_history (tenant_id, event_id, created_at, score, projected_score,
                            compliant_requirements_count, total_requirements_count)
                        VALUES ('t', '{uuid.uuid4()}', now(), 1, 1, 1, 1) RETURNING id"""),
    ):
        pool = await create_pool(database, schema=schema)
        try:
            assert await pool.fetchval(insert) == 2, schema
        finally:
            await pool.close()


@pytest.mark.parametrize("until", [None, 52], ids=["at-the-last-single-schema-version", "some-versions-behind"])
async def test_an_upgraded_database_has_the_schemas_of_a_fresh_install(database, fresh, until):
    # Behind (0052): auth's 0060 and 0061 and the notifier's 0055 and 0056 are applied by the upgrade,
    # to tables still in public, before they move.
    await build_single_schema_layout(database, until)

    await apply_migrations(database)

    upgraded, installed = await structure(database), await structure(fresh)
    for what in installed:
        assert upgraded[what] == installed[what], what


async def test_migrating_again_changes_nothing(database):
    await build_single_schema_layout(database)
    conn = await asyncpg.connect(database)
    try:
        await conn.execute(ONE_ROW_EACH)
    finally:
        await conn.close()
    await apply_migrations(database)
    before = (await structure(database), await row_counts(database), await relations_in_public(database))

    assert await apply_migrations(database) == []

    assert (await structure(database), await row_counts(database), await relations_in_public(database)) == before


SERVICES = ["ingest", "response_time", "scoring", "notifier"]


def pool_schema_of(service: str) -> str:
    """The search path services/<service>/app.py gives its pool: the ``schema=`` of its create_pool call."""
    tree = ast.parse((REPO / "services" / service / "app.py").read_text())
    calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call)
             and getattr(node.func, "id", getattr(node.func, "attr", None)) == "create_pool"]
    assert len(calls) == 1, f"services/{service}/app.py should make one pool"
    (schema,) = [k.value.value for k in calls[0].keywords if k.arg == "schema"]
    return schema


@pytest.mark.parametrize("service", SERVICES)
async def test_a_services_pool_sees_its_own_tables_and_no_other_schemas(database, service):
    await apply_migrations(database)
    search_path = pool_schema_of(service)
    assert search_path == service

    tables = await tables_by_schema(database)
    pool = await create_pool(database, schema=search_path)
    try:
        for table in tables[service]:
            await pool.fetchval(f"SELECT count(*) FROM {table}")
        for other in set(SCHEMAS) - {service}:
            for table in tables[other] - tables[service]:
                with pytest.raises(asyncpg.UndefinedTableError):
                    await pool.fetchval(f"SELECT count(*) FROM {table}")
    finally:
        await pool.close()

"""The AsyncAPI documents in docs/asyncapi/ are the ones the code generates (CI fails when an event model
changes and its document does not), and they say what travels on each topic.

No infrastructure: each service's broker is built as its app.py builds it, never started.
"""

from __future__ import annotations

import difflib
import inspect
import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jsonschema
import pytest
import yaml
from fastapi import FastAPI
from fastapi.testclient import TestClient
from faststream.kafka import KafkaBroker
from pydantic import Field

from shared import asyncapi, events
from shared.asyncapi import PUBLICATIONS, TOPIC_EVENTS, TOPIC_KEYS, AsyncAPIDocumentError, asyncapi_routes, document
from shared.dead_letters import DeadLetter, poison_record
from shared.events import Actor, ActorType, ScoreChanged, TenantOffboarded, Topic
from tools.asyncapi import DOCS_DIR, REGENERATE, SERVICES, documents, service_broker, stale

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def generated() -> dict[str, str]:
    return documents()


def parsed(text: str) -> dict[str, Any]:
    return json.loads(text)


def test_the_published_documents_are_the_generated_ones(generated: dict[str, str]) -> None:
    names = stale(generated)
    diffs = []
    for name in names:
        path = DOCS_DIR / name
        old = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
        diffs.extend(list(difflib.unified_diff(old, generated[name].splitlines(), f"docs/asyncapi/{name}",
                                               "generated", lineterm=""))[:30])
    assert not names, (
        f"the AsyncAPI documents {', '.join(names)} in docs/asyncapi/ differ from what the code generates "
        f"(an event model, a topic or a subscriber changed): regenerate them with `{REGENERATE}` and commit "
        "them.\n" + "\n".join(diffs))
    assert sorted(generated) == sorted(f"{service}.json" for service in SERVICES)


def test_a_changed_event_model_makes_its_documents_stale(monkeypatch: pytest.MonkeyPatch,
                                                         generated: dict[str, str]) -> None:
    class ScoreChangedWithMore(ScoreChanged):
        trend: float = Field(0.0, description="How fast the score moves, in points a day.")

    ScoreChangedWithMore.__name__ = "ScoreChanged"
    monkeypatch.setitem(TOPIC_EVENTS, Topic.score_changes, (ScoreChangedWithMore,))

    changed = documents()
    # scoring publishes score-changes; no other service consumes or publishes it.
    assert stale(changed) == ["scoring.json"]
    schema = parsed(changed["scoring.json"])["components"]["schemas"]["ScoreChanged"]
    assert schema["properties"]["trend"]["description"] == "How fast the score moves, in points a day."
    assert "trend" not in parsed(generated["scoring.json"])["components"]["schemas"]["ScoreChanged"]["properties"]


def test_a_changed_field_description_makes_its_documents_stale(monkeypatch: pytest.MonkeyPatch) -> None:
    class Offboarded(TenantOffboarded):
        actor: Actor = Field(description="The operator who offboarded it, and when.")

    Offboarded.__name__ = "TenantOffboarded"
    monkeypatch.setitem(TOPIC_EVENTS, Topic.tenants, (Offboarded,))

    # ingest publishes tenants; the other three consume it.
    assert stale(documents()) == ["ingest.json", "notifier.json", "response-time.json", "scoring.json"]


def test_every_event_model_travels_on_a_topic() -> None:
    # Every event model but the bases (Event, and private ones such as the alert events' _CarriesAlert).
    models = {cls for name, cls in inspect.getmembers(events, inspect.isclass)
              if issubclass(cls, events.Event) and cls is not events.Event and not name.startswith("_")}
    carried = {model for topic_models in TOPIC_EVENTS.values() for model in topic_models}
    assert set(TOPIC_EVENTS) == set(Topic)
    assert models - carried == set(), "add these event models to shared.asyncapi.TOPIC_EVENTS"
    assert carried == models | {DeadLetter}


def test_each_topic_documents_the_key_its_events_have() -> None:
    fields = {"tenantId": "T", "alertId": "A", "requirementType": "R", "customerTenantId": "C", "name": "N",
              "deliveryId": "D", "noteId": "X"}
    values = {"tenant_id": "T", "alert_id": "A", "alert": SimpleNamespace(id="A"), "requirement_type": "R",
              "customer_tenant_id": "C", "name": "N", "delivery": SimpleNamespace(id="D"), "delivery_id": "D",
              "note_id": "X", "deliveries": [SimpleNamespace(id="D")]}
    assert set(TOPIC_KEYS) == set(Topic) - {Topic.dead_letter}
    for topic, patterns in TOPIC_KEYS.items():
        documented = {pattern.format(**fields) for pattern in patterns}
        keys = {model.model_construct(**values).kafka_key().decode() for model in TOPIC_EVENTS[topic]}
        # Every documented pattern is one of the topic's keys, and every key is documented.
        assert keys == documented, topic


def test_the_publications_are_the_topics_each_service_writes() -> None:
    """A topic a service's code names outside its handlers (outbox.enqueue, tombstones) is one it
    publishes; every service also dead-letters what it cannot consume."""
    for service in SERVICES:
        package = ROOT / "services" / service.replace("-", "_")
        named = {Topic[name] for path in package.rglob("*.py") if path.name != "handlers.py"
                 for name in re.findall(r"\bTopic\.([a-z_]+)", path.read_text(encoding="utf-8"))}
        assert named | {Topic.dead_letter} == set(PUBLICATIONS[service]), service


def test_each_channel_names_the_models_of_its_topic(generated: dict[str, str]) -> None:
    for service in SERVICES:
        doc = parsed(generated[f"{service}.json"])
        broker = service_broker(service)
        consumed = {sub.specification.config.title_ for sub in broker.subscribers}
        receiving = {name for name, op in doc["operations"].items() if op["action"] == "receive"}
        assert receiving == consumed, service
        sending = {doc["channels"][op["channel"]["$ref"].rsplit("/", 1)[-1]]["address"]
                   for op in doc["operations"].values() if op["action"] == "send"}
        assert sending == {topic.value for topic in PUBLICATIONS[service]}, service
        for channel in doc["channels"].values():
            topic = Topic(channel["address"])
            (message_ref,) = channel["messages"].values()
            message = doc["components"]["messages"][message_ref["$ref"].rsplit("/", 1)[-1]]
            payload = message["payload"]
            refs = [item["$ref"] for item in payload.get("oneOf", [payload])]
            assert refs == [f"#/components/schemas/{m.__name__}" for m in TOPIC_EVENTS[topic]], channel["address"]
            if topic is not Topic.dead_letter:
                assert message["headers"]["properties"]["eventType"]["enum"] == sorted(
                    m.model_fields["event_type"].default for m in TOPIC_EVENTS[topic])


def test_every_reference_resolves(generated: dict[str, str]) -> None:
    def refs(node: Any) -> list[str]:
        if isinstance(node, dict):
            return ([node["$ref"]] if "$ref" in node else []) + [r for v in node.values() for r in refs(v)]
        if isinstance(node, list):
            return [r for v in node for r in refs(v)]
        return []

    for name, text in generated.items():
        doc = parsed(text)
        found = refs(doc)
        assert found, name
        for ref in found:
            node: Any = doc
            for part in ref.removeprefix("#/").split("/"):
                part = part.replace("~1", "/").replace("~0", "~")
                assert isinstance(node, dict) and part in node, f"{name}: {ref} does not resolve"
                node = node[part]


def test_the_schemas_accept_events_as_published_and_refuse_others(generated: dict[str, str]) -> None:
    doc = parsed(generated["scoring.json"])

    def validate(model: str, instance: dict[str, Any]) -> None:
        jsonschema.Draft202012Validator({**doc, "$ref": f"#/components/schemas/{model}"}).validate(instance)

    offboarded = TenantOffboarded(tenant_id="t1", actor=Actor(type=ActorType.user, id="op@example.com"))
    validate("TenantOffboarded", json.loads(offboarded.model_dump_json()))
    score = ScoreChanged(tenant_id="t1", current_score=80.5, projected_score=90, previous_score=None,
                         compliant_requirements_count=4, total_requirements_count=5)
    validate("ScoreChanged", json.loads(score.model_dump_json()))

    record = SimpleNamespace(topic="alerts", partition=0, offset=7, key=b"t1:a1", value=b"{",
                             headers=[("eventType", b"x"), ("tenantId", b"t1")])
    letter = poison_record(record, ValueError("bad"), consumer="scoring")
    validate("DeadLetter", json.loads(letter.model_dump_json()))

    without_tenant = json.loads(score.model_dump_json())
    del without_tenant["tenantId"]
    with pytest.raises(jsonschema.ValidationError, match="tenantId"):
        validate("ScoreChanged", without_tenant)


def test_a_handler_of_a_model_its_topic_does_not_carry_is_refused() -> None:
    broker = KafkaBroker("127.0.0.1:9092")

    @broker.subscriber("tenants", title="scoring/tenants")
    async def on_tenant(event: ScoreChanged) -> None:
        return None

    with pytest.raises(AsyncAPIDocumentError, match="takes ScoreChanged.*TOPIC_EVENTS does not list on 'tenants'"):
        document(broker, "scoring")


def test_a_topic_of_no_contract_is_refused() -> None:
    broker = KafkaBroker("127.0.0.1:9092")

    @broker.subscriber("test-tenants")
    async def on_tenant(event: TenantOffboarded) -> None:
        return None

    assert document(broker, "scoring", topic_prefix="test-")["channels"]["scoring.tenants"]["address"] == (
        "test-tenants")
    with pytest.raises(AsyncAPIDocumentError, match="'test-tenants' is not one of shared.events.Topic"):
        document(broker, "scoring")
    with pytest.raises(AsyncAPIDocumentError, match="no publications of service 'audit'"):
        document(broker, "audit", topic_prefix="test-")


def test_a_publisher_the_service_does_not_list_is_refused() -> None:
    broker = KafkaBroker("127.0.0.1:9092")
    broker.publisher("score-changes", schema=ScoreChanged)
    assert "scoring.score-changes:publish" in document(broker, "scoring")["channels"]
    broker.publisher("alerts")
    with pytest.raises(AsyncAPIDocumentError, match="publisher of 'alerts'.*PUBLICATIONS does not list"):
        document(broker, "scoring")


def test_each_bootstrap_address_is_a_server() -> None:
    broker = KafkaBroker("k1:9092, k2:9092")
    servers = document(broker, "scoring")["servers"]
    assert sorted(server["host"] for server in servers.values()) == ["k1:9092", "k2:9092"]


def test_the_routes_serve_the_document_outside_the_openapi_document(generated: dict[str, str]) -> None:
    app = FastAPI()
    app.include_router(asyncapi_routes(service_broker("notifier"), "notifier"))
    with TestClient(app) as client:
        as_json = client.get("/asyncapi.json")
        assert as_json.status_code == 200
        assert as_json.headers["content-type"] == "application/json"
        assert as_json.text == generated["notifier.json"]
        as_yaml = client.get("/asyncapi.yaml")
        assert as_yaml.status_code == 200
        assert yaml.safe_load(as_yaml.text) == parsed(generated["notifier.json"])
        page = client.get("/asyncapi")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        title = asyncapi.SERVICES["notifier"][0]
        assert f"<title>{title} AsyncAPI</title>" in page.text
        assert page.text.count("</script>") == page.text.count("<script")
        assert not [path for path in app.openapi()["paths"] if "asyncapi" in path]


@pytest.mark.parametrize("service", list(SERVICES))
def test_each_service_serves_its_published_document(service: str, generated: dict[str, str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The app each service runs (its create_app, no lifespan: nothing is connected) serves the document
    docs/asyncapi/ publishes; only the servers (the deployment's Kafka addresses) may differ."""
    monkeypatch.setenv("ENVIRONMENT", "development")
    monkeypatch.delenv("KAFKA_TOPIC_PREFIX", raising=False)
    module = {"response-time": "response_time"}.get(service, service)
    create_app = __import__(f"services.{module}.app", fromlist=["create_app"]).create_app
    served = TestClient(create_app()).get("/asyncapi.json")
    assert served.status_code == 200, served.text
    published = parsed(generated[f"{service}.json"])
    answer = served.json()
    answer.pop("servers", None)
    published.pop("servers", None)
    assert answer == published

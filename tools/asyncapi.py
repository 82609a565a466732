"""Writes the AsyncAPI documents of the four services to ``docs/asyncapi/``, or checks them.

    python -m tools.asyncapi            # (make asyncapi) write docs/asyncapi/<service>.json
    python -m tools.asyncapi --check    # exit 1 naming each document that differs from the code

Each service's broker is built the way its ``app.py`` builds it (``shared.kafka.make_broker`` and its
``handlers.build_router``), without its lifespan: nothing connects to Kafka. The documents describe the
default deployment (no topic prefix, the local broker), whatever the environment says, so the same code
always gives the same files. A service serves its own, for its deployment, at ``GET /asyncapi.json``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from faststream.kafka import KafkaBroker

from shared.asyncapi import document, to_json
from shared.kafka import make_broker

DOCS_DIR = Path(__file__).resolve().parents[1] / "docs" / "asyncapi"
REGENERATE = "make asyncapi"
# What the published documents assume of the deployment (the settings' defaults).
DOCUMENTED_SETTINGS: Mapping[str, Any] = {
    "environment": "development",
    "kafka_topic_prefix": "",
    "kafka_bootstrap_servers": "127.0.0.1:9092",
    "consumer_group": "",
}


def _ingest() -> tuple[Any, Callable[[Any], Any]]:
    from services.ingest.config import Settings
    from services.ingest.handlers import build_router

    return Settings, build_router


def _response_time() -> tuple[Any, Callable[[Any], Any]]:
    from services.response_time.config import Settings
    from services.response_time.handlers import build_router

    return Settings, build_router


def _scoring() -> tuple[Any, Callable[[Any], Any]]:
    from services.scoring.config import Settings
    from services.scoring.handlers import build_router

    return Settings, build_router


def _notifier() -> tuple[Any, Callable[[Any], Any]]:
    from services.notifier.config import Settings
    from services.notifier.handlers import build_router

    # The delivery worker it would wake does not exist here.
    return Settings, lambda settings: build_router(settings, lambda: None)


# Each service by its Kafka client id (the name its app.py gives make_broker), in the order of the docs.
SERVICES: Mapping[str, Callable[[], tuple[Any, Callable[[Any], Any]]]] = {
    "ingest": _ingest,
    "response-time": _response_time,
    "scoring": _scoring,
    "notifier": _notifier,
}


def service_broker(service: str) -> KafkaBroker:
    """``service``'s broker with its routers, as its app.py makes it; never started."""
    settings_cls, build_router = SERVICES[service]()
    settings = settings_cls(**DOCUMENTED_SETTINGS)
    broker = make_broker(settings, client_id=service)
    broker.include_router(build_router(settings))
    return broker


def documents() -> dict[str, str]:
    """Each service's document as its published file holds it, by file name."""
    return {f"{service}.json": to_json(document(service_broker(service), service)) for service in SERVICES}


def stale(generated: Mapping[str, str], docs_dir: Path = DOCS_DIR) -> list[str]:
    """The file names in ``generated`` whose copy in ``docs_dir`` is missing or differs."""
    return sorted(name for name, text in generated.items()
                  if not (docs_dir / name).is_file() or (docs_dir / name).read_text(encoding="utf-8") != text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.asyncapi", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a document is stale")
    args = parser.parse_args(argv)
    generated = documents()
    if args.check:
        if names := stale(generated):
            print(f"stale AsyncAPI documents in {DOCS_DIR}: {', '.join(names)}; regenerate with `{REGENERATE}`",
                  file=sys.stderr)
            return 1
        print(f"AsyncAPI documents up to date ({len(generated)})")
        return 0
    DOCS_DIR.mkdir(parents=True, exist_ok=True)
    for name, text in generated.items():
        (DOCS_DIR / name).write_text(text, encoding="utf-8")
    print(f"wrote {len(generated)} AsyncAPI documents to {DOCS_DIR}: {', '.join(generated)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

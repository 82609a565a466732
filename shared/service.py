"""Process start-up shared by every service: settings, logging, then uvicorn on the service's port."""

from __future__ import annotations

import uvicorn

from shared.logs import configure_logging
from shared.settings import CommonSettings


def serve(app_path: str, settings: CommonSettings, service: str, port: int) -> None:
    configure_logging(service, settings.log_level)
    uvicorn.run(app_path, factory=True, host=settings.http_host, port=port, log_config=None,
                log_level=settings.log_level.lower(), lifespan="on", timeout_graceful_shutdown=10,
                # Per-request access lines are not an operator's log (configure_logging keeps them off).
                access_log=False)

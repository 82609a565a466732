"""Process start-up shared by every service: settings, logging, then uvicorn on the service's port.

With ``workers`` above one (the write API's ``INGEST_WORKERS``, #15), uvicorn's supervisor binds the port
and runs that many copies of the app, each a process of its own (one Python process uses one core at
most). Each copy is a full instance, as two replicas of the service would be: its own pool, relay (one
of them leads), consumers (the group shares the partitions) and caches. Each copy dies with the
supervisor, even one killed (SIGKILL), so nothing is left holding the port. Their metrics are served
together (``shared.metrics``, Prometheus' multiprocess mode, in a directory of this start alone).
"""

from __future__ import annotations

import atexit
import ctypes
import ctypes.util
import os
import shutil
import signal
import tempfile
from importlib import import_module
from typing import Any

import uvicorn

from shared.logs import configure_logging
from shared.settings import CommonSettings

# What a worker process needs to build its app (uvicorn spawns it: a fresh interpreter that inherits
# only the environment).
_APP_VARIABLE = "CSP_WORKER_APP"
_SERVICE_VARIABLE = "CSP_WORKER_SERVICE"
_LOG_LEVEL_VARIABLE = "CSP_WORKER_LOG_LEVEL"
_SUPERVISOR_VARIABLE = "CSP_WORKER_SUPERVISOR"
# prometheus_client's own variable: set before it is imported, its metrics live in files there.
METRICS_DIRECTORY_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
_PR_SET_PDEATHSIG = 1


def serve(app_path: str, settings: CommonSettings, service: str, port: int, *, workers: int = 1) -> None:
    configure_logging(service, settings.log_level)
    if workers > 1:
        _prepare_workers(app_path, service, settings.log_level)
        app_path = f"{__name__}:worker_app"
    uvicorn.run(app_path, factory=True, host=settings.http_host, port=port, log_config=None,
                log_level=settings.log_level.lower(), lifespan="on", timeout_graceful_shutdown=10,
                # Per-request access lines are not an operator's log (configure_logging keeps them off).
                access_log=False, workers=workers)


def _prepare_workers(app_path: str, service: str, log_level: str) -> None:
    """The environment the workers inherit: the app to build, and a directory for their metrics, fresh
    (a directory left by an earlier run would add its counts to this one's)."""
    os.environ[_APP_VARIABLE] = app_path
    os.environ[_SERVICE_VARIABLE] = service
    os.environ[_LOG_LEVEL_VARIABLE] = log_level
    os.environ[_SUPERVISOR_VARIABLE] = str(os.getpid())
    directory = tempfile.mkdtemp(prefix=f"csp-{service}-metrics-")
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    os.environ[METRICS_DIRECTORY_VARIABLE] = directory


def worker_app() -> Any:
    """The app of one worker process (uvicorn's factory there): dies with the supervisor, logs as the
    service does, then builds the service's app."""
    _die_with_parent()
    configure_logging(os.environ[_SERVICE_VARIABLE], os.environ[_LOG_LEVEL_VARIABLE])
    module, _, factory = os.environ[_APP_VARIABLE].partition(":")
    return getattr(import_module(module), factory)()


def _die_with_parent() -> None:
    # Linux's PR_SET_PDEATHSIG: the kernel kills this process when the supervisor ends, however it ends.
    # Elsewhere (no prctl) a worker outlives a supervisor that was killed, as uvicorn's do.
    libc_name = ctypes.util.find_library("c")
    prctl = getattr(ctypes.CDLL(libc_name, use_errno=True), "prctl", None) if libc_name else None
    if prctl is None:
        return
    prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if str(os.getppid()) != os.environ[_SUPERVISOR_VARIABLE]:  # it ended before the line above
        os.kill(os.getpid(), signal.SIGKILL)

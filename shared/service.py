"""Process start-up shared by every service: settings, logging, then uvicorn on the service's port.

With ``workers`` above one (the write API's ``INGEST_WORKERS``, #15), this process supervises that many
copies of itself, each serving the app on the port (one Python process uses one core at most). Each
worker binds its own socket with ``SO_REUSEPORT``, so the kernel spreads new connections evenly over
them: on one shared socket (uvicorn's ``--workers``) the first worker to wake took a burst of 32
connections whole, and the other sat idle. Each worker is a full instance, as a replica of the service
would be: its own pool, relay (one of them leads), consumers (the group shares the partitions) and
caches. A worker dies with its supervisor however that ends (SIGKILL too), so none is left holding the
port; one that dies alone is started again. Their metrics are served together (``shared.metrics``,
Prometheus' multiprocess mode, in a directory of this start alone).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import uvicorn

from shared.logs import configure_logging
from shared.settings import CommonSettings

log = logging.getLogger(__name__)

# Set in a worker's environment: its number, and its supervisor's pid.
_WORKER_VARIABLE = "CSP_WORKER"
_SUPERVISOR_VARIABLE = "CSP_WORKER_SUPERVISOR"
# prometheus_client's own variable: set before it is imported, its metrics live in files there.
METRICS_DIRECTORY_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
_PR_SET_PDEATHSIG = 1
# A worker that ends within this long of its start failed to start (bad settings, the port taken): starting
# it again would fail the same way, so the supervisor stops instead.
STARTUP_SECONDS = 20.0
STARTUP_FAILURE = 3  # uvicorn's exit code for an app that could not start
STOP_SECONDS = 20.0


def serve(app_path: str, settings: CommonSettings, service: str, port: int, *, workers: int = 1) -> None:
    configure_logging(service, settings.log_level)
    worker = os.environ.get(_WORKER_VARIABLE)
    if workers > 1 and worker is None:
        raise SystemExit(_Supervisor(service, workers).run())
    options = {"factory": True, "host": settings.http_host, "port": port, "log_config": None,
               "log_level": settings.log_level.lower(), "lifespan": "on", "timeout_graceful_shutdown": 10,
               # Per-request access lines are not an operator's log (configure_logging keeps them off).
               "access_log": False}
    if worker is None:
        uvicorn.run(app_path, **options)
        return
    _die_with_supervisor()
    server = uvicorn.Server(uvicorn.Config(app_path, **options))
    server.run(sockets=[_shared_port_socket(settings.http_host, port)])
    if not server.started:  # as uvicorn.run ends when the app cannot start
        raise SystemExit(STARTUP_FAILURE)


def _shared_port_socket(host: str, port: int) -> socket.socket:
    """This worker's listening socket on the port every worker binds (``SO_REUSEPORT``)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        log.error("cannot listen on %s:%s: %s", host, port, exc)
        raise SystemExit(STARTUP_FAILURE) from None
    return sock


def _die_with_supervisor() -> None:
    # Linux's PR_SET_PDEATHSIG: the kernel kills this process when the supervisor ends, however it ends.
    libc_name = ctypes.util.find_library("c")
    prctl = getattr(ctypes.CDLL(libc_name, use_errno=True), "prctl", None) if libc_name else None
    if prctl is not None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if str(os.getppid()) != os.environ[_SUPERVISOR_VARIABLE]:  # it ended before the line above
        os.kill(os.getpid(), signal.SIGKILL)


def _metrics_directory(service: str) -> str:
    """A fresh directory for this start's metrics (one left by an earlier run would add its counts to this
    one's), named after this supervisor; those of supervisors that were killed, and so could not remove
    theirs, are removed."""
    prefix = f"csp-{service}-metrics-"
    for left in Path(tempfile.gettempdir()).glob(f"{prefix}*"):
        supervisor = left.name.removeprefix(prefix).partition("-")[0]
        if supervisor.isdigit() and not Path(f"/proc/{supervisor}").exists():
            shutil.rmtree(left, ignore_errors=True)
    return tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-")


class _Supervisor:
    """Runs ``workers`` copies of this very command (``sys.orig_argv``) as workers, until told to stop."""

    def __init__(self, service: str, workers: int) -> None:
        self.service = service
        self.count = workers
        self.stopping = False
        self.workers: dict[int, tuple[subprocess.Popen, float]] = {}  # number -> (process, started at)
        self.env = {**os.environ, _SUPERVISOR_VARIABLE: str(os.getpid()),
                    METRICS_DIRECTORY_VARIABLE: _metrics_directory(service)}

    def start(self, number: int) -> None:
        # This very command again (``python -m services.ingest``), as worker ``number``.
        command = [sys.executable, *sys.orig_argv[1:]]
        process = subprocess.Popen(command, env={**self.env, _WORKER_VARIABLE: str(number)})
        self.workers[number] = (process, time.monotonic())
        log.info("%s worker %d started (pid %d)", self.service, number, process.pid)

    def run(self) -> int:
        log.info("%s: %d worker processes on one port", self.service, self.count)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._stop)
        try:
            for number in range(self.count):
                self.start(number)
            while not self.stopping:
                time.sleep(0.2)
                for number, (process, started) in list(self.workers.items()):
                    if self.stopping or process.poll() is None:
                        continue
                    if time.monotonic() - started < STARTUP_SECONDS:
                        log.error("%s worker %d exited with %s while starting; stopping the service", self.service,
                                  number, process.returncode)
                        return STARTUP_FAILURE
                    log.error("%s worker %d exited with %s; starting it again", self.service, number,
                              process.returncode)
                    self.start(number)
            return 0
        finally:
            self._stop_workers()
            shutil.rmtree(self.env[METRICS_DIRECTORY_VARIABLE], ignore_errors=True)

    def _stop(self, *_: object) -> None:
        self.stopping = True

    def _stop_workers(self) -> None:
        processes = [process for process, _ in self.workers.values()]
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_SECONDS
        for process in processes:
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()



"""Runs the four services (and a development mail catcher) as processes, for `make run`.

Starts each, waits until its /health/ready answers, prints where everything is, then streams
their logs prefixed with their names. Ctrl-C (or `make stop`, which signals this supervisor)
stops every process it started, then the infrastructure this project started.
"""

from __future__ import annotations

import argparse
import asyncio
import mailbox
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STATE = Path(os.environ.get("STATE_DIR", REPO / ".run"))
PIDFILE = STATE / "supervisor.pid"
LOGS = STATE / "logs"
COLOURS = ["\033[36m", "\033[35m", "\033[32m", "\033[33m", "\033[34m"]
RESET = "\033[0m"


@dataclass
class Service:
    name: str
    argv: list[str]
    port: int
    health: str | None = "/health/ready"
    description: str = ""


def services(env: dict[str, str]) -> list[Service]:
    py = sys.executable
    found = [
        Service("ingest", [py, "-m", "services.ingest"], int(env.get("INGEST_PORT", 8081)),
                description="write API"),
        Service("response-time", [py, "-m", "services.response_time"], int(env.get("RESPONSE_TIME_PORT", 8083)),
                description="health only; publishes securityAlertsPromptlyResolved"),
        Service("scoring", [py, "-m", "services.scoring"], int(env.get("READ_API_PORT", 8082)),
                description="read API and dashboard"),
        Service("notifier", [py, "-m", "services.notifier"], int(env.get("NOTIFIER_PORT", 8084)),
                description="health only; e-mail and ticketing webhooks"),
    ]
    smtp_port = int(env.get("SMTP_PORT", 1025))
    if env.get("SMTP_HOST", "127.0.0.1") in ("127.0.0.1", "localhost") and not port_open(smtp_port):
        # A development mail catcher: every e-mail lands as a file under .run/mail.
        mailbox.Maildir(STATE / "mail", create=True)  # tmp/, new/, cur/: the handler expects them
        found.insert(0, Service("mail", [py, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{smtp_port}",
                                         "-c", "aiosmtpd.handlers.Mailbox", str(STATE / "mail")],
                                smtp_port, health=None, description="development mail catcher"))
    return found


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex(("127.0.0.1", port)) == 0


def ready(port: int, path: str | None) -> bool:
    if path is None:
        return port_open(port)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
            return response.status == 200
    except Exception:
        return False


async def pump(name: str, colour: str, stream: asyncio.StreamReader, logfile: Path, echo: asyncio.Event) -> None:
    with logfile.open("ab") as out:
        while line := await stream.readline():
            out.write(line)
            out.flush()
            if echo.is_set():
                sys.stdout.write(f"{colour}{name:>13}{RESET} | {line.decode(errors='replace')}")
                sys.stdout.flush()


async def run(stop_infra_on_exit: bool) -> int:
    env = dict(os.environ)
    env.setdefault("ENVIRONMENT", "development")
    # A local run: ticketing receivers you try it with are usually on this machine.
    env.setdefault("WEBHOOK_ALLOW_PRIVATE_ADDRESSES", "true")
    env.setdefault("PYTHONUNBUFFERED", "1")
    plan = services(env)
    busy = [s for s in plan if port_open(s.port)]
    if busy:
        print(f"port(s) already in use: {', '.join(f'{s.name} {s.port}' for s in busy)}; "
              "is the system already running? (`make stop` stops it)", file=sys.stderr)
        return 1
    LOGS.mkdir(parents=True, exist_ok=True)
    PIDFILE.write_text(str(os.getpid()))
    echo = asyncio.Event()
    procs: dict[str, asyncio.subprocess.Process] = {}
    pumps = []
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    code = 0
    try:
        for i, svc in enumerate(plan):
            print(f"==> starting {svc.name} on port {svc.port} (log: {LOGS / (svc.name + '.log')})", flush=True)
            proc = await asyncio.create_subprocess_exec(*svc.argv, cwd=REPO, env=env, stdout=subprocess.PIPE,
                                                        stderr=subprocess.STDOUT, start_new_session=True)
            procs[svc.name] = proc
            pumps.append(asyncio.create_task(pump(svc.name, COLOURS[i % len(COLOURS)], proc.stdout,
                                                  LOGS / f"{svc.name}.log", echo)))
        print("==> waiting for every service to report ready ", end="", flush=True)
        started = time.monotonic()
        pending = {s.name: s for s in plan}
        while pending and not stopping.is_set():
            for name, svc in list(pending.items()):
                if procs[name].returncode is not None:
                    print(f"\n!! {name} exited with code {procs[name].returncode}; its log:", file=sys.stderr)
                    print((LOGS / f"{name}.log").read_text()[-3000:], file=sys.stderr)
                    return 1
                if await asyncio.to_thread(ready, svc.port, svc.health):
                    del pending[name]
            if time.monotonic() - started > 120:
                print(f"\n!! not ready after 120 s: {', '.join(pending)} (see .run/logs)", file=sys.stderr)
                return 1
            if pending:
                print(".", end="", flush=True)
                await asyncio.sleep(1)
        if stopping.is_set():
            return 130
        print(f" all ready in {time.monotonic() - started:.1f} s\n")
        key = env.get("OPERATOR_API_KEY", "dev-admin-key")
        print("  What runs where")
        for svc in plan:
            print(f"    {svc.name:<14} http://127.0.0.1:{svc.port:<6} {svc.description}"
                  if svc.health else f"    {svc.name:<14} smtp://127.0.0.1:{svc.port:<6} {svc.description} (.run/mail)")
        print(f"    kafka          {env.get('KAFKA_BOOTSTRAP_SERVERS', '127.0.0.1:9092')}")
        print(f"    postgres       {env.get('DATABASE_URL', 'postgresql://csp:csp@127.0.0.1:5432/csp_triage')}")
        print(f"    redis          {env.get('REDIS_URL', 'redis://127.0.0.1:6379/0')}")
        print(f"\n  Operator key (development only): Authorization: Bearer {key}")
        print("  Dashboard: http://127.0.0.1:8082/dashboard (tenant id + key)")
        print("  Try:  curl -H 'Authorization: Bearer dev-admin-key' "
              "http://127.0.0.1:8082/v1/tenants/contoso/security-score")
        print("  API docs: http://127.0.0.1:8081/docs (write), http://127.0.0.1:8082/docs (read)")
        print("  Stop: Ctrl-C here, or `make stop` from another shell.\n", flush=True)
        echo.set()
        waiters = [asyncio.create_task(p.wait()) for p in procs.values()]
        stop_task = asyncio.create_task(stopping.wait())
        done, _ = await asyncio.wait([*waiters, stop_task], return_when=asyncio.FIRST_COMPLETED)
        if stop_task not in done:
            dead = [n for n, p in procs.items() if p.returncode is not None]
            print(f"!! {', '.join(dead)} exited; stopping the rest", file=sys.stderr)
            code = 1
        return code
    finally:
        print("\n==> stopping the services", flush=True)
        for proc in procs.values():
            if proc.returncode is None:
                proc.terminate()
        for proc in procs.values():
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        for task in pumps:
            task.cancel()
        PIDFILE.unlink(missing_ok=True)
        if stop_infra_on_exit:
            down = await asyncio.create_subprocess_exec("bash", str(REPO / "infra/scripts/infra.sh"), "down")
            await down.wait()


def stop() -> int:
    if not PIDFILE.exists():
        return 0
    pid = int(PIDFILE.read_text())
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        PIDFILE.unlink(missing_ok=True)
        return 0
    for _ in range(40):
        time.sleep(0.5)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return 0
    return 1


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stop", action="store_true", help="signal a running supervisor to stop")
    parser.add_argument("--stop-infra-on-exit", action="store_true")
    args = parser.parse_args()
    sys.exit(stop() if args.stop else asyncio.run(run(args.stop_infra_on_exit)))


if __name__ == "__main__":
    main()

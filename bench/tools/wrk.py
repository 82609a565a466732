"""Closed-loop load with Debian's wrk (C, epoll): a generator that is not the bottleneck.

Each script's ``done`` prints one ``WRK-RESULT`` line this module reads. A request answered with a
status other than 2xx/3xx, or failed on the socket, is an error: it is not counted as served.
"""

from __future__ import annotations

import asyncio
import os
import re
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
POST_ALERT = HERE / "post_alert.lua"
POST_ALERT_LIST = HERE / "post_alert_list.lua"
ALERTMANAGER_LIST = HERE / "alertmanager_list.lua"
GET_WITH_KEY = HERE / "get_with_key.lua"


@dataclass
class WrkResult:
    name: str
    requests: int  # answered (any status)
    seconds: float
    status_errors: int  # answered, not 2xx/3xx
    socket_errors: int  # connect, read, write, timeout
    p50_ms: float
    p99_ms: float

    @property
    def ok(self) -> int:
        return self.requests - self.status_errors

    @property
    def rate(self) -> float:
        """Requests answered 2xx/3xx per second."""
        return self.ok / self.seconds

    def line(self) -> str:
        errors = f"  errors: {self.status_errors} status, {self.socket_errors} socket" if (
            self.status_errors or self.socket_errors) else ""
        return (f"  {self.name:<52} {self.rate:9.1f}/s  p50 {self.p50_ms:7.2f} ms  p99 {self.p99_ms:7.2f} ms"
                f"{errors}")


async def version() -> str:
    proc = await asyncio.create_subprocess_exec("wrk", "--version", stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    return out.decode().splitlines()[0].split(" Copyright")[0] if out else "wrk"


async def run_wrk(name: str, url: str, script: Path, args: list[str], seconds: int, connections: int = 32,
                  threads: int = 2) -> WrkResult:
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "-s", str(script),
            url, "--", *args]
    # The scripts `require "wrk_common"` from their own directory.
    env = {**os.environ, "LUA_PATH": f"{HERE}/?.lua;;"}
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT, env=env)
    out, _ = await proc.communicate()
    text = out.decode(errors="replace")
    found = re.search(r"WRK-RESULT (.*)", text)
    if proc.returncode != 0 or not found:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {text[-2000:]}")
    fields = {k: int(v) for k, v in (pair.split("=") for pair in found.group(1).split())}
    return WrkResult(name, fields["requests"], fields["duration_us"] / 1e6, fields["status"],
                     fields["connect"] + fields["read"] + fields["write"] + fields["timeout"],
                     fields["p50_us"] / 1000, fields["p99_us"] / 1000)

"""The operator CLI run as a process, as its tests run it: the process, its environment, its tables.

Each call starts a process (about 0.3 s), so each test makes few of them.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from dataclasses import dataclass

from tests.support.processes import REPO

MODULE = (sys.executable, "-m", "cli.main")
INSTALLED = (os.path.join(os.path.dirname(sys.executable), "csp-triage"),)


@dataclass
class Run:
    code: int
    out: str
    err: str


async def csp_triage(*args: str, env: dict[str, str], program: tuple[str, ...] = MODULE,
                     stdin: str | None = None) -> Run:
    process = await asyncio.create_subprocess_exec(
        *program, *args, cwd=REPO, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL if stdin is None else asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(None if stdin is None else stdin.encode()), 60)
    return Run(process.returncode, out.decode(), err.decode())


def environment(**settings: str) -> dict[str, str]:
    """This process's environment without any CSP_TRIAGE_ setting of the machine, plus ``settings``."""
    clean = {name: value for name, value in os.environ.items() if not name.startswith("CSP_TRIAGE_")}
    return {**clean, **{f"CSP_TRIAGE_{name.upper()}": value for name, value in settings.items()}}


def without(env: dict[str, str], setting: str) -> dict[str, str]:
    return {name: value for name, value in env.items() if name != setting}


def rows_of(table: str) -> dict[str, list[str]]:
    """A table's rows by their first cell, each split on its column gaps."""
    return {cells[0]: cells for cells in (re.split(r"\s{2,}", line.strip()) for line in table.splitlines()[1:])}

"""CPU seconds and memory of processes, from /proc (Linux): what each process of the stack spent."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def _stat_fields(pid: int) -> list[str]:
    # /proc/<pid>/stat: "pid (comm) state ppid pgrp session ..."; comm may hold spaces and parentheses.
    text = Path(f"/proc/{pid}/stat").read_text()
    return text.rpartition(")")[2].split()


def _pids_where(field: int, value: int) -> list[int]:
    """Every live process whose ``field``-th stat field after its name is ``value`` (1: the parent,
    3: the session)."""
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if int(_stat_fields(int(entry.name))[field]) == value:
                    found.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return found


def session_pids(session: int) -> list[int]:
    """Every live process of ``session`` (a service started with ``start_new_session``: it and any child)."""
    return _pids_where(3, session)


def child_pids(parent: int) -> list[int]:
    """The live children of ``parent`` (a server's workers: PostgreSQL's backends)."""
    return _pids_where(1, parent)


def parent_pid(pid: int) -> int:
    """The parent of ``pid`` (raises OSError once it is gone)."""
    return int(_stat_fields(pid)[1])


def reaped_children_seconds(pid: int) -> float:
    """CPU seconds of ``pid``'s children that ended and were waited for (cutime + cstime): a backend
    that closed during a phase is counted there."""
    try:
        fields = _stat_fields(pid)
    except OSError:
        return 0.0
    return (int(fields[13]) + int(fields[14])) / TICKS


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds the processes have used so far (utime + stime)."""
    total = 0
    for pid in pids:
        try:
            fields = _stat_fields(pid)
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / TICKS


def _status_kb(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


@dataclass
class Memory:
    rss_mb: float
    peak_rss_mb: float  # VmHWM: the most resident memory the process ever had (summed over the processes)
    processes: int = 1
    largest_peak_mb: float = 0.0  # the peak of the process that peaked highest

    def __post_init__(self) -> None:
        self.largest_peak_mb = self.largest_peak_mb or self.peak_rss_mb


def memory(pids: list[int]) -> Memory:
    peaks = [_status_kb(p, "VmHWM") / 1024 for p in pids]
    return Memory(sum(_status_kb(p, "VmRSS") for p in pids) / 1024, sum(peaks), len(pids), max(peaks, default=0.0))


@dataclass
class Watched:
    """A process (or a service's whole session) whose CPU the bench charges per alert."""

    name: str
    pid: int
    whole_session: bool = True
    # A server with a process per connection (PostgreSQL): it, its children, and those it reaped.
    with_children: bool = False

    def pids(self) -> list[int]:
        if self.with_children:
            return [self.pid, *child_pids(self.pid)]
        return session_pids(self.pid) if self.whole_session else [self.pid]

    def cpu(self) -> float:
        reaped = reaped_children_seconds(self.pid) if self.with_children else 0.0
        return cpu_seconds(self.pids()) + reaped

    def memory(self) -> Memory:
        return memory(self.pids())


def cpu_snapshot(watched: list[Watched]) -> dict[str, float]:
    return {w.name: w.cpu() for w in watched}

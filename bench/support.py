"""Helpers every benchmark shares: percentiles, the report line, the environment of a bench run."""

from __future__ import annotations

import statistics
import uuid
from dataclasses import dataclass


def percentile(samples: list[float], q: float) -> float:
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


@dataclass
class Measurement:
    name: str
    count: int
    seconds: float
    latencies_ms: list[float]

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds else float("nan")

    def line(self) -> str:
        lat = ""
        if self.latencies_ms:
            lat = (f"  p50 {percentile(self.latencies_ms, 50):7.2f} ms  p99 {percentile(self.latencies_ms, 99):7.2f} ms"
                   f"  mean {statistics.fmean(self.latencies_ms):7.2f} ms")
        return f"  {self.name:<44} {self.rate:10.1f}/s{lat}"


def ratio_line(subject: Measurement, baseline: Measurement) -> str:
    return (f"  ratio {subject.name} / {baseline.name}: throughput {subject.rate / baseline.rate:.3f}"
            + (f", p99 latency x{percentile(subject.latencies_ms, 99) / percentile(baseline.latencies_ms, 99):.2f}"
               if subject.latencies_ms and baseline.latencies_ms else ""))


def run_id() -> str:
    return uuid.uuid4().hex[:8]

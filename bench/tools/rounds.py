"""Closed-loop comparisons in interleaved rounds: each endpoint beside its baseline, several times over.

On a shared 2-core machine one wrk run of each side gives a ratio that moves by a third from one
minute to the next (the neighbours' load comes and goes), so one pair cannot say whether a goal of
0.7 is met. The bench runs the pair several times, alternating which side goes first (a slow minute
falls on both sides alike), and judges by the median of the rounds' ratios; the report gives every
round's ratio, so the spread is in sight.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

from bench.tools.wrk import WrkResult

REAL, BARE = "real", "bare"


def order(round_index: int, measured: tuple[str, ...] = (REAL,)) -> tuple[str, ...]:
    """The order of the sides in round ``round_index`` (from 0): the baseline first, then the measured
    sides; the next round the other way round."""
    sides = (BARE, *measured)
    return sides if round_index % 2 == 0 else sides[::-1]


@dataclass
class Pair:
    real: WrkResult
    bare: WrkResult

    @property
    def ratio(self) -> float:
        return self.real.rate / self.bare.rate if self.bare.rate else math.nan


@dataclass
class Rounds:
    pairs: list[Pair] = field(default_factory=list)

    @property
    def ratios(self) -> list[float]:
        return [pair.ratio for pair in self.pairs]

    @property
    def ratio(self) -> float:
        """The median of the rounds' ratios (NaN with none)."""
        return statistics.median(self.ratios) if self.pairs else math.nan

    @property
    def middle(self) -> Pair:
        """The round whose ratio is the median (of an even number, the lower of the two middle ones):
        the one whose figures the report shows."""
        return sorted(self.pairs, key=lambda pair: pair.ratio)[(len(self.pairs) - 1) // 2]

    @property
    def real_ok(self) -> int:
        """Requests of the measured endpoint answered 2xx/3xx, over every round."""
        return sum(pair.real.ok for pair in self.pairs)

    def errors(self, side: str) -> tuple[int, int]:
        """(non-2xx answers, socket errors) of ``side`` over every round."""
        results = [getattr(pair, side) for pair in self.pairs]
        return sum(r.status_errors for r in results), sum(r.socket_errors for r in results)

    def spread(self) -> str:
        """``median of 3 interleaved rounds: 0.55, 0.63, 0.71`` (the ratios sorted)."""
        if len(self.pairs) == 1:
            return "one round"
        listed = ", ".join(f"{r:.2f}" for r in sorted(self.ratios))
        return f"median of {len(self.pairs)} interleaved rounds: {listed}"

"""Runs benchmark modules of ``bench/``: ``python -m bench`` runs ``system`` (the whole system under load,
beside its baselines, about six minutes; writes docs/benchmarks.md); ``python -m bench name ...`` those
named; ``python -m bench all`` every one.

A benchmark module defines ``async def main() -> None`` that measures its subject and its
baseline in the same run and prints both with their ratio. Timings on a shared machine are noisy:
compare only the ratios of one run.
"""

from __future__ import annotations

import asyncio
import importlib
import pkgutil
import sys
import time

import bench

SKIP = {"support", "__main__"}
DEFAULT = ["system"]


def main() -> None:
    wanted = sys.argv[1:] or DEFAULT
    names = sorted(m.name for m in pkgutil.iter_modules(bench.__path__) if m.name not in SKIP and not m.ispkg)
    if wanted != ["all"]:
        unknown = set(wanted) - set(names)
        if unknown:
            sys.exit(f"unknown benchmark(s): {', '.join(sorted(unknown))}; known: {', '.join(names)}")
        names = [n for n in names if n in wanted]
    if not names:
        sys.exit("no benchmark modules found in bench/")
    for name in names:
        module = importlib.import_module(f"bench.{name}")
        print(f"== bench {name}", flush=True)
        started = time.monotonic()
        asyncio.run(module.main())
        print(f"   ({time.monotonic() - started:.1f} s)\n", flush=True)


if __name__ == "__main__":
    main()

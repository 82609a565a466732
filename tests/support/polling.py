"""The one way tests wait for something that happens in another process: poll until it holds."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from typing import Any


async def eventually(
    check: Callable[[], Any],
    until: Callable[[Any], bool] = bool,
    *,
    within: float = 45.0,
    interval: float = 0.1,
    what: str = "condition",
) -> Any:
    """Call ``check`` (sync or async) until ``until(result)`` (by default: truthy); return that result.

    The deadline is generous because the machine is shared; past it, the failure names ``what`` and
    the last result.
    """
    deadline = time.monotonic() + within
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if until(result):
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within} s: {what} (last: {result!r})")
        await asyncio.sleep(interval)

"""Wait until a condition holds, instead of sleeping and hoping (decision 18).

The bound is not a latency target: it is generous enough that only a truly stuck test reaches it
on a machine running the benchmarks beside the suite. Latency targets belong in the bench.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

T = TypeVar("T")

#: Seconds before a wait gives up: a stuck test, not a slow machine.
STUCK_AFTER = 60.0
_INTERVAL = 0.02


@overload
async def eventually(
    condition: Callable[[], Awaitable[T]],
    *,
    what: str = ...,
    within: float = ...,
    interval: float = ...,
) -> T: ...


@overload
async def eventually(
    condition: Callable[[], T],
    *,
    what: str = ...,
    within: float = ...,
    interval: float = ...,
) -> T: ...


async def eventually(
    condition: Callable[[], Any],
    *,
    what: str = "the condition",
    within: float = STUCK_AFTER,
    interval: float = _INTERVAL,
) -> Any:
    """Call ``condition`` (sync or async) until it returns something truthy; return that.

    An ``AssertionError`` raised by the condition counts as "not yet", so a condition can be
    written as the assertions the test will make anyway; the last one is re-raised at the bound.
    """
    deadline = time.monotonic() + within
    while True:
        last: AssertionError | None = None
        try:
            result = condition()
            if inspect.isawaitable(result):
                result = await result
        except AssertionError as exc:
            last = exc
        else:
            if result:
                return result
        if time.monotonic() >= deadline:
            if last is not None:
                raise last
            raise AssertionError(f"{what} did not hold within {within} s")
        await asyncio.sleep(interval)


def eventually_sync(
    condition: Callable[[], T],
    *,
    what: str = "the condition",
    within: float = STUCK_AFTER,
    interval: float = _INTERVAL,
) -> T:
    """:func:`eventually` for tests without an event loop (subprocess choreography)."""
    deadline = time.monotonic() + within
    while True:
        last: AssertionError | None = None
        try:
            result = condition()
        except AssertionError as exc:
            last = exc
        else:
            if result:
                return result
        if time.monotonic() >= deadline:
            if last is not None:
                raise last
            raise AssertionError(f"{what} did not hold within {within} s")
        time.sleep(interval)

"""Workers: what a service runs beside its HTTP app (projection runners, reactors, followers).

One protocol (``start``, ``stop``, ``pending``, ``nudge``, ``health``, ``wait_caught_up``) for
readiness and shutdown, and one loop (:class:`LoopWorker`) that every worker shares: it works
in rounds (``step`` until it reports nothing done), sleeps until nudged or until its poll
interval passes, and retries a failing round with backoff for as long as it runs, reporting
itself as not ready meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from typing import Protocol, runtime_checkable

log = logging.getLogger("ncii.worker")

OK = "ok"


@runtime_checkable
class Worker(Protocol):
    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def pending(self) -> int:
        """Work not done yet (0: caught up)."""
        ...

    def nudge(self) -> None:
        """Look for work now rather than at the next poll."""
        ...

    def health(self) -> str:
        """``ok``, or why the worker cannot work (an exception type, never a message)."""
        ...

    def alive(self) -> bool:
        """False once it has stopped for good without being asked to (liveness: only a
        restart brings it back), as opposed to retrying an outage (readiness)."""
        ...

    async def wait_caught_up(self, timeout: float = 30.0) -> None: ...


class LoopWorker:
    """The nudge/poll/stop loop, written once. Subclasses implement ``step`` and ``pending``."""

    name: str = "worker"
    interval: float = 1.0
    """Poll fallback when nobody nudges."""
    max_backoff: float = 5.0
    linger: float = 0.0
    """How long to let more work gather after a nudge before the next round: under a steady
    trickle, one round then takes several events instead of one (each round has fixed costs)."""

    def __init__(self) -> None:
        self._nudged = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._health = OK
        self._rounds = 0  # rounds started
        self._done = 0  # the number of the last round that ended without an error
        self._changed = asyncio.Condition()

    async def step(self) -> int:
        """Do some work; return how much (0: nothing left for this round)."""
        raise NotImplementedError

    async def pending(self) -> int:
        raise NotImplementedError

    async def prepare(self) -> None:
        """Runs once in ``start``, before the loop."""

    async def target(self) -> object:
        """What ``wait_caught_up`` waits for, read when it is called (e.g. a log position)."""
        return None

    async def reached(self, target: object) -> bool:
        """Whether ``target`` is reached (by default: nothing pending)."""
        return await self.pending() == 0

    def health(self) -> str:
        if not self.alive() and not self._health.startswith("stopped"):
            return "stopped"  # its task ended before its loop began (cancelled at once)
        return self._health

    def alive(self) -> bool:
        return self._task is None or not self._task.done() or self._stopping.is_set()

    def nudge(self) -> None:
        self._nudged.set()

    async def start(self) -> None:
        await self.prepare()
        self._stopping.clear()
        self._task = asyncio.create_task(self._loop(), name=f"worker-{self.name}")

    async def stop(self) -> None:
        """Stop after the step in progress (never in the middle of a transaction)."""
        self._stopping.set()
        self._nudged.set()
        if self._task is not None:
            task, self._task = self._task, None
            # a loop that died (see ``_loop``) has said why already: stopping it is not an error
            await asyncio.wait({task})
            if not task.cancelled():
                task.exception()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _loop(self) -> None:
        try:
            await self._rounds_until_stopped()
        except BaseException as exc:
            # ``step`` failures are retried; this is something else (a cancellation, a bug in
            # the loop): the worker is dead, and liveness says so. The type only, as below.
            self._health = f"stopped ({type(exc).__name__})"
            log.error("%s stopped for good (%s)", self.name, type(exc).__name__)
            with contextlib.suppress(Exception):
                await self._notify()
            raise

    async def _rounds_until_stopped(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            self._nudged.clear()
            self._rounds += 1
            this_round = self._rounds
            try:
                while not self._stopping.is_set() and await self.step() > 0:
                    await self._notify()
            except Exception as exc:  # the type only: SQL and NATS errors can carry values
                failures += 1
                self._health = f"retrying ({type(exc).__name__})"
                log.warning("%s failed (%s); retrying", self.name, type(exc).__name__)
                await self._notify()
                await self._sleep(min(self.max_backoff, 0.05 * 2**failures))
                continue
            failures = 0
            self._health = OK
            self._done = this_round
            await self._notify()
            if self._stopping.is_set():
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._nudged.wait(), self.interval)
            if self.linger and self._nudged.is_set():
                await self._sleep(self.linger)

    def _round_ended(self, after: int) -> bool:
        return self._done > after or not self.running

    async def wait_caught_up(self, timeout: float = 30.0) -> None:
        """Wait for a whole round that started after this call and after which ``reached``
        holds (read-your-writes: what was written before the call is done)."""
        try:
            async with asyncio.timeout(timeout):
                await self._wait_caught_up()
        except TimeoutError:
            raise TimeoutError(f"{self.name} did not catch up in {timeout}s") from None

    async def _wait_caught_up(self) -> None:
        target = await self.target()
        while True:
            if not self.running:
                raise RuntimeError(f"{self.name} is not running")
            started = self._rounds
            self.nudge()
            async with self._changed:
                await self._changed.wait_for(functools.partial(self._round_ended, started))
            if await self.reached(target):
                return

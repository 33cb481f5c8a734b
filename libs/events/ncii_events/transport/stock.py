"""The stock transport: nats-py's public API only (``subscribe``, ``publish``, ``new_inbox``)."""

from __future__ import annotations

import asyncio
import itertools
import weakref
from collections.abc import Callable
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.errors import APIError, NoStreamResponseError

from ncii_events.transport import MAX_BATCHES_IN_FLIGHT, OnStored

_END_OF_BATCH = frozenset({"204", "404", "408"})  # end of batch, nothing (more) found, timeout
_NO_RESPONDERS = "503"

_OnReply = Callable[[Msg], None]


class StockTransport:
    """Every reply (publish acknowledgements, Direct Get messages) through one wildcard
    subscription on a private inbox, routed by token.

    ``Client.request`` would do for acknowledgements, but it spends a random token from the OS
    and a ``wait_for`` per request; here a request is a counter and a future, and one sweep every
    quarter second ends the requests whose time is up. Still only public API.
    """

    _SWEEP_EVERY = 0.25

    def __init__(self, nc: Client) -> None:
        # Weakly: the connection keeps this alive through its subscription, not the reverse.
        self._client = weakref.ref(nc)
        self.batch_slot = asyncio.Semaphore(MAX_BATCHES_IN_FLIGHT)
        self._prefix = ""
        self._prefix_len = 0
        self._starting = asyncio.Lock()
        self._open: dict[str, tuple[asyncio.Future[Any] | _OnReply, float]] = {}
        self._tokens = itertools.count(1)
        self._sweep: asyncio.TimerHandle | None = None

    @property
    def _nc(self) -> Client:
        nc = self._client()
        if nc is None:  # pragma: no cover - the caller holds the connection
            raise RuntimeError("the NATS connection is gone")
        return nc

    async def _start(self) -> None:
        async with self._starting:
            if not self._prefix:
                prefix = self._nc.new_inbox() + "."
                # nats-py re-subscribes after a reconnect; the subscription lives as long as nc.
                await self._nc.subscribe(prefix + "*", cb=self._on_msg)
                self._prefix_len = len(prefix)
                self._prefix = prefix

    def _register(self, target: asyncio.Future[Any] | _OnReply, timeout: float) -> str:
        token = str(next(self._tokens))
        loop = asyncio.get_running_loop()
        self._open[token] = (target, loop.time() + timeout)
        if self._sweep is None:
            self._sweep = loop.call_later(self._SWEEP_EVERY, self._expire)
        return token

    async def _on_msg(self, msg: Msg) -> None:
        entry = self._open.get(msg.subject[self._prefix_len :])
        if entry is None:
            return  # a late reply to a request that ended
        target = entry[0]
        if isinstance(target, asyncio.Future):
            if not target.done():
                target.set_result(msg)
        else:
            target(msg)

    def _expire(self) -> None:
        self._sweep = None
        if not self._open:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        for token, (target, deadline) in list(self._open.items()):
            if deadline <= now:
                self._open.pop(token, None)
                if isinstance(target, asyncio.Future) and not target.done():
                    target.set_exception(NatsTimeoutError())
        self._sweep = loop.call_later(self._SWEEP_EVERY, self._expire)

    async def request(
        self, subject: str, data: bytes, headers: dict[str, str], timeout: float
    ) -> bytes:
        if not self._prefix:
            await self._start()
        future: asyncio.Future[Msg] = asyncio.get_running_loop().create_future()
        token = self._register(future, timeout)
        try:
            await self._nc.publish(subject, data, reply=self._prefix + token, headers=headers)
            msg = await future
        finally:
            self._open.pop(token, None)
        if msg.headers and msg.headers.get("Status") == _NO_RESPONDERS:
            raise NoStreamResponseError  # as js.publish: no stream takes this subject
        return msg.data

    async def publish(self, subject: str, data: bytes, headers: dict[str, str]) -> None:
        await self._nc.publish(subject, data, headers=headers)

    async def direct_get(
        self, stream: str, request: bytes, on_stored: OnStored, timeout: float
    ) -> int:
        if not self._prefix:
            await self._start()
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        pending = 0

        def on_reply(msg: Msg) -> None:
            nonlocal pending
            if done.done():
                return
            headers: dict[str, str] = msg.headers or {}
            status = headers.get("Status")
            if status is not None:
                if status in _END_OF_BATCH:
                    done.set_result(None)
                else:
                    done.set_exception(APIError(description=headers.get("Description", "")))
                return
            on_stored(int(headers.get("Nats-Sequence") or 0), msg.data)
            pending = int(headers.get("Nats-Num-Pending") or 0)

        token = self._register(on_reply, timeout)
        try:
            await self._nc.publish(
                f"$JS.API.DIRECT.GET.{stream}", request, reply=self._prefix + token
            )
            # the sweep only forgets a read whose time is up; this wait is what ends it
            await asyncio.wait_for(done, timeout)
        except TimeoutError:
            raise NatsTimeoutError from None
        finally:
            self._open.pop(token, None)
        return pending

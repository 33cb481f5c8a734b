"""The stock transport: nats-py's public API only (``request``, ``subscribe``, ``publish``)."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.errors import APIError, NoStreamResponseError

from ncii_events.transport import MAX_BATCHES_IN_FLIGHT, OnStored

_END_OF_BATCH = frozenset({"204", "404", "408"})  # end of batch, nothing (more) found, timeout


class _Read:
    """One open Direct Get: where its messages go, and how it ended."""

    __slots__ = ("done", "on_stored", "pending")

    def __init__(self, on_stored: OnStored) -> None:
        self.on_stored = on_stored
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.pending = 0


class StockTransport:
    """Requests through ``Client.request``; every Direct Get's replies through one wildcard
    subscription on a private inbox, each read on its own token."""

    def __init__(self, nc: Client) -> None:
        self._nc = nc
        self.batch_slot = asyncio.Semaphore(MAX_BATCHES_IN_FLIGHT)
        self._prefix = ""
        self._prefix_len = 0
        self._sub: Subscription | None = None
        self._starting = asyncio.Lock()
        self._reads: dict[str, _Read] = {}
        self._tokens = itertools.count(1)

    async def request(
        self, subject: str, data: bytes, headers: dict[str, str], timeout: float
    ) -> bytes:
        try:
            msg = await self._nc.request(subject, data, timeout=timeout, headers=headers)
        except NoRespondersError:
            raise NoStreamResponseError from None  # as js.publish: no stream takes this subject
        return msg.data

    async def publish(self, subject: str, data: bytes, headers: dict[str, str]) -> None:
        await self._nc.publish(subject, data, headers=headers)

    async def _start(self) -> None:
        async with self._starting:
            if not self._prefix:
                prefix = self._nc.new_inbox() + "."
                # nats-py re-subscribes after a reconnect; the subscription lives as long as nc.
                self._sub = await self._nc.subscribe(prefix + "*", cb=self._on_msg)
                self._prefix_len = len(prefix)
                self._prefix = prefix

    async def _on_msg(self, msg: Msg) -> None:
        read = self._reads.get(msg.subject[self._prefix_len :])
        if read is None or read.done.done():
            return  # a late reply to a read that ended
        headers: dict[str, Any] = msg.headers or {}
        status = headers.get("Status")
        if status is not None:
            if status in _END_OF_BATCH:
                read.done.set_result(None)
            else:
                read.done.set_exception(APIError(description=headers.get("Description", "")))
            return
        read.on_stored(int(headers.get("Nats-Sequence") or 0), msg.data)
        read.pending = int(headers.get("Nats-Num-Pending") or 0)

    async def direct_get(
        self, stream: str, request: bytes, on_stored: OnStored, timeout: float
    ) -> int:
        if not self._prefix:
            await self._start()
        token = str(next(self._tokens))
        read = self._reads[token] = _Read(on_stored)
        try:
            await self._nc.publish(
                f"$JS.API.DIRECT.GET.{stream}", request, reply=self._prefix + token
            )
            await asyncio.wait_for(read.done, timeout)
        except TimeoutError:
            raise NatsTimeoutError from None
        finally:
            del self._reads[token]
        return read.pending

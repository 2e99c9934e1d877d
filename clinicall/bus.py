"""Event bus: publish an event, subscribe by type. In-process by default, Redis when configured
so that several service instances see each other's events.

Event types are dotted names ("ticket.called"). A subscription pattern is an exact type,
a prefix ending in ".*" ("ticket.*"), or "*".
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from clinicall.db import utcnow

log = logging.getLogger(__name__)

Handler = Callable[["Event"], Awaitable[None]]
Tap = Callable[["Event"], None]


@dataclass(frozen=True)
class Event:
    type: str
    data: dict[str, Any]
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    at: str = field(default_factory=lambda: utcnow().isoformat())
    origin: str = ""

    def to_json(self) -> str:
        return json.dumps({"type": self.type, "data": self.data, "id": self.id, "at": self.at, "origin": self.origin},
                          ensure_ascii=False, default=str)

    @classmethod
    def from_json(cls, raw: str | bytes) -> Event:
        body = json.loads(raw)
        return cls(type=body["type"], data=body["data"], id=body["id"], at=body["at"], origin=body.get("origin", ""))


def matches(pattern: str, event_type: str) -> bool:
    if pattern == "*":
        return True
    if pattern.endswith(".*"):
        return event_type.startswith(pattern[:-1])
    return pattern == event_type


class Bus(Protocol):
    instance_id: str

    async def publish(self, event_type: str, data: dict[str, Any]) -> Event: ...

    def subscribe(self, pattern: str, handler: Handler) -> Callable[[], None]: ...

    def tap(self, pattern: str, callback: Tap) -> Callable[[], None]: ...

    def health(self) -> dict[str, Any]: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...


class LocalDispatcher:
    """Delivers events to this process's subscribers in order, one at a time, on its own task."""

    def __init__(self) -> None:
        self._subscriptions: list[tuple[str, Handler]] = []
        self._taps: list[tuple[str, Tap]] = []
        self._routes: dict[str, tuple[list[Tap], list[Handler]]] = {}  # event type -> (taps, handlers) matching it
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.delivered = 0

    def subscribe(self, pattern: str, handler: Handler) -> Callable[[], None]:
        entry = (pattern, handler)
        self._subscriptions.append(entry)
        self._routes.clear()

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._subscriptions.remove(entry)
            self._routes.clear()

        return unsubscribe

    def tap(self, pattern: str, callback: Tap) -> Callable[[], None]:
        """`callback(event)` at once, as each matching event is published here or arrives from another
        instance, before any subscriber has it: a live feed never waits behind a slow subscriber. The events
        one operation publishes together (back to back) all reach it before the publisher next yields to the
        loop, so it can send them as one. It must not block."""
        entry = (pattern, callback)
        self._taps.append(entry)
        self._routes.clear()

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._taps.remove(entry)
            self._routes.clear()

        return remove

    def _route(self, event_type: str) -> tuple[list[Tap], list[Handler]]:
        """The taps and the handlers an event type goes to, worked out once per type (until the next change)."""
        route = self._routes.get(event_type)
        if route is None:
            if len(self._routes) > 1000:
                self._routes.clear()
            route = self._routes[event_type] = ([c for p, c in self._taps if matches(p, event_type)],
                                                [h for p, h in self._subscriptions if matches(p, event_type)])
        return route

    def put(self, event: Event) -> None:
        for callback in self._route(event.type)[0]:
            try:
                callback(event)
            except Exception:
                log.exception("bus tap %r failed on %s", callback, event.type)
        self._queue.put_nowait(event)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="bus-dispatch")

    async def drain(self) -> None:
        await self._queue.join()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            event = await self._queue.get()
            try:
                for handler in self._route(event.type)[1]:
                    try:
                        await handler(event)
                    except Exception:
                        log.exception("bus handler %r failed on %s", handler, event.type)
                self.delivered += 1
            finally:
                self._queue.task_done()


class _LocalSubscribers:
    """What every bus shares: this process's subscribers, served by one LocalDispatcher."""

    _local: LocalDispatcher

    def subscribe(self, pattern: str, handler: Handler) -> Callable[[], None]:
        return self._local.subscribe(pattern, handler)

    def tap(self, pattern: str, callback: Tap) -> Callable[[], None]:
        return self._local.tap(pattern, callback)

    async def drain(self) -> None:
        """Wait until every event published so far has been handed to this process's subscribers."""
        await self._local.drain()


class InProcessBus(_LocalSubscribers):
    def __init__(self) -> None:
        self.instance_id = uuid.uuid4().hex[:12]
        self._local = LocalDispatcher()

    async def start(self) -> None:
        self._local.start()

    async def publish(self, event_type: str, data: dict[str, Any]) -> Event:
        event = Event(type=event_type, data=data, origin=self.instance_id)
        self._local.put(event)
        return event

    def health(self) -> dict[str, Any]:
        return {"ok": True, "kind": "in-process"}

    async def close(self) -> None:
        await self._local.close()


CLOSE_SECONDS = 5.0
WRITE_BATCH = 200  # outbox events sent in one pipeline at most


class Backoff:
    """Exponential back-off between reconnect attempts: first, first*2, ... up to most."""

    def __init__(self, first: float = 0.2, most: float = 10.0) -> None:
        self.first = first
        self.most = most
        self.delay = first

    def next(self) -> float:
        delay = self.delay
        self.delay = min(self.delay * 2, self.most)
        return delay

    def reset(self) -> None:
        self.delay = self.first


class RedisBus(_LocalSubscribers):
    """Events travel through one capped Redis Stream, read by every instance (publish/subscribe with
    catch-up). Local subscribers get local events at once; other instances' events arrive through
    Redis. While Redis is unreachable, outgoing events wait in a bounded outbox; the reader and the
    writer retry with exponential back-off (one log line when Redis goes away, one when it is back),
    then the reader resumes from the last event it saw, so a short outage loses nothing in either
    direction. health() is ok exactly when both the reader and the writer last succeeded. Each entry names
    its instance (field `o`) beside the event, so an instance skips its own without decoding them."""

    def __init__(self, url: str, channel: str = "clinicall:events", outbox_limit: int = 10_000,
                 stream_length: int = 10_000, backoff_max: float = 10.0) -> None:
        import redis.asyncio as redis

        self.instance_id = uuid.uuid4().hex[:12]
        self._origin = self.instance_id.encode()
        self.url = url
        self.channel = channel
        self.stream_length = stream_length
        self.backoff_max = backoff_max
        # No socket_timeout: under Python 3.11 redis-py's read timeout can swallow a cancellation (the reader
        # then outlives close()). TCP keepalive notices a silent network cut instead.
        self._redis = redis.from_url(url, socket_connect_timeout=2, socket_timeout=None, socket_keepalive=True)
        self._local = LocalDispatcher()
        self._outbox: asyncio.Queue[str] = asyncio.Queue(maxsize=outbox_limit)
        self._tasks: set[asyncio.Task[None]] = set()
        self._up = {"reader": False, "writer": True}
        self._retrying = False  # the writer holds an event it could not send yet
        self._reconnected = asyncio.Event()  # set by the reader: the writer retries at once
        self.subscribed = asyncio.Event()
        self.last_error: str | None = None
        self.dropped = 0
        self.outages = 0
        self._last_id: str | None = None

    @property
    def connected(self) -> bool:
        return all(self._up.values())

    async def start(self) -> None:
        self._local.start()
        for name, coro in (("bus-redis-reader", self._read_loop()), ("bus-redis-writer", self._write_loop())):
            task = asyncio.create_task(coro, name=name)
            self._tasks.add(task)

    async def publish(self, event_type: str, data: dict[str, Any]) -> Event:
        event = Event(type=event_type, data=data, origin=self.instance_id)
        self._local.put(event)
        try:
            self._outbox.put_nowait(event.to_json())
        except asyncio.QueueFull:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning("redis bus outbox full; %d events not sent to other instances", self.dropped)
        return event

    def health(self) -> dict[str, Any]:
        return {"ok": self.connected, "kind": "redis", "pending": self._outbox.qsize(), "dropped": self.dropped,
                "error": None if self.connected else self.last_error}

    async def _write_loop(self) -> None:
        """Sends the outbox in order: what waits there when Redis answers goes in one pipeline (one round trip;
        a burst of screen-pops costs one write, not one each)."""
        backoff = Backoff(most=self.backoff_max)
        while True:
            batch = [await self._outbox.get()]
            while len(batch) < WRITE_BATCH and not self._outbox.empty():
                batch.append(self._outbox.get_nowait())
            while True:
                try:
                    await self._send(batch)
                except Exception as exc:  # redis.ConnectionError, TimeoutError, OSError
                    self._retrying = True
                    self._set("writer", False, exc)
                    self._reconnected.clear()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(backoff.next()):  # (3.11's wait_for may swallow a cancel)
                            await self._reconnected.wait()
                    continue
                self._retrying = False
                self._set("writer", True)
                backoff.reset()
                break

    async def _send(self, batch: list[str]) -> None:
        if len(batch) == 1:
            await self._redis.xadd(self.channel, {"e": batch[0], "o": self._origin}, maxlen=self.stream_length,
                                   approximate=True)
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for message in batch:
                pipe.xadd(self.channel, {"e": message, "o": self._origin}, maxlen=self.stream_length, approximate=True)
            await pipe.execute()

    async def _read_loop(self) -> None:
        backoff = Backoff(most=self.backoff_max)
        while True:
            try:
                if self._last_id is None:
                    info = await self._redis.xinfo_stream(self.channel) if await self._redis.exists(self.channel) else None
                    self._last_id = info["last-generated-id"].decode() if info else "0-0"
                else:
                    await self._redis.ping()
                if not self._retrying:
                    self._up["writer"] = True  # a failed write with nothing left to resend needs no retry
                self._set("reader", True)
                self._reconnected.set()
                self.subscribed.set()
                backoff.reset()
                while True:
                    batches = await self._redis.xread({self.channel: self._last_id}, block=5000, count=500)
                    for _stream, entries in batches:
                        for entry_id, fields in entries:
                            self._last_id = entry_id.decode()
                            if fields.get(b"o") != self._origin:  # its own events were delivered at once
                                self._deliver(fields.get(b"e", b""))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._set("reader", False, exc)
                self.subscribed.clear()
            await asyncio.sleep(backoff.next())

    def _deliver(self, raw: bytes) -> None:
        try:
            event = Event.from_json(raw)
        except (ValueError, KeyError, TypeError):
            log.warning("ignored a malformed bus message")
            return
        if event.origin != self.instance_id:
            self._local.put(event)

    def _set(self, side: str, up: bool, exc: BaseException | None = None) -> None:
        was = self.connected
        self._up[side] = up
        if exc is not None:
            self.last_error = f"{type(exc).__name__}: {exc}"
        if was and not self.connected:
            self.outages += 1
            log.warning("redis bus: lost Redis (%s); events wait in the outbox, retrying with back-off", self.last_error)
        elif not was and self.connected:
            self.last_error = None
            if self.outages:
                log.warning("redis bus: Redis is back; %d events pending", self._outbox.qsize())

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        _done, stuck = await asyncio.wait(self._tasks, timeout=CLOSE_SECONDS) if self._tasks else (set(), set())
        if stuck:  # a Redis call that ignored its cancellation: do not hang the shutdown on it
            log.warning("redis bus: %d task(s) did not stop within %s s", len(stuck), CLOSE_SECONDS)
        self._tasks.clear()
        await self._local.close()
        with contextlib.suppress(TimeoutError, OSError):
            async with asyncio.timeout(CLOSE_SECONDS):
                await self._redis.aclose()


def make_bus(redis_url: str | None, channel: str) -> InProcessBus | RedisBus:
    return RedisBus(redis_url, channel) if redis_url else InProcessBus()

"""The websocket hub: one for the app (`HUB_KEY`), used by every live feed (`/ws/display` for the
screens and the speaker clients, `/ws/agent` for the agent console).

A feed puts clients in groups by a key (a screen's filter, an agent's identity) and publishes a frame to a
group; the hub guarantees, for every client of every feed:
- a frame is encoded once (its JSON text and its websocket bytes), however many clients get it;
- a client that keeps up is written to at once (the bytes go straight into its socket's buffer); a client
  whose socket is backed up gets its frames through its own bounded queue and sender task, so it never
  delays the others;
- a queue that overflows is dropped and replaced by the feed's resync frame (a fresh snapshot for screens,
  `{"type": "resync"}` for agents): no frame is lost without the client being told;
- a client whose socket takes nothing for `send_timeout` seconds is closed (it reconnects); idle clients
  get an app-level ping every heartbeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import struct
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Iterator
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)

QUEUE_LIMIT = 256              # frames waiting for one backed-up client before it is resynchronised
SEND_TIMEOUT_SECONDS = 10.0    # a client that cannot take one frame in this long is closed
BUFFER_LIMIT = 64 * 1024       # bytes in a socket's write buffer above which its client is backed up


class Frame:
    """One message, encoded once: the JSON text and the unmasked websocket text frame (RFC 6455 5.2)."""

    __slots__ = ("text", "wire")

    def __init__(self, text: str) -> None:
        self.text = text
        payload = text.encode()
        size = len(payload)
        if size < 126:
            header = struct.pack("!BB", 0x81, size)
        elif size < 65536:
            header = struct.pack("!BBH", 0x81, 126, size)
        else:
            header = struct.pack("!BBQ", 0x81, 127, size)
        self.wire = header + payload


def encode(body: Any) -> Frame:
    return Frame(json.dumps(body, ensure_ascii=False, default=str))


RESYNC_FRAME = encode({"type": "resync"})
Resync = Callable[["Client"], Awaitable[Frame]]


class Feed:
    """One kind of client (screens, agents): its groups of clients, and the frame that resynchronises one."""

    def __init__(self, name: str, resync: Resync | None = None) -> None:
        self.name = name
        self.resync = resync or _resync_frame
        self.groups: dict[Hashable, set[Client]] = {}

    def keys(self) -> list[Hashable]:
        return list(self.groups)

    def clients(self) -> Iterator[Client]:
        for members in list(self.groups.values()):
            yield from list(members)


async def _resync_frame(_client: Client) -> Frame:
    return RESYNC_FRAME


_RESYNC = object()  # in a client's queue: send the feed's resync frame


class Client:
    """One websocket: written to directly while it keeps up, through its own queue and sender when not."""

    __slots__ = ("dropped", "feed", "key", "queue", "resync_pending", "sender", "sending_since", "transport", "ws")

    def __init__(self, ws: web.WebSocketResponse, transport: asyncio.Transport | None, feed: Feed,
                 key: Hashable) -> None:
        self.ws = ws
        self.transport = transport
        self.feed = feed
        self.key = key
        self.queue: deque[Frame | object] = deque()
        self.sender: asyncio.Task[None] | None = None
        self.resync_pending = False
        self.sending_since: float | None = None  # set while the sender waits for the socket
        self.dropped = 0

    def keeps_up(self) -> bool:
        transport = self.transport
        return (self.sender is None and not self.queue and transport is not None and not transport.is_closing()
                and not self.ws.closed and transport.get_write_buffer_size() <= BUFFER_LIMIT)


class Hub:
    def __init__(self, queue_limit: int = QUEUE_LIMIT, send_timeout: float = SEND_TIMEOUT_SECONDS) -> None:
        self.queue_limit = queue_limit
        self.send_timeout = send_timeout
        self.feeds: list[Feed] = []
        self._senders: set[asyncio.Task[None]] = set()
        self._closing: set[asyncio.Task[None]] = set()
        self.written = 0  # frames written straight into a socket
        self.queued = 0   # frames that went through a client's queue

    def feed(self, name: str, resync: Resync | None = None) -> Feed:
        feed = Feed(name, resync)
        self.feeds.append(feed)
        return feed

    def clients(self) -> Iterator[Client]:
        for feed in self.feeds:
            yield from feed.clients()

    # clients -----------------------------------------------------------------------------------------
    def add(self, ws: web.WebSocketResponse, request: web.Request, feed: Feed, key: Hashable,
            resync_first: bool = False) -> Client:
        """A prepared websocket joins `feed` under `key`; with resync_first its first frame is the resync one."""
        client = Client(ws, request.transport, feed, key)
        feed.groups.setdefault(key, set()).add(client)
        if resync_first:
            self.resync(client)
        return client

    async def remove(self, client: Client) -> None:
        members = client.feed.groups.get(client.key)
        if members is not None:
            members.discard(client)
            if not members:
                del client.feed.groups[client.key]
        client.queue.clear()
        sender = client.sender
        if sender is not None and sender is not asyncio.current_task():
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await sender

    # sending -----------------------------------------------------------------------------------------
    def publish(self, feed: Feed, key: Hashable, frame: Frame) -> int:
        """`frame` to every client of `feed` under `key`; returns how many."""
        members = feed.groups.get(key)
        if not members:
            return 0
        for client in list(members):
            self.send(client, frame)
        return len(members)

    def send(self, client: Client, frame: Frame) -> None:
        """Never blocks: straight into the socket when the client keeps up, else into its bounded queue."""
        if client.keeps_up():
            assert client.transport is not None
            client.transport.write(frame.wire)
            self.written += 1
            return
        if len(client.queue) >= self.queue_limit:
            client.dropped += 1
            client.queue.clear()
            client.resync_pending = False
            self.resync(client)
            return
        client.queue.append(frame)
        self.queued += 1
        self._start_sender(client)

    def resync(self, client: Client) -> None:
        """Queue one resync frame (asking again before it is sent changes nothing)."""
        if not client.resync_pending:
            client.resync_pending = True
            client.queue.append(_RESYNC)
            self._start_sender(client)

    def _start_sender(self, client: Client) -> None:
        if client.sender is None:
            task = asyncio.create_task(self._drain(client), name=f"hub-{client.feed.name}-sender")
            client.sender = task
            self._senders.add(task)
            task.add_done_callback(self._senders.discard)

    async def _drain(self, client: Client) -> None:
        ws = client.ws
        loop = asyncio.get_running_loop()
        try:
            while client.queue and not ws.closed:
                item = client.queue.popleft()
                if item is _RESYNC:
                    client.resync_pending = False
                    try:
                        item = await client.feed.resync(client)
                    except Exception:
                        log.exception("%s: resync failed; closing the client so it reconnects", client.feed.name)
                        await ws.close(code=1011, message=b"resync failed")
                        return
                assert isinstance(item, Frame)
                client.sending_since = loop.time()  # the watchdog closes a client stuck here
                await ws.send_str(item.text)
                client.sending_since = None
        except (ConnectionError, RuntimeError):
            with contextlib.suppress(Exception):
                await ws.close()
        finally:
            client.sending_since = None
            client.sender = None

    # watchdog ----------------------------------------------------------------------------------------
    async def ping_loop(self, every: float) -> None:
        """App-level pings to idle clients (a page knows its link is alive), and the watchdog."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(every)
            self.watch(loop.time(), encode({"type": "ping", "at": dt.datetime.now(dt.UTC).isoformat()}))

    def watch(self, now: float, ping: Frame) -> None:
        for client in list(self.clients()):
            if client.sending_since is not None and now - client.sending_since > self.send_timeout:
                self._drop(client)
            elif client.sender is None:
                self.send(client, ping)

    def _drop(self, client: Client) -> None:
        log.info("%s: closing a client that stopped reading", client.feed.name)
        task = asyncio.create_task(self._close_client(client), name=f"hub-{client.feed.name}-drop")
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _close_client(self, client: Client) -> None:
        await self.remove(client)
        with contextlib.suppress(Exception):
            await client.ws.close(code=1008, message=b"too slow")

    async def close(self) -> None:
        for client in list(self.clients()):
            await self.remove(client)
        for task in list(self._closing):
            task.cancel()

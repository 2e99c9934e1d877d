"""A TCP AMI peer that replays a recorded Asterisk session byte for byte.

Each accepted connection plays the next trace: it writes every recorded `recv` chunk exactly as
Asterisk sent it (same bytes, same chunking), and at each recorded `send` step it waits for the
client's next action and records it. Actions the recording does not have (panoramisk's Ping, the
link's CoreShowChannels after FullyBooted) are answered with the reply formats recorded in
`misc_actions` and kept in `extra`. The recorder's final Logoff is not expected from our client: the
peer stops there and keeps the connection open. Connections beyond the traces are refused by closing.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

from telephony.wire import Header, first, parse_actions
from tests.telephony.traces import Trace


def empty_channel_list(action_id: str) -> bytes:
    return (f"Response: Success\r\nActionID: {action_id}\r\nEventList: start\r\nMessage: Channels will follow\r\n\r\n"
            f"Event: CoreShowChannelsComplete\r\nActionID: {action_id}\r\nEventList: Complete\r\nListItems: 0\r\n\r\n"
            ).encode()


def pong(action_id: str) -> bytes:
    return f"Response: Success\r\nActionID: {action_id}\r\nPing: Pong\r\nTimestamp: {time.time():.6f}\r\n\r\n".encode()


@dataclass
class Session:
    trace: str
    actions: list[list[Header]] = field(default_factory=list)   # matched recorded `send` steps
    extra: list[list[Header]] = field(default_factory=list)     # anything else the client sent
    raw: bytearray = field(default_factory=bytearray)
    finished: asyncio.Event = field(default_factory=asyncio.Event)


class ReplayPeer:
    def __init__(self, traces: list[Trace], *, speed: float = 0.0, hold_open: bool = True,
                 stop_at_logoff: bool = True, drop_on: str | None = None, ack_before_drop: bool = False,
                 split_characters: bool = False) -> None:
        self.traces = list(traces)
        self.split_characters = split_characters  # write recorded chunks with non-ASCII bytes a byte at a time
        self.speed = speed  # 0: no pauses; 1.0: the recorded timing
        self.hold_open = hold_open
        self.stop_at_logoff = stop_at_logoff
        self.drop_on = drop_on  # close the connection as soon as this action arrives
        self.ack_before_drop = ack_before_drop  # ... after answering "Originate successfully queued"
        self.sessions: list[Session] = []
        self.refused = 0
        self.server: asyncio.Server | None = None
        self.port = 0
        self._writers: list[asyncio.StreamWriter] = []
        self.connected = asyncio.Event()

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self.port

    async def close(self) -> None:
        for writer in self._writers:
            writer.close()
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 2)

    def all_received(self) -> list[list[Header]]:
        return [a for s in self.sessions for a in s.actions + s.extra]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.traces:
            self.refused += 1
            writer.close()
            return
        trace = self.traces.pop(0)
        session = Session(trace.name)
        self.sessions.append(session)
        self._writers.append(writer)
        self.connected.set()
        try:
            await self._play(trace, session, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            session.finished.set()

    async def _next_action(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                           session: Session, expected: str) -> list[Header] | None:
        while True:
            data = await reader.readuntil(b"\r\n\r\n")
            session.raw.extend(data)
            action = parse_actions(data)[0]
            name = first(action, "Action") or ""
            if self.drop_on and name.lower() == self.drop_on.lower():
                session.extra.append(action)
                if self.ack_before_drop:
                    writer.write(f"Response: Success\r\nActionID: {first(action, 'ActionID')}\r\n"
                                 "Message: Originate successfully queued\r\n\r\n".encode())
                    await writer.drain()
                writer.close()
                return None
            if name.lower() == expected.lower():
                session.actions.append(action)
                return action
            session.extra.append(action)
            action_id = first(action, "ActionID") or ""
            if name.lower() == "ping":
                writer.write(pong(action_id))
            elif name.lower() == "coreshowchannels":
                writer.write(empty_channel_list(action_id))

    async def _play(self, trace: Trace, session: Session, reader: asyncio.StreamReader,
                    writer: asyncio.StreamWriter) -> None:
        last_t = 0.0
        for step in trace.steps:
            if self.speed and step.t > last_t:
                await asyncio.sleep((step.t - last_t) * self.speed)
            last_t = step.t
            if step.direction == "recv" and self.split_characters and not step.data.isascii():
                cuts = [i + 1 for i, b in enumerate(step.data) if b >= 0xC0]  # just after each character's lead byte
                for start, end in zip([0, *cuts], [*cuts, len(step.data)], strict=True):
                    writer.write(step.data[start:end])
                    await writer.drain()
                    await asyncio.sleep(0.001)  # the client reads each piece on its own
            elif step.direction == "recv":
                writer.write(step.data)
                await writer.drain()
            elif step.direction == "send":
                expected = first(parse_actions(step.data)[0], "Action") or ""
                if expected.lower() == "logoff" and self.stop_at_logoff:
                    break
                if await self._next_action(reader, writer, session, expected) is None:
                    return
            elif step.direction == "eof":
                writer.close()
                return
        if not self.hold_open:
            writer.close()
            return
        session.finished.set()
        with contextlib.suppress(Exception):
            while True:  # keep answering Ping / CoreShowChannels until the client goes away
                await self._next_action(reader, writer, session, "\x00never")

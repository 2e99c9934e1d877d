"""An Asterisk-side FastAGI peer for tests and bench: connects, sends an agi_* header exactly as
recorded from Asterisk 22.10.1, answers every command like res_agi does, and returns the commands."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from pathlib import Path

from clinicall.bus import Event

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "asterisk"
INBOUND_TRACES = ("inbound_call", "inbound_call_e164", "inbound_call_with_name", "inbound_call_anonymous")


@dataclass(frozen=True)
class Trace:
    header: bytes           # the agi_* lines and the blank line, byte for byte
    replies: list[str]      # what Asterisk answered, in order

    def get_variable_reply(self) -> str:
        return next((r for r in self.replies if "(" in r), "200 result=1 ()")


def load_trace(name: str) -> Trace:
    raw = (FIXTURES / f"{name}.fastagi.recv.raw").read_bytes()
    end = raw.index(b"\n\n") + 2
    return Trace(header=raw[:end], replies=raw[end:].decode().splitlines())


def with_callerid(trace: Trace, callerid: bytes) -> bytes:
    return re.sub(rb"(?m)^agi_callerid: .*$", b"agi_callerid: " + callerid, trace.header)


async def run_session(port: int, header: bytes, trace: Trace | None = None, wait: float = 10.0) -> list[str]:
    """Play Asterisk: send the header, answer each command, return the commands until the server closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    commands: list[str] = []
    try:
        writer.write(header)
        await writer.drain()
        while True:
            line = await asyncio.wait_for(reader.readline(), wait)
            if not line:
                break
            assert line.endswith(b"\n"), line
            command = line.decode().rstrip("\n")
            commands.append(command)
            if command.startswith("GET VARIABLE"):
                reply = trace.get_variable_reply() if trace else "200 result=1 ()"
            else:
                reply = "200 result=1"
            writer.write(reply.encode() + b"\n")
            await writer.drain()
    finally:
        writer.close()
    return commands


class Collector:
    def __init__(self) -> None:
        self.events: list[Event] = []

    async def __call__(self, event: Event) -> None:
        self.events.append(event)

"""The real Asterisk 22 traces in tests/fixtures/asterisk (or CLINICALL_ASTERISK_FIXTURES)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from telephony.wire import Header, StreamParser, parse_actions

FIXTURES = Path(os.environ.get("CLINICALL_ASTERISK_FIXTURES", Path(__file__).resolve().parents[1] / "fixtures" / "asterisk"))


@dataclass
class Step:
    t: float
    direction: str  # "recv" (Asterisk -> client) | "send" (client -> Asterisk) | "eof"
    data: bytes


@dataclass
class Trace:
    name: str
    recv: bytes
    sent: bytes
    steps: list[Step]

    def actions(self) -> list[list[Header]]:
        return parse_actions(self.sent)

    def originates(self) -> list[list[Header]]:
        return [a for a in self.actions() if a[0] == ("Action", "Originate")]

    def timed_messages(self, base: float = 1_800_000_000.0) -> list[tuple[dict[str, str], float]]:
        parser = StreamParser()
        out: list[tuple[dict[str, str], float]] = []
        for step in self.steps:
            if step.direction == "recv":
                out.extend((m, base + step.t) for m in parser.feed(step.data))
        return out

    def send_time(self, action_id: str, base: float = 1_800_000_000.0) -> float:
        for step in self.steps:
            if step.direction == "send" and f"ActionID: {action_id}\r\n".encode() in step.data:
                return base + step.t
        raise KeyError(action_id)


def load(name: str) -> Trace:
    if not (FIXTURES / f"{name}.recv.raw").exists():
        pytest.skip(f"Asterisk trace {name} not found under {FIXTURES}")
    steps = []
    for line in (FIXTURES / f"{name}.timeline.jsonl").read_text().splitlines():
        item = json.loads(line)
        if item.get("dir") in ("recv", "send"):
            steps.append(Step(item["t"], item["dir"], item["data"].encode("utf-8")))
        elif item.get("dir") == "eof":
            steps.append(Step(item["t"], "eof", b""))
    recv = (FIXTURES / f"{name}.recv.raw").read_bytes()
    assert b"".join(s.data for s in steps if s.direction == "recv") == recv, "timeline does not rebuild recv.raw"
    return Trace(name, recv, (FIXTURES / f"{name}.sent.raw").read_bytes(), steps)

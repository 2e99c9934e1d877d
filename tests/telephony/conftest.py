"""Shared fixtures for the telephony tests: a call log on a real database with a real in-process bus."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from clinicall.bus import Event, InProcessBus
from clinicall.db import Database
from clinicall.settings import TelephonySettings
from telephony.calllog import CallLog
from telephony.models import Call
from telephony.wire import first
from tests.telephony.traces import Trace


@dataclass
class LogHarness:
    db: Database
    bus: InProcessBus
    log: CallLog
    events: list[Event] = field(default_factory=list)

    async def outbound_from_trace(self, trace: Trace, index: int = 0, base: float = 1_800_000_000.0,
                                  patient_id: int | None = 42, now: bool = False) -> int:
        """A call row as click-to-call would have written it for the trace's n-th Originate."""
        originate = trace.originates()[index]
        action_id = first(originate, "ActionID") or ""
        created = dt.datetime.fromtimestamp(time.time() if now else trace.send_time(action_id, base), dt.UTC)
        async with self.db.transaction() as s:
            call = Call(direction="outbound", state="dialing", action_id=action_id,
                        channel_id=first(originate, "ChannelId"), dial_string=first(originate, "Channel"),
                        patient_id=patient_id,
                        number="+84" + (first(originate, "Exten") or "0")[1:], dialed=first(originate, "Exten"),
                        agent_extension=(first(originate, "Channel") or "").split("/")[1].split("@")[0],
                        created_at=created)
            s.add(call)
            await s.flush()
            call_id = call.id
        async with self.db.session() as s:
            self.log.register(await s.get(Call, call_id))  # type: ignore[arg-type]
        return call_id

    async def rows(self) -> list[Call]:
        from sqlalchemy import select

        async with self.db.session() as s:
            return list((await s.scalars(select(Call).order_by(Call.id))).all())

    async def row(self, call_id: int) -> Call:
        async with self.db.session() as s:
            call = await s.get(Call, call_id)
        assert call is not None
        return call


def telephony_settings(**overrides: Any) -> TelephonySettings:
    base: dict[str, Any] = {"agent_channel": "Local/{ext}@agents", "outbound_context": "outbound"}
    base.update(overrides)
    return TelephonySettings(**base)


async def make_harness(url: str, **overrides: Any) -> AsyncIterator[LogHarness]:
    db = Database(url)
    bus = InProcessBus()
    await bus.start()
    harness = LogHarness(db, bus, CallLog(db, bus, telephony_settings(**overrides)))

    async def collect(event: Event) -> None:
        harness.events.append(event)

    bus.subscribe("call.*", collect)
    yield harness
    await bus.close()
    await db.dispose()


@pytest.fixture
async def harness(sqlite_url: str) -> AsyncIterator[LogHarness]:
    async for h in make_harness(sqlite_url):
        yield h

"""The call log: feeds AMI events to the state machine (calltrack) and keeps the `calls` rows and the
`call.updated` events in step with it. Only a change of a call's projection touches the database."""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Any

from sqlalchemy import select

from clinicall.auth import service as auth_service
from clinicall.db import Database
from clinicall.settings import TelephonySettings
from telephony.calltrack import CallSpec, CallTracker, Projection, agent_channel_pattern
from telephony.events import CALL_UPDATED, call_updated
from telephony.models import Call

log = logging.getLogger(__name__)
PERSISTED = ("state", "disposition", "ringing_at", "answered_at", "ended_at", "duration", "billsec",
             "hangup_code", "hangup_cause", "originate_reason", "linkedid", "agent_channel")


def to_dt(epoch: float | None) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(epoch, dt.UTC) if epoch is not None else None


def to_epoch(value: dt.datetime) -> float:
    return value.timestamp()


def event_time(ev: dict[str, str], received: float) -> float:
    """Asterisk's own Timestamp header (manager.conf timestampevents=yes) when present, else arrival time."""
    stamp = ev.get("Timestamp")
    if stamp and "Event" in ev:
        try:
            return float(stamp)
        except ValueError:
            pass
    return received


class Publisher:
    """Anything with `async publish(type, data)` (the frame's bus)."""

    async def publish(self, event_type: str, data: dict[str, Any]) -> Any:  # pragma: no cover - protocol
        raise NotImplementedError


def make_tracker(settings: TelephonySettings) -> CallTracker:
    return CallTracker(inbound_contexts=set(settings.inbound_contexts),
                       outbound_contexts={settings.outbound_context},
                       agent_pattern=agent_channel_pattern(settings.agent_channel))


class CallLog:
    def __init__(self, db: Database, bus: Any, settings: TelephonySettings) -> None:
        self.db = db
        self.bus = bus
        self.settings = settings
        self.tracker = make_tracker(settings)
        self._written: dict[int, dict[str, Any]] = {}
        self._extension_users: dict[str, int | None] = {}
        self.events_seen = 0

    # ---- calls we start ---------------------------------------------------------------------------
    def register(self, call: Call) -> None:
        self.tracker.register(CallSpec(
            call_id=call.id, direction=call.direction, created_at=to_epoch(call.created_at),
            action_id=call.action_id, channel_id=call.channel_id,
            other_channel_id=f"{call.channel_id}-2" if call.channel_id else None,
            linkedid=call.linkedid, dial_string=call.dial_string, hangup_requested=call.hangup_requested))
        self._written[call.id] = {name: getattr(call, name) for name in PERSISTED}

    async def load_open_calls(self) -> int:
        """At start-up: calls that were in progress when the service stopped keep being followed."""
        async with self.db.session() as s:
            rows = (await s.scalars(select(Call).where(Call.state != "ended"))).all()
        for call in rows:
            self.register(call)
        return len(rows)

    async def hangup_requested(self, call_id: int) -> None:
        spec = self.tracker.calls.get(call_id)
        if spec is not None:
            spec.hangup_requested = True
        async with self.db.transaction() as s:
            call = await s.get(Call, call_id)
            if call is not None:
                call.hangup_requested = True
        await self._refresh({call_id})

    # ---- events -----------------------------------------------------------------------------------
    async def handle(self, ev: dict[str, str], received: float | None = None) -> None:
        await self.handle_batch([(ev, time.time() if received is None else received)])

    async def handle_batch(self, events: list[tuple[dict[str, str], float]]) -> None:
        """Apply events in order, then write every call they changed in one transaction."""
        touched: set[int] = set()
        for ev, received in events:
            self.events_seen += 1
            touched |= self.tracker.apply(ev, event_time(ev, received))
            linkedid = ev.get("Linkedid")
            if linkedid and self.tracker.inbound_candidate(linkedid):
                touched.add(await self._create_inbound(linkedid))
        if touched:
            await self._refresh(touched)

    async def handle_many(self, events: list[tuple[dict[str, str], float]]) -> None:
        await self.handle_batch(events)

    async def _create_inbound(self, linkedid: str) -> int:
        created = self.tracker.group_first_seen(linkedid) or time.time()
        async with self.db.transaction() as s:
            call = Call(direction="inbound", state="ringing", linkedid=linkedid, created_at=to_dt(created),
                        ringing_at=to_dt(created))
            s.add(call)
            await s.flush()
            call_id = call.id
        self.tracker.register(CallSpec(call_id=call_id, direction="inbound", created_at=created, linkedid=linkedid))
        self._written[call_id] = {}
        log.info("inbound call %s (Linkedid %s)", call_id, linkedid)
        return call_id

    async def _agent_id(self, extension: str | None) -> int | None:
        if not extension:
            return None
        if extension not in self._extension_users:
            user = await auth_service.user_by_extension(self.db, extension)
            self._extension_users[extension] = user.id if user else None
        return self._extension_users[extension]

    def _values(self, projection: Projection) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name in PERSISTED:
            value = getattr(projection, name)
            if name in ("ringing_at", "answered_at", "ended_at"):
                value = to_dt(value)
            values[name] = value
        return values

    async def _refresh(self, call_ids: set[int]) -> None:
        changes: dict[int, dict[str, Any]] = {}
        for call_id in sorted(call_ids):
            if call_id not in self.tracker.calls:
                continue
            spec = self.tracker.calls[call_id]
            projection = self.tracker.project(call_id)
            values = self._values(projection)
            if spec.direction == "inbound":
                values.update(number=projection.number, caller_name=projection.caller_name,
                              agent_extension=projection.agent_extension,
                              agent_id=await self._agent_id(projection.agent_extension))
                if projection.patient_id is not None:
                    values["patient_id"] = projection.patient_id
            if self._written.get(call_id) != values:
                changes[call_id] = values
        if not changes:
            return
        payloads: list[dict[str, Any]] = []
        async with self.db.transaction() as s:
            for call_id, values in changes.items():
                call = await s.get(Call, call_id)
                if call is None:
                    self.tracker.forget(call_id)
                    continue
                for name, value in values.items():
                    setattr(call, name, value)
                await s.flush()
                payloads.append(call_updated(call))
        for call_id, values in changes.items():
            self._written[call_id] = values
            if values["state"] == "ended":
                self._retire(call_id)
        for payload in payloads:
            await self.bus.publish(CALL_UPDATED, payload)

    def _retire(self, call_id: int) -> None:
        """Ended calls stay in memory a while for late Cdr/Hangup events; the oldest are forgotten."""
        ended = [cid for cid, v in self._written.items() if v.get("state") == "ended"]
        for old in ended[:-self.settings.ended_calls_kept]:
            self._written.pop(old, None)
            self.tracker.forget(old)

    # ---- outages ----------------------------------------------------------------------------------
    async def reconcile(self, live_ids: set[str], since: float, channel_events: list[dict[str, str]],
                        asked: float | None = None) -> list[int]:
        """After (re)connecting: calls open before `since` with no live channel in CoreShowChannels end."""
        now = time.time()
        asked = now if asked is None else asked
        for ev in channel_events:
            await self.handle(ev, now)
        ended: list[int] = []
        for call_id in self.tracker.open_calls():
            spec = self.tracker.calls[call_id]
            if spec.created_at >= since or self.tracker.live_in(call_id, live_ids):
                continue
            self.tracker.force_end(call_id, now, "Asterisk connection lost; no channel left")
            ended.append(call_id)
        if ended:
            await self._refresh(set(ended))
        self.tracker.reset_channels(live_ids, before=min(since, asked))
        return ended

    async def asterisk_shutdown(self) -> list[int]:
        now = time.time()
        open_calls = self.tracker.open_calls()
        for call_id in open_calls:
            self.tracker.force_end(call_id, now, "Asterisk shut down")
        await self._refresh(set(open_calls))
        return open_calls

    async def originate_not_confirmed(self, call_id: int) -> None:
        """An Originate that Asterisk never answered before the link dropped: we never send it again."""
        self.tracker.force_end(call_id, time.time(), "Asterisk did not confirm the call before the link dropped")
        await self._refresh({call_id})

    async def originate_rejected(self, call_id: int, message: str) -> None:
        """`Response: Error` to the Originate itself (no OriginateResponse will follow)."""
        self.tracker.force_end(call_id, time.time(), f"Asterisk refused the call: {message}"[:120])
        await self._refresh({call_id})

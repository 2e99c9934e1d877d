"""The dialler: one background task per instance. Each round (every second, or at once when a reminder
call changes) it places and settles the turn-near calls (reminders/turn_near.py, any time of day),
settles the campaign calls that ended, writes the results' care notes, builds the daily campaigns,
and, within calling hours and while the Asterisk link is up, originates the due targets up to
reminders.max_channels calls at once (turn-near calls out count towards it). A target is claimed in
the database before its call (compare-and-set), so two instances never call one patient at once, and a
link that is down leaves every target waiting: nothing is lost, the round after the link is back calls
them."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import func, select, update

from clinicall.db import Database, utcnow
from clinicall.problem import Problem
from clinicall.settings import Settings
from reminders import service
from reminders.hours import in_calling_hours
from reminders.models import Attempt, Campaign, Target, TurnNearCall
from reminders.speech import reminder_text, render_sound, spoken_language
from reminders.turn_near import TurnNearCalls
from telephony.autodial import AutoCall, LinkDown, autodial_target, call_results, start_autodial

log = logging.getLogger(__name__)
ORIGIN = "reminder"


class Dialler:
    def __init__(self, db: Database, bus: Any, settings: Settings, *, link: Callable[[], Any],
                 calllog: Callable[[], Any], renderer: Any, tick_seconds: float = 1.0,
                 idle_seconds: float = 15.0, clear: Callable[[], Awaitable[None]] | None = None) -> None:
        self.db, self.bus, self.settings = db, bus, settings
        self.rem = settings.reminders
        self.link, self.calllog = link, calllog  # looked up each round (the telephony room sets them at start-up)
        self.renderer = renderer
        self.tick_seconds, self.idle_seconds = tick_seconds, idle_seconds
        self.clear = clear  # waits for a queue call on its way to the screens (clinicall/hotpath.py)
        self.wake = asyncio.Event()
        self.rounds = 0
        self.placed = 0
        self.deferred = 0  # calls not placed because the link was down (they wait)
        self.last_error = ""
        self.turn_near = TurnNearCalls(db, bus, settings, link=link, calllog=calllog, renderer=renderer)

    def lang(self) -> str:
        return spoken_language(self.settings)

    async def run(self) -> None:
        await self.recover()
        while True:
            self.wake.clear()  # before the round: a wake during the round brings the next one at once
            busy = True
            if self.clear is not None:
                await self.clear()
            try:
                busy = await self.round()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a database hiccup: the next round tries again
                self.last_error = str(exc)[:200]
                log.exception("reminder round failed")
            with contextlib.suppress(TimeoutError):  # idle (no open campaign): a slower pace, woken by any start
                async with asyncio.timeout(self.tick_seconds if busy else self.idle_seconds):  # never swallows a cancel
                    await self.wake.wait()

    async def recover(self) -> None:
        """At start-up: a target claimed but never sent (stopped between the two) goes back to pending."""
        async with self.db.transaction() as s:
            await s.execute(update(Target).where(Target.state == "calling", Target.call_id.is_(None))
                            .values(state="pending"))
        await self.turn_near.recover()

    async def round(self, now: dt.datetime | None = None) -> bool:
        """One round; False when nothing is out or due (the next round may wait longer)."""
        self.rounds += 1
        today = service.clinic_now(self.settings, now).date()
        calls_open = await self.turn_near.step()
        await service.write_due_notes(self.db, self.settings)  # also those of campaigns closed last round
        async with self.db.session() as s:
            open_campaign = await s.scalar(select(Campaign.id).where(Campaign.state != "done").limit(1))
        if open_campaign is None:  # idle; a daily campaign just built makes the next round come at once
            return calls_open or (self.rem.enabled and bool(await service.daily_build_due(self.db, self.settings, now)))
        await self.settle_ended()
        await service.write_due_notes(self.db, self.settings)
        await service.close_past_days(self.db, today)
        await service.finish_complete(self.db)
        if self.rem.enabled:
            await service.daily_build_due(self.db, self.settings, now)
        if in_calling_hours(self.rem.calling_hours, service.clinic_now(self.settings, now).time()):
            return await self.place_calls(today) or calls_open
        return calls_open or await self.calls_out() > 0

    async def settle_ended(self) -> int:
        async with self.db.session() as s:
            out = (await s.execute(select(Target.id, Target.call_id).where(Target.state == "calling",
                                                                          Target.call_id.is_not(None)))).all()
        if not out:
            return 0
        results = await call_results(self.db, [c for _, c in out])
        settled = 0
        for target_id, call_id in out:
            state, disposition = results.get(call_id, ("ended", "interrupted"))
            if state == "ended":
                await service.settle(self.db, self.settings, target_id, call_id, disposition or "failed")
                settled += 1
        return settled

    async def calls_out(self) -> int:
        async with self.db.session() as s:
            out = await s.scalar(select(func.count()).select_from(Target).where(Target.state == "calling")) or 0
            return out + (await s.scalar(select(func.count()).select_from(TurnNearCall)
                                         .where(TurnNearCall.state == "calling")) or 0)

    async def place_calls(self, today: dt.date) -> bool:
        """Places the due calls, up to reminders.max_channels out at once. True while calls are out or due (the
        dialler keeps its fast pace); an open campaign with nothing to do waits at the idle pace, woken by
        any call's end or start."""
        out = await self.calls_out()
        free = self.rem.max_channels - out
        async with self.db.session() as s:
            due = (await s.execute(
                select(Target.id).join(Campaign, Campaign.id == Target.campaign_id)
                .where(Target.state == "pending", Target.next_at <= utcnow(), Campaign.state == "running",
                       Campaign.day == today)
                .order_by(Target.next_at, Target.id).limit(max(free, 1)))).scalars().all()
        link = self.link()
        if link is None or not link.ready or free <= 0:
            return bool(out or due)
        for target_id in due:
            if not await self.place(target_id) and not (self.link() and self.link().ready):
                break
        return True

    async def _claim(self, target_id: int) -> tuple[Target, Campaign] | None:
        async with self.db.transaction() as s:
            claimed = await s.execute(update(Target).where(Target.id == target_id, Target.state == "pending")
                                      .values(state="calling", call_id=None))
            if not claimed.rowcount:
                return None
            row = (await s.execute(select(Target, Campaign).join(Campaign, Campaign.id == Target.campaign_id)
                                   .where(Target.id == target_id))).first()
            return (row[0], row[1]) if row else None

    async def _release(self, target_id: int, state: str = "pending", skip: str | None = None) -> None:
        async with self.db.transaction() as s:
            await s.execute(update(Target).where(Target.id == target_id, Target.state == "calling")
                            .values(state=state, skip_reason=skip))

    async def place(self, target_id: int) -> bool:
        claimed = await self._claim(target_id)
        if claimed is None:
            return False
        target, campaign = claimed
        from crm_bridge import service as crm

        try:
            if await crm.do_not_call(self.db, target.patient_id):
                await self._release(target_id, "skipped", "do_not_call")
                return False
            dial = autodial_target(target.number or "", self.settings)
        except Problem as exc:
            await self._release(target_id, "skipped", "number_not_allowed" if exc.code == "number_not_allowed"
                                else "no_phone")
            return False
        await self.prepare_sound(campaign.kind, target)
        spec = AutoCall(origin=ORIGIN, channel=self.rem.dial_channel, context=self.rem.context,
                        timeout_ms=self.rem.ring_timeout_ms, variables=(("REMINDER_TARGET", str(target.id)),))

        async def record(call_id: int) -> None:  # before the Originate leaves: FastAGI finds the call at once
            async with self.db.transaction() as s:
                await s.execute(update(Target).where(Target.id == target_id).values(call_id=call_id))
                s.add(Attempt(target_id=target_id, call_id=call_id, started_at=utcnow()))

        try:
            await start_autodial(self.db, self.bus, self.settings, self.link(), self.calllog(), spec,
                                 patient_id=target.patient_id, phone_id=target.phone_id, target=dial, before_send=record)
        except LinkDown:
            self.deferred += 1
            await self._release(target_id)
            return False
        self.placed += 1
        return True

    def message(self, kind: str, target: Target) -> str:
        return reminder_text(kind, name=target.name, clinic=self.settings.clinic.name,
                             day=target.about or dt.date.today(), lang=self.lang())

    async def prepare_sound(self, kind: str, target: Target) -> None:
        if self.renderer is None:
            return
        await asyncio.to_thread(render_sound, self.renderer, self.rem.sound_dir, self.message(kind, target), self.lang())

    def health(self) -> dict[str, Any]:
        return {"ok": True, "optional": True, "enabled": self.rem.enabled, "rounds": self.rounds, "placed": self.placed,
                "turn_near_placed": self.turn_near.placed, "deferred_link_down": self.deferred,
                "last_error": self.last_error}

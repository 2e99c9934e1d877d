""""Your turn is near" as a short spoken call, where no SMS gateway is configured (messaging's
TurnNearChannel). messaging claims the opt-in and calls `CallChannel.notify`, which only stores the call
to place (one per ticket) and wakes the dialler; the dialler's `TurnNearCalls.step` places it through
the same number policy, writer and call log as every automated call (origin `turn_near`), FastAGI
`turn_near` plays it, and the result lands on the row and, for a known patient, as a care note.

Nothing is lost and nothing is dialled twice: the row waits as `pending` while the Asterisk link is
down (or the service is stopped, or the link was found closed before the Originate left); once its
Originate has been written it is never written again: a call cut off by an outage ends `unknown` (the
call log still upgrades the call itself from Asterisk's CEL records when they show how it went)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from audio.wording import wording_from_settings
from clinicall.db import Database
from clinicall.keys import DB_KEY, SETTINGS_KEY
from clinicall.problem import Problem
from clinicall.settings import Settings
from crm_bridge import service as crm
from reminders.models import TurnNearCall
from reminders.speech import render_all, spoken_language, turn_near_pieces
from telephony.autodial import AutoCall, LinkDown, autodial_target, call_results, start_autodial

log = logging.getLogger(__name__)
ORIGIN = "turn_near"  # the call log's origin
EXTEN = "turn-near"  # its extension in reminders.context (config/asterisk/extensions.conf)
PER_ROUND = 20
NOTES_PER_ROUND = 100
FINAL = ("answered", "not_reached", "unknown", "skipped")

NOTE = "Cuộc gọi tự động báo sắp đến lượt (số {number}): {result}."
RESULTS = {
    "played": "đã nghe hết thông báo",
    "answered": "đã nghe máy, thông báo chưa phát hết",
    "unknown": "không rõ kết quả (mất kết nối với tổng đài trong cuộc gọi), không gọi lại",
    "busy": "máy bận", "no_answer": "không nghe máy", "failed": "không gọi được", "cancelled": "cuộc gọi bị hủy",
    "do_not_call": "không gọi: bệnh nhân không nhận cuộc gọi tự động",
    "number_not_allowed": "không gọi: số điện thoại không được phép gọi",
    "ticket_not_waiting": "không gọi: số thứ tự không còn chờ",
    "day_over": "không gọi: đã qua ngày khám",
}


def clinic_today(settings: Settings) -> dt.date:
    return dt.datetime.now(settings.clinic.zone()).date()


def outcome(disposition: str | None) -> str:
    """The row's final state once its call ended."""
    if disposition == "answered":
        return "answered"
    return "unknown" if disposition in (None, "interrupted") else "not_reached"


def result_note(row: TurnNearCall) -> str:
    if row.state == "skipped":
        key = row.skip_reason or "failed"
    elif row.state == "answered":
        key = "played" if row.played else "answered"
    elif row.state == "unknown":
        key = "unknown"
    else:
        key = row.disposition or "failed"
    return NOTE.format(number=row.ticket_number, result=RESULTS.get(key, key))


async def request_call(db: Database, settings: Settings, *, ticket: dict[str, Any], to_e164: str,
                       patient_id: int | None) -> bool:
    """Stores the call to place; False when this ticket already has one (a ticket is called once)."""
    lang = spoken_language(settings)
    pieces = turn_near_pieces(ticket, lang, wording_from_settings(settings.audio))
    try:
        async with db.transaction() as s:
            s.add(TurnNearCall(ticket_id=int(ticket["id"]), ticket_number=str(ticket.get("number") or "")[:20],
                               patient_id=patient_id, number=to_e164, day=clinic_today(settings), lang=lang,
                               speech=pieces, state="pending", played=False))
    except IntegrityError:
        return False
    return True


class CallChannel:
    """messaging's TurnNearChannel: the call is stored at once (no Asterisk round trip) and placed by the
    dialler; no message is stored, so notify returns None."""

    def __init__(self, app: web.Application) -> None:
        self.app = app

    async def notify(self, *, to_e164: str, text: str, patient_id: int | None, ticket: dict[str, Any]) -> int | None:
        from reminders.keys import DIALLER_KEY

        if await request_call(self.app[DB_KEY], self.app[SETTINGS_KEY], ticket=ticket, to_e164=to_e164,
                              patient_id=patient_id):
            log.info("turn-near call for ticket %s stored", ticket.get("id"))
        dialler = self.app.get(DIALLER_KEY)
        if dialler is not None:
            dialler.wake.set()
        return None


async def for_call(db: Database, call_id: int) -> TurnNearCall | None:
    """The turn-near call now out on this call (FastAGI)."""
    async with db.session() as s:
        return await s.scalar(select(TurnNearCall).where(TurnNearCall.call_id == call_id,
                                                         TurnNearCall.state == "calling"))


async def mark_played(db: Database, call_id: int) -> None:
    async with db.transaction() as s:
        await s.execute(update(TurnNearCall).where(TurnNearCall.call_id == call_id).values(played=True))


async def calls_of_day(db: Database, day: dt.date, limit: int = 500) -> list[TurnNearCall]:
    async with db.session() as s:
        return list((await s.scalars(select(TurnNearCall).where(TurnNearCall.day == day)
                                     .order_by(TurnNearCall.id.desc()).limit(limit))).all())


def call_json(row: TurnNearCall) -> dict[str, Any]:
    """For the supervisors' page: no patient data (the ticket number, the state, the call)."""
    return {"id": row.id, "ticket_id": row.ticket_id, "ticket_number": row.ticket_number, "state": row.state,
            "skip_reason": row.skip_reason, "call_id": row.call_id, "disposition": row.disposition, "played": row.played, "created_at": row.created_at.isoformat(), "updated_at": row.updated_at.isoformat()}


class TurnNearCalls:
    """The dialler's turn-near step: settle the calls that ended, write their notes, place the pending."""

    def __init__(self, db: Database, bus: Any, settings: Settings, *, link: Callable[[], Any],
                 calllog: Callable[[], Any], renderer: Any) -> None:
        self.db, self.bus, self.settings = db, bus, settings
        self.link, self.calllog, self.renderer = link, calllog, renderer
        self.placed = 0
        self.notes_due = True  # results may wait for their care note (set whenever a call gets its result)

    async def recover(self) -> None:
        """At start-up: a call claimed but never handed to Asterisk (stopped between the two) waits again;
        results whose care note a stop cut off get it in the first round."""
        async with self.db.transaction() as s:
            await s.execute(update(TurnNearCall).where(TurnNearCall.state == "calling", TurnNearCall.call_id.is_(None))
                            .values(state="pending"))
        self.notes_due = True

    async def step(self) -> bool:
        """One round; True while a call waits or is out (the dialler keeps its fast pace). Idle, it costs
        one indexed read."""
        async with self.db.session() as s:
            rows = (await s.execute(select(TurnNearCall.id, TurnNearCall.state, TurnNearCall.day, TurnNearCall.call_id)
                                    .where(TurnNearCall.state.in_(("pending", "calling"))))).all()
        if rows:
            await self.settle([(r.id, r.call_id) for r in rows if r.state == "calling" and r.call_id is not None])
            await self.expire([r.id for r in rows if r.state == "pending" and r.day < clinic_today(self.settings)])
            await self.place_due()
        if self.notes_due:
            self.notes_due = await self.write_notes() >= NOTES_PER_ROUND
        return bool(rows)

    async def settle(self, out: list[tuple[int, int]]) -> int:
        """The calls out that ended: answered, not_reached or unknown."""
        if not out:
            return 0
        results = await call_results(self.db, [call_id for _, call_id in out])
        settled = 0
        for row_id, call_id in out:
            state, disposition = results.get(call_id, ("ended", "interrupted"))
            if state != "ended":
                continue
            async with self.db.transaction() as s:
                await s.execute(update(TurnNearCall).where(TurnNearCall.id == row_id, TurnNearCall.state == "calling")
                                .values(state=outcome(disposition), disposition=disposition))
            settled += 1
        self.notes_due = self.notes_due or settled > 0
        return settled

    async def expire(self, row_ids: list[int]) -> None:
        """Calls still waiting from a past clinic day are not placed (the patient's turn is long gone)."""
        if row_ids:
            async with self.db.transaction() as s:
                await s.execute(update(TurnNearCall).where(TurnNearCall.id.in_(row_ids), TurnNearCall.state == "pending")
                                .values(state="skipped", skip_reason="day_over"))
            self.notes_due = True

    async def write_notes(self) -> int:
        """Final results of known patients without their care note yet (also after a crash between the two)."""
        async with self.db.session() as s:
            rows = list((await s.scalars(select(TurnNearCall).where(
                TurnNearCall.state.in_(FINAL), TurnNearCall.patient_id.is_not(None), TurnNearCall.note_id.is_(None))
                .limit(NOTES_PER_ROUND))).all())
        for row in rows:
            try:
                note_id = await crm.add_automated_note(self.db, patient_id=row.patient_id,  # type: ignore[arg-type]
                                                       call_id=row.call_id, note=result_note(row))
            except Problem as exc:  # the patient is gone: nothing to note
                log.warning("turn-near call %s: no care note (%s)", row.id, exc.detail)
                note_id = 0
            async with self.db.transaction() as s:
                await s.execute(update(TurnNearCall).where(TurnNearCall.id == row.id).values(note_id=note_id))
        return len(rows)

    async def place_due(self) -> int:
        link = self.link()
        if link is None or not link.ready:
            return 0
        async with self.db.session() as s:
            due = list((await s.scalars(select(TurnNearCall.id).where(TurnNearCall.state == "pending")
                                        .order_by(TurnNearCall.id).limit(PER_ROUND))).all())
        placed = 0
        for row_id in due:
            if await self.place(row_id):
                placed += 1
            elif not (self.link() and self.link().ready):
                break
        return placed

    async def _claim(self, row_id: int) -> TurnNearCall | None:
        async with self.db.transaction() as s:
            claimed = await s.execute(update(TurnNearCall).where(TurnNearCall.id == row_id,
                                                                 TurnNearCall.state == "pending")
                                      .values(state="calling", call_id=None))
            if not claimed.rowcount:  # type: ignore[attr-defined]
                return None
            return await s.get(TurnNearCall, row_id)

    async def _release(self, row_id: int, state: str = "pending", skip: str | None = None) -> None:
        async with self.db.transaction() as s:
            await s.execute(update(TurnNearCall).where(TurnNearCall.id == row_id, TurnNearCall.state == "calling")
                            .values(state=state, skip_reason=skip))

    async def skip_reason(self, row: TurnNearCall) -> str | None:
        """Why this call must not be placed now (read right before the call), or None."""
        from queue_display.service import get_ticket

        try:
            ticket = await get_ticket(self.db, row.ticket_id)
        except Problem:
            return "ticket_not_waiting"
        if ticket.status != "waiting":
            return "ticket_not_waiting"
        try:
            patient_refuses = row.patient_id is not None and await crm.do_not_call(self.db, row.patient_id)
        except Problem:  # the patient is gone; the number still decides
            patient_refuses = False
        if patient_refuses or await crm.number_do_not_call(self.db, row.number):
            return "do_not_call"
        return None

    async def place(self, row_id: int) -> bool:
        row = await self._claim(row_id)
        if row is None:
            return False
        skip, dial = await self.skip_reason(row), None
        if skip is None:
            try:
                dial = autodial_target(row.number, self.settings)
            except Problem:
                skip = "number_not_allowed"
        if dial is None:
            await self._release(row_id, "skipped", skip)
            self.notes_due = True
            return False
        if self.renderer is not None:  # rendered before the call: FastAGI finds every piece in the cache
            await asyncio.to_thread(render_all, self.renderer, self.settings.reminders.sound_dir, row.speech, row.lang)
        rem = self.settings.reminders
        spec = AutoCall(origin=ORIGIN, channel=rem.dial_channel, context=rem.context, exten=EXTEN,
                        timeout_ms=rem.ring_timeout_ms, variables=(("TURN_NEAR_TICKET", str(row.ticket_id)),))

        async def record(call_id: int) -> None:  # before the Originate leaves: FastAGI finds the call at once
            async with self.db.transaction() as s:
                await s.execute(update(TurnNearCall).where(TurnNearCall.id == row_id).values(call_id=call_id))

        async def again(call_id: int) -> None:  # the link was closed before a byte left: placed again
            async with self.db.transaction() as s:
                await s.execute(update(TurnNearCall).where(TurnNearCall.id == row_id, TurnNearCall.call_id == call_id)
                                .values(state="pending", call_id=None))

        try:
            await start_autodial(self.db, self.bus, self.settings, self.link(), self.calllog(), spec,
                                 patient_id=row.patient_id, phone_id=None, target=dial, before_send=record,
                                 not_sent=again)
        except LinkDown:
            await self._release(row_id)
            return False
        self.placed += 1
        log.info("turn-near call placed for ticket %s", row.ticket_id)
        return True

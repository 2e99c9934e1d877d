"""Reminder campaigns (no HTTP): building them from the worklists, their progress, pause and resume,
the key a patient pressed, and settling each attempt once its call has ended. Every state lives in the
database, so a restart resumes exactly where the campaign was."""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from clinicall.db import Database, utcnow
from clinicall.problem import Problem, not_found
from clinicall.settings import Settings
from crm_bridge import service as crm
from reminders.models import FINAL_STATES, KINDS, Attempt, Campaign, NumberDay, Target
from telephony.autodial import autodial_target

log = logging.getLogger(__name__)
RETRIED = ("busy", "no_answer", "failed", "answered", "cancelled")  # counted; called again while tries remain
COUNTS = ("pending", "calling", "confirmed", "callback", "not_reached", "skipped")


def clinic_now(settings: Settings, now: dt.datetime | None = None) -> dt.datetime:
    return (now or dt.datetime.now(dt.UTC)).astimezone(settings.clinic.zone())


def about_day(kind: str, today: dt.date) -> dt.date:
    """The day a campaign of this kind reminds of: tomorrow's bookings and follow-ups, today's call-backs."""
    return today if kind == "callback" else today + dt.timedelta(days=1)


def _pick_number(candidate: crm.OutreachCandidate, settings: Settings,
                 taken: set[str]) -> tuple[str | None, int | None, str | None, str | None]:
    """(E.164, phone id, exten, skip reason): the first phone the number policy allows."""
    if candidate.do_not_call:
        return None, None, None, "do_not_call"
    if not candidate.phones:
        return None, None, None, "no_phone"
    refused = None
    for phone_id, e164, raw in candidate.phones:
        try:
            target = autodial_target(e164 or raw, settings)
        except Problem:
            refused = "number_not_allowed"
            continue
        if target.e164 in taken:
            return target.e164, phone_id, target.exten, "number_called_today"
        return target.e164, phone_id, target.exten, None
    return None, None, None, refused


async def build_campaign(db: Database, settings: Settings, kind: str, *, today: dt.date, source: str,
                         created_by: int | None = None) -> Campaign:
    """One campaign calling on `today`: its targets from the worklists, each number claimed for the day
    (a number another campaign claimed today is skipped, as are do-not-call patients)."""
    if kind not in KINDS:
        raise Problem(422, "Unknown campaign kind", f"kind must be one of {', '.join(KINDS)}.", code="invalid_campaign_kind",
                      errors=[{"field": "kind", "code": "invalid_campaign_kind", "message": "unknown kind"}])
    about = about_day(kind, today)
    candidates = await crm.outreach_candidates(db, kind, about, settings.clinic.zone())
    async with db.transaction() as s:
        if await s.scalar(select(Campaign.id).where(Campaign.kind == kind, Campaign.day == today,
                                                    Campaign.source == source)) is not None:
            raise Problem(409, "Campaign exists", f"A {kind} campaign for {today} was already built.",
                          code="campaign_exists")
        taken = set((await s.scalars(select(NumberDay.number).where(NumberDay.day == today))).all())
        campaign = Campaign(kind=kind, day=today, about=about, source=source, created_by=created_by, state="running")
        s.add(campaign)
        await s.flush()
        now = utcnow()
        for candidate in candidates:
            number, phone_id, _exten, skip = _pick_number(candidate, settings, taken)
            target = Target(campaign_id=campaign.id, patient_id=candidate.patient_id, phone_id=phone_id, number=number,
                            name=candidate.full_name[:200], about=candidate.day,
                            state="skipped" if skip else "pending", skip_reason=skip, next_at=now, updated_at=now)
            s.add(target)
            if skip is None and number is not None:
                await s.flush()
                s.add(NumberDay(day=today, number=number, target_id=target.id))
                taken.add(number)
        await s.flush()
        log.info("reminder campaign %s (%s for %s): %d patient(s)", campaign.id, kind, about, len(candidates))
        return campaign


async def set_state(db: Database, campaign_id: int, state: str) -> Campaign:
    if state not in ("running", "paused"):
        raise Problem(422, "Unknown state", "state must be running or paused.", code="invalid_campaign_state",
                      errors=[{"field": "state", "code": "invalid_campaign_state", "message": "running or paused"}])
    async with db.transaction() as s:
        campaign = await s.get(Campaign, campaign_id)
        if campaign is None:
            raise not_found("Campaign")
        if campaign.state == "done":
            raise Problem(409, "Campaign finished", "This campaign has finished; build a new one.",
                          code="campaign_finished")
        campaign.state = state
        return campaign


async def progress(db: Database, campaign_ids: list[int]) -> dict[int, dict[str, int]]:
    """Per campaign: targets per state, and the calls placed."""
    out = {cid: dict.fromkeys((*COUNTS, "called", "failed"), 0) for cid in campaign_ids}
    if not campaign_ids:
        return out
    async with db.session() as s:
        for cid, state, n in (await s.execute(select(Target.campaign_id, Target.state, func.count())
                                              .where(Target.campaign_id.in_(campaign_ids))
                                              .group_by(Target.campaign_id, Target.state))).all():
            out[cid][state] = n
        for cid, disposition, n in (await s.execute(
                select(Target.campaign_id, Attempt.disposition, func.count()).join(Attempt, Attempt.target_id == Target.id)
                .where(Target.campaign_id.in_(campaign_ids)).group_by(Target.campaign_id, Attempt.disposition))).all():
            out[cid]["called"] += n
            if disposition in ("failed", "interrupted"):
                out[cid]["failed"] += n
    return out


def campaign_json(c: Campaign, counts: dict[str, int]) -> dict[str, Any]:
    return {"id": c.id, "kind": c.kind, "day": c.day.isoformat(), "about": c.about.isoformat(), "source": c.source,
            "state": c.state, "created_by": c.created_by, "created_at": c.created_at.isoformat(),
            "finished_at": c.finished_at.isoformat() if c.finished_at else None, "progress": counts}


async def list_campaigns(db: Database, limit: int = 50) -> list[dict[str, Any]]:
    async with db.session() as s:
        rows = list((await s.scalars(select(Campaign).order_by(Campaign.day.desc(), Campaign.id.desc())
                                     .limit(limit))).all())
    counts = await progress(db, [c.id for c in rows])
    return [campaign_json(c, counts[c.id]) for c in rows]


async def get_campaign(db: Database, campaign_id: int) -> dict[str, Any]:
    async with db.session() as s:
        campaign = await s.get(Campaign, campaign_id)
    if campaign is None:
        raise not_found("Campaign")
    return campaign_json(campaign, (await progress(db, [campaign.id]))[campaign.id])


def target_json(t: Target) -> dict[str, Any]:
    return {"id": t.id, "patient_id": t.patient_id, "number": t.number, "state": t.state, "skip_reason": t.skip_reason,
            "attempts": t.attempts, "key": t.key, "call_id": t.call_id, "next_at": t.next_at.isoformat(),
            "about": t.about.isoformat() if t.about else None}


async def list_targets(db: Database, campaign_id: int, limit: int = 500) -> list[Target]:
    async with db.session() as s:
        return list((await s.scalars(select(Target).where(Target.campaign_id == campaign_id)
                                     .order_by(Target.id).limit(limit))).all())


# ---- the calls ------------------------------------------------------------------------------------
async def target_for_call(db: Database, call_id: int) -> tuple[Target, Campaign] | None:
    async with db.session() as s:
        row = (await s.execute(select(Target, Campaign).join(Campaign, Campaign.id == Target.campaign_id)
                               .where(Target.call_id == call_id, Target.state == "calling"))).first()
    return (row[0], row[1]) if row else None


async def record_key(db: Database, call_id: int, key: str) -> bool:
    """The patient pressed `key` (1 or 2) on this call: stored at once, settled when the call ends."""
    if key not in ("1", "2"):
        return False
    async with db.transaction() as s:
        done = await s.execute(update(Attempt).where(Attempt.call_id == call_id).values(key=key))
        return bool(done.rowcount)


def settle_outcome(disposition: str, key: str | None, attempts: int, max_attempts: int) -> tuple[str, bool]:
    """(the target's next state, whether this attempt counts) once its call ended (pure)."""
    if key == "1":
        return "confirmed", True
    if key == "2":
        return "callback", True
    if disposition not in RETRIED:  # interrupted: Asterisk or the link went away; called again, not counted
        return "pending", False
    return ("not_reached" if attempts + 1 >= max_attempts else "pending"), True


async def settle(db: Database, settings: Settings, target_id: int, call_id: int, disposition: str) -> str:
    """The attempt's call ended: the target moves on (retry later, or a final state)."""
    retry = dt.timedelta(minutes=settings.reminders.retry_minutes)
    async with db.transaction() as s:
        target = await s.get(Target, target_id)
        attempt = await s.scalar(select(Attempt).where(Attempt.call_id == call_id))
        if target is None or attempt is None or target.call_id != call_id or target.state != "calling":
            return "gone"
        state, counted = settle_outcome(disposition, attempt.key, target.attempts, settings.reminders.max_attempts)
        now = utcnow()
        attempt.ended_at, attempt.disposition, attempt.counted = now, disposition, counted
        target.attempts += 1 if counted else 0
        target.state, target.call_id, target.key = state, None, attempt.key
        target.next_at = now + retry if counted else now
        return state


async def write_due_notes(db: Database, settings: Settings, limit: int = 200) -> int:
    """Final results without their care note yet (also after a crash between the two): written now."""
    async with db.session() as s:
        rows = (await s.execute(select(Target, Campaign).join(Campaign, Campaign.id == Target.campaign_id)
                                .where(Target.state.in_(("confirmed", "callback", "not_reached")),
                                       Target.note_id.is_(None)).limit(limit))).all()
    for target, campaign in rows:
        last_call = await _last_call(db, target.id)
        try:
            note_id = await crm.record_outreach_result(
                db, patient_id=target.patient_id, result=target.state, call_id=last_call,
                note=result_note(campaign, target), day=target.about, today=campaign.day)
        except Problem as exc:  # the patient is gone: nothing to note
            log.warning("reminder target %s: no care note (%s)", target.id, exc.detail)
            note_id = 0
        async with db.transaction() as s:
            await s.execute(update(Target).where(Target.id == target.id).values(note_id=note_id))
    return len(rows)


async def _last_call(db: Database, target_id: int) -> int | None:
    async with db.session() as s:
        return await s.scalar(select(Attempt.call_id).where(Attempt.target_id == target_id)
                              .order_by(Attempt.id.desc()).limit(1))


RESULT_NOTES = {
    "confirmed": "Cuộc gọi nhắc tự động: bệnh nhân bấm 1, xác nhận lịch hẹn {about}.",
    "callback": "Cuộc gọi nhắc tự động: bệnh nhân bấm 2, muốn nhân viên gọi lại.",
    "not_reached": "Cuộc gọi nhắc tự động: không liên lạc được sau {attempts} lần gọi.",
}


def result_note(campaign: Campaign, target: Target) -> str:
    about = target.about.strftime("%d/%m/%Y") if target.about else ""
    return (f"[{campaign.kind} #{campaign.id}] "
            + RESULT_NOTES[target.state].format(about=about, attempts=target.attempts))


async def close_past_days(db: Database, today: dt.date) -> int:
    """Campaigns of past days: what was still to call is not reached (its care note follows); done."""
    closed = 0
    async with db.transaction() as s:
        old = list((await s.scalars(select(Campaign).where(Campaign.day < today, Campaign.state != "done"))).all())
        for campaign in old:
            await s.execute(update(Target).where(Target.campaign_id == campaign.id, Target.state == "pending")
                            .values(state="not_reached"))
            campaign.state, campaign.finished_at = "done", utcnow()
            closed += 1
    return closed


async def finish_complete(db: Database) -> list[int]:
    """Running or paused campaigns with every target final are done."""
    async with db.transaction() as s:
        open_ids = list((await s.scalars(select(Campaign.id).where(Campaign.state != "done"))).all())
        if not open_ids:
            return []
        busy = set((await s.scalars(select(Target.campaign_id).where(
            Target.campaign_id.in_(open_ids), Target.state.not_in(FINAL_STATES)).distinct())).all())
        done = [cid for cid in open_ids if cid not in busy]
        if done:
            await s.execute(update(Campaign).where(Campaign.id.in_(done)).values(state="done", finished_at=utcnow()))
        return done


async def daily_build_due(db: Database, settings: Settings, now: dt.datetime | None = None) -> list[int]:
    """At reminders.build_at (clinic time), once a day: the configured daily campaigns."""
    local = clinic_now(settings, now)
    if local.strftime("%H:%M") < settings.reminders.build_at:
        return []
    built = []
    for kind in settings.reminders.daily_kinds:
        async with db.session() as s:
            exists = await s.scalar(select(Campaign.id).where(Campaign.kind == kind, Campaign.day == local.date(),
                                                              Campaign.source == "daily"))
        if exists is None:
            try:
                built.append((await build_campaign(db, settings, kind, today=local.date(), source="daily")).id)
            except (Problem, IntegrityError) as exc:  # another instance built it (or claimed a number) first
                log.info("daily %s campaign not built now: %s", kind, getattr(exc, "detail", exc))
    return built


def manual_source() -> str:
    return f"manual-{time.time_ns()}"

"""FastAGI scripts of this room, added to the telephony room's FastAGI server (its session loop is
unchanged): `reminder` (play the reminder, read 1 or 2), `turn_near` (play "your turn is near" twice)
and `queue_position` (a caller with a waiting ticket today hears number, position and wait; 0 reaches
an agent).

Channel variables set for the dialplan (config/asterisk/extensions.conf):
  reminder:        REMINDER_KEY = 1 | 2 | "" (none pressed)
  turn_near:       TURN_NEAR_PLAYED = 1 when the whole message was played
  queue_position:  CLINICALL_QUEUE_HEARD = 1 when the caller heard a position,
                   CLINICALL_QUEUE_AGENT = 1 when they pressed 0 (ring the agents)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aiohttp import web

from clinicall.keys import DB_KEY, SETTINGS_KEY
from reminders import service, turn_near
from reminders.keys import DIALLER_KEY
from reminders.speech import MESSAGES, position_pieces, render_all, render_sound
from telephony.agi import AGIReply, AGISession

log = logging.getLogger(__name__)
MAX_PLAYS = 2
TURN_NEAR_PLAYS = 2


def pressed(reply: AGIReply) -> str:
    """The key in a STREAM FILE / WAIT FOR DIGIT reply ("" for none, a failure or a hang-up)."""
    try:
        code = int(reply.result)
    except ValueError:
        return ""
    return chr(code) if 32 < code < 128 else ""


async def play(session: AGISession, sound: Path | None, escape: str) -> str:
    """STREAM FILE with escape digits; "" when nothing was pressed or the file is missing."""
    if sound is None:
        return ""
    reply = await session.command(f'STREAM FILE "{sound}" "{escape}"')
    return pressed(reply) if reply.code == 200 else ""


async def wait_digit(session: AGISession, seconds: float) -> str:
    reply = await session.command(f"WAIT FOR DIGIT {int(seconds * 1000)}")
    return pressed(reply) if reply.code == 200 else ""


async def read_key(session: AGISession, sounds: Sequence[Path | None], keys: str, seconds: float,
                   plays: int = MAX_PLAYS) -> str:
    """Play the sounds (a key interrupts them), then wait for one key; again up to `plays` times."""
    for _ in range(plays):
        for sound in sounds:
            key = await play(session, sound, keys)
            if key in keys and key:
                return key
            if session.hung_up:
                return ""
        key = await wait_digit(session, seconds)
        if (key and key in keys) or session.hung_up:
            return key if key in keys else ""
    return ""


async def call_id_of(session: AGISession) -> int | None:
    """Our call's id, as the Originate set it (anything else is no call of ours)."""
    reply = await session.command("GET VARIABLE CLINICALL_CALL_ID")
    return int(reply.data) if reply.data and reply.data.isdigit() and len(reply.data) < 18 else None


async def stream(session: AGISession, sound: Path | None) -> bool:
    """STREAM FILE without escape digits; True when it played (a missing file or a hang-up: False)."""
    if sound is None or session.hung_up:
        return False
    reply = await session.command(f'STREAM FILE "{sound}" ""')
    return reply.code == 200 and reply.result not in ("-1", "")


def reminder_script(app: web.Application) -> Any:
    async def run(session: AGISession) -> None:
        db, settings = app[DB_KEY], app[SETTINGS_KEY]
        call_id = await call_id_of(session)
        found = await service.target_for_call(db, call_id) if call_id is not None else None
        if found is None:
            log.info("FastAGI reminder: no reminder call %s is out; ending", call_id)
            return
        target, campaign = found
        dialler = app[DIALLER_KEY]
        lang = dialler.lang()
        renderer, sound_dir = dialler.renderer, settings.reminders.sound_dir
        message = await asyncio.to_thread(render_sound, renderer, sound_dir, dialler.message(campaign.kind, target),
                                          lang) if renderer is not None else None
        key = await read_key(session, [message], "12", settings.reminders.key_timeout_seconds)
        if key:
            await service.record_key(db, call_id, key)  # type: ignore[arg-type]
            thanks = await asyncio.to_thread(render_sound, renderer, sound_dir, MESSAGES[lang]["thanks"], lang) \
                if renderer is not None else None
            await play(session, thanks, "")
        await session.set_variable("REMINDER_KEY", key)
        app[DIALLER_KEY].wake.set()

    return run


def turn_near_script(app: web.Application) -> Any:
    async def run(session: AGISession) -> None:
        db, settings = app[DB_KEY], app[SETTINGS_KEY]
        call_id = await call_id_of(session)
        row = await turn_near.for_call(db, call_id) if call_id is not None else None
        if call_id is None or row is None:
            log.info("FastAGI turn_near: no turn-near call %s is out; ending", call_id)
            return
        dialler = app[DIALLER_KEY]
        sounds = await asyncio.to_thread(render_all, dialler.renderer, settings.reminders.sound_dir, row.speech,
                                         row.lang) if dialler.renderer is not None else []
        played = False
        for _ in range(TURN_NEAR_PLAYS):
            whole = bool(sounds)
            for sound in sounds:
                whole = await stream(session, sound) and whole
            played = played or whole
            if session.hung_up:
                break
        if played:
            await turn_near.mark_played(db, call_id)
        await session.set_variable("TURN_NEAR_PLAYED", "1" if played else "")
        dialler.wake.set()

    return run


async def waiting_ticket(app: web.Application, caller: str | None) -> tuple[str, int, float | None] | None:
    """(number, position, estimated wait in seconds) of today's waiting ticket of the caller's patient."""
    from crm_bridge import service as crm
    from queue_display.service import load_state

    db, settings = app[DB_KEY], app[SETTINGS_KEY]
    if not caller:
        return None
    match = await crm.lookup_caller(db, caller, settings.clinic.phone_region)
    if match is None:
        return None
    state = await load_state(db, settings)
    today = service.clinic_now(settings).date()
    for line in state.waiting.values():
        for ticket in line:
            if ticket.patient_id == match.patient_id and ticket.local_day == today and ticket.position:
                return ticket.number, ticket.position, ticket.estimated_wait_seconds
    return None


def queue_position_script(app: web.Application) -> Any:
    async def run(session: AGISession) -> None:
        settings = app[SETTINGS_KEY]
        if not settings.reminders.queue_position:
            return
        found = await waiting_ticket(app, session.env.get("agi_callerid"))
        if found is None:
            return
        dialler = app[DIALLER_KEY]
        lang = dialler.lang()
        pieces = position_pieces(*found, lang)
        sounds = await asyncio.to_thread(render_all, dialler.renderer, settings.reminders.sound_dir, pieces, lang) \
            if dialler.renderer is not None else []
        key = await read_key(session, sounds, "0", settings.reminders.key_timeout_seconds, plays=1)
        await session.set_variable("CLINICALL_QUEUE_HEARD", "1")
        if key == "0":
            await session.set_variable("CLINICALL_QUEUE_AGENT", "1")

    return run

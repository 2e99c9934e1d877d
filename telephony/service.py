"""Telephony operations (no HTTP): click-to-call, hang up, list calls, log an outcome."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update

from clinicall.auth.service import Principal
from clinicall.db import Database, utcnow
from clinicall.problem import Problem, not_found
from clinicall.settings import Settings, TelephonySettings
from crm_bridge import service as crm
from telephony.ami import AmiLink
from telephony.calllog import CallLog
from telephony.events import CALL_UPDATED, call_json, updated_payload
from telephony.models import Call
from telephony.policy import DialTarget, dial_target
from telephony.ratelimit import RateLimiter
from telephony.wire import Header, UnsafeField, encode_action

log = logging.getLogger(__name__)
SAFE_EXTENSION = re.compile(r"^[0-9A-Za-z*#+_.]{1,40}\Z")


def call_tag(call_id: int, installation: str) -> str:
    """`clinicall-<installation>-<id>`: the ChannelId/ActionID of a call, unique across database resets
    (`CallLog.installation()`), so Asterisk's CEL records of an earlier database's calls never match."""
    return f"clinicall-{installation}-{call_id}"


def recording_path(settings: TelephonySettings, call_id: int, installation: str) -> str:
    """The file name comes from the call's tag only."""
    return str(PurePosixPath(settings.recording_dir) / f"{call_tag(call_id, installation)}.wav")


def originate_headers(settings: TelephonySettings, *, call_id: int, extension: str, exten: str,
                      patient_id: int, installation: str) -> list[Header]:
    """The Originate for one click-to-call: the agent's phone first, then the patient's number."""
    tag = call_tag(call_id, installation)
    return [
        ("Action", "Originate"),
        ("Channel", settings.agent_channel.replace("{ext}", extension)),
        ("Context", settings.outbound_context),
        ("Exten", exten),
        ("Priority", "1"),
        ("Timeout", str(settings.originate_timeout_ms)),
        ("CallerID", settings.caller_id),
        ("Async", "true"),
        ("ChannelId", tag),
        ("OtherChannelId", f"{tag}-2"),
        ("ActionID", tag),
        ("Variable", f"CLINICALL_CALL_ID={call_id}"),
        ("Variable", f"PATIENT_ID={patient_id}"),
    ]


# Built once (statements given their values at execution are compiled once and then found in the cache).
CALLS = Call.__table__
INSERT_CALL = insert(CALLS).returning(CALLS.c.id)
TAG_CALL = update(CALLS).where(CALLS.c.id == bindparam("call_id"))

# On PostgreSQL the id is drawn first, so the tags (clinicall-<installation>-<id>) go in with the row, and the
# "call" audit row (crm_bridge's clause) with it.
PG_INSERT_CALL = f"""
WITH made AS (
    INSERT INTO calls (id, direction, origin, state, agent_id, agent_extension, patient_id, phone_id, number, dialed,
                       dial_string, hangup_requested, created_at, updated_at, action_id, channel_id, recording_path)
    SELECT n.id, 'outbound', 'click_to_call', 'dialing', $1, $2, $3, $4, $5, $6, $7, false, $8, $8,
           $9::text || n.id, $9::text || n.id, $10::text || n.id || '.wav'
    FROM (SELECT nextval(pg_get_serial_sequence('calls', 'id'))::integer AS id) AS n
    RETURNING id, agent_id, patient_id, created_at
), audited AS (
    {crm.pg_audit_insert("made", at="made.created_at", user_id="made.agent_id", patient_id="made.patient_id",
                         action="'call'", detail="'call ' || made.id || $11::text")}
)
SELECT id FROM made"""  # noqa: S608 (constants only)


class Telephony:
    """What the HTTP handlers need, bundled: database, bus, settings, the link, the call log."""

    def __init__(self, db: Database, bus: Any, settings: Settings, link: AmiLink | None, calllog: CallLog,
                 limiter: RateLimiter, metrics: Any = None) -> None:
        self.db, self.bus, self.settings = db, bus, settings
        self.tel = settings.telephony
        self.link, self.calllog, self.limiter, self.metrics = link, calllog, limiter, metrics

    def _count(self, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.clicks.labels(outcome).inc()

    async def start_call(self, who: Principal, patient_id: int, phone_id: int) -> dict[str, Any]:
        """The call's JSON (`call_json`). Refusals in this order: the agent's extension (409/400), the patient
        and the phone (403, 404, 400), the link (503), the rate limit (429); the call's row and its audit row
        are committed before the Originate leaves."""
        if not who.extension:
            raise Problem(409, "No phone extension", "Your account has no phone extension; ask an admin to set it.",
                          code="no_extension")
        if not SAFE_EXTENSION.match(who.extension):
            raise UnsafeField("extension", "has characters a phone extension cannot have")
        installation = await self.calllog.installation()
        if self.db.is_postgres:
            row = await self._start_call_pg(who, patient_id, phone_id, installation)
        else:
            row = await self._start_call_sqlite(who, patient_id, phone_id, installation)
        link = self.link
        assert link is not None
        body = call_json(row)
        self.calllog.register(row)
        headers = originate_headers(self.tel, call_id=row.id, extension=who.extension, exten=row.dialed or "",
                                    patient_id=patient_id, installation=installation)
        try:
            link.send_own(headers, call_id=row.id, recording_path=row.recording_path)
        except ConnectionError:
            self._count("lost")
            await self.calllog.originate_not_confirmed(row.id)
            raise Problem(503, "Phone system unavailable",
                          "The link to Asterisk dropped just now; the call was not placed. Try again.") from None
        self._count("sent")
        await self.bus.publish(CALL_UPDATED, updated_payload(body))
        return body

    def _target(self, who: Principal, patient_id: int, allowed: bool, phone: crm.PhoneBrief | None,
                installation: str) -> DialTarget:
        """The number to dial, once the patient, the phone and every field going to Asterisk are checked
        (nothing is written or sent before; the id is digits only)."""
        if not allowed:
            raise Problem(403, "Not your patient", "You may only call your own or unassigned patients.",
                          code="not_your_patient")
        if phone is None:
            raise not_found("Phone", "This patient has no phone with that id; reload the patient's card.")
        target = dial_target(phone.e164 or phone.raw, self.tel, self.settings.clinic.phone_region)
        encode_action(originate_headers(self.tel, call_id=1, extension=who.extension or "", exten=target.exten,
                                        patient_id=patient_id, installation=installation))
        if self.tel.record_calls:
            encode_action([("Action", "MixMonitor"), ("File", recording_path(self.tel, 1, installation))])
        return target

    def _link_ready(self) -> bool:
        return self.link is not None and self.link.ready

    def _unavailable(self) -> Problem:
        self._count("unavailable")
        state = "not configured" if self.link is None else self.link.state
        return Problem(503, "Phone system unavailable",
                       f"Asterisk is not reachable ({state}); try again in a moment or call from your phone.")

    async def _start_call_pg(self, who: Principal, patient_id: int, phone_id: int, installation: str) -> Call:
        allowed, phone = await crm.phone_to_call(self.db, who, patient_id, phone_id)
        target = self._target(who, patient_id, allowed, phone, installation)
        if not self._link_ready():
            raise self._unavailable()
        await self.limiter.check(who.user_id or 0)
        values = self._call_values(who, patient_id, phone_id, target.e164, target.exten)
        call_id = await self._insert_call_pg(values, installation, target.e164)
        return Call(id=call_id, **values, **self._tags(call_id, installation))

    async def _start_call_sqlite(self, who: Principal, patient_id: int, phone_id: int, installation: str) -> Call:
        """One hand-off to the writer thread reads the patient and the phone, checks them and, when the link is
        up and the rate limit allows, writes the call with its audit row. The limit is counted first (it is
        async) and given back when the patient or the phone is refused, as if it had never been asked."""
        ready = self._link_ready()
        limited: Problem | None = None
        if ready:
            try:
                await self.limiter.check(who.user_id or 0)
            except Problem as exc:
                limited = exc
        today = crm.local_today()

        def work(connection: Connection) -> Call | None:
            allowed, phone = crm.phone_to_call_in(connection, who, patient_id, phone_id, today)
            target = self._target(who, patient_id, allowed, phone, installation)
            if not ready or limited is not None:
                return None
            values = self._call_values(who, patient_id, phone_id, target.e164, target.exten)
            call_id = self._write_call(connection, values, who, patient_id, target.e164, installation)
            return Call(id=call_id, **values, **self._tags(call_id, installation))

        try:
            row = await self.db.run_sync(work)
        except Exception:
            if ready:
                await self.limiter.release(who.user_id or 0)
            raise
        if not ready:
            raise self._unavailable()
        if limited is not None:
            raise limited
        assert row is not None
        return row

    def _call_values(self, who: Principal, patient_id: int, phone_id: int, number: str, exten: str) -> dict[str, Any]:
        now = utcnow()
        return {"direction": "outbound", "origin": "click_to_call", "state": "dialing", "agent_id": who.user_id,
                "agent_extension": who.extension, "patient_id": patient_id, "phone_id": phone_id, "number": number,
                "dialed": exten, "dial_string": self.tel.agent_channel.replace("{ext}", who.extension or ""),
                "hangup_requested": False, "created_at": now, "updated_at": now}

    def _tags(self, call_id: int, installation: str) -> dict[str, Any]:
        tag = call_tag(call_id, installation)
        return {"action_id": tag, "channel_id": tag,
                "recording_path": recording_path(self.tel, call_id, installation) if self.tel.record_calls else None}

    def _write_call(self, connection: Connection, values: dict[str, Any], who: Principal, patient_id: int,
                    number: str, installation: str) -> int:
        """SQLite: the call's row, its tags (they come from its id) and the patient's audit row ("call"), in the
        caller's transaction."""
        call_id = connection.execute(INSERT_CALL, values).scalar_one()
        connection.execute(TAG_CALL, self._tags(call_id, installation) | {"call_id": call_id,
                                                                          "updated_at": values["updated_at"]})
        crm.record_access_in(connection, who.user_id, patient_id, "call", f"call {call_id} to {number}")
        return int(call_id)

    async def _insert_call_pg(self, values: dict[str, Any], installation: str, number: str) -> int:
        """PostgreSQL: the call's row, its tags and its audit row in one statement (one round trip, committed)."""
        prefix = call_tag(0, installation)[:-1]  # clinicall-<installation>-
        recordings = str(PurePosixPath(self.tel.recording_dir) / prefix) if self.tel.record_calls else None
        rows = await self.db.pg_fetch(
            PG_INSERT_CALL, values["agent_id"], values["agent_extension"], values["patient_id"], values["phone_id"],
            values["number"], values["dialed"], values["dial_string"], values["created_at"], prefix, recordings,
            f" to {number}")
        return int(rows[0]["id"])

    async def get_call(self, who: Principal, call_id: int) -> Call:
        call = await self._call(call_id)
        await self._may_see(who, call)
        return call

    async def _call(self, call_id: int) -> Call:
        async with self.db.session() as s:
            call = await s.get(Call, call_id)
        if call is None:
            raise not_found("Call")
        return call

    async def recording_file(self, who: Principal, call_id: int) -> Path:
        """The call's recording on this server's disk (MixMonitor writes it on the Asterisk host:
        share telephony.recording_dir between the two to play recordings in the console)."""
        call = await self.get_call(who, call_id)
        if not call.recording_path:
            raise Problem(404, "No recording", "This call was not recorded (telephony.record_calls was off).")
        folder, path, present = await asyncio.to_thread(_locate_recording, self.tel.recording_dir, call.recording_path)
        if folder not in path.parents:
            raise Problem(404, "No recording", "The recording is outside telephony.recording_dir; it cannot be served.")
        if not present:
            raise Problem(404, "Recording not here yet", f"The recording is not in {folder} on this server. Asterisk "
                          "writes it there on its own host once the call ends: share that folder with this server.")
        if call.patient_id is not None:
            await crm.record_access(self.db, who.user_id, call.patient_id, "recording_played", f"call {call.id}")
        return path

    async def _may_see(self, who: Principal, call: Call) -> None:
        """A patient's call is part of the patient's record: the card's rule decides, even for the agent
        who made it once the patient has moved to another agent; a call with no patient is its agent's."""
        if who.has_any("supervisor"):
            return
        if call.patient_id is None and call.agent_id == who.user_id:
            return
        if call.patient_id is not None and await crm.agent_may_access(self.db, who, call.patient_id):
            return
        raise Problem(403, "Not your call", "This call belongs to another agent's patient.", code="not_your_patient")

    async def hangup(self, who: Principal, call_id: int) -> Call:
        """The agent on the call hangs it up even if its patient has since moved to another agent (the call's
        own live updates reach that agent all the same); anyone else needs the card's rule and the supervisor role."""
        call = await self._call(call_id)
        if call.agent_id != who.user_id:
            await self._may_see(who, call)
            if not who.has_any("supervisor"):
                raise Problem(403, "Not your call", "Only the agent on the call (or a supervisor) can hang it up.")
        if call.state == "ended":
            raise Problem(409, "Call already ended", "This call has already ended.", code="call_ended")
        link = self.link
        if link is None or not link.ready:
            raise Problem(503, "Phone system unavailable", "Asterisk is not reachable; hang up on your phone.")
        channel = call.agent_channel or call.channel_id or call_tag(call.id, await self.calllog.installation())
        # journaled before the action leaves, so every event the hangup causes is read with it
        await self.calllog.hangup_requested(call.id)
        try:
            link.send_own([("Action", "Hangup"), ("Channel", channel), ("Cause", "16"),
                           ("ActionID", f"{call.action_id or channel}-hangup")], call_id=call.id)
        except ConnectionError:
            raise Problem(503, "Phone system unavailable", "Asterisk is not reachable; hang up on your phone.") from None
        return await self._call(call_id)

    async def link_patient(self, who: Principal, call_id: int, patient_id: int) -> Call:
        """The agent made or picked the card of the caller of a call with an unknown number: from now on
        the call is that patient's (journaled, so a rebuild keeps it)."""
        call = await self.get_call(who, call_id)
        if call.origin == "click_to_call":
            raise Problem(409, "Patient fixed", "A call made from a patient's card stays that patient's.",
                          code="call_patient_fixed")
        if call.patient_id not in (None, patient_id):
            raise Problem(409, "Call already linked", "This call is already linked to another patient.",
                          code="call_already_linked")
        if call.agent_id not in (None, who.user_id) and not who.has_any("supervisor"):
            raise Problem(403, "Not your call", "Only the agent on the call (or a supervisor) can link it.")
        if not await crm.agent_may_access(self.db, who, patient_id):
            raise Problem(403, "Not your patient", "You may only link calls to your own or unassigned patients.")
        if await crm.patient_brief(self.db, patient_id) is None:
            raise not_found("Patient")
        await self.calllog.link_patient(call_id, patient_id)
        await crm.record_access(self.db, who.user_id, patient_id, "call", f"call {call_id} linked to the patient")
        return await self.get_call(who, call_id)

    async def list_calls(self, who: Principal, patient_id: int | None, agent_id: int | None,
                         limit: int = 100, *, everyone: bool = False, live: bool = False,
                         unlogged: bool = False) -> list[dict[str, Any]]:
        """Calls of a patient, of an agent, or (supervisors, `everyone`) of all agents; by default one's own.
        `unlogged`: only the last day's ended calls of a patient whose outcome nobody has logged yet."""
        if everyone and not who.has_any("supervisor"):
            raise Problem(403, "Not allowed", "Only supervisors see every agent's calls.", roles=["supervisor"])
        if patient_id is None and agent_id is None and not everyone:
            agent_id = who.user_id
        if patient_id is not None and not await crm.agent_may_access(self.db, who, patient_id):
            raise Problem(403, "Not your patient", "You may only see calls of your own or unassigned patients.",
                          code="not_your_patient")
        if agent_id is not None and agent_id != who.user_id and not who.has_any("supervisor") and patient_id is None:
            raise Problem(403, "Not allowed", "Only supervisors see other agents' calls.")
        query = select(Call).order_by(Call.created_at.desc(), Call.id.desc()).limit(limit)
        if patient_id is not None:
            query = query.where(Call.patient_id == patient_id)
        if agent_id is not None:
            query = query.where(Call.agent_id == agent_id)
        if live:
            query = query.where(Call.state != "ended")
        if unlogged:
            query = query.where(Call.state == "ended", Call.patient_id.is_not(None),
                                Call.created_at >= utcnow() - dt.timedelta(days=1))
        async with self.db.session() as s:
            calls = list((await s.scalars(query)).all())
        visible = await crm.visible_patients(self.db, who, {c.patient_id for c in calls if c.patient_id is not None})
        calls = [c for c in calls if c.patient_id in visible or (c.patient_id is None and (
            who.has_any("supervisor") or c.agent_id == who.user_id))]
        notes = await crm.notes_for_calls(self.db, [c.id for c in calls])
        if unlogged:
            calls = [c for c in calls if c.id not in notes]
        names = await crm.full_names(self.db, [c.patient_id for c in calls if c.patient_id is not None])
        return [call_json(c) | {"outcome": notes.get(c.id), "patient_name": names.get(c.patient_id)} for c in calls]

    async def record_outcome(self, who: Principal, call_id: int, fields: dict[str, Any]) -> dict[str, Any]:
        call = await self.get_call(who, call_id)
        if call.patient_id is None:
            raise Problem(409, "No patient on this call",
                          "This call is not linked to a patient yet; open or create the patient's card first.")
        if call.agent_id not in (None, who.user_id) and not who.has_any("supervisor"):
            raise Problem(403, "Not your call", "Only the agent who made the call can log its outcome.")
        if not await crm.agent_may_access(self.db, who, call.patient_id):
            raise Problem(403, "Not your patient", "This patient now belongs to another agent; ask them or a "
                          "supervisor to log the outcome.", code="not_your_patient")
        note_id = await crm.add_care_note(self.db, patient_id=call.patient_id, author_id=who.user_id or 0,
                                          call_id=call.id, **fields)
        notes = await crm.notes_for_calls(self.db, [call.id])
        return {"note_id": note_id, "call": call_json(call) | {"outcome": notes.get(call.id)}}


def parse_date(value: Any) -> dt.date | None:
    return value if isinstance(value, dt.date) or value is None else dt.date.fromisoformat(str(value))


async def repoint_patient(db: Database, from_id: int, into_id: int) -> int:
    """After crm_bridge merged patient from_id into into_id, the calls follow (returns how many)."""
    async with db.transaction() as s:
        result = await s.execute(update(Call).where(Call.patient_id == from_id).values(patient_id=into_id))
        return result.rowcount or 0


def _locate_recording(folder: str, recording: str) -> tuple[Path, Path, bool]:
    path = Path(recording).resolve()
    return Path(folder).resolve(), path, path.is_file()

"""Inbound caller identification, shared by the FastAGI server and the HTTP API used by the
process AGI (`clinicall-agi identify`): normalise the untrusted caller ID, look the patient up
in crm_bridge, choose the agents whose phones will ring, make the values that go back to
Asterisk safe, and publish the `call.screenpop` event.

Caller ID names are folded to ASCII by default ("Nguyễn Văn An" -> "Nguyen Van An"): desk phones,
SIP trunks and Asterisk's own logs show plain ASCII reliably, while UTF-8 display names are
mangled by many of them. `telephony.callerid_ascii = false` keeps the Vietnamese letters.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import unicodedata
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from sqlalchemy import select

from clinicall.auth.access import require
from clinicall.auth.models import User
from clinicall.db import Database, utcnow
from clinicall.keys import BUS_KEY, DB_KEY, SETTINGS_KEY
from clinicall.problem import Problem
from clinicall.settings import Settings

log = logging.getLogger(__name__)

SCREENPOP = "call.screenpop"
WITHHELD = frozenset({"", "unknown", "<unknown>", "anonymous", "private", "restricted", "unavailable", "withheld"})
NUMBER_SEPARATORS = re.compile(r"[ \-.()/]")
DIALLABLE = re.compile(r"^\+?[0-9]{2,20}\Z")
NAME_MAX_CHARS = 40
NAME_MAX_BYTES = 80
DIAL_STRING = re.compile(r"^[A-Za-z0-9/@&_.:;+-]{1,2000}\Z")
UNIQUEID = re.compile(r"^[A-Za-z0-9._;@/-]{1,150}\Z")
VARIABLE_VALUE = re.compile(r"^[^\x00-\x1f\x7f\"\\]*\Z")
ASCII_FOLDS = str.maketrans({"đ": "d", "Đ": "D", "ð": "d", "Ð": "D", "ø": "o", "Ø": "O", "ł": "l", "Ł": "L",
                             "ß": "ss", "æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE"})


@dataclass(frozen=True)
class CallerIdentity:
    """What inbound identification found, and the channel variables to hand back to Asterisk."""

    number: str | None                   # E.164 when it parses, else the cleaned digits; None if withheld
    known: bool
    patient: dict[str, Any] | None      # {"id", "full_name", "care_status", "assigned_agent_id"}
    callerid_name: str                  # safe for SET VARIABLE CALLERID(name)
    agent_ids: list[int] = field(default_factory=list)
    agent_extensions: list[str] = field(default_factory=list)
    assigned_extension: str | None = None  # CLINICALL_AGENT_EXT: the assigned agent's phone
    agent_dial: str | None = None          # CLINICALL_AGENT_DIAL: every agent's phone when none is assigned
    lookup_failed: bool = False

    @property
    def patient_id(self) -> int | None:
        return int(self.patient["id"]) if self.patient else None

    def channel_variables(self) -> list[tuple[str, str]]:
        """(name, value) pairs to set on the channel, in order; every value is already safe."""
        variables = [("CALLERID(name)", self.callerid_name)]
        if self.patient_id is not None:
            variables.append(("PATIENT_ID", str(self.patient_id)))
        if self.assigned_extension:
            variables.append(("CLINICALL_AGENT_EXT", self.assigned_extension))
        if self.agent_dial:
            variables.append(("CLINICALL_AGENT_DIAL", self.agent_dial))
        return [(name, value) for name, value in variables if value and VARIABLE_VALUE.match(value)]

    def to_json(self) -> dict[str, Any]:
        return {"number": self.number, "known": self.known, "patient": self.patient,
                "patient_id": self.patient_id, "callerid_name": self.callerid_name,
                "agent_ids": self.agent_ids, "agent_extensions": self.agent_extensions,
                "agent_extension": self.assigned_extension, "agent_dial": self.agent_dial,
                "lookup_failed": self.lookup_failed,
                "variables": [list(pair) for pair in self.channel_variables()]}


def caller_number(raw: str | None) -> str | None:
    """The dialable part of an untrusted caller ID: '+84912345678', '0912345678', or None when the
    caller ID is withheld ('unknown', empty) or is not a phone number at all."""
    if raw is None:
        return None
    text = raw.strip()
    if len(text) > 64 or text.lower() in WITHHELD:
        return None
    text = NUMBER_SEPARATORS.sub("", text)
    return text if DIALLABLE.match(text) else None


def display_number(number: str | None, region: str, e164: str | None = None) -> str | None:
    """The caller's number as agents see it: E.164 when it is a valid number, else the digits."""
    from crm_bridge.service import caller_e164

    if e164 or number is None:
        return e164 or None
    return caller_e164(number, region) or number


def fold_ascii(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.translate(ASCII_FOLDS))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).encode("ascii", "ignore").decode()


@functools.lru_cache(maxsize=4096)  # pure; the same patients call again and again
def safe_callerid_name(name: str, ascii_only: bool = True, max_chars: int = NAME_MAX_CHARS) -> str:
    """A caller ID name that cannot break out of an AGI argument or a dialplan expression: letters,
    digits, spaces and . - ' only (no quotes, backslashes or control characters), length limited."""
    text = unicodedata.normalize("NFC", name)
    if ascii_only:
        text = fold_ascii(text)
    kept = []
    for ch in text:
        category = unicodedata.category(ch)
        if ch in ".-'" or category[0] in "LN" or (category[0] == "M" and not ascii_only):
            kept.append(ch)
        else:
            kept.append(" ")
    cleaned = " ".join("".join(kept).split())[:max_chars].strip()
    while len(cleaned.encode()) > NAME_MAX_BYTES:
        cleaned = cleaned[:-1].rstrip()
    return cleaned


def safe_uniqueid(raw: str | None) -> str | None:
    if raw is None:
        return None
    raw = raw.strip()
    return raw if UNIQUEID.match(raw) else None


def agent_dial_string(template: str, extensions: list[str]) -> str | None:
    """The Dial() string that rings these extensions, from the agent channel template."""
    return _dial_string(template, tuple(extensions)) if extensions else None


@functools.lru_cache(maxsize=64)  # the same team rings call after call
def _dial_string(template: str, extensions: tuple[str, ...]) -> str | None:
    dial = "&".join(template.replace("{ext}", ext) for ext in extensions)
    return dial if DIAL_STRING.match(dial) else None


Lookup = Callable[[str], Awaitable[Any]]


def plain_lookup(db: Database, region: str) -> Lookup:
    """One lookup, no audit row (the HTTP API audits after its own access check)."""
    from crm_bridge.service import lookup_caller  # the crm room's contract function

    return lambda number: lookup_caller(db, number, region)


@dataclass(frozen=True)
class AgentPhone:
    user_id: int
    extension: str
    is_agent: bool


PHONES = select(User.id, User.extension, User.roles).where(User.active.is_(True), User.extension.is_not(None),
                                                            User.extension != "")
# PostgreSQL: the same read as one prepared statement (Database.pg_fetch), the role tested by the server
PG_PHONES = """
SELECT id, extension, coalesce(roles::jsonb ? 'agent', false) AS is_agent
FROM users WHERE active AND extension IS NOT NULL AND extension <> ''"""


class AgentDirectory:
    """Who can take a call: active users with an extension, read from the users table once and then
    re-read in the background once `ttl` seconds old: a call never waits for that read (the first one
    does), and one query serves every call in between. `ttl=0` reads on every call."""

    def __init__(self, ttl: float = 5.0) -> None:
        self.ttl = ttl
        self._phones: dict[int, AgentPhone] = {}
        self._team: list[AgentPhone] = []  # the agents' phones in ringing order
        self._loaded_at = float("-inf")
        self._lock = asyncio.Lock()
        self._refresh: asyncio.Task[None] | None = None

    async def phones(self, db: Database) -> dict[int, AgentPhone]:
        await self._fresh(db)
        return self._phones

    async def _fresh(self, db: Database) -> None:
        loop = asyncio.get_running_loop()
        if loop.time() - self._loaded_at <= self.ttl:
            return
        if self.ttl <= 0 or self._loaded_at == float("-inf"):
            async with self._lock:
                if loop.time() - self._loaded_at > self.ttl:
                    await self._load(db)
        elif self._refresh is None:
            self._refresh = asyncio.create_task(self._reload(db), name="agent-directory")

    async def _reload(self, db: Database) -> None:
        try:
            async with self._lock:
                await self._load(db)
        except Exception:
            log.exception("could not re-read the agents' phones; the last list stays in use")
        finally:
            self._refresh = None

    async def _load(self, db: Database) -> None:
        """Three columns through Core (SQLite's reader thread) or one prepared statement (PostgreSQL), not the
        ORM: this runs on the loop that serves the calls."""
        if db.is_postgres:
            rows = [(row["id"], row["extension"], row["is_agent"]) for row in await db.pg_fetch(PG_PHONES)]
        else:
            rows = await db.read_sync(
                lambda connection: [(r.id, r.extension, "agent" in (r.roles or [])) for r in connection.execute(PHONES)])
        phones = {int(user_id): AgentPhone(int(user_id), str(extension), bool(is_agent))
                  for user_id, extension, is_agent in rows}
        self._phones = phones
        self._team = sorted((p for p in phones.values() if p.is_agent), key=lambda p: (p.extension, p.user_id))
        self._loaded_at = asyncio.get_running_loop().time()

    async def ringing(self, db: Database, assigned_agent_id: int | None) -> tuple[list[AgentPhone], bool]:
        """The phones that ring: the assigned agent's when active with an extension, else every
        active agent's. Returns (phones, assigned)."""
        await self._fresh(db)
        if assigned_agent_id is not None and assigned_agent_id in self._phones:
            return [self._phones[assigned_agent_id]], True
        return list(self._team), False

    async def close(self) -> None:
        if self._refresh is not None:
            self._refresh.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresh


async def identify_caller(db: Database, settings: Settings, raw_callerid: str | None,
                          directory: AgentDirectory | None = None, lookup: Lookup | None = None) -> CallerIdentity:
    """Never raises: a failed lookup is logged and the caller is treated as not recognised.
    `lookup` (number -> crm_bridge CallerMatch | None) defaults to one plain lookup_caller."""
    directory = directory or AgentDirectory(ttl=0)
    telephony = settings.telephony
    region = settings.clinic.phone_region
    number = caller_number(raw_callerid)
    match = None
    lookup_failed = False
    if number is not None:
        try:
            async with asyncio.timeout(telephony.agi_lookup_timeout_seconds):
                match = await (lookup or plain_lookup(db, region))(number)
        except TimeoutError:
            lookup_failed = True
            log.warning("caller lookup took over %g s; the call goes on unidentified",
                        telephony.agi_lookup_timeout_seconds)
        except Exception:
            lookup_failed = True
            log.exception("caller lookup failed; the call goes on unidentified")
    patient = None
    if match is not None:
        patient = {"id": match.patient_id, "full_name": match.full_name, "care_status": match.care_status,
                   "assigned_agent_id": match.assigned_agent_id}
        name = safe_callerid_name(match.full_name, telephony.callerid_ascii)
    elif lookup_failed:
        name = ""  # we do not know: leave the network's caller name alone
    else:
        name = safe_callerid_name(telephony.new_caller_name, telephony.callerid_ascii)
    try:
        agents, assigned = await directory.ringing(db, match.assigned_agent_id if match else None)
    except Exception:
        log.exception("could not list the agents to ring for an inbound call")
        agents, assigned = [], False
    if match is not None and match.assigned_agent_id is not None and not assigned:
        # another agent's patient rings the team (that agent is away): the phones show the masked name only
        from crm_bridge.service import masked_name

        name = safe_callerid_name(masked_name(match.full_name), telephony.callerid_ascii)
    extensions = [phone.extension for phone in agents]
    return CallerIdentity(
        number=display_number(number, region, match.phone_e164 if match else None),
        known=match is not None,
        patient=patient,
        callerid_name=name,
        agent_ids=[phone.user_id for phone in agents],
        agent_extensions=extensions,
        assigned_extension=extensions[0] if assigned else None,
        agent_dial=None if assigned else agent_dial_string(telephony.agent_channel, extensions),
        lookup_failed=lookup_failed,
    )


def screenpop_data(identity: CallerIdentity, call_uniqueid: str | None) -> dict[str, Any]:
    return {"agent_ids": identity.agent_ids, "agent_extensions": identity.agent_extensions,
            "number": identity.number, "known": identity.known, "patient": identity.patient,
            "call_uniqueid": safe_uniqueid(call_uniqueid), "at": utcnow().isoformat()}


async def publish_screenpop(app: web.Application, identity: CallerIdentity, call_uniqueid: str | None) -> None:
    try:
        await app[BUS_KEY].publish(SCREENPOP, screenpop_data(identity, call_uniqueid))
    except Exception:
        log.exception("could not publish the screen-pop for an inbound call")


def inbound_call_detail(call_uniqueid: str | None) -> str:
    return f"inbound call {safe_uniqueid(call_uniqueid) or ''}".strip()


async def record_identification(db: Database, user_id: int | None, identity: CallerIdentity,
                                call_uniqueid: str | None) -> None:
    """Audit: which user saw this patient's name through the HTTP API. Best effort."""
    if identity.patient_id is None:
        return
    try:
        from crm_bridge.service import record_access

        await record_access(db, user_id, identity.patient_id, "caller_identified", inbound_call_detail(call_uniqueid))
    except Exception:
        log.exception("could not record the caller identification in the audit trail")


routes = web.RouteTableDef()


@routes.get("/api/callers/identify")
async def identify_route(request: web.Request) -> web.Response:
    """Who is calling? `number` is the raw caller ID. With `uniqueid` (the channel's, as the process
    AGI sends it) the call is live: the screen-pop is published to the agents whose phones ring. Only the
    PBX's service account publishes (a supervisor's bearer token): an agent, or a browser's session that
    another site steers to this GET, would otherwise pop a made-up caller on other agents' screens."""
    who = require(request, "agent", "supervisor")
    raw = request.query.get("number")
    if raw is None:
        raise Problem(400, "Number missing", "Add ?number= with the caller ID (use 'unknown' when it is withheld).")
    if len(raw) > 200:
        raise Problem(400, "Number too long", "The caller ID is longer than 200 characters; send the number only.")
    uniqueid = request.query.get("uniqueid")
    if uniqueid is not None and safe_uniqueid(uniqueid) is None:
        raise Problem(400, "Invalid uniqueid", "uniqueid must be the channel's Asterisk uniqueid, e.g. 1795324352.13.")
    if uniqueid is not None and not (who.has_any("supervisor") and who.via == "bearer"):
        raise Problem(403, "Not allowed", "Only the PBX's service account (a supervisor's API token) reports a live "
                      "call; leave out uniqueid to look a number up.", code="screenpop_not_allowed")
    app = request.app
    identity = await identify_caller(app[DB_KEY], app[SETTINGS_KEY], raw, app[AGENT_DIRECTORY_KEY])
    if uniqueid is not None:
        await publish_screenpop(app, identity, uniqueid)
    if identity.patient is not None and not who.has_any("supervisor") \
            and identity.patient["assigned_agent_id"] not in (None, who.user_id):
        return web.json_response(others_patient(identity, app[SETTINGS_KEY]))
    await record_identification(app[DB_KEY], who.user_id, identity, uniqueid)
    return web.json_response(identity.to_json())


def others_patient(identity: CallerIdentity, settings: Settings) -> dict[str, Any]:
    """Another agent's patient, for an agent: what the card would show them (nothing but that the caller
    is known, and whose phone rings). The caller ID name is the masked one."""
    from crm_bridge.service import masked_name

    assert identity.patient is not None
    name = safe_callerid_name(masked_name(identity.patient["full_name"]), settings.telephony.callerid_ascii)
    masked = CallerIdentity(number=identity.number, known=True, patient=None, callerid_name=name,
                            agent_ids=identity.agent_ids, agent_extensions=identity.agent_extensions,
                            assigned_extension=identity.assigned_extension, agent_dial=identity.agent_dial,
                            lookup_failed=identity.lookup_failed)
    return masked.to_json() | {"patient": {"assigned_agent_id": identity.patient["assigned_agent_id"]},
                               "other_agents_patient": True}


AGENT_DIRECTORY_KEY = web.AppKey("agent_directory", AgentDirectory)


async def agent_directory_ctx(app: web.Application) -> AsyncIterator[None]:
    yield
    await app[AGENT_DIRECTORY_KEY].close()


def setup(app: web.Application) -> None:
    app[AGENT_DIRECTORY_KEY] = AgentDirectory()
    app.cleanup_ctx.append(agent_directory_ctx)
    app.router.add_routes(routes)

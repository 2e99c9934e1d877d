"""Services (what patients queue for) and rooms (where they are called to): validation and storage."""

from __future__ import annotations

import datetime as dt
import re
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import delete, exists, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from clinicall.auth.models import DisplayToken, User
from clinicall.db import Database, utcnow
from clinicall.problem import OneLine, Problem, conflict, not_found
from queue_display.models import QueueRoom, QueueService, RoomStateChange, Ticket, TicketEvent, Visit

HHMM = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]\Z|^24:00\Z")
LANGUAGES = ("vi", "en", "zh")
ROOM_WORDS = {
    "consult": ("Phòng khám số {n}", "Consultation room {n}", "{n}号诊室"),
    "counter": ("Quầy số {n}", "Counter {n}", "{n}号窗口"),
    "lab": ("Phòng xét nghiệm số {n}", "Laboratory {n}", "{n}号检验室"),
    "imaging": ("Phòng chẩn đoán hình ảnh số {n}", "Imaging room {n}", "{n}号影像室"),
}


def _clean_names(value: dict[str, str] | None) -> dict[str, str] | None:
    if value is None:
        return None
    unknown = set(value) - set(LANGUAGES)
    if unknown:
        raise ValueError(f"names may only have the languages vi, en, zh (got {', '.join(sorted(unknown))})")
    cleaned = {lang: " ".join(str(text).split()) for lang, text in value.items() if str(text).strip()}
    if any(len(text) > 120 for text in cleaned.values()):
        raise ValueError("a name may have at most 120 characters")
    return cleaned


class ServiceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prefix: str = Field(pattern=r"^[A-Z]{1,2}$", description="ticket letter(s), e.g. A")
    names: dict[str, OneLine]
    open_days: list[int] = Field(default_factory=lambda: [0, 1, 2, 3, 4, 5, 6])
    opens_at: str = "00:00"
    closes_at: str = "24:00"
    active: bool = True

    @field_validator("names")
    @classmethod
    def _names(cls, value: dict[str, str]) -> dict[str, str]:
        cleaned = _clean_names(value) or {}
        if not cleaned.get("vi"):
            raise ValueError("give at least the Vietnamese name, e.g. {\"vi\": \"Khám tổng quát\"}")
        return cleaned

    @field_validator("open_days")
    @classmethod
    def _days(cls, value: list[int]) -> list[int]:
        if any(not 0 <= day <= 6 for day in value):
            raise ValueError("days are 0 (Monday) to 6 (Sunday)")
        return sorted(set(value))

    @field_validator("opens_at", "closes_at")
    @classmethod
    def _time(cls, value: str) -> str:
        if not HHMM.match(value):
            raise ValueError("use a 24-hour time HH:MM such as 07:30 (24:00 for midnight at the end of the day)")
        return value


class ServicePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prefix: str | None = Field(None, pattern=r"^[A-Z]{1,2}$")
    names: dict[str, OneLine] | None = None
    open_days: list[int] | None = None
    opens_at: str | None = None
    closes_at: str | None = None
    active: bool | None = None

    @field_validator("names")
    @classmethod
    def _names(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        return _clean_names(value)

    @field_validator("open_days")
    @classmethod
    def _days(cls, value: list[int] | None) -> list[int] | None:
        return None if value is None else ServiceIn._days(value)

    @field_validator("opens_at", "closes_at")
    @classmethod
    def _time(cls, value: str | None) -> str | None:
        return None if value is None else ServiceIn._time(value)


class RoomIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["consult", "counter", "lab", "imaging"]
    number: int = Field(ge=1, le=999)
    names: dict[str, OneLine] | None = None
    service_ids: list[int] = Field(default_factory=list, max_length=50)
    doctor_name: OneLine = Field("", max_length=200)
    doctor_user_id: int | None = Field(None, ge=1)
    open: bool = True

    @field_validator("names")
    @classmethod
    def _names(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        return _clean_names(value)


class RoomPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["consult", "counter", "lab", "imaging"] | None = None
    number: int | None = Field(None, ge=1, le=999)
    names: dict[str, OneLine] | None = None
    service_ids: list[int] | None = Field(None, max_length=50)
    doctor_name: OneLine | None = Field(None, max_length=200)
    doctor_user_id: int | None = Field(None, ge=1)
    open: bool | None = None

    @field_validator("names")
    @classmethod
    def _names(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        return _clean_names(value)


def default_room_names(kind: str, number: int) -> dict[str, str]:
    vi, en, zh = ROOM_WORDS[kind]
    return {"vi": vi.format(n=number), "en": en.format(n=number), "zh": zh.format(n=number)}


def is_open_now(service: QueueService, now: dt.datetime, zone: ZoneInfo) -> bool:
    local = now.astimezone(zone)
    if local.weekday() not in service.open_days:
        return False
    hhmm = local.strftime("%H:%M")
    return service.opens_at <= hhmm < service.closes_at


async def list_services(db: Database, include_inactive: bool = True) -> list[QueueService]:
    async with db.session() as s:
        query = select(QueueService).order_by(QueueService.prefix)
        if not include_inactive:
            query = query.where(QueueService.active.is_(True))
        return list((await s.scalars(query)).all())


async def list_rooms(db: Database) -> list[QueueRoom]:
    async with db.session() as s:
        return list((await s.scalars(select(QueueRoom).order_by(QueueRoom.kind, QueueRoom.number))).all())


async def _check_service_ids(s: AsyncSession, service_ids: list[int]) -> list[int]:
    wanted = sorted(set(service_ids))
    if not wanted:
        return []
    found = set((await s.scalars(select(QueueService.id).where(QueueService.id.in_(wanted)))).all())
    missing = [i for i in wanted if i not in found]
    if missing:
        raise Problem(422, "Unknown service", f"No service with id {', '.join(map(str, missing))}; create it first "
                      "or check GET /api/services.")
    return wanted


async def create_service(db: Database, data: ServiceIn) -> QueueService:
    if data.opens_at >= data.closes_at:
        raise Problem(422, "Invalid hours", "opens_at must be before closes_at (e.g. 07:00 and 17:00).")
    try:
        async with db.transaction() as s:
            service = QueueService(**data.model_dump())
            s.add(service)
            await s.flush()
    except IntegrityError:
        raise conflict(f"Another service already uses the prefix {data.prefix}; choose another letter.") from None
    return service


async def update_service(db: Database, service_id: int, patch: ServicePatch) -> QueueService:
    changes = patch.model_dump(exclude_unset=True)
    try:
        async with db.transaction() as s:
            service = await s.get(QueueService, service_id)
            if service is None:
                raise not_found("Service")
            for key, value in changes.items():
                if value is None and key in ("prefix", "names", "open_days", "opens_at", "closes_at", "active"):
                    raise Problem(422, "Invalid input", f"{key} cannot be empty; leave it out to keep it.")
                if key == "names":
                    value = {**service.names, **value}
                    if not value.get("vi"):
                        raise Problem(422, "Invalid input", "The Vietnamese name cannot be removed.")
                setattr(service, key, value)
            if service.opens_at >= service.closes_at:
                raise Problem(422, "Invalid hours", "opens_at must be before closes_at (e.g. 07:00 and 17:00).")
            await s.flush()
    except IntegrityError:
        raise conflict("Another service already uses that prefix; choose another letter.") from None
    return service


async def create_room(db: Database, data: RoomIn) -> QueueRoom:
    values = data.model_dump()
    values["names"] = {**default_room_names(data.kind, data.number), **(data.names or {})}
    try:
        async with db.transaction() as s:
            values["service_ids"] = await _check_service_ids(s, data.service_ids)
            await _check_doctor(s, data.doctor_user_id)
            room = QueueRoom(**values)
            s.add(room)
            await s.flush()
    except IntegrityError:
        raise conflict(f"A {data.kind} room number {data.number} already exists (or the doctor user is unknown); "
                       "choose another number or PATCH the existing room.") from None
    return room


async def update_room(db: Database, room_id: int, patch: RoomPatch, user_id: int | None = None) -> QueueRoom:
    """Changes a room; opening or closing it is recorded (queue_room_states) with when and who."""
    changes = patch.model_dump(exclude_unset=True)
    try:
        async with db.transaction() as s:
            room = await s.get(QueueRoom, room_id)
            if room is None:
                raise not_found("Room")
            if changes.get("open") is not None and changes["open"] != room.open:
                s.add(RoomStateChange(room_id=room.id, open=changes["open"], at=utcnow(), user_id=user_id))
            for key, value in changes.items():
                if value is None and key in ("kind", "number", "names", "service_ids", "doctor_name", "open"):
                    raise Problem(422, "Invalid input", f"{key} cannot be empty; leave it out to keep it.")
                if key == "service_ids":
                    value = await _check_service_ids(s, value)
                if key == "doctor_user_id":
                    await _check_doctor(s, value)
                if key == "names":
                    value = {**room.names, **value}
                setattr(room, key, value)
            if "service_ids" in changes:
                await _release_patients(s, room)
            await s.flush()
    except IntegrityError:
        raise conflict("Another room already has that kind and number (or the doctor user is unknown).") from None
    return room


async def _check_doctor(s: AsyncSession, user_id: int | None) -> None:
    """The doctor on duty is an active user with the doctor role: anyone else (a referrer, a patient's login, an
    agent) put on duty by reception would lock the room's own doctors out of its queue (403 not_your_room)."""
    if user_id is None:
        return
    user = await s.get(User, user_id)
    if user is None or not user.active or "doctor" not in (user.roles or []):
        raise Problem(422, "Not a doctor", f"User {user_id} is not an active doctor; choose one of the clinic's doctors.",
                      code="not_a_doctor", errors=[{"field": "doctor_user_id", "code": "not_a_doctor",
                                                    "message": "not an active doctor"}])


async def delete_room(db: Database, room_id: int) -> QueueRoom:
    """Removes a room set up by mistake. A room that has called anyone (tickets, visits, events name it) or
    that a display token shows is kept: its history is the statistics'; close it and take its services away."""
    async with db.transaction() as s:
        room = await s.get(QueueRoom, room_id)
        if room is None:
            raise not_found("Room")
        used = or_(Ticket.room_id == room_id, Ticket.preferred_room_id == room_id, Ticket.return_room_id == room_id)
        if await s.scalar(select(exists().where(used) | exists().where(Visit.room_id == room_id)
                                 | exists().where(TicketEvent.room_id == room_id))):
            raise Problem(409, "Room has history", "Patients have been called to this room: it stays for the "
                          "statistics. Close it and take its services away instead.", code="room_has_history")
        tokens = (await s.scalars(select(DisplayToken.room_ids).where(DisplayToken.revoked.is_(False)))).all()
        if any(room_id in (ids or []) for ids in tokens):
            raise Problem(409, "Room on a display", "A display token shows this room; revoke that token first.",
                          code="room_on_display_token")
        await s.execute(delete(RoomStateChange).where(RoomStateChange.room_id == room_id))
        await s.delete(room)
    return room


async def _release_patients(s: AsyncSession, room: QueueRoom) -> None:
    """A room no longer serving a service lets go of that service's patients waiting for it (back from the lab,
    or due back): any room of the service calls them, and their page names the service, not this door. They
    would wait for a room that cannot call them until the hold ran out."""
    kept = list(room.service_ids) or [-1]
    left = ("waiting", "held", "skipped", "called", "in_service")
    await s.execute(update(Ticket).where(Ticket.preferred_room_id == room.id, Ticket.service_id.not_in(kept),
                                         Ticket.status.in_(left)).values(preferred_room_id=None))
    await s.execute(update(Ticket).where(Ticket.return_room_id == room.id, Ticket.return_service_id.not_in(kept),
                                         Ticket.status.in_(left)).values(return_room_id=None))

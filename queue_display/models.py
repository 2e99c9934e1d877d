"""The waiting room's tables: services, rooms, tickets, their visits (one per service leg) and
the full event history of every ticket."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Boolean, Date, Float, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from clinicall.db import Base, UTCDateTime, utcnow

ROOM_KINDS = ("consult", "counter", "lab", "imaging")
SOURCES = ("kiosk", "reception", "checkin")
STATUSES = ("waiting", "called", "in_service", "held", "skipped", "noshow", "done", "transferred", "expired")
ACTIVE_STATUSES = ("waiting", "called", "in_service", "held", "skipped")


class QueueService(Base):
    __tablename__ = "queue_services"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    prefix: Mapped[str] = mapped_column(String(2), unique=True)
    names: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)  # {"vi", "en", "zh"}
    open_days: Mapped[list[int]] = mapped_column(JSON, default=lambda: [0, 1, 2, 3, 4, 5, 6])  # 0 = Monday
    opens_at: Mapped[str] = mapped_column(String(5), default="00:00")  # local HH:MM
    closes_at: Mapped[str] = mapped_column(String(5), default="24:00")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class QueueRoom(Base):
    __tablename__ = "queue_rooms"
    __table_args__ = (UniqueConstraint("kind", "number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    number: Mapped[int] = mapped_column(Integer)
    names: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    service_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    doctor_name: Mapped[str] = mapped_column(String(200), default="")
    doctor_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    open: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class QueueCounter(Base):
    """The last ticket number issued per service and local day (race-free numbering by upsert)."""

    __tablename__ = "queue_counters"

    service_id: Mapped[int] = mapped_column(ForeignKey("queue_services.id", ondelete="CASCADE"), primary_key=True)
    local_day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    last_seq: Mapped[int] = mapped_column(Integer, default=0)


class Ticket(Base):
    __tablename__ = "queue_tickets"
    __table_args__ = (
        UniqueConstraint("service_id", "local_day", "seq"),
        Index("ix_queue_tickets_status_service", "status", "service_id"),
        Index("ix_queue_tickets_room_status", "room_id", "status"),
        # the head of each waiting line's groups in call order (call-next reads only that)
        Index("ix_queue_tickets_line", "status", "priority", "is_returning", "enqueued_at", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("queue_services.id"))
    issued_service_id: Mapped[int] = mapped_column(Integer)  # where it was first issued
    local_day: Mapped[dt.date] = mapped_column(Date, index=True)
    seq: Mapped[int] = mapped_column(Integer)  # in service_id's numbering: a transfer takes a number there
    number: Mapped[str] = mapped_column(String(8))
    token: Mapped[str] = mapped_column(String(64), unique=True)
    patient_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    priority: Mapped[str] = mapped_column(String(16), default="normal")
    source: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="waiting")
    recall_count: Mapped[int] = mapped_column(Integer, default=0)
    room_id: Mapped[int | None] = mapped_column(ForeignKey("queue_rooms.id", ondelete="SET NULL"), nullable=True)
    is_returning: Mapped[bool] = mapped_column(Boolean, default=False)
    preferred_room_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    return_service_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    return_room_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    return_seq: Mapped[int | None] = mapped_column(Integer, nullable=True)  # its number there, given back on return
    visit_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    issued_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    estimated_wait_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    position: Mapped[int | None] = mapped_column(Integer, nullable=True)
    issued_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    enqueued_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    called_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    recalled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    done_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    skipped_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    noshow_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    held_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    resumed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    restored_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    transferred_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    wait_range = None  # not stored here: (low, high) seconds, read from queue_wait_estimates with the estimate


class Visit(Base):
    """One leg of a ticket at one service (exam, then lab, then back): the source of statistics
    and of the estimator's service times."""

    __tablename__ = "queue_visits"
    __table_args__ = (Index("ix_queue_visits_day_service", "local_day", "service_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("queue_tickets.id", ondelete="CASCADE"), index=True)
    service_id: Mapped[int] = mapped_column(Integer)
    room_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    local_day: Mapped[dt.date] = mapped_column(Date)
    priority: Mapped[str] = mapped_column(String(16), default="normal")
    enqueued_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    called_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)
    outcome: Mapped[str | None] = mapped_column(String(16), nullable=True)  # done | transferred | noshow | expired


class TicketEvent(Base):
    """Every action on every ticket, with who and when (history and audit)."""

    __tablename__ = "queue_ticket_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("queue_tickets.id", ondelete="CASCADE"), index=True)
    type: Mapped[str] = mapped_column(String(32))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    service_id: Mapped[int] = mapped_column(Integer)
    room_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    user_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class WaitEstimate(Base):
    """The latest positions and estimated waits of one service's line, written after every change
    as one row (not one per ticket), read by every instance and by the display hub."""

    __tablename__ = "queue_wait_estimates"

    service_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    computed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    waits: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # "ticket id" -> [position, seconds, low, high] (null when unknown)


class RoomStateChange(Base):
    """A room opened or closed (breaks, end of day): the estimator learns each room's timetable."""

    __tablename__ = "queue_room_states"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    room_id: Mapped[int] = mapped_column(ForeignKey("queue_rooms.id", ondelete="CASCADE"), index=True)
    open: Mapped[bool] = mapped_column(Boolean)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    user_id: Mapped[int | None] = mapped_column(Integer, nullable=True)

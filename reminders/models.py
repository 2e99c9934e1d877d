"""reminders tables: campaigns, their targets (one patient each), every call attempt, and the numbers
a campaign has called on a clinic day (unique: no number is called by two campaigns in one day)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, Date, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from clinicall.db import Base, UTCDateTime, utcnow

KINDS = ("appointment", "revisit", "callback")
CAMPAIGN_STATES = ("running", "paused", "done")
# pending: to call (next_at says when); calling: a call is out; then one final state
TARGET_STATES = ("pending", "calling", "confirmed", "callback", "not_reached", "skipped")
FINAL_STATES = ("confirmed", "callback", "not_reached", "skipped")
SKIP_REASONS = ("do_not_call", "number_called_today", "no_phone", "number_not_allowed")


class Campaign(Base):
    __tablename__ = "reminder_campaigns"
    __table_args__ = (UniqueConstraint("kind", "day", "source"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    day: Mapped[dt.date] = mapped_column(Date, index=True)  # the clinic day it calls on
    about: Mapped[dt.date] = mapped_column(Date)  # the booked / follow-up / call-back day it reminds of
    source: Mapped[str] = mapped_column(String(40))  # "daily", or "manual-<id>"
    state: Mapped[str] = mapped_column(String(10), default="running", index=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Target(Base):
    __tablename__ = "reminder_targets"
    __table_args__ = (UniqueConstraint("campaign_id", "patient_id"),
                      Index("ix_reminder_targets_state_next", "state", "next_at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("reminder_campaigns.id", ondelete="CASCADE"), index=True)
    patient_id: Mapped[int] = mapped_column(Integer, index=True)  # crm_bridge patient (no cross-room FK)
    phone_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    number: Mapped[str | None] = mapped_column(String(20), nullable=True)  # E.164
    name: Mapped[str] = mapped_column(String(200), default="")  # spoken in the message
    about: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    state: Mapped[str] = mapped_column(String(12), default="pending")
    skip_reason: Mapped[str | None] = mapped_column(String(24), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # attempts that count (not cut off by an outage)
    next_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    call_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)  # the call now out
    key: Mapped[str | None] = mapped_column(String(1), nullable=True)  # the key pressed (final)
    note_id: Mapped[int | None] = mapped_column(Integer, nullable=True)  # the care note of the result
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Attempt(Base):
    __tablename__ = "reminder_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    target_id: Mapped[int] = mapped_column(ForeignKey("reminder_targets.id", ondelete="CASCADE"), index=True)
    call_id: Mapped[int | None] = mapped_column(Integer, nullable=True, unique=True)  # telephony call
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    disposition: Mapped[str | None] = mapped_column(String(12), nullable=True)  # the call's, when it ended
    key: Mapped[str | None] = mapped_column(String(1), nullable=True)  # read by FastAGI while the call was up
    counted: Mapped[bool] = mapped_column(default=True)  # False: cut off by an outage, called again


class NumberDay(Base):
    """A number claimed by a campaign target on a clinic day."""

    __tablename__ = "reminder_number_days"
    __table_args__ = (UniqueConstraint("day", "number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    day: Mapped[dt.date] = mapped_column(Date)
    number: Mapped[str] = mapped_column(String(20))
    target_id: Mapped[int] = mapped_column(ForeignKey("reminder_targets.id", ondelete="CASCADE"))


TURN_NEAR_STATES = ("pending", "calling", "answered", "not_reached", "unknown", "skipped")
TURN_NEAR_SKIPS = ("do_not_call", "number_not_allowed", "ticket_not_waiting", "day_over")


class TurnNearCall(Base):
    """"Your turn is near" as a short spoken call (no SMS gateway configured): one per ticket, placed at
    most once. pending (waits for the Asterisk link) -> calling -> answered | not_reached | unknown (the
    call was cut off by an outage: not placed again), or skipped with the reason."""

    __tablename__ = "reminder_turn_near_calls"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(Integer, unique=True)  # queue_display ticket (no cross-room FK)
    ticket_number: Mapped[str] = mapped_column(String(20))
    patient_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)  # crm_bridge patient
    number: Mapped[str] = mapped_column(String(20))  # E.164, as opted in
    day: Mapped[dt.date] = mapped_column(Date)  # the clinic day: not called after it
    lang: Mapped[str] = mapped_column(String(5))
    speech: Mapped[list[str]] = mapped_column(JSON)  # the spoken pieces, each cached on its own
    state: Mapped[str] = mapped_column(String(12), default="pending", index=True)
    skip_reason: Mapped[str | None] = mapped_column(String(24), nullable=True)
    call_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)  # telephony call
    disposition: Mapped[str | None] = mapped_column(String(12), nullable=True)  # the call's, once ended
    played: Mapped[bool] = mapped_column(default=False)  # FastAGI played the whole message
    note_id: Mapped[int | None] = mapped_column(Integer, nullable=True)  # the care note of the result
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

"""telephony tables: the journal of call events received (append-only) and one row per call, a projection
of the journal (see docs/telephony.md)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Boolean, Float, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from clinicall.db import Base, UTCDateTime, utcnow

DIRECTIONS = ("outbound", "inbound", "internal", "unknown")
# unknown: a call the settings cannot place (its first channel is no agent's phone, in no inbound context, on
# no trunk): logged once it is over, with the facts alone, never left out and never given a guessed direction
ORIGINS = ("click_to_call", "reminder", "turn_near", "desk_phone", "trunk", "internal", "unknown")
DIRECTION_OF = {"trunk": "inbound", "internal": "internal", "unknown": "unknown"}  # origin -> direction; else outbound
# Calls clinicall starts itself: their patient and number are the ones it dialled, never re-read from events.
OWN_ORIGINS = (None, "click_to_call", "reminder", "turn_near")
AUTO_ORIGINS = ("reminder", "turn_near")  # automated: no agent, the patient's phone is the Originate's channel
STATES = ("dialing", "ringing", "answered", "ended")
DISPOSITIONS = ("answered", "no_answer", "busy", "failed", "cancelled", "interrupted")
# Bounds of the text columns, applied before every write (PostgreSQL refuses longer values).
NUMBER_LEN = 40
NAME_LEN = 120
CAUSE_LEN = 120
LEGS_LEN = 8000
PAYLOAD_LEN = 16000


class Call(Base):
    __tablename__ = "calls"
    __table_args__ = (
        Index("ix_calls_patient_created", "patient_id", "created_at"),
        Index("ix_calls_agent_created", "agent_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    direction: Mapped[str] = mapped_column(String(10))
    state: Mapped[str] = mapped_column(String(10), default="dialing", index=True)
    disposition: Mapped[str | None] = mapped_column(String(12), nullable=True)
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    agent_extension: Mapped[str | None] = mapped_column(String(40), nullable=True)
    patient_id: Mapped[int | None] = mapped_column(Integer, nullable=True)  # crm_bridge patient (no cross-room FK)
    phone_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    number: Mapped[str | None] = mapped_column(String(40), nullable=True)  # patient's E.164, or the raw caller id
    dialed: Mapped[str | None] = mapped_column(String(40), nullable=True)  # the Exten sent to Asterisk
    caller_name: Mapped[str | None] = mapped_column(String(120), nullable=True)  # the identified patient's name
    number_raw: Mapped[str | None] = mapped_column(String(40), nullable=True)  # the caller id as the network sent it
    network_name: Mapped[str | None] = mapped_column(String(80), nullable=True)  # untrusted, control characters removed
    origin: Mapped[str | None] = mapped_column(String(16), nullable=True)  # click_to_call | reminder | desk_phone | trunk | internal
    talk_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)  # to 0.1 s
    ring_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    legs: Mapped[str | None] = mapped_column(String(8000), nullable=True)  # JSON list, see docs/telephony.md
    action_id: Mapped[str | None] = mapped_column(String(80), nullable=True, unique=True)
    channel_id: Mapped[str | None] = mapped_column(String(80), nullable=True)
    dial_string: Mapped[str | None] = mapped_column(String(120), nullable=True)  # Originate Channel
    linkedid: Mapped[str | None] = mapped_column(String(80), nullable=True, index=True, unique=True)
    agent_channel: Mapped[str | None] = mapped_column(String(120), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    ringing_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    answered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    duration: Mapped[int | None] = mapped_column(Integer, nullable=True)
    billsec: Mapped[int | None] = mapped_column(Integer, nullable=True)
    hangup_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    hangup_cause: Mapped[str | None] = mapped_column(String(120), nullable=True)
    originate_reason: Mapped[str | None] = mapped_column(String(8), nullable=True)
    recording_path: Mapped[str | None] = mapped_column(String(300), nullable=True)
    hangup_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class CallEvent(Base):
    """The journal: every call event received (AMI, CEL, and clinicall's own decisions), stored once
    under a stable key before anything is projected from it. Rows are never updated; retention deletes
    those older than retention.call_log_days with the calls projected from them."""

    __tablename__ = "call_events"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 of what identifies the event
    source: Mapped[str] = mapped_column(String(10))  # ami | cel | clinicall
    kind: Mapped[str] = mapped_column(String(40))  # Event (CEL: its EventName)
    linkedid: Mapped[str | None] = mapped_column(String(80), nullable=True, index=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)  # Asterisk's time of the event when it has one
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    payload: Mapped[str] = mapped_column(String(16000))  # JSON object of the headers (values bounded)
    problem: Mapped[str | None] = mapped_column(String(200), nullable=True)  # truncated / set aside, and why


class Installation(Base):
    """One row: this database's tag, drawn at random at its first start. clinicall's ChannelIds
    and ActionIDs are `clinicall-<tag>-<call id>`, so calls of a fresh database never take the Linkedids
    of an earlier one's calls still in Asterisk's CEL records."""

    __tablename__ = "telephony_installation"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tag: Mapped[str] = mapped_column(String(16))

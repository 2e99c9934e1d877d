"""telephony tables: one row per call (outbound click-to-call or inbound), fed by the call log."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from clinicall.db import Base, UTCDateTime, utcnow

DIRECTIONS = ("outbound", "inbound")
STATES = ("dialing", "ringing", "answered", "ended")
DISPOSITIONS = ("answered", "no_answer", "busy", "failed", "cancelled")


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
    caller_name: Mapped[str | None] = mapped_column(String(120), nullable=True)
    action_id: Mapped[str | None] = mapped_column(String(80), nullable=True, unique=True)
    channel_id: Mapped[str | None] = mapped_column(String(80), nullable=True)
    dial_string: Mapped[str | None] = mapped_column(String(120), nullable=True)  # Originate Channel
    linkedid: Mapped[str | None] = mapped_column(String(80), nullable=True, index=True)
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

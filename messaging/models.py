"""messaging tables: every text message (and its gateway parts), and the "your turn is near" opt-ins.
Patients and tickets are other rooms' records: referenced by id, no cross-room foreign keys."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from clinicall.db import Base, UTCDateTime, utcnow

STATUSES = ("queued", "sent", "delivered", "failed")


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        Index("ix_messages_status_due", "status", "next_attempt_at"),
        Index("ix_messages_patient_created", "patient_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    patient_id: Mapped[int | None] = mapped_column(Integer, nullable=True)  # crm_bridge patient
    to_e164: Mapped[str] = mapped_column(String(20))
    text: Mapped[str] = mapped_column(Text)  # as staff read it: a one-time password in it is masked
    # the text itself when `text` shows it masked; kept only until the gateway took it or it failed
    send_text: Mapped[str | None] = mapped_column(Text, nullable=True)
    template_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    sent_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    origin: Mapped[str] = mapped_column(String(64), default="agent")  # agent | turn_near | campaign:<id> | ...
    status: Mapped[str] = mapped_column(String(12), default="queued")
    adapter: Mapped[str] = mapped_column(String(12), default="")  # the sender that took it (smpp, http)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    lease_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)  # an instance is sending it
    gateway_id: Mapped[str] = mapped_column(String(200), default="")  # first part's message id at the gateway
    gateway_reply: Mapped[str] = mapped_column(Text, default="")  # the gateway's last answer, or the error
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    done_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)  # delivered or failed


class MessagePart(Base):
    """One SMS segment as the gateway knows it (a long text is several): receipts come per part."""

    __tablename__ = "message_parts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), index=True)
    gateway_id: Mapped[str] = mapped_column(String(100), index=True)
    status: Mapped[str] = mapped_column(String(12), default="sent")  # sent | delivered | failed
    receipt: Mapped[str] = mapped_column(String(200), default="")


class TurnNearOptIn(Base):
    """A waiting patient's phone for one "your turn is near" text (kiosk or reception)."""

    __tablename__ = "turn_near_optins"
    __table_args__ = (
        Index("ix_turn_near_optins_to_created", "to_e164", "created_at"),
        Index("ix_turn_near_optins_created", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(Integer, unique=True)  # queue_display ticket
    to_e164: Mapped[str] = mapped_column(String(20))
    patient_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    notified_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    message_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    client_address: Mapped[str | None] = mapped_column(String(64), nullable=True)  # a sign-up without login: from where

"""crm_bridge tables: patients, their phones and search keys, care notes, the care-status history,
the customer-status list, assignments and transfers, follow-up plans, message templates, audit."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy import false as sql_false
from sqlalchemy.orm import Mapped, mapped_column

from clinicall.db import Base, UTCDateTime, utcnow

CARE_STATUSES = ("new", "in_treatment", "treatment_finished", "care_closed")
GENDERS = ("male", "female", "other")


class Patient(Base):
    __tablename__ = "patients"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    full_name: Mapped[str] = mapped_column(String(200))
    name_folded: Mapped[str] = mapped_column(String(200), index=True)
    date_of_birth: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    gender: Mapped[str | None] = mapped_column(String(10), nullable=True)
    address: Mapped[str] = mapped_column(String(500), default="")
    referring_doctor: Mapped[str] = mapped_column(String(200), default="")
    service_of_interest: Mapped[str] = mapped_column(String(200), default="")
    care_status: Mapped[str] = mapped_column(String(24), default="new", index=True)
    care_status_changed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    care_status_changed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    assigned_agent_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True, index=True)
    notes: Mapped[str] = mapped_column(Text, default="")
    his_id: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    # The care workflow's current state, kept from the latest care note (worklists read these).
    callback_date: Mapped[dt.date | None] = mapped_column(Date, nullable=True, index=True)
    booking_date: Mapped[dt.date | None] = mapped_column(Date, nullable=True, index=True)
    arrival_date: Mapped[dt.date | None] = mapped_column(Date, nullable=True, index=True)
    last_contact_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)
    last_contact_reached: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    last_activity_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    merged_into_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    # No automated calls (reminder campaigns) to this patient; agents may still call.
    do_not_call: Mapped[bool] = mapped_column(Boolean, default=False, server_default=sql_false())
    # The booking date the patient confirmed (a reminder call's "1"); confirmed while it equals booking_date.
    booking_confirmed_on: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class PatientPhone(Base):
    __tablename__ = "patient_phones"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"), index=True)
    e164: Mapped[str] = mapped_column(String(20), index=True)
    raw: Mapped[str] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(String(40), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class PatientNameKey(Base):
    """Word-suffixes of the folded name ("nguyen van an", "van an", "an"): name search is one
    prefix range scan over this index on SQLite and PostgreSQL alike."""

    __tablename__ = "patient_name_keys"
    __table_args__ = (Index("ix_patient_name_keys_key", "key", "patient_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"), index=True)
    # Binary ("C") collation on PostgreSQL: the index serves LIKE 'prefix%' and ORDER BY key.
    key: Mapped[str] = mapped_column(String(200).with_variant(String(200, collation="C"), "postgresql"))


class CustomerStatus(Base):
    """The clinic's two-level outcome list: a customer status and its detail statuses (parent_id)."""

    __tablename__ = "customer_statuses"
    __table_args__ = (UniqueConstraint("parent_id", "label"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("customer_statuses.id", ondelete="CASCADE"), nullable=True)
    label: Mapped[str] = mapped_column(String(120))
    position: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    not_reached: Mapped[bool] = mapped_column(Boolean, default=False)
    # The outcome means "call back": a care note with it needs a call-back date.
    callback_required: Mapped[bool] = mapped_column(Boolean, default=False, server_default=sql_false())


class CareNote(Base):
    __tablename__ = "care_notes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"), index=True)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    call_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    customer_status: Mapped[str | None] = mapped_column(String(120), nullable=True)
    detail_status: Mapped[str | None] = mapped_column(String(120), nullable=True)
    note: Mapped[str] = mapped_column(Text, default="")
    callback_date: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    booking_date: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    arrival_date: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    reached: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    care_status: Mapped[str | None] = mapped_column(String(24), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class CareStatusChange(Base):
    __tablename__ = "care_status_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"), index=True)
    from_status: Mapped[str] = mapped_column(String(24))
    to_status: Mapped[str] = mapped_column(String(24))
    changed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    changed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    reason: Mapped[str] = mapped_column(String(500), default="")


class TransferRequest(Base):
    __tablename__ = "patient_transfers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"), index=True)
    from_agent_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    to_agent_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    requested_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    reason: Mapped[str] = mapped_column(String(500), default="")
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    decided_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class FollowUp(Base):
    __tablename__ = "follow_ups"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"), index=True)
    method: Mapped[str] = mapped_column(String(10))
    theme: Mapped[str] = mapped_column(String(200))
    due_date: Mapped[dt.date] = mapped_column(Date, index=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True, index=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class MessageTemplate(Base):
    __tablename__ = "message_templates"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    channel: Mapped[str] = mapped_column(String(10), default="sms")
    body: Mapped[str] = mapped_column(Text)
    updated_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class PatientAudit(Base):
    """Who viewed or changed which patient record, when, and what."""

    __tablename__ = "patient_audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    user_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    patient_id: Mapped[int] = mapped_column(Integer, index=True)
    action: Mapped[str] = mapped_column(String(40))
    detail: Mapped[str] = mapped_column(Text, default="")

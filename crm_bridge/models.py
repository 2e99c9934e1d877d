"""crm_bridge tables: patients, their phones and search keys, care notes, the care-status history,
the customer-status list, assignments and transfers, follow-up plans, message templates, audit."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, Date, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint
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
    # The referring doctor's account (role referrer) when the patient came through the referral form.
    referrer_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    referral_note: Mapped[str] = mapped_column(Text, default="", server_default="")
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


FILE_GROUPS = ("imaging", "lab", "referral")


class StoredBlob(Base):
    """File contents in the database (filestore.DatabaseFileStore): every instance sees them."""

    __tablename__ = "stored_blobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class PatientFile(Base):
    """A result file (imaging, lab) or a file a referrer sent with the referral (referral)."""

    __tablename__ = "patient_files"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"), index=True)
    group: Mapped[str] = mapped_column(String(16))
    filename: Mapped[str] = mapped_column(String(200))
    content_type: Mapped[str] = mapped_column(String(60))
    size: Mapped[int] = mapped_column(Integer)
    storage_key: Mapped[str] = mapped_column(String(200))
    visible_to_patient: Mapped[bool] = mapped_column(Boolean, default=False)
    visible_to_referrer: Mapped[bool] = mapped_column(Boolean, default=False)
    uploaded_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class TreatmentEntry(Base):
    """One treatment progress entry of the care sheet, with its re-visit date."""

    __tablename__ = "treatment_entries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"), index=True)
    day: Mapped[dt.date] = mapped_column(Date)
    doctor: Mapped[str] = mapped_column(String(200), default="")
    technician: Mapped[str] = mapped_column(String(200), default="")
    progress: Mapped[str] = mapped_column(Text, default="")
    orders: Mapped[str] = mapped_column(Text, default="")
    revisit_date: Mapped[dt.date | None] = mapped_column(Date, nullable=True, index=True)
    visible_to_patient: Mapped[bool] = mapped_column(Boolean, default=False)
    visible_to_referrer: Mapped[bool] = mapped_column(Boolean, default=False)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class PatientAccount(Base):
    """The patient's own login (a users row with the role patient), made when treatment starts."""

    __tablename__ = "patient_accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), unique=True)
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class ReferrerInvite(Base):
    """A one-use link with which a referring doctor makes his own account (role referrer)."""

    __tablename__ = "referrer_invites"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    used_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)

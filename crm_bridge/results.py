"""Result files (imaging, lab) and the files a referrer sent (referral): stored through the FileStore,
listed per audience. Who may open a file is `may_open`; the HTTP layer serves it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from clinicall.db import Database, utcnow
from clinicall.problem import Problem
from crm_bridge.audit import add_audit
from crm_bridge.filestore import FileStore
from crm_bridge.models import FILE_GROUPS, PatientFile


@dataclass(frozen=True)
class Upload:
    """One checked file: clean name, sniffed content type, bytes."""

    filename: str
    content_type: str
    data: bytes


async def store_files(s: AsyncSession, store: FileStore, patient_id: int, uploads: list[Upload], *, group: str,
                      visible_to_patient: bool, visible_to_referrer: bool, user_id: int | None) -> list[int]:
    """Inside the caller's transaction: a refused write leaves neither rows nor bytes behind."""
    if group not in FILE_GROUPS:
        raise Problem(422, "Unknown file group", f"group must be one of {', '.join(FILE_GROUPS)}.",
                      code="file_group_unknown")
    ids = []
    for upload in uploads:
        key = await store.put(s, upload.data)
        row = PatientFile(patient_id=patient_id, group=group, filename=upload.filename,
                          content_type=upload.content_type, size=len(upload.data), storage_key=key,
                          visible_to_patient=visible_to_patient, visible_to_referrer=visible_to_referrer,
                          uploaded_by=user_id, created_at=utcnow())
        s.add(row)
        await s.flush()
        add_audit(s, user_id, patient_id, "file_upload", f"file {row.id} {group} {upload.filename}")
        ids.append(row.id)
    return ids


def file_json(f: PatientFile) -> dict[str, Any]:
    return {"id": f.id, "patient_id": f.patient_id, "group": f.group, "filename": f.filename,
            "content_type": f.content_type, "size": f.size, "visible_to_patient": f.visible_to_patient,
            "visible_to_referrer": f.visible_to_referrer, "uploaded_by": f.uploaded_by,
            "created_at": f.created_at.isoformat(), "url": f"/api/files/{f.id}"}


def audience_filter(audience: str) -> Any:
    if audience == "patient":
        return PatientFile.visible_to_patient.is_(True)
    if audience == "referrer":
        return PatientFile.visible_to_referrer.is_(True) | (PatientFile.group == "referral")
    return True


async def files_for(db: Database, patient_id: int, audience: str = "staff") -> list[dict[str, Any]]:
    async with db.session() as s:
        rows = (await s.scalars(select(PatientFile).where(PatientFile.patient_id == patient_id, audience_filter(audience))
                                .order_by(PatientFile.created_at, PatientFile.id))).all()
    return [file_json(f) for f in rows]


async def get_file(db: Database, file_id: int) -> PatientFile | None:
    async with db.session() as s:
        return await s.get(PatientFile, file_id)


def may_open(f: PatientFile, audience: str) -> bool:
    """Staff decide with the card's rule before; patients see files marked for them; referrers those
    marked for them and the ones sent with the referral."""
    if audience == "patient":
        return f.visible_to_patient
    if audience == "referrer":
        return f.visible_to_referrer or f.group == "referral"
    return audience == "staff"


async def set_visibility(db: Database, file_id: int, changes: dict[str, bool], user_id: int | None) -> dict[str, Any]:
    async with db.transaction() as s:
        row = await s.get(PatientFile, file_id)
        if row is None:
            raise Problem(404, "File not found", "No file with that id exists.", code="file_not_found")
        for field in ("visible_to_patient", "visible_to_referrer"):
            if field in changes:
                setattr(row, field, bool(changes[field]))
        add_audit(s, user_id, row.patient_id, "file_visibility", f"file {row.id} {changes}")
        return file_json(row)

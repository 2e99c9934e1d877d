"""Assigning patients to agents, and transfers between agents: an agent requests, a supervisor
(or admin) approves or rejects."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from clinicall.db import Database, utcnow
from clinicall.problem import Problem
from crm_bridge.audit import add_audit
from crm_bridge.care import live_patient
from crm_bridge.models import TransferRequest
from crm_bridge.patients import assign_patient, check_agent
from crm_bridge.text import clean_text

TRANSFER_STATUSES = ("pending", "approved", "rejected")


def transfer_json(t: TransferRequest) -> dict[str, Any]:
    return {"id": t.id, "patient_id": t.patient_id, "from_agent_id": t.from_agent_id, "to_agent_id": t.to_agent_id,
            "requested_by": t.requested_by, "reason": t.reason, "status": t.status, "decided_by": t.decided_by,
            "decided_at": t.decided_at.isoformat() if t.decided_at else None, "created_at": t.created_at.isoformat()}


async def request_transfer(db: Database, patient_id: int, to_agent_id: int, requested_by: int,
                           reason: str = "") -> dict[str, Any]:
    reason = clean_text(reason, "reason", 500)
    async with db.transaction() as s:
        patient = await live_patient(s, patient_id, lock=True)
        await check_agent(s, to_agent_id)
        if patient.assigned_agent_id == to_agent_id:
            raise Problem(409, "Already assigned", "The patient is already assigned to that agent.")
        pending = await s.scalar(select(TransferRequest.id).where(TransferRequest.patient_id == patient.id,
                                                                  TransferRequest.status == "pending"))
        if pending is not None:
            raise Problem(409, "Transfer already pending", code="transfer_pending", detail=
                          f"Transfer request {pending} for this patient awaits a supervisor; wait for it or ask them.")
        row = TransferRequest(patient_id=patient.id, from_agent_id=patient.assigned_agent_id, to_agent_id=to_agent_id,
                              requested_by=requested_by, reason=reason, status="pending", created_at=utcnow())
        s.add(row)
        await s.flush()
        add_audit(s, requested_by, patient.id, "transfer_request", f"to agent {to_agent_id}")
        return transfer_json(row)


async def decide_transfer(db: Database, transfer_id: int, approve: bool, decided_by: int) -> dict[str, Any]:
    async with db.transaction() as s:
        row = await s.scalar(select(TransferRequest).where(TransferRequest.id == transfer_id).with_for_update())
        if row is None:
            raise Problem(404, "Transfer not found", "No transfer request with that id exists.")
        if row.status != "pending":
            raise Problem(409, "Transfer already decided", f"This transfer request was already {row.status}.")
        row.status = "approved" if approve else "rejected"
        row.decided_by = decided_by
        row.decided_at = utcnow()
        patient = await live_patient(s, row.patient_id, lock=True)
        if approve:
            await assign_patient(s, patient, row.to_agent_id, decided_by)
        add_audit(s, decided_by, patient.id, "transfer_" + row.status, f"transfer {row.id}")
        return transfer_json(row)


async def list_transfers(db: Database, *, status: str | None = None, agent_id: int | None = None,
                         limit: int = 200) -> list[dict[str, Any]]:
    query = select(TransferRequest).order_by(TransferRequest.created_at.desc(), TransferRequest.id.desc())
    if status:
        query = query.where(TransferRequest.status == status)
    if agent_id is not None:
        query = query.where((TransferRequest.requested_by == agent_id) | (TransferRequest.to_agent_id == agent_id)
                            | (TransferRequest.from_agent_id == agent_id))
    async with db.session() as s:
        return [transfer_json(t) for t in (await s.scalars(query.limit(limit))).all()]

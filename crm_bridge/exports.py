"""Which crm_bridge lists export to Excel/CSV, and their columns (clinicall/exports.py does the rest);
every patient whose data leaves in an export gets an "export" entry in the audit trail."""

from __future__ import annotations

from aiohttp import web

from clinicall.exports import Column, ExportSpec, Sheet
from clinicall.keys import DB_KEY
from crm_bridge.audit import record_export

PATIENT_COLUMNS = (
    Column("id", "number", "patient_id"), Column("full_name"), Column("phones", "phones"),
    Column("date_of_birth", "date"), Column("care_status", "care."), Column("assigned_agent_id", "number", "agent_id"),
    Column("callback_date", "date"), Column("booking_date", "date"), Column("arrival_date", "date"),
    Column("last_contact_at", "datetime"),
)

EXPORTS = {
    "/api/worklists/{kind}": ExportSpec("worklist", (Sheet("worklist", "items", PATIENT_COLUMNS),), "id"),
    "/api/arrivals": ExportSpec("arrivals", (Sheet("arrivals", "items", (
        Column("id", "number", "patient_id"), Column("full_name"), Column("phones", "phones"), Column("date_of_birth", "date"),
        Column("care_status", "care."), Column("booking_date", "date"), Column("arrival_date", "date"))),), "id"),
    "/api/patients": ExportSpec("patients", (Sheet("patients", "items", PATIENT_COLUMNS),), "id"),
    "/api/follow-ups": ExportSpec("follow-ups", (Sheet("followups", "items", (
        Column("due_date", "date"), Column("patient_id", "number"), Column("patient_name", label="full_name"),
        Column("method", "method."), Column("theme"), Column("status", "fstatus."), Column("agent_id", "number"))),),
        "patient_id"),
    "/api/transfers": ExportSpec("transfers", (Sheet("transfers", "items", (
        Column("created_at", "datetime"), Column("patient_id", "number"), Column("from_agent_id", "number"),
        Column("to_agent_id", "number"), Column("reason"), Column("status", "tstatus."),
        Column("decided_at", "datetime"))),), "patient_id"),
    "/api/stats/referrals": ExportSpec("referral-stats", (Sheet("referrals", "referrers", (
        Column("referrer_name"), Column("referred", "number"), Column("booked", "number"), Column("arrived", "number"),
        Column("in_treatment", "number", "treated"), Column("conversion", "number"))),)),
    "/api/referrals": ExportSpec("referrals", (Sheet("referrals", "items", (
        Column("id", "number", "patient_id"), Column("full_name"), Column("service_of_interest"),
        Column("care_status", "care."), Column("booking_date", "date"), Column("created_at", "datetime"))),), "id"),
    "/api/audit": ExportSpec("audit", (Sheet("audit", "items", (
        Column("at", "datetime", "when"), Column("user_id", "number"), Column("patient_id", "number"),
        Column("action"), Column("detail"))),)),
}


async def audit_export(app: web.Application, user_id: int | None, patient_ids: list[int], detail: str) -> None:
    await record_export(app[DB_KEY], user_id, patient_ids, detail)

"""Which telephony lists export to Excel/CSV, and their columns (clinicall/exports.py does the rest)."""

from __future__ import annotations

from clinicall.exports import Column, ExportSpec, Sheet

EXPORTS = {
    "/api/calls": ExportSpec("calls", (Sheet("calls", "calls", (
        Column("started_at", "datetime", "when"), Column("agent_id", "number"), Column("direction", "dir."),
        Column("number", "phones"), Column("patient_id", "number"), Column("patient_name", label="full_name"),
        Column("disposition", "disp."),
        Column("billsec", "duration", "duration"), Column("outcome.customer_status", label="customer_status"),
        Column("outcome.detail_status", label="detail_status"), Column("outcome.note", label="note"))),), "patient_id"),
    "/api/stats/calls": ExportSpec("call-stats", (
        Sheet("agents", "agents", (Column("agent_name", label="agent"), Column("calls", "number"),
                                   Column("answered", "number"), Column("answer_rate", "number"),
                                   Column("talk_seconds", "number"))),
        Sheet("days", "days", (Column("day", "date"), Column("calls", "number"), Column("answered", "number"),
                               Column("answer_rate", "number"))),
    )),
}

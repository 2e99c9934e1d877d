"""Which messaging lists export to Excel/CSV, and their columns (clinicall/exports.py does the rest)."""

from __future__ import annotations

from clinicall.exports import Column, ExportSpec, Sheet

EXPORTS = {
    "/api/messages": ExportSpec("messages", (Sheet("messages", "items", (
        Column("created_at", "datetime", "when"), Column("patient_id", "number"), Column("to_e164", "phones", "phones"),
        Column("text", label="text"), Column("origin", label="origin"), Column("status", "mstatus.", "status"),
        Column("attempts", "number", "attempts"), Column("gateway_id", label="gateway_id"),
        Column("gateway_reply", label="gateway_reply"), Column("sent_by", "number", "user_id"))),), "patient_id"),
}

"""Which reminder lists export to Excel/CSV, and their columns (clinicall/exports.py does the rest)."""

from __future__ import annotations

from clinicall.exports import Column, ExportSpec, Sheet

EXPORTS = {
    "/api/reminders/campaigns/{campaign_id}": ExportSpec("campaign", (Sheet("targets", "targets", (
        Column("patient_id", "number"), Column("patient_name", label="full_name"), Column("number", "phones", "phones"),
        Column("state", "rtarget.", "status"), Column("attempts", "number", "attempts"), Column("key", label="key"),
        Column("skip_reason", "rskip.", "reason"), Column("call_id", "number"))),), "patient_id"),
}

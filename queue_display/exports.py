"""The day's tickets and the queue statistics export to Excel/CSV (clinicall/exports.py does the rest)."""

from __future__ import annotations

from clinicall.exports import Column, ExportSpec, Sheet

FIGURES = (Column("visits", "number"), Column("called", "number"), Column("served", "number"),
           Column("noshows", "number"), Column("noshow_rate", "number"), Column("mean_wait_seconds", "number"),
           Column("median_wait_seconds", "number"), Column("mean_service_seconds", "number"),
           Column("median_service_seconds", "number"))

EXPORTS = {
    "/api/tickets": ExportSpec("tickets", (Sheet("tickets", "tickets", (
        Column("number", label="ticket"), Column("service_name", label="service"), Column("priority", "prio.", "priority"),
        Column("status", "qstatus.", "status"), Column("patient_id", "number"), Column("source", "qsource.", "origin"),
        Column("issued_at", "datetime", "issued_at"), Column("called_at", "datetime", "called_at"),
        Column("started_at", "datetime", "started_at"), Column("done_at", "datetime", "done_at"),
        Column("room.name", label="room"), Column("recall_count", "number", "recalls"))),), "patient_id"),
    "/api/stats/queue": ExportSpec("queue-stats", (
        Sheet("by_room", "by_room", (Column("room_name", label="room"), *FIGURES)),
        Sheet("by_service", "by_service", (Column("service_prefix", label="prefix"), Column("service_name", label="service"),
                                           *FIGURES)),
        Sheet("by_day", "by_day", (Column("day", "date"), *FIGURES)),
    )),
}

"""The audit trail of patient records: who viewed or changed which record, when, and what."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
from collections.abc import AsyncIterator, Iterable

from aiohttp import web
from sqlalchemy import Connection, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from clinicall.db import Database, utcnow
from clinicall.keys import DB_KEY
from crm_bridge.models import PatientAudit

MAX_DETAIL = 2000
log = logging.getLogger(__name__)


def audit_row(user_id: int | None, patient_id: int, action: str, detail: str = "") -> PatientAudit:
    return PatientAudit(at=utcnow(), user_id=user_id, patient_id=patient_id, action=action[:40],
                        detail=detail[:MAX_DETAIL])


def add_audit(s: AsyncSession, user_id: int | None, patient_id: int, action: str, detail: str = "") -> None:
    s.add(audit_row(user_id, patient_id, action, detail))


async def record_access(db: Database, user_id: int | None, patient_id: int, action: str, detail: str = "") -> None:
    async with db.transaction() as s:
        add_audit(s, user_id, patient_id, action, detail)


INSERT_AUDIT = insert(PatientAudit.__table__)


def record_access_in(connection: Connection, user_id: int | None, patient_id: int, action: str,
                     detail: str = "") -> None:
    """record_access inside another room's transaction (Core, `Database.run_sync`): the audit row commits
    with the change it records, or not at all."""
    connection.execute(INSERT_AUDIT, {"at": utcnow(), "user_id": user_id, "patient_id": patient_id,
                                      "action": action[:40], "detail": detail[:MAX_DETAIL]})


def pg_audit_insert(source: str, *, at: str, user_id: str, patient_id: str, action: str, detail: str) -> str:
    """record_access as one clause of another room's PostgreSQL statement: the SQL of an INSERT of one audit
    row per row of `source` (a WITH query of that statement); the other arguments are SQL expressions over it
    (parameters, columns)."""
    return (f"INSERT INTO patient_audit (at, user_id, patient_id, action, detail) "  # noqa: S608 (the caller's SQL)
            f"SELECT {at}, {user_id}, {patient_id}, left({action}, 40), left({detail}, {MAX_DETAIL}) FROM {source}")


async def record_export(db: Database, user_id: int | None, patient_ids: list[int], detail: str) -> None:
    """One "export" entry per patient whose data left in an export file."""
    async with db.transaction() as s:
        for patient_id in patient_ids:
            add_audit(s, user_id, patient_id, "export", detail)


async def list_audit(db: Database, *, patient_id: int | None = None, user_id: int | None = None,
                     since: dt.datetime | None = None, until: dt.datetime | None = None,
                     action: str | None = None, limit: int = 200, offset: int = 0) -> list[dict[str, object]]:
    query = select(PatientAudit).order_by(PatientAudit.at.desc(), PatientAudit.id.desc())
    if patient_id is not None:
        query = query.where(PatientAudit.patient_id == patient_id)
    if user_id is not None:
        query = query.where(PatientAudit.user_id == user_id)
    if since is not None:
        query = query.where(PatientAudit.at >= since)
    if until is not None:
        query = query.where(PatientAudit.at < until)
    if action:
        query = query.where(PatientAudit.action == action)
    async with db.session() as s:
        rows = (await s.scalars(query.limit(limit).offset(offset))).all()
    return [{"id": r.id, "at": r.at.isoformat(), "user_id": r.user_id, "patient_id": r.patient_id,
             "action": r.action, "detail": r.detail} for r in rows]


class AuditBatch:
    """Views of patients in lists, searches and lookups: queued in memory and written in batches (one
    transaction per flush, at most every `interval` seconds). A failed write keeps the rows for the
    next flush; the last flush runs at shutdown, and rows that still cannot be written are logged."""

    def __init__(self, db: Database, interval: float = 1.0, max_rows: int = 2000) -> None:
        self.db = db
        self.interval = interval
        self.max_rows = max_rows
        self._rows: list[tuple[dt.datetime, int | None, int, str, str]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._flushing = asyncio.Lock()  # a flush waits for one in flight: after it, every row so far is written

    def add(self, user_id: int | None, patient_ids: Iterable[int], action: str, detail: str = "") -> None:
        for patient_id in dict.fromkeys(patient_ids):
            self._rows.append((utcnow(), user_id, patient_id, action[:40], detail[:MAX_DETAIL]))
        if len(self._rows) >= self.max_rows:
            self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="audit-batch")

    async def _run(self) -> None:
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval):
                    await self._wake.wait()
            self._wake.clear()
            await self.flush()

    async def flush(self) -> int:
        async with self._flushing:
            return await self._write()

    async def _write(self) -> int:
        rows, self._rows = self._rows, []
        if not rows:
            return 0
        try:
            async with self.db.transaction() as s:
                s.add_all([PatientAudit(at=at, user_id=user_id, patient_id=patient_id, action=action, detail=detail)
                           for at, user_id, patient_id, action, detail in rows])
        except BaseException as exc:  # cancelled or failed: the rows wait for the next flush
            self._rows[:0] = rows
            if not isinstance(exc, Exception):
                raise
            log.exception("could not write %d audit rows; keeping them for the next try", len(rows))
            return 0
        return len(rows)

    async def close(self) -> None:
        self._closing = True
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, 10)
            except (TimeoutError, asyncio.CancelledError, Exception):
                log.warning("the audit writer did not stop in time; writing what is left once more")
        if await self.flush() == 0 and self._rows:
            for at, user_id, patient_id, action, detail in self._rows:
                log.error("audit row not written: %s", json.dumps(
                    {"at": at.isoformat(), "user_id": user_id, "patient_id": patient_id, "action": action,
                     "detail": detail}, ensure_ascii=False))


AUDIT_BATCH_KEY = web.AppKey("audit_batch", AuditBatch)


async def audit_batch_ctx(app: web.Application) -> AsyncIterator[None]:
    batch = AuditBatch(app[DB_KEY])
    app[AUDIT_BATCH_KEY] = batch
    batch.start()
    yield
    await batch.close()


def audit_views(request: web.Request, patient_ids: Iterable[int], action: str) -> None:
    """Notes that the requester saw these patients (a list, a search, a lookup)."""
    from clinicall.auth.access import principal

    who = principal(request)
    detail = f"{request.method} {request.path_qs}"[:MAX_DETAIL]
    request.app[AUDIT_BATCH_KEY].add(who.user_id if who else None, patient_ids, action, detail)


def audit_pushed(app: web.Application, user_id: int | None, patient_ids: Iterable[int], action: str, detail: str) -> None:
    """Notes that a live feed showed this user these patients (a screen-pop on the agent's socket)."""
    if (batch := app.get(AUDIT_BATCH_KEY)) is not None:
        batch.add(user_id, patient_ids, action, detail[:MAX_DETAIL])

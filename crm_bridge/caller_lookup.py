"""Inbound caller identification at call-centre rates: lookups that arrive together share one query.

A burst of N calls is a handful of transactions instead of N: while `concurrency` batches are in the
database, every new lookup waits for the next batch. Each batch is one transaction that reads the
matches (one indexed lookup on `patient_phones.e164`) and writes the "caller_identified" audit rows of
the callers it found; it commits before any caller of the batch is answered, so a name that reached
a phone is always in the audit trail (no window on a crash, nothing left to flush at shutdown).
On PostgreSQL the batch is one statement (read and audit in a data-modifying CTE) sent as a cached
prepared statement outside an explicit transaction: one round trip, committed when it answers. On
SQLite it is one hand-off to the writer thread (Database.run_sync).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select

from clinicall.db import Database, utcnow
from crm_bridge.audit import MAX_DETAIL
from crm_bridge.models import Patient, PatientAudit, PatientPhone
from crm_bridge.phones import normalise

log = logging.getLogger(__name__)

IDENTIFIED = "caller_identified"
MATCHES = (
    select(PatientPhone.e164, Patient.id, Patient.full_name, Patient.care_status, Patient.assigned_agent_id,
           Patient.last_activity_at)
    .join(Patient, PatientPhone.patient_id == Patient.id)
    .where(PatientPhone.e164.in_(bindparam("numbers", expanding=True)), Patient.merged_into_id.is_(None))
)
AUDIT = insert(PatientAudit)


@dataclass(frozen=True)
class CallerMatch:
    patient_id: int
    full_name: str
    care_status: str
    assigned_agent_id: int | None
    phone_e164: str


@functools.lru_cache(maxsize=65536)
def caller_e164(raw_number: str, region: str) -> str | None:
    """E.164 of an untrusted caller ID (cached: the same callers call again and again)."""
    try:
        return normalise(raw_number, region if len(region) == 2 else "VN")
    except Exception:  # caller ID is untrusted: never fail the call over it
        return None


@functools.lru_cache(maxsize=64)
def _own_country(region: str) -> tuple[str, str, str] | None:
    """(country code, national prefix, international prefix) when the region's national prefix is a plain digit string that
    is simply dropped (VN "0", FR "0", US "1"), else None."""
    from phonenumbers import PhoneMetadata

    meta = PhoneMetadata.metadata_for_region(region.upper())
    prefix = meta.national_prefix if meta is not None else None
    if (not prefix or not prefix.isdigit() or meta.national_prefix_for_parsing not in (None, prefix)
            or meta.national_prefix_transform_rule or not (meta.international_prefix or "").isdigit()):
        return None
    return str(meta.country_code), prefix, meta.international_prefix


def lookup_key(raw_number: str, region: str) -> str | None:
    """The E.164 to look a caller ID up by. The clinic's own country's usual forms ("0912345678",
    "+84912345678") are rewritten directly; any other form goes through phonenumbers. A direct key is
    not checked for validity: only valid numbers are stored, so an invalid key finds nobody, as None would."""
    own = _own_country(region) if len(region) == 2 else None
    if own is not None and 8 <= len(raw_number) <= 16 and raw_number.lstrip("+").isdigit() and raw_number.isascii():
        code, prefix, international = own
        if raw_number.startswith("+" + code) and not raw_number.startswith(prefix, 1 + len(code)):
            return raw_number
        if raw_number.startswith(prefix) and not raw_number.startswith(international) \
                and len(raw_number) >= len(prefix) + 7:
            return f"+{code}{raw_number[len(prefix):]}"
    return caller_e164(raw_number, region)


def best_matches(rows: Iterable[Any]) -> dict[str, CallerMatch]:
    """Several patients on one number: the one with the most recent activity (then the newest record)."""
    best: dict[str, Any] = {}
    for row in rows:
        held = best.get(row.e164)
        if held is None or (row.last_activity_at, row.id) > (held.last_activity_at, held.id):
            best[row.e164] = row
    return {e164: CallerMatch(patient_id=row.id, full_name=row.full_name, care_status=row.care_status,
                              assigned_agent_id=row.assigned_agent_id, phone_e164=e164)
            for e164, row in best.items()}


# On PostgreSQL: the best match per number (as best_matches) and an audit row per identified call, in one
# statement; asyncpg keeps it prepared on each connection.
PG_IDENTIFY_AND_AUDIT = f"""
WITH found AS (
    SELECT DISTINCT ON (ph.e164) ph.e164, p.id, p.full_name, p.care_status, p.assigned_agent_id
    FROM patient_phones AS ph JOIN patients AS p ON p.id = ph.patient_id
    WHERE ph.e164 = ANY($1::varchar[]) AND p.merged_into_id IS NULL
    ORDER BY ph.e164, p.last_activity_at DESC, p.id DESC
), audited AS (
    INSERT INTO patient_audit (at, user_id, patient_id, action, detail)
    SELECT $2::timestamptz, NULL, found.id, '{IDENTIFIED}', left(wanted.detail, {MAX_DETAIL})
    FROM unnest($3::varchar[], $4::text[]) WITH ORDINALITY AS wanted(e164, detail, n)
    JOIN found ON found.e164 = wanted.e164
    ORDER BY wanted.n
)
SELECT e164, id, full_name, care_status, assigned_agent_id FROM found"""  # noqa: S608 (constants only)


async def identify_and_audit(db: Database, wanted: list[tuple[str, str]]) -> dict[str, CallerMatch]:
    """[(e164, audit detail)] -> the matches by number, with one audit row per identified call, committed."""
    numbers = sorted({e164 for e164, _ in wanted})
    if not db.is_postgres:
        return await db.run_sync(lambda connection: _identify_and_audit(connection, numbers, wanted))
    rows = await db.pg_fetch(PG_IDENTIFY_AND_AUDIT, numbers, utcnow(), [e164 for e164, _ in wanted],
                             [detail for _, detail in wanted])
    return {row["e164"]: CallerMatch(patient_id=row["id"], full_name=row["full_name"], care_status=row["care_status"],
                                     assigned_agent_id=row["assigned_agent_id"], phone_e164=row["e164"])
            for row in rows}


def _identify_and_audit(connection: Connection, numbers: list[str], wanted: list[tuple[str, str]]) -> dict[str, CallerMatch]:
    matches = best_matches(connection.execute(MATCHES, {"numbers": numbers}).all())
    if matches:
        now = utcnow()
        connection.execute(AUDIT, [
            {"at": now, "user_id": None, "patient_id": matches[e164].patient_id, "action": IDENTIFIED,
             "detail": detail[:MAX_DETAIL]} for e164, detail in wanted if e164 in matches])
    return matches


class CallerLookup:
    """`await lookup(raw_number, detail)` -> CallerMatch | None; batched as the module says."""

    def __init__(self, db: Database, region: str, concurrency: int = 2, max_batch: int = 500) -> None:
        self.db = db
        self.region = region
        self.concurrency = concurrency
        self.max_batch = max_batch
        self._waiting: list[tuple[str, str, asyncio.Future[CallerMatch | None]]] = []
        self._batches: set[asyncio.Task[None]] = set()
        self.queries = 0

    async def lookup(self, raw_number: str, detail: str) -> CallerMatch | None:
        e164 = lookup_key(raw_number, self.region)
        if e164 is None:
            return None
        future: asyncio.Future[CallerMatch | None] = asyncio.get_running_loop().create_future()
        self._waiting.append((e164, detail, future))
        self._start_batches()
        return await future

    def _start_batches(self) -> None:
        while self._waiting and len(self._batches) < self.concurrency:
            batch, self._waiting = self._waiting[:self.max_batch], self._waiting[self.max_batch:]
            task = asyncio.create_task(self._run(batch), name="caller-lookup")
            self._batches.add(task)
            task.add_done_callback(self._batch_done)

    def _batch_done(self, task: asyncio.Task[None]) -> None:
        self._batches.discard(task)
        self._start_batches()

    async def _run(self, batch: list[tuple[str, str, asyncio.Future[CallerMatch | None]]]) -> None:
        wanted = [(e164, detail) for e164, detail, future in batch if not future.done()]
        try:
            matches = await identify_and_audit(self.db, wanted) if wanted else {}
            self.queries += 1
        except BaseException as exc:
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(exc if isinstance(exc, Exception) else RuntimeError("lookup cancelled"))
            if not isinstance(exc, Exception):
                raise
            return
        for e164, _, future in batch:
            if not future.done():
                future.set_result(matches.get(e164))

    async def close(self) -> None:
        """Lets the batches in the database finish (their callers are answered, their audit committed)."""
        while self._batches:
            await asyncio.gather(*self._batches, return_exceptions=True)

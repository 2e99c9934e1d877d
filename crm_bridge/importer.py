"""HIS import: patients from a CSV export (UTF-8, with or without the BOM Excel writes), with a
column mapping, idempotent on the HIS id. Good rows are written in batches; every bad row is
reported with its line number and the reason, and never half-written."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert, select

from clinicall.db import Database, utcnow
from clinicall.problem import Problem
from crm_bridge.models import Patient, PatientAudit, PatientNameKey, PatientPhone
from crm_bridge.names import clean_name, fold, search_keys
from crm_bridge.phones import normalise

FIELDS = ("his_id", "full_name", "date_of_birth", "gender", "phone", "phone2", "address", "referring_doctor",
          "service_of_interest", "notes")
ALIASES: dict[str, tuple[str, ...]] = {
    "his_id": ("his id", "his", "ma bn", "ma benh nhan", "mabn", "patient id", "patient code", "ma"),
    "full_name": ("full name", "name", "ho ten", "ho va ten", "ten benh nhan", "patient name"),
    "date_of_birth": ("date of birth", "dob", "birth date", "birthday", "ngay sinh"),
    "gender": ("gender", "sex", "gioi tinh", "gioi"),
    "phone": ("phone", "phones", "phone number", "mobile", "so dien thoai", "dien thoai", "sdt", "dt"),
    "phone2": ("phone2", "phone 2", "sdt2", "sdt 2", "so dien thoai 2", "dien thoai 2"),
    "address": ("address", "dia chi"),
    "referring_doctor": ("referring doctor", "bac si gioi thieu", "bs gioi thieu", "doctor"),
    "service_of_interest": ("service of interest", "service", "dich vu", "dich vu quan tam"),
    "notes": ("notes", "note", "ghi chu"),
}
LIMITS = {"his_id": 64, "full_name": 200, "address": 500, "referring_doctor": 200, "service_of_interest": 200,
          "notes": 10000}
DATE_FORMATS = ("%Y-%m-%d", "%d/%m/%Y", "%d-%m-%Y", "%d.%m.%Y", "%Y/%m/%d")
GENDERS = {"m": "male", "male": "male", "nam": "male", "f": "female", "female": "female", "nu": "female",
           "other": "other", "khac": "other"}
BATCH = 1000
MAX_FILE_BYTES = 64 * 1024 * 1024
ERRORS_KEPT = 1000  # listed in the answer (bad_rows counts them all): the page shows them as a table
# Rows parsed between turns of the event loop: a large file must not hold every call, screen and kiosk while it
# is read (200,000 rows held the loop 11 s; the 64 MB a file may have, minutes)
ROWS_PER_TURN = 200


@dataclass
class ImportSummary:
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"rows": self.rows, "created": self.created, "updated": self.updated, "unchanged": self.unchanged,
                "bad_rows": len(self.errors), "errors": self.errors[:ERRORS_KEPT]}


@dataclass
class PatientRow:
    line: int
    his_id: str
    values: dict[str, Any]
    phones: list[tuple[str, str]]  # (e164, raw)
    folded: str


def parse_mapping(text: str | None, pairs: list[str] | None = None) -> dict[str, str] | None:
    """--mapping '{"Mã BN": "his_id"}' or --map "Mã BN=his_id" (repeatable)."""
    mapping: dict[str, str] = {}
    if text:
        try:
            loaded = json.loads(text)
        except json.JSONDecodeError as exc:
            raise Problem(422, "Bad mapping", f"The mapping is not valid JSON ({exc.msg}); "
                                              'write it like {"Mã BN": "his_id", "Họ tên": "full_name"}.') from None
        if not isinstance(loaded, dict) or not all(isinstance(k, str) and isinstance(v, str | None)
                                                   for k, v in loaded.items()):
            raise Problem(422, "Bad mapping", "The mapping must be a JSON object of CSV column -> field name.")
        mapping.update({k: v or "" for k, v in loaded.items()})
    for pair in pairs or []:
        column, sep, target = pair.partition("=")
        if not sep:
            raise Problem(422, "Bad mapping", f"--map {pair!r}: write it as COLUMN=FIELD, e.g. 'Mã BN=his_id'.")
        mapping[column.strip()] = target.strip()
    if not mapping:
        return None
    unknown = sorted({v for v in mapping.values() if v and v not in FIELDS})
    if unknown:
        raise Problem(422, "Bad mapping", f"Unknown field(s) {', '.join(unknown)}; map columns to {', '.join(FIELDS)}.")
    return mapping


def decode(data: bytes) -> str:
    if len(data) > MAX_FILE_BYTES:
        raise Problem(413, "File too large", f"Import at most {MAX_FILE_BYTES // 2**20} MB at once; split the file.")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise Problem(422, "Not UTF-8", f"The file is not UTF-8 (first bad byte on line {line}); "
                                        "save it as 'CSV UTF-8' and import again.") from None


def resolve_columns(header: list[str], mapping: dict[str, str] | None) -> dict[int, str]:
    columns: dict[int, str] = {}
    if mapping is not None:
        by_name = {h.strip(): i for i, h in enumerate(header)}
        missing = [c for c in mapping if c.strip() not in by_name]
        if missing:
            raise Problem(422, "Mapped column missing",
                          f"The file has no column {', '.join(repr(m) for m in missing)}; its columns are "
                          f"{', '.join(repr(h) for h in header)}.")
        for column, target in mapping.items():
            if target:
                columns[by_name[column.strip()]] = target
    else:
        lookup = {alias: f for f, aliases in ALIASES.items() for alias in (f.replace("_", " "), *aliases)}
        for i, name in enumerate(header):
            target = lookup.get(fold(name))
            if target and target not in columns.values():
                columns[i] = target
    for required in ("his_id", "full_name"):
        if required not in columns.values():
            raise Problem(422, "Column missing", f"No column maps to {required}; name a column {required!r} or "
                                                 f"pass a mapping such as --map 'Mã BN=his_id'.")
    return columns


def read_records(text: str, mapping: dict[str, str] | None
                 ) -> tuple[dict[int, str], int, Iterator[tuple[int, list[str]]]]:
    """(column index -> field, header width, (line number, cells) of each non-blank record)."""
    first_line = text.split("\n", 1)[0]
    delimiter = max((",", ";", "\t"), key=first_line.count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        raise Problem(422, "Empty file", "The file is empty; export the patients with a header row.") from None
    except csv.Error as exc:
        raise Problem(422, "Bad CSV", f"Line 1: {exc}.") from None
    columns = resolve_columns(header, mapping)

    def records() -> Iterator[tuple[int, list[str]]]:
        while True:
            start = reader.line_num + 1  # a quoted field may span lines: report where the record starts
            try:
                record = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield start, [f"\x00csv error: {exc}"]
                continue
            if record and any(cell.strip() for cell in record):
                yield start, record if len(record) == len(header) else [f"\x00{len(record)} columns"]

    return columns, len(header), records()


class RowError(str):
    """Why a row is bad: the English reason (the CLI prints it), with a stable code and the field for pages."""

    code: str
    field: str

    def __new__(cls, reason: str, code: str, field: str = "") -> RowError:
        made = super().__new__(cls, reason)
        made.code, made.field = code, field
        return made


def parse_row(line: int, record: list[str], columns: dict[int, str], width: int, region: str) -> PatientRow | str:
    """The row's values, or why it is bad."""
    if record and record[0].startswith("\x00"):
        if "columns" in record[0]:
            return RowError(f"the row has {record[0][1:].split()[0]} fields but the header has {width}", "row_width")
        return RowError(record[0][1:], "row_unreadable")
    raw = {target: record[i].replace("\r\n", "\n").strip() for i, target in columns.items()}
    for name, value in raw.items():
        if any(ord(ch) < 32 and ch not in "\t\n" for ch in value):
            return RowError(f"{name} contains control characters", "row_control_characters", name)
        if name in LIMITS and len(value) > LIMITS[name]:
            return RowError(f"{name} is longer than {LIMITS[name]} characters", "row_too_long", name)
    his_id = raw.get("his_id", "")
    if not his_id:
        return RowError("his_id is empty (every row needs the HIS id)", "row_his_id_empty", "his_id")
    name = clean_name(raw.get("full_name", ""))
    folded = fold(name)[:200]
    if not folded:
        return RowError("full_name is empty", "row_full_name_empty", "full_name")
    values: dict[str, Any] = {"full_name": name}
    if raw.get("date_of_birth"):
        value = raw["date_of_birth"]
        for fmt in DATE_FORMATS:
            try:
                values["date_of_birth"] = dt.datetime.strptime(value, fmt).date()
                break
            except ValueError:
                continue
        else:
            return RowError(f"date_of_birth {value[:30]!r} is not a date (use YYYY-MM-DD or DD/MM/YYYY)",
                            "row_bad_date", "date_of_birth")
        if not dt.date(1900, 1, 1) <= values["date_of_birth"] <= dt.date.today():
            return RowError(f"date_of_birth {value[:30]!r} is not a plausible birth date", "row_implausible_date",
                            "date_of_birth")
    if raw.get("gender"):
        gender = GENDERS.get(fold(raw["gender"]))
        if gender is None:
            return RowError(f"gender {raw['gender'][:20]!r} is not one of male/female/other (Nam/Nữ/Khác)",
                            "row_bad_gender", "gender")
        values["gender"] = gender
    for name_ in ("address", "referring_doctor", "service_of_interest", "notes"):
        if raw.get(name_):
            values[name_] = raw[name_]
    phones: list[tuple[str, str]] = []
    for column in ("phone", "phone2"):
        for part in filter(None, (p.strip() for p in raw.get(column, "").replace("|", ";").replace("/", ";")
                                  .replace(",", ";").split(";"))):
            e164 = normalise(part, region)
            if e164 is None:
                return RowError(f"{column} {part[:30]!r} is not a valid phone number", "row_bad_phone", column)
            if e164 not in {p for p, _ in phones}:
                phones.append((e164, part))
    return PatientRow(line=line, his_id=his_id, values=values, phones=phones, folded=folded)


async def import_csv(db: Database, data: bytes, *, mapping: dict[str, str] | None = None, user_id: int | None = None,
                     region: str = "VN", progress: Callable[[int], None] | None = None,
                     total: Callable[[int], None] | None = None) -> ImportSummary:
    text = await asyncio.to_thread(decode, data)
    columns, width, records = read_records(text, mapping)
    summary = ImportSummary()
    parsed = await asyncio.to_thread(list, records)
    if total:
        total(len(parsed))
    batch: dict[str, PatientRow] = {}
    for line, record in parsed:
        summary.rows += 1
        if summary.rows % ROWS_PER_TURN == 0:
            await asyncio.sleep(0)
        row = parse_row(line, record, columns, width, region)
        if isinstance(row, str):
            summary.errors.append({"line": line, "reason": str(row), "code": getattr(row, "code", "row_invalid"),
                                   "field": getattr(row, "field", "")})
        else:
            if row.his_id in batch or len(batch) >= BATCH:
                await write_batch(db, list(batch.values()), user_id, summary)
                if progress:
                    progress(len(batch))
                batch = {}
            batch[row.his_id] = row
            continue
        if progress:
            progress(1)
    if batch:
        await write_batch(db, list(batch.values()), user_id, summary)
        if progress:
            progress(len(batch))
    return summary


async def write_batch(db: Database, rows: list[PatientRow], user_id: int | None, summary: ImportSummary) -> None:
    now = utcnow()
    async with db.transaction() as s:
        existing = {p.his_id: p for p in (await s.scalars(
            select(Patient).where(Patient.his_id.in_([r.his_id for r in rows])))).all()}
        survivors = {p.merged_into_id for p in existing.values() if p.merged_into_id is not None}
        if survivors:
            live = {p.id: p for p in (await s.scalars(select(Patient).where(Patient.id.in_(survivors)))).all()}
            existing = {h: live.get(p.merged_into_id, p) if p.merged_into_id else p for h, p in existing.items()}
        fresh = [r for r in rows if r.his_id not in existing]
        audits: list[dict[str, Any]] = []
        if fresh:
            # Plain Core executemany, then one query for the new ids by HIS id: RETURNING in
            # parameter order would make SQLite insert row by row.
            await s.execute(insert(Patient.__table__), [
                {"his_id": r.his_id, "name_folded": r.folded, "care_status": "new", "created_at": now,
                 "updated_at": now, "last_activity_at": now, "address": "", "referring_doctor": "",
                 "service_of_interest": "", "notes": "", "date_of_birth": None, "gender": None, **r.values}
                for r in fresh])
            by_his = dict((await s.execute(select(Patient.his_id, Patient.id).where(
                Patient.his_id.in_([r.his_id for r in fresh])))).all())
            ids = [by_his[r.his_id] for r in fresh]
            keys = [{"patient_id": pid, "key": k} for pid, r in zip(ids, fresh, strict=True)
                    for k in search_keys(r.folded)]
            phones = [{"patient_id": pid, "e164": e164, "raw": raw, "label": "", "created_at": now}
                      for pid, r in zip(ids, fresh, strict=True) for e164, raw in r.phones]
            await s.execute(insert(PatientNameKey.__table__), keys)
            if phones:
                await s.execute(insert(PatientPhone.__table__), phones)
            audits += [{"at": now, "user_id": user_id, "patient_id": pid, "action": "import",
                        "detail": f"created from HIS row {r.line}"} for pid, r in zip(ids, fresh, strict=True)]
            summary.created += len(fresh)
        known = [(r, existing[r.his_id]) for r in rows if r.his_id in existing]
        if known:
            phone_rows = (await s.execute(select(PatientPhone.patient_id, PatientPhone.e164).where(
                PatientPhone.patient_id.in_([p.id for _, p in known])))).all()
            numbers: dict[int, set[str]] = {}
            for pid, e164 in phone_rows:
                numbers.setdefault(pid, set()).add(e164)
            for row, patient in known:
                changed = [k for k, v in row.values.items() if getattr(patient, k) != v]
                for k in changed:
                    setattr(patient, k, row.values[k])
                if "full_name" in changed:
                    patient.name_folded = row.folded
                    await s.execute(PatientNameKey.__table__.delete().where(PatientNameKey.patient_id == patient.id))
                    s.add_all(PatientNameKey(patient_id=patient.id, key=k) for k in search_keys(patient.name_folded))
                have = numbers.setdefault(patient.id, set())
                for e164, raw in row.phones:
                    if e164 not in have:
                        have.add(e164)
                        s.add(PatientPhone(patient_id=patient.id, e164=e164, raw=raw, label=""))
                        changed.append("phone")
                if changed:
                    patient.updated_at = now
                    summary.updated += 1
                    audits.append({"at": now, "user_id": user_id, "patient_id": patient.id, "action": "import",
                                   "detail": f"updated {', '.join(changed)} from HIS row {row.line}"})
                else:
                    summary.unchanged += 1
        if audits:
            await s.execute(insert(PatientAudit.__table__), audits)

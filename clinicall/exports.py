"""Excel (.xlsx) and CSV exports of list and statistics APIs: `GET <list API>?export=xlsx|csv&lang=vi`.

An export is the list request itself: the middleware lets the list's own handler answer (its role checks,
scoping, filters and audit are the export's), then turns the JSON rows into a file. Rooms declare which
of their routes export and their columns (`register_exports`). Text cells that a spreadsheet would run as a
formula (starting with = + - @, tab or CR) are neutralised with a leading apostrophe."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from clinicall.auth.access import principal
from clinicall.keys import SETTINGS_KEY
from clinicall.problem import Problem

DICTIONARY = Path(__file__).resolve().parent / "web" / "admin" / "i18n" / "common.json"
FORMATS = {"xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "csv": "text/csv; charset=utf-8"}
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
LANGUAGES = ("vi", "en", "zh")
MAX_CELL = 32_000  # Excel's limit is 32,767 characters per cell


@dataclass(frozen=True)
class Column:
    key: str
    kind: str = "text"  # text | number | date | datetime | phones | duration
    label: str = ""  # dictionary key (col.<label>); defaults to the key


@dataclass(frozen=True)
class Sheet:
    name: str  # dictionary key (sheet.<name>)
    rows: str  # the JSON field holding the list ("" when the body is the list)
    columns: tuple[Column, ...]


@dataclass(frozen=True)
class ExportSpec:
    filename: str
    sheets: tuple[Sheet, ...]
    patient_key: str = ""  # the rows' patient id field: each exported patient is audited


# Records that these patients' data left in an export (crm_bridge sets it: it keeps the audit trail).
ExportAudit = Callable[[web.Application, int | None, list[int], str], Awaitable[None]]
EXPORTS_KEY = web.AppKey("exports", dict[str, ExportSpec])
EXPORT_AUDIT_KEY = web.AppKey("export_audit", ExportAudit)


def register_exports(app: web.Application, specs: dict[str, ExportSpec]) -> None:
    """Route path (as declared, e.g. "/api/worklists/{kind}") -> how its JSON becomes a file."""
    app.setdefault(EXPORTS_KEY, {}).update(specs)  # type: ignore[arg-type]


def neutralise(value: Any) -> Any:
    if isinstance(value, str):
        value = value[:MAX_CELL]
        if value.startswith(FORMULA_STARTS):
            return "'" + value
    return value


def national(e164: str) -> str:
    if e164.startswith("+84") and e164[3:].isdigit():
        n = "0" + e164[3:]
        if len(n) == 10:
            return f"{n[:4]} {n[4:7]} {n[7:]}"
        if len(n) == 11:
            return f"{n[:3]} {n[3:7]} {n[7:]}"
        return n
    return e164


def day_text(value: dt.date, lang: str) -> str:
    return value.strftime("%Y-%m-%d" if lang == "zh" else "%d/%m/%Y")


def cell(value: Any, kind: str, lang: str, zone: ZoneInfo, words: dict[str, str]) -> Any:
    """One value as the pages show it: dates in the language's format, phones in the national form, codes
    by their label (a kind ending in "." is the dictionary prefix of the code's label)."""
    if value is None:
        return ""
    if kind.endswith("."):
        return words.get(f"{kind}{value}", str(value))
    try:
        if kind == "date" and isinstance(value, str):
            return day_text(dt.date.fromisoformat(value[:10]), lang)
        if kind == "datetime" and isinstance(value, str):
            moment = dt.datetime.fromisoformat(value)
            local = (moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)).astimezone(zone)
            return f"{day_text(local.date(), lang)} {local:%H:%M}"
    except ValueError:
        return str(value)
    if kind == "phones":
        phones = value if isinstance(value, list) else [value]
        return ", ".join(national(p.get("e164") or p.get("raw") or "" if isinstance(p, dict) else str(p)) for p in phones)
    if kind == "duration" and isinstance(value, int | float):
        return f"{int(value) // 60}:{int(value) % 60:02d}"
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return value


def rows_of(sheet: Sheet, body: Any) -> list[dict[str, Any]]:
    rows = body if not sheet.rows else (body.get(sheet.rows) if isinstance(body, dict) else None)
    return [row for row in rows or [] if isinstance(row, dict)]


def table(sheet: Sheet, rows: list[dict[str, Any]], lang: str, zone: ZoneInfo,
          words: dict[str, str]) -> tuple[list[str], list[list[Any]]]:
    headers = [words.get(f"col.{c.label or c.key}", c.label or c.key) for c in sheet.columns]
    lines = [[neutralise(cell(_get(row, c.key), c.kind, lang, zone, words)) for c in sheet.columns] for row in rows]
    return headers, lines


def _get(row: dict[str, Any], key: str) -> Any:
    value: Any = row
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def to_xlsx(tables: list[tuple[str, list[str], list[list[Any]]]]) -> bytes:
    from openpyxl import Workbook
    from openpyxl.cell.cell import TYPE_STRING

    book = Workbook()
    book.remove(book.active)  # type: ignore[arg-type]
    for title, headers, rows in tables:
        sheet = book.create_sheet(title=_sheet_title(title))
        sheet.append(headers)
        for row in rows:
            sheet.append(row)
        for column in sheet.iter_cols(min_row=2):
            for item in column:
                if isinstance(item.value, str):
                    item.data_type = TYPE_STRING  # never a formula, whatever the text
        for index, header in enumerate(headers, start=1):
            sheet.column_dimensions[sheet.cell(row=1, column=index).column_letter].width = max(10, min(40, len(header) + 4))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _sheet_title(title: str) -> str:
    return "".join(ch for ch in title if ch not in "[]:*?/\\")[:31] or "Sheet"


def to_csv(headers: list[str], rows: list[list[Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(headers)
    writer.writerows(rows)
    return ("\ufeff" + out.getvalue()).encode("utf-8")  # the BOM makes Excel read UTF-8


def dictionary(lang: str) -> dict[str, str]:
    words: dict[str, str] = json.loads(DICTIONARY.read_text(encoding="utf-8"))[lang]
    return words


async def audit_export(request: web.Request, spec: ExportSpec, rows: list[dict[str, Any]], fmt: str) -> None:
    hook = request.app.get(EXPORT_AUDIT_KEY)
    if not spec.patient_key or hook is None:
        return
    ids = sorted({row[spec.patient_key] for row in rows if isinstance(row.get(spec.patient_key), int)})
    who = principal(request)
    if ids:
        await hook(request.app, who.user_id if who else None, ids, f"export {fmt}: {request.path}"[:200])


@web.middleware
async def export_middleware(request: web.Request, handler: web.Handler) -> web.StreamResponse:
    fmt = request.query.get("export")
    if fmt is None or request.method != "GET":
        return await handler(request)
    resource = request.match_info.route.resource
    spec = request.app.get(EXPORTS_KEY, {}).get(resource.canonical if resource else "")
    if spec is None or fmt not in FORMATS:
        raise Problem(400, "No export", "This list cannot be exported in that format; use export=xlsx or export=csv "
                      "on a list that offers it.", code="export_unsupported")
    response = await handler(request)
    if response.status != 200 or not isinstance(response, web.Response) or response.text is None:
        return response
    settings = request.app[SETTINGS_KEY]
    lang = request.query.get("lang") if request.query.get("lang") in LANGUAGES else settings.clinic.language
    words = dictionary(lang)
    zone = settings.clinic.zone()
    body = json.loads(response.text)
    rows = {s.name: rows_of(s, body) for s in spec.sheets}
    tables = [(words.get(f"sheet.{s.name}", s.name), *table(s, rows[s.name], lang, zone, words)) for s in spec.sheets]
    await audit_export(request, spec, [row for sheet_rows in rows.values() for row in sheet_rows], fmt)
    if fmt == "xlsx":
        payload = to_xlsx(tables)
    else:
        wanted = request.query.get("sheet")
        chosen = next((t for s, t in zip(spec.sheets, tables, strict=True) if s.name == wanted), tables[0])
        payload = to_csv(chosen[1], chosen[2])
    stamp = dt.datetime.now(zone).strftime("%Y%m%d-%H%M")
    return web.Response(body=payload, headers={
        "Content-Type": FORMATS[fmt], "Cache-Control": "no-store",
        "Content-Disposition": f'attachment; filename="{spec.filename}-{stamp}.{fmt}"'})

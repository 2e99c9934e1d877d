"""Asterisk's own CEL records, read back from the database Asterisk writes them to, as AMI `Event: CEL`
messages: what happened while clinicall was not listening (config/asterisk/cel_*.conf, docs/telephony.md).

telephony.cel_database names the database: a SQLite file written by cel_sqlite3_custom (table `cel`,
columns as config/asterisk/cel_sqlite3_custom.conf) or a postgresql:// URL of cel_pgsql's database
(table `cel` of config/asterisk/cel_pgsql.sql; times in UTC, usegmtime = yes). Read-only and bounded;
a missing, locked or unreachable database is logged and reads as no rows (`last_error` says why).

Each row becomes the dict cel_manager would have sent, key for key (EventTime as AMI formats it: local
time of the given zone, by default this machine's, as Asterisk's on the same machine; whole seconds), plus one key AMI lacks: `EventTimestamp`, the epoch time with
the microseconds the database keeps.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

log = logging.getLogger(__name__)

AMA_FLAGS = {"1": "OMIT", "2": "BILLING", "3": "DOCUMENTATION"}
# AMI header <- database column, in cel_manager's order
FIELDS = (
    ("EventName", "eventtype"), ("AccountCode", "accountcode"), ("CallerIDnum", "cid_num"),
    ("CallerIDname", "cid_name"), ("CallerIDani", "cid_ani"), ("CallerIDrdnis", "cid_rdnis"),
    ("CallerIDdnid", "cid_dnid"), ("Exten", "exten"), ("Context", "context"), ("Channel", "channame"),
    ("Application", "appname"), ("AppData", "appdata"), ("EventTime", "eventtime"), ("AMAFlags", "amaflags"),
    ("UniqueID", "uniqueid"), ("LinkedID", "linkedid"), ("Userfield", "userfield"), ("Peer", "peer"),
    ("PeerAccount", "peeraccount"), ("Extra", "extra"),
)
LINKEDIDS_PER_QUERY = 500


def _text(value: object) -> str:
    return "" if value is None else str(value)


def _epoch(value: object) -> float | None:
    """eventtime as cel_sqlite3_custom writes it (epoch.usec text) or as cel_pgsql does (UTC timestamp)."""
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).timestamp()
    if isinstance(value, int | float):
        return float(value)
    text = _text(value).strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)).timestamp()


def to_ami(row: Mapping[str, Any], tz: dt.tzinfo | None = None) -> dict[str, str] | None:
    """One database row as the AMI CEL event; None when its eventtime cannot be read."""
    epoch = _epoch(row.get("eventtime"))
    if epoch is None:
        return None
    event = {"Event": "CEL", "Privilege": "call,all"}
    for header, column in FIELDS:
        event[header] = _text(row.get(column))
    if row.get("userdeftype") and event["EventName"] in ("USER_DEFINED", ""):
        event["UserDefType"] = _text(row["userdeftype"])
    event["AMAFlags"] = AMA_FLAGS.get(event["AMAFlags"], event["AMAFlags"])
    event["EventTime"] = dt.datetime.fromtimestamp(int(epoch), tz).strftime("%Y-%m-%d %H:%M:%S")
    event["EventTimestamp"] = f"{epoch:.6f}"
    return event


def _chunks(linkedids: set[str] | None) -> list[list[str] | None]:
    if linkedids is None:
        return [None]
    ordered = sorted(linkedids)
    return [ordered[i:i + LINKEDIDS_PER_QUERY] for i in range(0, len(ordered), LINKEDIDS_PER_QUERY)]


class CelSource:
    """`await source.read(since=..., linkedids=...)`: the CEL rows in the order Asterisk wrote them."""

    def __init__(self, target: str, *, max_rows: int = 100_000, timeout: float = 5.0,
                 tz: dt.tzinfo | None = None) -> None:
        self.target = target
        self.max_rows = max_rows
        self.timeout = timeout
        self.tz = tz  # the zone Asterisk formats EventTime in; None: this machine's local time
        self.last_error: str | None = None
        self.truncated = False
        self.postgres = target.split(":", 1)[0].split("+", 1)[0] in ("postgresql", "postgres")

    def describe(self) -> str:
        """The target without a password, for logs."""
        if not self.postgres:
            return self.target
        parts = urlsplit(self.target)
        return f"{parts.scheme}://{parts.hostname or ''}{parts.path}"

    async def read(self, *, since: dt.datetime | None = None,
                   linkedids: set[str] | None = None) -> list[dict[str, str]]:
        if linkedids is not None and not linkedids:
            return []
        try:
            if self.postgres:
                rows = await asyncio.wait_for(self._read_postgres(since, linkedids), self.timeout * 2)
            else:
                rows = await asyncio.to_thread(self._read_sqlite, since, linkedids)
        except Exception as exc:  # noqa: BLE001 - any failure of the foreign database reads as no rows
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.warning("CEL database %s not read: %s", self.describe(), self.last_error)
            return []
        self.last_error = None
        self.truncated = len(rows) > self.max_rows
        del rows[self.max_rows:]
        events = [e for e in (to_ami(r, self.tz) for r in rows) if e is not None]
        if len(events) < len(rows):
            log.warning("CEL database %s: %d rows without a readable eventtime left out",
                        self.describe(), len(rows) - len(events))
        return events

    # ---- SQLite (cel_sqlite3_custom) ----------------------------------------------------------------

    def _read_sqlite(self, since: dt.datetime | None, linkedids: set[str] | None) -> list[dict[str, Any]]:
        path = Path(self.target)
        if not path.is_file():
            raise FileNotFoundError(f"no such file {path}")
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=self.timeout)
        conn.row_factory = sqlite3.Row
        try:
            rows: list[dict[str, Any]] = []
            for chunk in _chunks(linkedids):
                where, args = ["1 = 1"], []
                if since is not None:
                    where.append("CAST(eventtime AS REAL) >= ?")
                    args.append(since.timestamp())
                if chunk is not None:
                    where.append(f"linkedid IN ({','.join('?' * len(chunk))})")
                    args.extend(chunk)
                sql = f"SELECT * FROM cel WHERE {' AND '.join(where)} ORDER BY AcctId LIMIT ?"  # noqa: S608
                rows.extend(dict(r) for r in conn.execute(sql, (*args, self._left(rows))))
            return self._bounded(rows, "AcctId")
        finally:
            conn.close()

    # ---- PostgreSQL (cel_pgsql) ---------------------------------------------------------------------

    async def _read_postgres(self, since: dt.datetime | None, linkedids: set[str] | None) -> list[dict[str, Any]]:
        import asyncpg

        parts = urlsplit(self.target.replace("+asyncpg", "", 1))
        query = dict(p.split("=", 1) for p in parts.query.split("&") if "=" in p)
        conn = await asyncpg.connect(
            host=unquote(query.get("host", parts.hostname or "")) or None, port=parts.port or None,
            user=unquote(parts.username or "") or None, password=unquote(parts.password or "") or None,
            database=unquote(parts.path.lstrip("/")) or None, timeout=self.timeout,
            server_settings={"application_name": "clinicall-cel", "default_transaction_read_only": "on"})
        try:
            rows: list[dict[str, Any]] = []
            for chunk in _chunks(linkedids):
                where, args = ["true"], []
                if since is not None:
                    args.append(since.astimezone(dt.UTC).replace(tzinfo=None))
                    where.append(f"eventtime >= ${len(args)}")
                if chunk is not None:
                    args.append(chunk)
                    where.append(f"linkedid = ANY(${len(args)}::text[])")
                args.append(self._left(rows))
                sql = f"SELECT * FROM cel WHERE {' AND '.join(where)} ORDER BY eventtime, id LIMIT ${len(args)}"  # noqa: S608
                rows.extend(dict(r) for r in await conn.fetch(sql, *args, timeout=self.timeout))
            return self._bounded(rows, "id")
        finally:
            await conn.close()

    def _left(self, rows: list[dict[str, Any]]) -> int:
        return max(self.max_rows - len(rows), 0) + 1

    def _bounded(self, rows: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
        """Oldest first; one row past max_rows is kept so that read() can tell the answer was cut."""
        rows.sort(key=lambda r: (_epoch(r.get("eventtime")) or 0.0, r.get(key) or 0))
        if len(rows) > self.max_rows:
            log.warning("CEL database %s: more than %d rows asked for; the oldest %d returned",
                        self.describe(), self.max_rows, self.max_rows)
        return rows[:self.max_rows + 1]


def cel_source(target: str, *, tz: dt.tzinfo | None = None) -> CelSource | None:
    """The source named by telephony.cel_database; None when it is empty (off)."""
    target = target.strip()
    return CelSource(target, tz=tz) if target else None

"""CelSource reads back the CEL rows a real Asterisk 22 wrote (cel_sqlite3_custom into SQLite, cel_pgsql
into PostgreSQL, recorded in tests/fixtures/asterisk/rig) and gives them exactly as the CEL events the
same Asterisk sent over AMI in the same run; a missing, locked or unreachable database reads as nothing."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import asyncpg
import pytest

from telephony.cel_source import CelSource, cel_source
from telephony.wire import StreamParser
from tests.servers import Postgres, free_port

RIG = Path(__file__).resolve().parents[1] / "fixtures" / "asterisk" / "rig"
CONFIG = Path(__file__).resolve().parents[2] / "config" / "asterisk"
# The sessions of each recorded run, in order (the .all sessions read every class).
RUNS = {
    "restart_then_stop": ["restart_then_stop", "restart_then_stop_after_restart", "restart_then_stop_after_stop"],
    "ended_while_disconnected": ["ended_while_disconnected", "ended_while_disconnected_reconnect"],
}


def ami_cel(run: str) -> list[dict[str, str]]:
    """The CEL events Asterisk sent over AMI during the run (the rig user's sessions)."""
    events = []
    for session in RUNS[run]:
        parser = StreamParser()
        events += [m for m in parser.feed((RIG / f"{session}.all.recv.raw").read_bytes()) if m.get("Event") == "CEL"]
    return events


def sqlite_db(run: str, path: Path) -> Path:
    with sqlite3.connect(path) as conn:
        conn.executescript((RIG / f"{run}.cel.sqlite.sql").read_text())
    return path


def without_timestamp(events: list[dict[str, str]]) -> list[dict[str, str]]:
    return [{k: v for k, v in e.items() if k != "EventTimestamp"} for e in events]


def assert_same_as_ami(read: list[dict[str, str]], run: str) -> None:
    """Every AMI CEL event is there, in the same order, header for header. In restart_then_stop an AMI
    client listened throughout (Asterisk sends every hangup before Shutdown): the same rows exactly;
    in ended_while_disconnected the database also has what happened while nobody listened."""
    ami = [dict(e) for e in ami_cel(run)]
    assert ami, "the recording holds CEL events"
    rows = without_timestamp(read)
    position = 0
    for event in ami:
        while position < len(rows) and rows[position] != event:
            position += 1
        assert position < len(rows), f"AMI event not in the database, in order: {event}"
        position += 1
    assert len(rows) > len(ami) if run == "ended_while_disconnected" else rows == ami
    assert all(list(r) == list(ami[0]) for r in rows if "UserDefType" not in r), "AMI's header order"


@pytest.mark.parametrize("run", sorted(RUNS))
async def test_sqlite_rows_read_as_the_ami_cel_events(run: str, tmp_path: Path) -> None:
    source = CelSource(str(sqlite_db(run, tmp_path / "master.db")), tz=dt.UTC)
    read = await source.read()
    assert source.last_error is None and not source.truncated
    assert_same_as_ami(read, run)
    stamps = [float(e["EventTimestamp"]) for e in read]
    assert stamps == sorted(stamps)
    assert all(e["EventTime"] == dt.datetime.fromtimestamp(int(s), dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
               for e, s in zip(read, stamps, strict=True))


async def test_the_calls_that_ended_with_no_client_are_in_the_database(tmp_path: Path) -> None:
    source = CelSource(str(sqlite_db("ended_while_disconnected", tmp_path / "master.db")), tz=dt.UTC)
    read = await source.read()
    ami_ends = {e["LinkedID"] for e in ami_cel("ended_while_disconnected") if e["EventName"] == "LINKEDID_END"}
    db_ends = {e["LinkedID"] for e in read if e["EventName"] == "LINKEDID_END"}
    calls = {e["LinkedID"] for e in read if e["EventName"] == "CHAN_START"}
    assert db_ends == calls and len(calls) == 3, "every call of the run ended, as the database says"
    assert not ami_ends & calls, "...and AMI told nobody"


async def test_since_and_linkedids_bound_the_rows(tmp_path: Path) -> None:
    source = CelSource(str(sqlite_db("restart_then_stop", tmp_path / "master.db")), tz=dt.UTC)
    everything = await source.read()
    linkedids = sorted({e["LinkedID"] for e in everything})
    one = await source.read(linkedids={linkedids[-1]})
    assert one and {e["LinkedID"] for e in one} == {linkedids[-1]}
    assert one == [e for e in everything if e["LinkedID"] == linkedids[-1]]
    assert await source.read(linkedids=set()) == []
    middle = float(everything[len(everything) // 2]["EventTimestamp"])
    later = await source.read(since=dt.datetime.fromtimestamp(middle, dt.UTC))
    assert later == [e for e in everything if float(e["EventTimestamp"]) >= middle]

    small = CelSource(source.target, max_rows=5, tz=dt.UTC)
    assert await small.read() == everything[:5] and small.truncated


async def test_a_missing_locked_or_foreign_database_reads_as_nothing(tmp_path: Path) -> None:
    missing = CelSource(str(tmp_path / "nowhere.db"))
    assert await missing.read() == [] and "nowhere.db" in (missing.last_error or "")

    path = sqlite_db("restart_then_stop", tmp_path / "master.db")
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        locked = CelSource(str(path), timeout=0.2)
        assert await locked.read() == [] and "locked" in (locked.last_error or "")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert await locked.read() != [] and locked.last_error is None

    other = tmp_path / "other.db"
    sqlite3.connect(other).close()
    foreign = CelSource(str(other))
    assert await foreign.read() == [] and "cel" in (foreign.last_error or "")

    unreachable = CelSource(f"postgresql://nobody@127.0.0.1:{free_port()}/asterisk", timeout=1)
    assert await unreachable.read() == [] and unreachable.last_error


async def test_read_only(tmp_path: Path) -> None:
    path = sqlite_db("restart_then_stop", tmp_path / "master.db")
    before = path.read_bytes()
    await CelSource(str(path)).read()
    assert path.read_bytes() == before


async def test_a_row_with_an_unreadable_time_is_left_out(tmp_path: Path) -> None:
    path = sqlite_db("restart_then_stop", tmp_path / "master.db")
    with sqlite3.connect(path) as conn:
        total = conn.execute("SELECT count(*) FROM cel").fetchone()[0]
        conn.execute("UPDATE cel SET eventtime = 'garbage' WHERE AcctId = (SELECT min(AcctId) FROM cel)")
    assert len(await CelSource(str(path)).read()) == total - 1


def test_the_setting_turns_it_on() -> None:
    assert cel_source("") is None and cel_source("  ") is None
    sqlite = cel_source("/var/log/asterisk/master.db")
    assert sqlite is not None and not sqlite.postgres
    pg = cel_source("postgresql://reader:s3cret@db.example/asterisk")
    assert pg is not None and pg.postgres and "s3cret" not in pg.describe()


# ---- PostgreSQL: the rows the real cel_pgsql wrote, loaded into a table made by cel_pgsql.sql ----------

@pytest.fixture
async def cel_pg(postgres: Postgres) -> str:
    """A fresh database holding cel_pgsql's table and the rows it wrote in the restart_then_stop run."""
    name = f"cel_{free_port()}"
    admin = await asyncpg.connect(postgres.url.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = postgres.database_url(name).replace("postgresql+asyncpg://", "postgresql://", 1)
    conn = await asyncpg.connect(url)
    try:
        await conn.execute((CONFIG / "cel_pgsql.sql").read_text())
        await conn.execute((CONFIG / "cdr_pgsql.sql").read_text())
        await conn.execute((RIG / "restart_then_stop.cel.pgsql.sql").read_text())
    finally:
        await conn.close()
    return url


async def test_postgresql_rows_read_as_the_ami_cel_events(cel_pg: str) -> None:
    source = CelSource(cel_pg, tz=dt.UTC)
    read = await source.read()
    assert source.last_error is None
    assert_same_as_ami(read, "restart_then_stop")

    # the same rows as SQLite got from the same Asterisk at the same moments
    with sqlite3.connect(":memory:") as conn:
        conn.executescript((RIG / "restart_then_stop.cel.sqlite.sql").read_text())
        lite = sorted(r[0] for r in conn.execute("SELECT eventtype || '|' || channame || '|' || uniqueid FROM cel"))
    assert sorted(f"{e['EventName']}|{e['Channel']}|{e['UniqueID']}" for e in read) == lite

    linkedid = read[-1]["LinkedID"]
    assert await source.read(linkedids={linkedid}) == [e for e in read if e["LinkedID"] == linkedid]
    middle = dt.datetime.fromtimestamp(float(read[len(read) // 2]["EventTimestamp"]), dt.UTC)
    assert await source.read(since=middle) == [e for e in read if float(e["EventTimestamp"]) >= middle.timestamp()]
    asyncpg_url = cel_pg.replace("postgresql://", "postgresql+asyncpg://", 1)
    assert await CelSource(asyncpg_url, tz=dt.UTC).read() == read

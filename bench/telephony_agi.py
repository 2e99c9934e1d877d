"""FastAGI identify latency: N patients on PostgreSQL, C concurrent Asterisk sessions.

    .venv/bin/python bench/telephony_agi.py                      # 1,000,000 patients, 200 concurrent
    .venv/bin/python bench/telephony_agi.py --patients 20000 --sessions 2000

PostgreSQL: CLINICALL_BENCH_DATABASE_URL (a postgresql+asyncpg:// URL of a maintenance database
the script may create a database from), else a throwaway server from the pgserver wheel. The
patients are bulk-loaded with COPY into crm_bridge's tables (through crm_bridge.models' column
definitions). The app (FastAGI on a free loopback port) runs in this process; the Asterisk side runs
in a separate process, so its work does not share the server's event loop. Each session replays the
recorded header of inbound_call.fastagi.recv.raw with a random caller ID (90 % known patients,
10 % unknown numbers), answers every command `200 result=1`, and is timed from connect to the
server closing the socket (what the dialplan waits for).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TRACE = ROOT / "tests" / "fixtures" / "asterisk" / "inbound_call.fastagi.recv.raw"
MOBILE_PREFIXES = ("90", "91", "93", "94", "96", "97", "98")
AGENTS = 20


def phone_of(index: int) -> str:
    prefix = MOBILE_PREFIXES[index % len(MOBILE_PREFIXES)]
    return f"+84{prefix}{index // len(MOBILE_PREFIXES):07d}"


def national(e164: str) -> str:
    return "0" + e164[3:]


def header_template() -> bytes:
    raw = TRACE.read_bytes()
    return raw[: raw.index(b"\n\n") + 2]


# ---------------------------------------------------------------- Asterisk side (child process)
async def one_session(port: int, header: bytes) -> tuple[float, int]:
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(header)
    commands = 0
    while await reader.readline():
        commands += 1
        writer.write(b"200 result=1\n")
    writer.close()
    return time.perf_counter() - started, commands


async def drive(port: int, patients: int, sessions: int, concurrency: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    template = header_template()
    callerids = []
    for _ in range(sessions):
        if rng.random() < 0.9:
            e164 = phone_of(rng.randrange(patients))
            number = e164 if rng.random() < 0.3 else national(e164)
        else:
            number = f"0{rng.choice(('81', '83', '85', '88'))}{rng.randrange(10**7):07d}"  # not a patient
        callerids.append(number.encode())
    headers = [re.sub(rb"(?m)^agi_callerid: .*$", b"agi_callerid: " + c, template) for c in callerids]

    semaphore = asyncio.Semaphore(concurrency)

    async def bounded(header: bytes) -> tuple[float, int]:
        async with semaphore:
            return await one_session(port, header)

    await asyncio.gather(*(bounded(h) for h in headers[: min(200, sessions)]))  # warm-up
    started = time.perf_counter()
    results = await asyncio.gather(*(bounded(h) for h in headers))
    elapsed = time.perf_counter() - started
    latencies = sorted(r[0] for r in results)
    return {"sessions": sessions, "elapsed": elapsed, "latencies": latencies,
            "commands": sum(r[1] for r in results), "empty": sum(1 for r in results if r[1] == 0)}


def client_main(args: argparse.Namespace) -> None:
    result = asyncio.run(drive(args.port, args.patients, args.sessions, args.concurrency, args.seed))
    print(json.dumps(result))


# ---------------------------------------------------------------- server side
def column_values(table: Any, given: dict[str, Any]) -> list[str]:
    """The columns to COPY: every column we give, plus every NOT NULL column with a default."""
    names = []
    for column in table.columns:
        if column.name in given or (not column.nullable and column.default is not None):
            names.append(column.name)
        elif not column.nullable and not column.primary_key and column.server_default is None:
            raise SystemExit(f"bench: {table.name}.{column.name} is NOT NULL without a default; teach the loader")
    return names


def default_of(column: Any) -> Any:
    default = column.default
    if default.is_scalar:
        return default.arg
    return default.arg(None)


async def load_patients(url: str, count: int, agent_ids: list[int]) -> None:
    import asyncpg

    from clinicall.db import utcnow
    from crm_bridge.models import Patient, PatientPhone

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        now = utcnow()
        patients = Patient.__table__
        phones = PatientPhone.__table__
        first = ["Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Phan", "Vũ", "Đặng", "Bùi", "Đỗ"]
        middle = ["Văn", "Thị", "Hữu", "Minh", "Thu", "Ngọc"]
        last = ["An", "Bình", "Cường", "Dung", "Giang", "Hà", "Hùng", "Lan", "Mai", "Nam", "Phúc", "Trang"]
        batch = 50_000
        started = time.perf_counter()
        for start in range(0, count, batch):
            ids = range(start + 1, min(count, start + batch) + 1)
            patient_rows, phone_rows = [], []
            for pid in ids:
                name = f"{first[pid % 10]} {middle[pid % 6]} {last[pid % 12]}"
                given = {"id": pid, "full_name": name, "name_folded": name.lower(), "care_status": "in_treatment",
                         "assigned_agent_id": agent_ids[pid % len(agent_ids)] if pid % 3 else None,
                         "last_activity_at": now, "created_at": now, "updated_at": now}
                patient_rows.append(given)
                e164 = phone_of(pid - 1)
                phone_rows.append({"id": pid, "patient_id": pid, "e164": e164, "raw": national(e164),
                                   "label": "", "created_at": now})
            for table, rows in ((patients, patient_rows), (phones, phone_rows)):
                names = column_values(table, rows[0])
                defaults = {c.name: default_of(c) for c in table.columns if c.name in names and c.name not in rows[0]}
                records = [tuple(row.get(n, defaults.get(n)) for n in names) for row in rows]
                await conn.copy_records_to_table(table.name, records=records, columns=names)
            done = min(count, start + batch)
            rate = done / (time.perf_counter() - started)
            print(f"\r  loaded {done:,}/{count:,} patients ({rate:,.0f}/s)", end="", file=sys.stderr, flush=True)
        print(file=sys.stderr)
        for table in (patients, phones):
            await conn.execute(f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), {count})")
            await conn.execute(f"ANALYZE {table.name}")
    finally:
        await conn.close()


async def prepare_database(args: argparse.Namespace) -> tuple[str, Any]:
    import asyncpg

    from clinicall.db import Database
    from clinicall.migrate import migrate
    from tests.servers import Postgres, start_postgres

    server: Postgres
    if args.database_url:
        server = Postgres(url=args.database_url)
    else:
        server = start_postgres()
    name = f"bench_agi_{args.patients}"
    admin = await asyncpg.connect(server.url.replace("postgresql+asyncpg://", "postgresql://", 1))
    exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
    if exists and args.fresh:
        await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
        exists = False
    if not exists:
        await admin.execute(f"CREATE DATABASE {name}")
    await admin.close()
    url = server.database_url(name)
    db = Database(url)
    await migrate(db)
    from sqlalchemy import text

    async with db.session() as s:
        loaded = (await s.execute(text("SELECT count(*) FROM patients"))).scalar_one()
    if loaded != args.patients:
        if loaded:
            raise SystemExit(f"bench database {name} holds {loaded} patients; rerun with --fresh")
        from clinicall.auth import service as auth_service

        agent_ids = []
        for n in range(AGENTS):
            user = await auth_service.create_user(db, f"agent{n:02d}", "bench-password-123", ["agent"],
                                                  f"Agent {n}", str(2000 + n))
            agent_ids.append(user.id)
        print(f"loading {args.patients:,} patients into {name} ...", file=sys.stderr)
        await load_patients(url, args.patients, agent_ids)
    await db.dispose()
    return url, server


async def server_main(args: argparse.Namespace) -> None:
    from aiohttp import web

    from clinicall.app import create_app
    from clinicall.settings import Settings
    from telephony.agi import FASTAGI_KEY

    url, pg = await prepare_database(args)
    data_dir = tempfile.mkdtemp(prefix="bench-agi-")
    settings = Settings(data_dir=data_dir, database={"url": url},
                        telephony={"agi_enabled": True, "agi_port": 0, "agi_timeout_seconds": 10.0})
    app = create_app(settings)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        port = app[FASTAGI_KEY].port
        load_before = os.getloadavg()[0]
        cpu_before = time.process_time()
        child = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--client", "--port", str(port), "--patients", str(args.patients),
            "--sessions", str(args.sessions), "--concurrency", str(args.concurrency), "--seed", str(args.seed),
            stdout=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)})
        out, _ = await child.communicate()
        server_cpu = time.process_time() - cpu_before
        load_after = os.getloadavg()[0]
        result = json.loads(out)
        health = app[FASTAGI_KEY].health()
    finally:
        await runner.cleanup()
        if not args.database_url and hasattr(pg, "stop"):
            pg.stop()

    lat = result["latencies"]

    def pct(p: float) -> float:
        return lat[min(len(lat) - 1, int(p / 100 * len(lat)))] * 1000

    print(f"FastAGI identify, {args.patients:,} patients on PostgreSQL, {args.concurrency} concurrent sessions, "
          f"{result['sessions']:,} sessions (after 200 warm-up)")
    print(f"  p50 {pct(50):.1f} ms   p90 {pct(90):.1f} ms   p99 {pct(99):.1f} ms   max {lat[-1] * 1000:.1f} ms   "
          f"mean {statistics.fmean(lat) * 1000:.1f} ms")
    print(f"  throughput {result['sessions'] / result['elapsed']:,.0f} sessions/s; "
          f"{result['commands'] / result['sessions']:.2f} commands/session; sessions with no command: {result['empty']}")
    total = result["sessions"] + min(200, result["sessions"])
    print(f"  server: served {health['served']}, failed {health['failed']}; server process CPU "
          f"{server_cpu / total * 1000:.1f} ms per session (incl. warm-up; PostgreSQL's own CPU not counted)")
    print(f"  machine: {os.cpu_count()} CPUs, load average {load_before:.1f} before / {load_after:.1f} after")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=1_000_000)
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--database-url", default=os.environ.get("CLINICALL_BENCH_DATABASE_URL"))
    parser.add_argument("--fresh", action="store_true", help="drop and reload the bench database")
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        client_main(args)
    else:
        asyncio.run(server_main(args))


if __name__ == "__main__":
    main()

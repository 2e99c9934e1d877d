"""FastAGI identify on PostgreSQL with N patients: an open loop (calls arriving at random at a fixed rate:
latency) and a closed loop (C sessions kept in flight: throughput), against the goals of issue 16.

    .venv/bin/python bench/telephony_agi.py                      # 1,000,000 patients; 200 calls/s; 200 in flight
    .venv/bin/python bench/telephony_agi.py --patients 20000 --seconds 5 --sessions 2000   # what `make bench` runs
    .venv/bin/python bench/telephony_agi.py --workers 2          # FastAGI in 2 processes on one port

PostgreSQL: CLINICALL_BENCH_DATABASE_URL (a postgresql+asyncpg:// URL of a maintenance database
the script may create a database from), else a throwaway server from the pgserver wheel. The
patients are bulk-loaded with COPY into crm_bridge's tables (through crm_bridge.models' column
definitions) once per size and kept (--fresh reloads). The app (FastAGI on a free loopback port) runs
in this process (with --workers N, N-1 more `clinicall fastagi-worker` processes share the port);
the Asterisk side runs in a separate process, so its work does not share the server's event loop.
Each session replays the recorded header of inbound_call.fastagi.recv.raw with a random caller ID
(90 % known patients in mixed written forms, 10 % unknown numbers), answers every command
`200 result=1`, and is timed from connect to the server closing the socket (the last reply: what the
dialplan waits for). A known caller whose session set no PATIENT_ID counts as unidentified.
`CLINICALL_BENCH_SMALL=1` (set by `make bench`) makes the defaults small.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import os
import random
import re
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
WARM_UP = 200  # sessions before the measured ones


def phone_of(index: int) -> str:
    prefix = MOBILE_PREFIXES[index % len(MOBILE_PREFIXES)]
    return f"+84{prefix}{index // len(MOBILE_PREFIXES):07d}"


def national(e164: str) -> str:
    return "0" + e164[3:]


def header_template() -> bytes:
    raw = TRACE.read_bytes()
    return raw[: raw.index(b"\n\n") + 2]


# ---------------------------------------------------------------- Asterisk side (child process)
class AsteriskSide(asyncio.Protocol):
    """One session as res_agi plays it: the header on connect, `200 result=1` to every command line; a protocol
    rather than streams, so that the client's own CPU per session stays small beside the server's."""

    def __init__(self, header: bytes, done: asyncio.Future[tuple[float, int, bool]], started: float) -> None:
        self.header, self.done, self.started = header, done, started
        self.buffer = b""
        self.commands = 0
        self.identified = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        transport.write(self.header)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        *lines, self.buffer = self.buffer.split(b"\n")
        for line in lines:
            self.commands += 1
            self.identified = self.identified or line.startswith(b"SET VARIABLE PATIENT_ID ")
            self.transport.write(b"200 result=1\n")  # type: ignore[attr-defined]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result((time.perf_counter() - self.started, self.commands, self.identified))


async def one_session(port: int, header: bytes) -> tuple[float, int, bool]:
    """(seconds from connect to the server closing, commands answered, PATIENT_ID set)"""
    started = time.perf_counter()
    loop = asyncio.get_running_loop()
    done: asyncio.Future[tuple[float, int, bool]] = loop.create_future()
    await loop.create_connection(lambda: AsteriskSide(header, done, started), "127.0.0.1", port)
    return await done


def make_headers(patients: int, sessions: int, seed: int) -> list[tuple[bytes, bool]]:
    """(header, known caller) per session."""
    rng = random.Random(seed)
    template = header_template()
    made = []
    for _ in range(sessions):
        known = rng.random() < 0.9
        if known:
            e164 = phone_of(rng.randrange(patients))
            number = e164 if rng.random() < 0.3 else national(e164)
        else:
            number = f"0{rng.choice(('81', '83', '85', '88'))}{rng.randrange(10**7):07d}"  # not a patient
        made.append((re.sub(rb"(?m)^agi_callerid: .*$", b"agi_callerid: " + number.encode(), template), known))
    return made


def summary(results: list[tuple[float, int, bool]], known: list[bool], elapsed: float) -> dict[str, Any]:
    return {"sessions": len(results), "elapsed": elapsed, "latencies": sorted(r[0] for r in results),
            "commands": sum(r[1] for r in results), "empty": sum(1 for r in results if r[1] == 0),
            "unidentified": sum(1 for r, k in zip(results, known, strict=True) if k and not r[2])}


async def closed_loop(port: int, headers: list[tuple[bytes, bool]], concurrency: int) -> dict[str, Any]:
    semaphore = asyncio.Semaphore(concurrency)

    async def bounded(header: bytes) -> tuple[float, int, bool]:
        async with semaphore:
            return await one_session(port, header)

    started = time.perf_counter()
    results = await asyncio.gather(*(bounded(h) for h, _ in headers))
    return summary(results, [k for _, k in headers], time.perf_counter() - started)


async def open_loop(port: int, headers: list[tuple[bytes, bool]], rate: float, seed: int) -> dict[str, Any]:
    """Poisson arrivals at `rate` per second; each session is timed from its own connect."""
    rng = random.Random(seed)
    loop = asyncio.get_running_loop()
    tasks = []
    lag = 0.0
    started = due = loop.time()
    for header, _ in headers:
        due += rng.expovariate(rate)
        wait = due - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        lag = max(lag, loop.time() - due)
        tasks.append(asyncio.create_task(one_session(port, header)))
    results = await asyncio.gather(*tasks)
    return summary(results, [k for _, k in headers], loop.time() - started) | {"client_lag": lag}


async def drive(args: argparse.Namespace) -> dict[str, Any]:
    warm = make_headers(args.patients, WARM_UP, args.seed + 1)
    await closed_loop(args.port, warm, 50)
    opened = make_headers(args.patients, max(1, int(args.rate * args.seconds)), args.seed + 2)
    closed = make_headers(args.patients, args.sessions, args.seed + 3)
    return {"open": await open_loop(args.port, opened, args.rate, args.seed),
            "closed": await closed_loop(args.port, closed, args.concurrency)}


def client_main(args: argparse.Namespace) -> None:
    cpu = time.process_time()
    result = run_loop(args.loop, drive(args))
    print(json.dumps(result | {"client_cpu": time.process_time() - cpu}))


def run_loop(kind: str, main: Any) -> Any:
    if kind == "uvloop":
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(main)
    return asyncio.run(main)


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
    from clinicall.heap import freeze_startup_objects
    from clinicall.settings import Settings
    from telephony.agi import FASTAGI_KEY

    url, pg = await prepare_database(args)
    data_dir = tempfile.mkdtemp(prefix="bench-agi-")
    telephony = {"agi_enabled": True, "agi_port": 0, "agi_timeout_seconds": 10.0}
    if args.workers > 1:
        telephony["agi_workers"] = args.workers
    settings = Settings(data_dir=data_dir, database={"url": url}, telephony=telephony,
                        bus={"redis_url": args.redis_url} if args.redis_url else {})
    app = create_app(settings)
    runner = web.AppRunner(app)
    await runner.setup()
    freeze_startup_objects()  # as `clinicall serve` does once it serves
    try:
        port = app[FASTAGI_KEY].port
        uptime_before = uptime()
        gc_pauses = GcPauses()
        gc.callbacks.append(gc_pauses)
        cpu_before = time.process_time()
        times_before = os.times()
        pool = app[FASTAGI_KEY].pool
        worker_pids = [p.pid for p in pool.processes.values()] if pool is not None else []
        workers_before = sum(process_cpu(pid) for pid in worker_pids)
        profiler = cProfile.Profile(time.process_time) if args.profile else None
        if profiler is not None:
            profiler.enable()
        child = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--client", "--port", str(port), "--patients", str(args.patients),
            "--sessions", str(args.sessions), "--concurrency", str(args.concurrency), "--seed", str(args.seed),
            "--rate", str(args.rate), "--seconds", str(args.seconds), "--loop", args.loop,
            stdout=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)})
        out, _ = await child.communicate()
        server_cpu = time.process_time() - cpu_before
        kernel_cpu = os.times().system - times_before.system
        workers_cpu = sum(process_cpu(pid) for pid in worker_pids) - workers_before
        gc.callbacks.remove(gc_pauses)
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(args.profile)
        uptime_after = uptime()
        result = json.loads(out)
        health = app[FASTAGI_KEY].health()
    finally:
        await runner.cleanup()
        if not args.database_url and hasattr(pg, "stop"):
            pg.stop()
    report(args, result, health, (server_cpu, kernel_cpu, workers_cpu), uptime_before, uptime_after, gc_pauses)


def process_cpu(pid: int) -> float:
    """Seconds of CPU (user and kernel) another process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class GcPauses:
    """The garbage collector's pauses in this process, by generation (they stall the event loop)."""

    def __init__(self) -> None:
        self.pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses[info["generation"]].append(time.perf_counter() - self._started)

    def summary(self) -> str:
        return "; ".join(f"gen{gen} {len(p)} x, max {max(p, default=0) * 1000:.1f} ms" for gen, p in self.pauses.items())


def uptime() -> str:
    load = os.getloadavg()
    return f"load average {load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f}"


def pct(lat: list[float], p: float) -> float:
    return lat[min(len(lat) - 1, int(p / 100 * len(lat)))] * 1000


def verdict(ok: bool) -> str:
    return "meets the goal" if ok else "MISSES the goal"


def report(args: argparse.Namespace, result: dict[str, Any], health: dict[str, Any], cpu: tuple[float, float, float],
           before: str, after: str, gc_pauses: GcPauses) -> None:
    opened, closed = result["open"], result["closed"]
    print(f"FastAGI identify, {args.patients:,} patients on PostgreSQL, {args.workers} worker process(es) "
          f"(200 warm-up sessions first)")
    lat = opened["latencies"]
    p99 = pct(lat, 99)
    print(f"  open loop, {args.rate:g} calls/s arriving at random for {opened['elapsed']:.1f} s, "
          f"{opened['sessions']:,} sessions: p50 {pct(lat, 50):.1f} ms  p99 {p99:.1f} ms  max {lat[-1] * 1000:.1f} ms"
          f"; unidentified {opened['unidentified']}; client lag max {opened['client_lag'] * 1000:.1f} ms")
    print(f"    goal p99 < 15 ms, none unidentified: "
          f"{verdict(p99 < 15 and opened['unidentified'] == 0)}")
    lat = closed["latencies"]
    rate = closed["sessions"] / closed["elapsed"]
    print(f"  closed loop, {args.concurrency} in flight, {closed['sessions']:,} sessions: {rate:,.0f} sessions/s; "
          f"p50 {pct(lat, 50):.1f} ms  p99 {pct(lat, 99):.1f} ms  max {lat[-1] * 1000:.1f} ms; "
          f"unidentified {closed['unidentified']}; sessions with no command {closed['empty']}")
    print(f"    goal >= 1,500 sessions/s, none unidentified: "
          f"{verdict(rate >= 1500 and closed['unidentified'] == 0)}")
    served = max(1, health["served"])
    driven = opened["sessions"] + closed["sessions"] + WARM_UP
    print(f"  the Asterisk side (client process, {args.loop}): CPU {result['client_cpu'] / driven * 1000:.2f} ms per session")
    if args.workers > 1:
        print(f"  every FastAGI process together: CPU {(cpu[0] + cpu[2]) / driven * 1000:.2f} ms per session "
              f"(this one {cpu[0]:.1f} s, the other workers {cpu[2]:.1f} s)")
    print(f"  this process: served {health['served']}, failed {health['failed']}; CPU "
          f"{cpu[0] / served * 1000:.2f} ms per session it served, {cpu[1] / served * 1000:.2f} ms of it in the "
          f"kernel (PostgreSQL, the client"
          f"{', Redis and the other workers' if args.workers > 1 else ''} not counted)")
    print(f"  garbage collector pauses in this process: {gc_pauses.summary()}")
    print(f"  machine: {os.cpu_count()} CPUs, {before} before / {after} after")


def main() -> None:
    small = os.environ.get("CLINICALL_BENCH_SMALL") == "1"
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=20_000 if small else 1_000_000)
    parser.add_argument("--rate", type=float, default=200, help="open loop: calls per second")
    parser.add_argument("--seconds", type=float, default=5 if small else 30, help="open loop: how long")
    parser.add_argument("--sessions", type=int, default=2_000 if small else 10_000, help="closed loop: sessions")
    parser.add_argument("--concurrency", type=int, default=200, help="closed loop: sessions in flight")
    parser.add_argument("--workers", type=int, default=1, help="FastAGI processes sharing the port")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--database-url", default=os.environ.get("CLINICALL_BENCH_DATABASE_URL"))
    parser.add_argument("--redis-url", default=os.environ.get("CLINICALL_BENCH_REDIS_URL"),
                        help="a Redis bus (as several hosts would have; the workers of one host need none)")
    parser.add_argument("--profile", help="write a cProfile of this process (the server) to this file")
    parser.add_argument("--fresh", action="store_true", help="drop and reload the bench database")
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio",
                        help="the event loop of the server (telephony.agi_event_loop) and of the client")
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        client_main(args)
    else:
        run_loop(args.loop, server_main(args))


if __name__ == "__main__":
    main()

"""Call-next operations per second on SQLite and on PostgreSQL.

Two figures per database:
  db-only   queue_display.tickets.call_next: finish the room's current ticket, claim the next one
            (conditional UPDATE ... WHERE status = 'waiting'), write its visit and event rows
  full      what POST /api/rooms/{id}/call-next does besides HTTP: the operation, then the runtime
            (the estimator learns the finished service; ticket.called and ticket.done go out from the
            operation's view; the estimates of every waiting ticket follow, one refresh per burst, stored
            and published as queue.changed; the run ends when the last refresh is stored)

Each run issues --tickets tickets over 3 services first, then --callers concurrent callers (spread
over 4 rooms) call next until the lines are empty; every ticket must be called exactly once.

    .venv/bin/python bench/queue_call_next.py --tickets 2000 --callers 8

PostgreSQL is CLINICALL_TEST_DATABASE_URL or a throwaway pgserver (tests/servers.py).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import event  # noqa: E402

from clinicall.bus import InProcessBus  # noqa: E402
from clinicall.db import Database  # noqa: E402
from clinicall.migrate import migrate  # noqa: E402
from clinicall.settings import Settings  # noqa: E402
from queue_display import tickets  # noqa: E402
from queue_display.catalog import RoomIn, ServiceIn, create_room, create_service  # noqa: E402
from queue_display.runtime import QueueRuntime  # noqa: E402

PRIORITIES = ("normal", "normal", "normal", "booked", "elderly", "normal", "pregnant", "normal")


async def prepare(db: Database, settings: Settings, count: int) -> list[int]:
    services = [await create_service(db, ServiceIn(prefix=p, names={"vi": name}))
                for p, name in (("A", "Khám"), ("B", "Xét nghiệm"), ("C", "Siêu âm"))]
    layout = ((1, "consult", [0]), (2, "consult", [0, 2]), (3, "consult", [0]), (1, "lab", [1]))
    rooms = [await create_room(db, RoomIn(kind=kind, number=n, service_ids=[services[i].id for i in idx]))  # type: ignore[arg-type]
             for n, kind, idx in layout]
    for index in range(count):
        service = services[0] if index % 4 < 2 else services[1 + index % 2]
        await tickets.issue(db, settings, service_id=service.id, source="kiosk", priority=PRIORITIES[index % 8])
    return [room.id for room in rooms]


async def run(db: Database, settings: Settings, room_ids: list[int], callers: int, full: bool,
              expected: int) -> tuple[float, float, int, float]:
    runtime = QueueRuntime(db, settings, InProcessBus())
    await runtime.bus.start()
    called: list[int] = []

    async def caller(first: int) -> None:
        for room_id in room_ids[first:] + room_ids[:first]:  # its own room, then helps the others
            while True:
                async with runtime.serialised():  # as the HTTP handlers do
                    outcome = await tickets.call_next(db, settings, room_id)
                if full:
                    await runtime.applied(outcome)
                if outcome is None or outcome.detail.get("nobody_waiting"):
                    break
                called.append(outcome.ticket_id)

    statements = 0

    def count(*_args: object) -> None:
        nonlocal statements
        statements += 1

    # SQLAlchemy's statements (SQLite's BEGIN IMMEDIATE included); on PostgreSQL also what asyncpg's query logger
    # sees: its transactions' BEGIN and COMMIT and the statements sent straight (Database.pg_transaction), not
    # SQLAlchemy's (those run as prepared statements, which the logger does not see)
    engines = [db.engine.sync_engine, *([db.writer_engine] if db.writer_engine else [])]
    for engine in engines:
        event.listen(engine, "before_cursor_execute", count)
    if db.is_postgres:
        await db.engine.dispose()

        def log_raw(dbapi_connection: Any, _record: object) -> None:
            dbapi_connection.driver_connection.add_query_logger(count)

        event.listen(db.engine.sync_engine, "connect", log_raw)
    began, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(caller(i % len(room_ids)) for i in range(callers)))
    await runtime.settled()  # the estimates of the last calls are stored too
    elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu
    for engine in engines:
        event.remove(engine, "before_cursor_execute", count)
    if db.is_postgres:
        event.remove(db.engine.sync_engine, "connect", log_raw)
    await runtime.stop()
    await runtime.bus.close()
    assert len(called) == expected and Counter(called).most_common(1)[0][1] == 1, "a ticket was called twice or lost"
    return len(called) / elapsed, statements / len(called), runtime.refreshes, cpu / len(called)


async def bench(fresh_url: Callable[[], Awaitable[str]], label: str, args: argparse.Namespace) -> None:
    for full in (False, True):
        url = await fresh_url()
        settings = Settings(database={"url": url})  # type: ignore[arg-type]
        db = Database(url)
        await migrate(db)
        room_ids = await prepare(db, settings, args.tickets)
        rate, per_call, refreshes, cpu = await run(db, settings, room_ids, args.callers, full, args.tickets)
        kind = "full (op + events + estimates)" if full else "db-only"
        print(f"{label:10s} {kind:32s} {args.callers} callers: {rate:8.1f} call-next/s, {per_call:4.1f} SQL "
              f"statements per call-next incl. BEGIN{' and COMMIT' if db.is_postgres else ''}, {cpu * 1000:5.2f} ms CPU per call-next in this process "
              f"({args.tickets} tickets, {refreshes} estimate refreshes), goal >= 500/s", flush=True)
        await db.dispose()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tickets", type=int, default=200)
    parser.add_argument("--callers", type=int, default=8)
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    with tempfile.TemporaryDirectory() as tmp:
        runs = iter(range(100))

        async def fresh_sqlite() -> str:
            return f"sqlite+aiosqlite:///{tmp}/bench{next(runs)}.db"

        await bench(fresh_sqlite, "sqlite", args)

    if args.skip_postgres:
        return
    import asyncpg

    from tests.servers import start_postgres

    server = await asyncio.to_thread(start_postgres)
    admin_url = server.url.replace("postgresql+asyncpg://", "postgresql://", 1)

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(admin_url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    async def fresh_pg() -> str:
        await admin("DROP DATABASE IF EXISTS clinicall_bench_queue WITH (FORCE)")
        await admin("CREATE DATABASE clinicall_bench_queue")
        return server.database_url("clinicall_bench_queue")

    try:
        await bench(fresh_pg, "postgresql", args)
        await admin("DROP DATABASE IF EXISTS clinicall_bench_queue WITH (FORCE)")
    finally:
        server.stop()


if __name__ == "__main__":
    asyncio.run(main())

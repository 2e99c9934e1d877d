"""HIS import speed: a CSV of N patients (UTF-8 with BOM, a few bad rows) imported on SQLite and on
PostgreSQL, first as new patients, then again (idempotent: every row unchanged).

    .venv/bin/python bench/crm_import.py --rows 100000"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from pathlib import Path

from crm_common import database_url, landline, mobile, patient_name

from clinicall.db import Database
from clinicall.migrate import migrate
from crm_bridge.importer import import_csv


def make_csv(rows: int, seed: int = 5) -> bytes:
    rng = random.Random(seed)
    lines = ["Mã BN,Họ tên,Ngày sinh,Giới tính,Số điện thoại,Địa chỉ,Ghi chú"]
    for i in range(1, rows + 1):
        phones = mobile(i) + (f";{landline(i)}" if i % 10 == 0 else "")
        dob = f"{rng.randrange(1, 29):02d}/{rng.randrange(1, 13):02d}/{rng.randrange(1940, 2020)}"
        if i % 1000 == 0:
            dob = "31/02/1990"  # one bad row in a thousand
        gender = rng.choice(("Nam", "Nữ"))
        lines.append(f'HIS{i:07d},{patient_name(rng)},{dob},{gender},{phones},"{rng.randrange(1, 500)} Lê Lợi, Quận 1",')
    return ("\ufeff" + "\r\n".join(lines) + "\r\n").encode("utf-8")


async def run(url: str, data: bytes, label: str) -> None:
    db = Database(url)
    try:
        await migrate(db)
        for attempt in ("first import (all new)", "second import (idempotent)"):
            started = time.perf_counter()
            done = 0

            def progress(n: int) -> None:
                nonlocal done
                before, done = done, done + n
                if done // 20000 != before // 20000:
                    print(f"    {done:,} rows ...", flush=True)

            summary = await import_csv(db, data, progress=progress)
            elapsed = time.perf_counter() - started
            print(f"{label}, {attempt}: {summary.rows:,} rows in {elapsed:.1f} s = {summary.rows / elapsed:,.0f} rows/s "
                  f"(created {summary.created:,}, updated {summary.updated:,}, unchanged {summary.unchanged:,}, "
                  f"bad {len(summary.errors):,})", flush=True)
    finally:
        await db.dispose()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--database-url", help="postgresql+asyncpg:// URL of a server to use instead of pgserver")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args()
    data = make_csv(args.rows)
    print(f"CSV: {args.rows:,} rows, {len(data) / 2**20:.1f} MB (UTF-8 with BOM)")
    if not args.skip_sqlite:
        with tempfile.TemporaryDirectory() as tmp:
            await run(f"sqlite+aiosqlite:///{Path(tmp) / 'import.db'}", data, "SQLite")
    if not args.skip_postgres:
        server = None
        if args.database_url:
            base = args.database_url
        else:
            from tests.servers import start_postgres

            server = start_postgres()
            base = server.url
        import asyncpg

        admin = await asyncpg.connect(base.replace("postgresql+asyncpg://", "postgresql://", 1))
        await admin.execute("DROP DATABASE IF EXISTS crm_import_bench")
        await admin.execute("CREATE DATABASE crm_import_bench")
        await admin.close()
        try:
            await run(database_url(base, "crm_import_bench"), data, "PostgreSQL")
        finally:
            if server is not None:
                server.stop()


if __name__ == "__main__":
    asyncio.run(main())

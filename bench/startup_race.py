"""Many instances starting at once: N `clinicall migrate` processes (migrations + the bootstrap admin,
under the start-up lock) launched together on one fresh database, PostgreSQL (pgserver) and SQLite.
Prints how many succeeded, how many admins exist afterwards (must be 1), and the wall time until the
last one finished, beside one process alone.

    .venv/bin/python bench/startup_race.py --instances 12
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from clinicall.auth import service as auth_service  # noqa: E402
from clinicall.db import Database  # noqa: E402
from tests.servers import start_postgres  # noqa: E402


def environment(url: str, data_dir: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLINICALL_")}
    env.update({"CLINICALL_DATABASE__URL": url, "CLINICALL_DATA_DIR": data_dir, "CLINICALL_LOG_LEVEL": "WARNING",
                "CLINICALL_AUTH__BOOTSTRAP_ADMIN": "chief", "CLINICALL_AUTH__BOOTSTRAP_PASSWORD": "a-long-password"})
    return env


async def start_together(url: str, data_dir: str, count: int) -> tuple[int, float]:
    started = time.perf_counter()
    processes = [await asyncio.create_subprocess_exec(sys.executable, "-m", "clinicall.cli", "migrate",
                                                      env=environment(url, data_dir), cwd=str(ROOT),
                                                      stdout=asyncio.subprocess.DEVNULL,
                                                      stderr=asyncio.subprocess.DEVNULL)
                 for _ in range(count)]
    codes = [await process.wait() for process in processes]
    return sum(1 for code in codes if code == 0), time.perf_counter() - started


async def admins(url: str) -> int:
    db = Database(url)
    try:
        return sum(1 for user in await auth_service.list_users(db) if "admin" in user.roles)
    finally:
        await db.dispose()


async def create_database(postgres_url: str, name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(postgres_url.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        await conn.execute(f"CREATE DATABASE {name}")
    finally:
        await conn.close()


async def run(count: int) -> None:
    postgres = start_postgres(own=True)
    try:
        with tempfile.TemporaryDirectory(prefix="clinicall-race-") as tmp:
            for kind in ("postgresql", "sqlite"):
                for label, n in (("alone", 1), ("together", count)):
                    name = f"race_{label}"
                    if kind == "postgresql":
                        await create_database(postgres.url, name)
                        url = postgres.database_url(name)
                    else:
                        url = f"sqlite+aiosqlite:///{tmp}/{name}.db"
                    ok, seconds = await start_together(url, tmp, n)
                    print(f"{kind:<10} {label:<8} {n:>3} started  {ok:>3} ok  admins={await admins(url)}  "
                          f"last done after {seconds:6.2f} s", flush=True)
    finally:
        postgres.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instances", type=int, default=6)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.1f}")
    asyncio.run(run(args.instances))


if __name__ == "__main__":
    main()

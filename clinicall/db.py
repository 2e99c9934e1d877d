"""Database: SQLAlchemy 2 async engine and sessions, shared column types, the declarative base."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import fcntl
import os
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
from sqlalchemy import Connection, DateTime, Engine, MetaData, create_engine, event, exc, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


T = TypeVar("T")
STARTUP_LOCK_KEY = 0x636C696E  # "clin": the PostgreSQL advisory lock taken by start-up


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timestamp stored in UTC and always read back timezone-aware (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: object) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass an aware datetime (UTC)")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: dt.datetime | None, dialect: object) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


class Database:
    """The engine and its sessions: `async with db.transaction() as s:` to write (commits on success,
    rolls back on error); `async with db.session() as s:` to read."""

    def __init__(self, url: str, echo: bool = False, connect_timeout: float = 5.0) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self.is_postgres = url.startswith("postgresql")
        if self.is_sqlite:
            _ensure_sqlite_dir(url)
            # Writers take the lock at BEGIN (IMMEDIATE) and so queue up instead of failing on upgrade;
            # readers use a second engine with a deferred BEGIN, so that under WAL they never block writers.
            self.engine: AsyncEngine = create_async_engine(url, echo=echo, connect_args={"timeout": 30})
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
            event.listen(self.engine.sync_engine, "begin", _sqlite_begin_immediate)
            self.read_engine: AsyncEngine = create_async_engine(url, echo=echo, connect_args={"timeout": 30})
            event.listen(self.read_engine.sync_engine, "connect", _sqlite_pragmas)
            event.listen(self.read_engine.sync_engine, "begin", _sqlite_begin_deferred)
            # run_sync's engine: plain sqlite3 on one writer thread (see run_sync)
            self.writer_engine: Engine | None = create_engine(
                make_url(url).set(drivername="sqlite"), echo=echo, pool_size=1, max_overflow=0,
                connect_args={"timeout": 30, "check_same_thread": False})
            event.listen(self.writer_engine, "connect", _sqlite_pragmas)
            event.listen(self.writer_engine, "begin", _sqlite_begin_immediate)
            # read_sync's engine: plain sqlite3 on one reader thread, deferred BEGIN (never blocks the writer)
            self.reader_engine: Engine | None = create_engine(
                make_url(url).set(drivername="sqlite"), echo=echo, pool_size=1, max_overflow=0,
                connect_args={"timeout": 30, "check_same_thread": False})
            event.listen(self.reader_engine, "connect", _sqlite_pragmas)
            event.listen(self.reader_engine, "begin", _sqlite_begin_deferred)
        else:
            # A lost server must fail a request in seconds (then 503), not after asyncpg's 60 s default.
            self.engine = create_async_engine(url, echo=echo, pool_size=10, max_overflow=20,
                                              pool_timeout=10, connect_args={"timeout": connect_timeout})
            _ping_when_idle(self.engine.sync_engine)
            self.read_engine = self.engine
            self.writer_engine = None
            self.reader_engine = None
        self._held = HeldConnections()  # pg_fetch's (PostgreSQL)
        self._threads: dict[Engine, ThreadPoolExecutor] = {}  # SQLite: run_sync's and read_sync's, made when needed
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self.read_sessions = async_sessionmaker(self.read_engine, expire_on_commit=False)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """For reading. (On SQLite it does not take the write lock: write inside transaction().)"""
        async with self.read_sessions() as session:
            yield session

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        async with self.sessions() as session, session.begin():
            yield session

    async def run_sync(self, work: Callable[[Connection], T]) -> T:
        """`work(connection)` (Core statements) in one write transaction, committed when it returns, rolled
        back if it raises: for hot paths of several statements. On SQLite the whole of it runs in one
        hand-off to a writer thread with a plain sqlite3 connection (aiosqlite hands every statement, fetch
        and cursor to its thread and back, which costs far more than SQLite itself); on PostgreSQL on the
        event loop, each statement a round trip (AsyncConnection.run_sync)."""
        if self.writer_engine is not None:
            return await self._on_own_thread(self.writer_engine, "sqlite-writer", work)
        async with self.engine.begin() as connection:
            return await connection.run_sync(work)

    async def read_sync(self, work: Callable[[Connection], T]) -> T:
        """`work(connection)` (Core statements) in one read transaction: run_sync's counterpart for a hot
        path's reads. On SQLite one hand-off to a reader thread with a plain sqlite3 connection (deferred
        BEGIN: under WAL it never waits for the writer); on PostgreSQL on the event loop."""
        if self.reader_engine is not None:
            return await self._on_own_thread(self.reader_engine, "sqlite-reader", work)
        async with self.read_engine.connect() as connection:
            return await connection.run_sync(work)

    async def _on_own_thread(self, engine: Engine, name: str, work: Callable[[Connection], T]) -> T:
        """One hand-off to the engine's own thread (one thread, one plain sqlite3 connection per engine)."""
        executor = self._threads.get(engine)
        if executor is None:
            executor = self._threads[engine] = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        return await asyncio.get_running_loop().run_in_executor(executor, _in_transaction, engine, work)

    async def pg_fetch(self, sql: str, *args: Any) -> list[Any]:
        """PostgreSQL only: one statement through asyncpg itself (kept prepared on each connection), outside any
        transaction block, so a data-modifying one commits on its own: one round trip. asyncpg Records.
        The connection is one of a few kept checked out of the pool for this (`HeldConnections`): a pool
        checkout and return cost several times the statement's own CPU."""
        held = await self._held.take(self.engine)
        try:
            rows = await held.driver.fetch(sql, *args)
        except BaseException as error:
            if not isinstance(error, asyncpg.PostgresError):  # a lost or interrupted connection: not kept
                await self._held.drop(held)
                raise
            self._held.give_back(held)
            raise
        self._held.give_back(held)
        return rows  # type: ignore[no-any-return]

    @asynccontextmanager
    async def pg_transaction(self) -> AsyncIterator[Any]:
        """PostgreSQL only: asyncpg's own connection in one transaction (committed when the block ends, rolled
        back if it raises), for a hot path of a few prepared statements (`await conn.fetch(sql, *args)`)."""
        async with self.engine.connect() as connection:
            driver = (await connection.get_raw_connection()).driver_connection
            try:
                async with driver.transaction():  # type: ignore[union-attr]
                    yield driver
            except BaseException as exc:
                if not isinstance(exc, Exception) or isinstance(exc, asyncpg.InterfaceError | OSError | TimeoutError):
                    await connection.invalidate()  # cancelled mid-statement, or the connection is gone: not pooled
                raise

    @asynccontextmanager
    async def startup_lock(self) -> AsyncIterator[None]:
        """Held while migrating and creating the bootstrap admin, so that any number of instances
        starting at once take turns: a PostgreSQL advisory lock, or a lock file beside the SQLite file."""
        if self.is_postgres:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": STARTUP_LOCK_KEY})
                await conn.commit()
                try:
                    yield
                finally:
                    await conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": STARTUP_LOCK_KEY})
                    await conn.commit()
            return
        database = make_url(self.url).database
        if not database or database == ":memory:":
            yield
            return
        fd = os.open(f"{database}.startup-lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self._held.close()
        await self.engine.dispose()
        if self.read_engine is not self.engine:
            await self.read_engine.dispose()
        threads, self._threads = self._threads, {}
        for engine, executor in threads.items():
            await asyncio.get_running_loop().run_in_executor(executor, engine.dispose)
            executor.shutdown(wait=False)


def _in_transaction(engine: Engine, work: Callable[[Connection], T]) -> T:
    with engine.begin() as connection:
        return work(connection)


DRIVER_MODULES = ("asyncpg", "aiosqlite", "sqlalchemy")
UNAVAILABLE_PHRASES = ("unable to open database", "database is locked", "disk i/o error", "connection",
                       "server closed", "terminating")


def is_unavailable(error: BaseException) -> bool:
    """True when `error` means the database cannot be reached (as opposed to a bad query, or an OSError
    of something else: only errors raised inside the database drivers count)."""
    if isinstance(error, exc.DBAPIError) and error.connection_invalidated:
        return True
    if isinstance(error, exc.TimeoutError | exc.InterfaceError):  # the pool's wait; a closed connection
        return True
    if isinstance(error, exc.OperationalError):  # SQLite's are mostly mistakes in a query; these are not
        return any(phrase in str(error).lower() for phrase in UNAVAILABLE_PHRASES)
    if isinstance(error, OSError | TimeoutError):  # refused, reset, no route, a missing socket file
        return _raised_by_driver(error)
    return False


def _raised_by_driver(error: BaseException) -> bool:
    trace = error.__traceback__
    while trace is not None:
        if str(trace.tb_frame.f_globals.get("__name__", "")).startswith(DRIVER_MODULES):
            return True
        trace = trace.tb_next
    return False


def _ensure_sqlite_dir(url: str) -> None:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)


def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    # aiosqlite's sync adapter: let SQLAlchemy emit BEGIN itself so that BEGIN IMMEDIATE below works.
    dbapi_connection.isolation_level = None  # type: ignore[attr-defined]
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA journal_mode=WAL")
    # Under WAL, NORMAL is safe from a killed process (only an OS crash may lose the last commits)
    # and saves an fsync on every write transaction.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


IDLE_PING_SECONDS = 10.0


class Held:
    __slots__ = ("connection", "driver", "used_at")

    def __init__(self, connection: AsyncConnection, driver: Any) -> None:
        self.connection, self.driver, self.used_at = connection, driver, time.monotonic()


class HeldConnections:
    """pg_fetch's connections: up to MOST in use at once, checked out of the engine's pool once and kept.
    One that sat idle over IDLE_PING_SECONDS goes back to the pool and a fresh one (pinged by the pool's
    checkout) is taken instead, as a pooled connection would be; one that failed is invalidated."""

    MOST = 4

    def __init__(self) -> None:
        self._idle: list[Held] = []
        self._slots: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def take(self, engine: AsyncEngine) -> Held:
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._slots is None:  # a new event loop: nothing of the old one is usable
            self._loop, self._slots, self._idle = loop, asyncio.Semaphore(self.MOST), []
        await self._slots.acquire()
        try:
            while self._idle:
                held = self._idle.pop()
                if time.monotonic() - held.used_at <= IDLE_PING_SECONDS:
                    return held
                with contextlib.suppress(Exception):
                    await held.connection.close()
            connection = await engine.connect()
            try:
                return Held(connection, (await connection.get_raw_connection()).driver_connection)
            except BaseException:
                await connection.close()
                raise
        except BaseException:
            self._slots.release()
            raise

    def give_back(self, held: Held) -> None:
        held.used_at = time.monotonic()
        self._idle.append(held)
        if self._slots is not None:
            self._slots.release()

    async def drop(self, held: Held) -> None:
        if self._slots is not None:
            self._slots.release()
        with contextlib.suppress(Exception):
            await held.connection.invalidate()
            await held.connection.close()

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for held in idle:
            with contextlib.suppress(Exception):
                await held.connection.close()


def _ping_when_idle(engine: Engine) -> None:
    """pool_pre_ping, but only for a connection that sat in the pool over IDLE_PING_SECONDS: a round trip
    saved on every busy checkout. A server that went away meanwhile fails that one request (503), and the
    pool then starts afresh."""

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_connection: object, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection: object, record: Any, _proxy: object) -> None:
        since = record.info.get("idle_since")
        if since is not None and time.monotonic() - since > IDLE_PING_SECONDS:
            try:
                alive = engine.dialect.do_ping(dbapi_connection)  # type: ignore[arg-type]
            except Exception as error:
                raise exc.DisconnectionError("an idle connection failed its ping") from error
            if not alive:
                raise exc.DisconnectionError("an idle connection failed its ping")


def _sqlite_begin_immediate(conn: object) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")  # type: ignore[attr-defined]


def _sqlite_begin_deferred(conn: object) -> None:
    conn.exec_driver_sql("BEGIN")  # type: ignore[attr-defined]

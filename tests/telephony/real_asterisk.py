"""Fixtures for tests against the real Asterisk 22 (tests/telephony/asterisk_rig.py): one Asterisk per
test session on free loopback ports, skipped with the reason when none is found."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from urllib.parse import unquote, urlsplit

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from clinicall.settings import Settings
from telephony.keys import AMI_LINK_KEY
from tests.servers import Postgres
from tests.telephony.asterisk_rig import CLINICALL_SECRET, REPO, Asterisk, PgTarget, find_prefix, runs_here
from tests.waiting import until

# Short rings and talks keep the suite quick; the dialplan is otherwise the recorded rig's.
FAST = {"AGENT_RING": "0.5", "PATIENT_RING": "2", "PATIENT_TALK": "2", "PATIENT_DIAL_TIMEOUT": "3"}


CEL_DATABASE = "asterisk_cel"


@pytest.fixture(scope="session")
def cel_postgres(postgres: Postgres) -> str:
    """A database of the tests' PostgreSQL with cel_pgsql's and cdr_pgsql's tables (config/asterisk/*.sql),
    which the rig's cel_pgsql / cdr_pgsql write to; its URL."""
    async def build() -> None:
        admin = await asyncpg.connect(postgres.url.replace("postgresql+asyncpg://", "postgresql://", 1))
        try:
            await admin.execute(f"DROP DATABASE IF EXISTS {CEL_DATABASE}")
            await admin.execute(f"CREATE DATABASE {CEL_DATABASE}")
        finally:
            await admin.close()
        conn = await asyncpg.connect(postgres.database_url(CEL_DATABASE).replace("+asyncpg", "", 1))
        try:
            for name in ("cel_pgsql.sql", "cdr_pgsql.sql"):
                await conn.execute((REPO / "config" / "asterisk" / name).read_text())
        finally:
            await conn.close()

    asyncio.run(build())
    return postgres.database_url(CEL_DATABASE)


def pg_target(url: str) -> PgTarget:
    parts = urlsplit(url)
    query = dict(p.split("=", 1) for p in parts.query.split("&") if "=" in p)
    return PgTarget(host=unquote(query.get("host", parts.hostname or "127.0.0.1")), port=parts.port or 5432,
                    dbname=parts.path.lstrip("/"), user=unquote(parts.username or "postgres"),
                    password=unquote(parts.password or ""))


@pytest.fixture(scope="session")
def asterisk(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Asterisk]:
    """The rig Asterisk, writing CEL (and CDR) both to SQLite and to the tests' PostgreSQL."""
    prefix, reason = find_prefix()
    if prefix is None or (reason := runs_here(prefix)):
        pytest.skip(reason)
    cel_url = request.getfixturevalue("cel_postgres")
    rig = Asterisk(prefix=prefix, run=tmp_path_factory.mktemp("asterisk"), dialplan_globals=FAST,
                   pg=pg_target(cel_url))
    rig.start()
    yield rig
    rig.stop()


@pytest.fixture
def rig_settings(asterisk: Asterisk, cel_postgres: str, make_settings: Callable[..., Settings]
                 ) -> Callable[..., Settings]:
    """clinicall pointed at the rig: AMI, FastAGI on the port the dialplan asks, CEL from `cel_database`."""
    if not asterisk.running():  # a test stopped it and failed before starting it again
        asterisk.start()
    # Asterisk keeps the CEL records of earlier tests, as a PBX does across clinicall database resets: each
    # test's fresh database has its own installation tag, so its `clinicall-<tag>-<id>` never meets them.

    def build(database_url: str, cel_database: str) -> Settings:
        return make_settings(database_url, telephony={
            "ami_host": "127.0.0.1", "ami_port": asterisk.ami_port, "ami_username": "clinicall",
            "ami_secret": CLINICALL_SECRET, "agi_enabled": True, "agi_port": asterisk.agi_port,
            "agent_channel": "Local/{ext}@agents", "cel_database": cel_database,
            "reconnect_max_seconds": 0.5, "calls_per_minute_per_agent": 60})

    return build


async def link_ready(client: TestClient, readies: int = 1, seconds: float = 30.0) -> None:
    """The AMI link has become ready `readies` times (a reconnect after a restart is the second)."""
    link = client.app[AMI_LINK_KEY]
    assert link is not None
    await until(lambda: link.ready and link.history.count("ready") >= readies, f"AMI ready x{readies}", seconds)


async def asterisk_idle(asterisk: Asterisk, seconds: float = 30.0) -> None:
    await until(lambda: "0 active channels" in asterisk.cli("core show channels count"), "no channels", seconds)


def inbound_call(asterisk: Asterisk, name: str, number: str, talk_seconds: int) -> None:
    """A patient calls the clinic (a call file: pbx_spool, no AMI client involved)."""
    asterisk.call_file(name, {"Channel": "Local/s@inbound", "Application": "Wait", "Data": str(talk_seconds),
                              "CallerID": number})

"""Instances on one database take turns holding the Asterisk link: two links would each store and
project part of the same events. The standby takes over when the holder stops, or when PostgreSQL
ends the holder's lock connection."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import text

from clinicall.app import create_app
from clinicall.db import Database
from clinicall.settings import Settings
from clinicall.sole import role_key
from telephony.ami import AmiLink
from telephony.demo_pbx import DemoPbx
from telephony.keys import AMI_LINK_KEY
from tests.waiting import until


@pytest.fixture
async def pbx() -> AsyncIterator[DemoPbx]:
    server = DemoPbx(username="clinicall", secret="s3cret-for-tests")
    await server.start()
    yield server
    await server.close()


async def instance(settings: Settings) -> TestClient:
    client = TestClient(TestServer(create_app(settings)))
    await client.start_server()
    return client


def link_of(client: TestClient) -> AmiLink:
    link = client.app[AMI_LINK_KEY]
    assert link is not None
    return link


def logged_in(pbx: DemoPbx) -> int:
    return sum(1 for s in pbx.sessions if s.authenticated)


async def test_one_instance_holds_the_link_and_the_other_takes_over(
        db_url: str, pbx: DemoPbx, make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(db_url, telephony={
        "agi_enabled": False, "ami_host": "127.0.0.1", "ami_port": pbx.port, "ami_secret": "s3cret-for-tests",
        "link_check_seconds": 0.1, "reconnect_max_seconds": 0.5})
    first = await instance(settings)
    second = await instance(settings)
    try:
        # either may take the lock first (on a loaded machine the first can still be starting its link)
        await until(lambda: link_of(first).ready or link_of(second).ready, "one instance links to Asterisk")
        if link_of(second).ready:
            first, second = second, first
        await until(lambda: link_of(second).state == "standby", "the other stands by")
        health = await (await second.get("/healthz")).json()
        assert health["checks"]["asterisk"]["state"] == "standby" and health["checks"]["asterisk"]["ok"]
        assert logged_in(pbx) == 1

        if db_url.startswith("postgresql"):
            link_of(first).history.clear()
            await end_lock_connection(db_url)
            # it may win the lock back at once, so look for the stop in its history, not in its state now
            await until(lambda: "stopped" in link_of(first).history, "the holder notices it lost the lock")
            await until(lambda: link_of(second).ready or link_of(first).ready, "one instance takes the link again")
            holder, other = (second, first) if link_of(second).ready else (first, second)
            await until(lambda: logged_in(pbx) == 1, "one link is logged in")
            await until(lambda: link_of(other).state == "standby", "the other stands by")
            first, second = holder, other

        await first.close()
        await until(lambda: link_of(second).ready, "the standby takes over when the holder stops")
        await until(lambda: logged_in(pbx) == 1, "one link is logged in after the take-over")
    finally:
        await first.close()
        await second.close()


async def end_lock_connection(url: str) -> None:
    """What PostgreSQL does when the holder's host dies: the lock's backend goes, and the lock with it."""
    db = Database(url)
    try:
        async with db.engine.connect() as conn:
            key = role_key("asterisk-link")
            ended = (await conn.execute(text(
                "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' "
                "AND classid::bigint = :high AND objid::bigint = :low"),
                {"high": (key >> 32) & 0xFFFFFFFF, "low": key & 0xFFFFFFFF})).scalars().all()
            await conn.commit()
        assert ended == [True]
    finally:
        await db.dispose()

"""Fixtures for tests against the real Asterisk 22 (tests/telephony/asterisk_rig.py): one Asterisk per
test session on free loopback ports, skipped with the reason when none is found."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from clinicall.settings import Settings
from telephony.keys import AMI_LINK_KEY
from tests.telephony.asterisk_rig import CLINICALL_SECRET, Asterisk, find_prefix, runs_here

# Short rings and talks keep the suite quick; the dialplan is otherwise the recorded rig's.
FAST = {"AGENT_RING": "0.5", "PATIENT_RING": "2", "PATIENT_TALK": "2", "PATIENT_DIAL_TIMEOUT": "3"}


@pytest.fixture(scope="session")
def asterisk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Asterisk]:
    prefix, reason = find_prefix()
    if prefix is None or (reason := runs_here(prefix)):
        pytest.skip(reason)
    rig = Asterisk(prefix=prefix, run=tmp_path_factory.mktemp("asterisk"), dialplan_globals=FAST)
    rig.start()
    yield rig
    rig.stop()


@pytest.fixture
def rig_settings(asterisk: Asterisk, sqlite_url: str, make_settings: Callable[..., Settings]) -> Settings:
    """clinicall pointed at the rig: AMI, FastAGI on the port the dialplan asks, CEL from its SQLite."""
    if not asterisk.running():  # a test stopped it and failed before starting it again
        asterisk.start()
    return make_settings(sqlite_url, telephony={
        "ami_host": "127.0.0.1", "ami_port": asterisk.ami_port, "ami_username": "clinicall",
        "ami_secret": CLINICALL_SECRET, "agi_enabled": True, "agi_port": asterisk.agi_port,
        "agent_channel": "Local/{ext}@agents", "cel_database": str(asterisk.sqlite_path),
        "reconnect_max_seconds": 0.5, "calls_per_minute_per_agent": 60})


async def until(predicate: Callable[[], Any], seconds: float = 20.0, what: str = "") -> Any:
    """Poll (sync or async predicate) until it gives something true."""
    deadline = time.monotonic() + seconds
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds}s waiting for {what or predicate}")
        await asyncio.sleep(0.1)


async def link_ready(client: TestClient, readies: int = 1, seconds: float = 30.0) -> None:
    """The AMI link has become ready `readies` times (a reconnect after a restart is the second)."""
    link = client.app[AMI_LINK_KEY]
    assert link is not None
    await until(lambda: link.ready and link.history.count("ready") >= readies, seconds, f"AMI ready x{readies}")


async def asterisk_idle(asterisk: Asterisk, seconds: float = 30.0) -> None:
    await until(lambda: "0 active channels" in asterisk.cli("core show channels count"), seconds, "no channels")


def inbound_call(asterisk: Asterisk, name: str, number: str, talk_seconds: int) -> None:
    """A patient calls the clinic (a call file: pbx_spool, no AMI client involved)."""
    asterisk.call_file(name, {"Channel": "Local/s@inbound", "Application": "Wait", "Data": str(talk_seconds),
                              "CallerID": number})

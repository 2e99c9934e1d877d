"""Overhead paging: each announcement is also originated to the paging channel with Playback of an
8 kHz copy, over a real AMI connection to the demo PBX (a protocol-level Asterisk peer)."""

from __future__ import annotations

import asyncio
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from audio.keys import ANNOUNCER_KEY
from clinicall.app import create_app
from clinicall.keys import BUS_KEY
from clinicall.settings import Settings
from tests.audio.test_announcer import ticket
from tests.audio.test_speaker import wait_for
from tests.conftest import health_details


async def test_announcements_are_paged_through_asterisk(
        aiohttp_client: Callable[..., Any], sqlite_url: str, make_settings: Callable[..., Settings],
        tmp_path: Path) -> None:
    telephony_keys = pytest.importorskip("telephony.keys")
    sounds = tmp_path / "asterisk-sounds"
    settings = make_settings(sqlite_url, telephony={"demo_pbx": True, "agi_enabled": False},
                             audio={"languages": ["vi"], "paging_channel": "PJSIP/overhead",
                                    "paging_sound_dir": str(sounds)})
    client: TestClient = await aiohttp_client(create_app(settings))
    app = client.app
    link = app[telephony_keys.AMI_LINK_KEY]
    pbx = app[telephony_keys.DEMO_PBX_KEY]
    await wait_for(lambda: link.ready, 20, "the AMI link")

    await app[BUS_KEY].publish("ticket.called", ticket(5, "A015", 3, 3))

    def originate() -> dict[str, str] | None:
        for action in pbx.received:
            headers = dict(action)
            if headers.get("Action") == "Originate" and headers.get("Application") == "Playback":
                return headers
        return None

    sent = await wait_for(originate, 30, "the paging Originate")
    assert sent["Channel"] == "PJSIP/overhead" and sent["Async"] == "true"
    played = Path(sent["Data"] + ".wav")
    assert played.parent == sounds

    def paging_format() -> tuple[int, int, int, int]:
        with wave.open(str(played), "rb") as w:
            return w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes()

    rate, channels, width, frames = await asyncio.to_thread(paging_format)
    assert (rate, channels, width) == (8000, 1, 2) and frames > 8000
    assert app[ANNOUNCER_KEY].pager is not None and app[ANNOUNCER_KEY].pager.paged == 1
    health = await health_details(client)
    assert health["checks"]["audio"]["paging"] == {"on": True, "paged": 1, "skipped": 0}


def test_paging_channel_with_a_line_break_is_refused() -> None:
    with pytest.raises(ValueError, match="control characters"):
        Settings(audio={"paging_channel": "PJSIP/overhead\r\nAction: Originate"})


async def test_paging_without_asterisk_is_skipped_not_fatal(
        aiohttp_client: Callable[..., Any], sqlite_url: str, make_settings: Callable[..., Settings],
        tmp_path: Path) -> None:
    settings = make_settings(sqlite_url, audio={"languages": ["vi"], "chime": False,
                                                "paging_channel": "Local/800@paging",
                                                "paging_sound_dir": str(tmp_path / "sounds")})
    client: TestClient = await aiohttp_client(create_app(settings))
    app = client.app
    ready: list[Any] = []

    async def collect(event: Any) -> None:
        ready.append(event)

    app[BUS_KEY].subscribe("announcement.ready", collect)
    await app[BUS_KEY].publish("ticket.called", ticket(6, "B002", 4, 4))
    await wait_for(lambda: ready, 30, "announcement.ready")
    await asyncio.sleep(0.1)
    assert app[ANNOUNCER_KEY].pager is not None
    assert (app[ANNOUNCER_KEY].pager.paged, app[ANNOUNCER_KEY].pager.skipped) == (0, 1)

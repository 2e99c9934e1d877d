"""Consoles' browser tests use the shared harness (tests/browser.py: live_server, browser, new_page),
with the demo PBX running inside the app and FastAGI on a free loopback port."""

from __future__ import annotations

from typing import Any

import pytest

from tests.servers import free_port


@pytest.fixture
def live_settings() -> dict[str, Any]:
    return {"telephony": {"demo_pbx": True, "agi_enabled": True, "agi_port": free_port()}}

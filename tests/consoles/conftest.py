"""Consoles' browser tests use the shared harness (tests/browser.py: live_server, browser, new_page),
with the demo PBX running inside the app and FastAGI on a free loopback port. Every page they open
is watched for uncaught script errors, which fail the test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from tests.servers import free_port


@pytest.fixture
def live_settings() -> dict[str, Any]:
    return {"telephony": {"demo_pbx": True, "agi_enabled": True, "agi_port": free_port()}}


@pytest.fixture
async def new_page(new_page: Callable[..., Awaitable[Any]]) -> AsyncIterator[Callable[..., Awaitable[Any]]]:
    errors: list[str] = []

    async def make(who: str | None = None, lang: str = "vi") -> Any:
        page = await new_page(who, lang)
        page.on("pageerror", lambda exc: errors.append(f"{page.url}: {exc}"))
        return page

    yield make
    assert errors == [], f"script errors in the consoles: {errors}"

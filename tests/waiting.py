"""Tests wait for a state, never for a time: `until` polls a check until it holds."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from typing import Any

# `seconds` is what a quiet machine needs at most; a test fails only after HANG_SLACK times that (a machine
# loaded by other suites starts servers, browsers and Asterisk many times slower).
HANG_SLACK = 5


async def until(check: Callable[[], Any], what: str = "", seconds: float = 20.0) -> Any:
    """Polls `check()` (sync or async) until it gives something true, and returns it."""
    deadline = time.monotonic() + seconds * HANG_SLACK
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds * HANG_SLACK:.0f} s: {what or check}; last: {value!r}")
        await asyncio.sleep(0.05)

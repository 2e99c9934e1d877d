"""The wait range on the screens, in headless Debian Chromium against the real app (tests/browser.py):
the TV (vi, en, zh), the door screen and the patient's own page show "a–b phút" from the stored range."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from tests.browser import LiveServer

NewPage = Callable[..., Awaitable[Any]]


def minutes(seconds: float) -> int:
    return int(seconds / 60 + 0.5)  # as the pages round (Math.round)


async def test_tv_door_and_patient_page_show_the_wait_range(live_server: LiveServer, new_page: NewPage) -> None:
    service = live_server.services["A"]
    issued = [(await live_server.api("POST", "/api/tickets", who="reception", json={"service_id": service}))["ticket"]
              for _ in range(5)]
    queue = await live_server.api("GET", "/api/queue", who="reception")
    line = next(s for s in queue["services"] if s["id"] == service)["waiting"]
    ranged = [t for t in line if t["estimated_wait_range"] and
              minutes(t["estimated_wait_range"][0]) < minutes(t["estimated_wait_range"][1])]
    assert ranged, line  # later tickets have a real range
    ticket = ranged[-1]
    number = ticket["number"]
    pattern = r"\d+–\d+ {unit}"

    tv = await new_page()
    await tv.goto(live_server.url("/tv", token=live_server.display_token))
    await tv.wait_for_selector("#status[data-state='live']")
    eta = tv.locator(f"[data-service='{service}'] li").filter(has_text=number).locator(".eta")
    for language, unit in (("vi", "phút"), ("en", "min"), ("zh", "分钟")):
        await tv.locator(f"button[data-lang='{language}']").click()
        await eta.filter(has_text=re.compile(pattern.format(unit=unit))).wait_for()

    room_id = next(room for name, room in live_server.rooms.items() if name.startswith("consult"))
    door = await new_page()
    await door.goto(live_server.url("/door", token=live_server.display_token, room=str(room_id)))
    await door.locator("#next .next-ticket .eta").filter(has_text=re.compile(pattern.format(unit="phút"))).first.wait_for()

    status_url = next(t for t in issued if t["id"] == ticket["id"])["status_url"]
    patient = await new_page()
    await patient.goto(status_url)
    await patient.locator("#wait").filter(has_text=re.compile(pattern.format(unit="phút"))).wait_for()

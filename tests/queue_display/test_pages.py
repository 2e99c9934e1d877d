"""The screens in headless Debian Chromium against the real app on a real port (tests/browser.py):
kiosk, room control -> TV and door, the TV reconnecting by itself, and the spoken call fetched by the TV."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from aiohttp import WSCloseCode

from clinicall.keys import WEBSOCKETS_KEY
from tests.browser import LiveServer
from tests.servers import free_port

NewPage = Callable[..., Awaitable[Any]]


@pytest.fixture
def live_settings() -> dict[str, Any]:
    # gTTS is first in line but unreachable (a closed local port): announcements must still be made offline
    return {"audio": {"engines": ["gtts", "espeak"], "gtts_url": f"http://127.0.0.1:{free_port()}/batchexecute",
                      "gtts_timeout_seconds": 1.0},
            "display": {"heartbeat_seconds": 5.0}}


@pytest.fixture
async def new_page(new_page: NewPage) -> AsyncIterator[NewPage]:
    """The harness's pages, watched for uncaught script errors (which fail the test)."""
    errors: list[str] = []

    async def make(who: str | None = None, lang: str = "vi") -> Any:
        opened = await new_page(who, lang)
        opened.on("pageerror", lambda exc: errors.append(f"{opened.url}: {exc}"))
        return opened

    yield make
    assert errors == [], f"script errors on the screens: {errors}"


@pytest.fixture
async def page(new_page: NewPage) -> Any:
    return await new_page()


async def open_tv(new_page: NewPage, server: LiveServer, **query: str) -> Any:
    tv = await new_page()
    await tv.goto(server.url("/tv", token=server.display_token, **query))
    await tv.wait_for_selector("#status[data-state='live']")
    return tv


async def test_kiosk_issues_a_ticket_with_a_qr_code_and_prints_on_80mm(live_server: LiveServer, page: Any) -> None:
    await page.goto(live_server.url("/kiosk"))
    await page.get_by_role("heading", name="Chọn dịch vụ").wait_for()
    await page.get_by_role("button", name="Khám tổng quát").click()
    await page.locator("#ticket-number").filter(has_text="A001").wait_for()
    qr = page.locator("#ticket-qr")
    status_url = await qr.get_attribute("data-url")
    assert status_url.startswith(live_server.base_url + "/t/")
    await page.wait_for_function("document.getElementById('ticket-qr').naturalWidth > 0")
    assert re.fullmatch(r"sắp tới|~\d+ phút", await page.locator("#ticket-wait").inner_text())
    async with aiohttp.ClientSession() as http, http.get(status_url) as response:
        assert response.status == 200  # the QR code leads to the patient's status page
    await page.emulate_media(media="print")
    assert not await page.locator("header.bar").is_visible()
    assert not await page.locator("#print").is_visible()
    assert await page.locator("#ticket-number").is_visible()
    await page.emulate_media(media="screen")
    await page.get_by_role("button", name="Lấy số khác").click()
    await page.get_by_role("button", name="Khám tổng quát").wait_for()


async def test_call_next_on_the_room_page_is_seen_on_the_tv_and_the_door(live_server: LiveServer,
                                                                         new_page: NewPage) -> None:
    room_id = live_server.rooms["consult:1"]
    issued = await live_server.api("POST", "/api/tickets", who="reception", json={"service_id": live_server.services["A"]})
    number = issued["ticket"]["number"]
    tv = await open_tv(new_page, live_server)
    await tv.locator(f"[data-service='{live_server.services['A']}']").filter(has_text=number).wait_for()
    door = await new_page()
    await door.goto(live_server.url("/door", token=live_server.display_token, room=str(room_id)))
    await door.locator("#next").filter(has_text=number).wait_for()

    room = await new_page("doctor")
    await room.goto(live_server.url("/room", room=str(room_id)))
    await room.get_by_role("heading", name="Phòng khám số 1").wait_for()
    await room.locator("#waiting").filter(has_text=number).wait_for()
    await room.keyboard.press("n")  # the shortcut for "call next"

    await tv.locator("#now-number").filter(has_text=number).wait_for()
    assert await tv.locator("#now-room").inner_text() == "Phòng khám số 1"
    assert "flash" in (await tv.locator("#now").get_attribute("class"))
    await door.locator("#current").filter(has_text=number).wait_for()
    await room.locator("#current-number").filter(has_text=number).wait_for()

    await room.locator("#message").filter(has_text=f"{number}: đã gọi").wait_for()  # the call's answer is in
    await room.keyboard.press("r")  # recall
    await room.locator("#message").filter(has_text=f"{number}: Gọi lại").wait_for()
    ticket_id = issued["ticket"]["id"]
    assert (await live_server.api("GET", f"/api/tickets/{ticket_id}", who="doctor"))["ticket"]["recall_count"] == 1
    await room.get_by_role("button", name="Bắt đầu khám").click()
    await room.locator("#current-meta").filter(has_text="đang khám").wait_for()
    await room.get_by_role("button", name="Xong").click()
    await room.locator("#current-number").filter(has_text="Chưa gọi ai").wait_for()
    await door.locator("#current").filter(has_text="—").wait_for()

    # skip, then transfer to another service: each leaves the room free and the TV follows
    for action in ("skip", "transfer"):
        other = await live_server.api("POST", "/api/tickets", who="reception",
                                      json={"service_id": live_server.services["A"]})
        await room.get_by_role("button", name="Gọi số tiếp").click()
        await room.locator("#message").filter(has_text=f"{other['ticket']['number']}: đã gọi").wait_for()
        if action == "skip":
            await room.keyboard.press("s")
        else:
            await room.get_by_label("Chuyển sang dịch vụ").select_option(label="Khám nhi")
            await room.get_by_role("button", name="Chuyển", exact=True).click()
            await room.locator("#message").filter(has_text="→ C").wait_for()
            moved = (await live_server.api("GET", f"/api/tickets/{other['ticket']['id']}", who="doctor"))["ticket"]
            assert moved["number"].startswith("C")  # a number of its new service
            await tv.locator(f"[data-service='{live_server.services['C']}']").filter(has_text=moved["number"]).wait_for()
        await room.locator("#current-number").filter(has_text="Chưa gọi ai").wait_for()
        status = (await live_server.api("GET", f"/api/tickets/{other['ticket']['id']}", who="doctor"))["ticket"]
        assert status["status"] == ("skipped" if action == "skip" else "waiting")
    await tv.get_by_role("button", name="English").click()
    assert await tv.locator("#now-room").inner_text() == "Consultation room 1"


async def test_tv_reconnects_after_the_server_closes_its_socket(live_server: LiveServer, new_page: NewPage) -> None:
    tv = await open_tv(new_page, live_server, lang="zh")
    assert await tv.locator("#now-title").inner_text() == "正在叫号"
    clinic_now = dt.datetime.now(ZoneInfo("Asia/Ho_Chi_Minh"))  # the browser itself runs on UTC
    await tv.wait_for_function("document.getElementById('clock').textContent.length > 0")
    shown = await tv.locator("#clock").inner_text()
    assert shown in {(clinic_now + dt.timedelta(minutes=m)).strftime("%H:%M") for m in (-1, 0, 1)}, shown
    for ws in list(live_server.app[WEBSOCKETS_KEY]):
        await ws.close(code=WSCloseCode.GOING_AWAY, message=b"restart")
    await tv.wait_for_function("window.clinicallTv.feed.connects >= 2")
    await tv.wait_for_selector("#status[data-state='live']")
    issued = await live_server.api("POST", "/api/tickets", who="reception", json={"service_id": live_server.services["C"]})
    await live_server.api("POST", f"/api/rooms/{live_server.rooms['consult:3']}/call-next", who="doctor")
    await tv.locator("#now-number").filter(has_text=issued["ticket"]["number"]).wait_for()
    assert await tv.locator("#now-room").inner_text() == "3号诊室"
    # the network is cut and a number is called meanwhile: on reconnecting the TV shows it as a call (flashing)
    await tv.context.set_offline(True)
    for ws in list(live_server.app[WEBSOCKETS_KEY]):
        await ws.close(code=WSCloseCode.GOING_AWAY, message=b"cut")
    await tv.wait_for_selector("#status:not([data-state='live'])")
    await tv.evaluate("document.getElementById('now').classList.remove('flash')")
    missed = await live_server.api("POST", "/api/tickets", who="reception", json={"service_id": live_server.services["C"]})
    await live_server.api("POST", f"/api/rooms/{live_server.rooms['consult:3']}/call-next", who="doctor")
    await tv.context.set_offline(False)
    await tv.locator("#now.flash #now-number").filter(has_text=missed["ticket"]["number"]).wait_for()


async def test_done_when_called_on_the_room_page_seen_and_heard_on_the_tv(live_server: LiveServer,
                                                                          new_page: NewPage, tmp_path: Path) -> None:
    """The issue's 'done when': a call-next made through the room page is seen on the TV page, and its
    announcement (rendered offline: gTTS is unreachable) is fetched and played by the TV and by a
    speaker client (clinicall_speaker, aiohttp) listening on the same hub."""
    from clinicall_speaker import Speaker

    issued = await live_server.api("POST", "/api/tickets", who="reception", json={"service_id": live_server.services["A"]})
    number = issued["ticket"]["number"]
    room_id = live_server.rooms["consult:1"]
    speaker = Speaker(live_server.base_url, live_server.display_token, (room_id,), out_dir=tmp_path / "speaker")
    listening = asyncio.create_task(speaker.run())
    await asyncio.wait_for(speaker.connected.wait(), 10)
    tv = await open_tv(new_page, live_server)
    clips: list[Any] = []
    tv.on("response", lambda r: clips.append(r) if "/audio/clips/" in r.url else None)
    await tv.get_by_role("button", name="Bật âm thanh / Enable sound").click()

    room = await new_page("doctor")
    await room.goto(live_server.url("/room", room=str(room_id)))
    await room.locator("#waiting").filter(has_text=number).wait_for()
    await room.get_by_role("button", name="Gọi số tiếp").click()

    await tv.locator("#now-number").filter(has_text=number).wait_for()
    await tv.wait_for_function("window.clinicallTv.audio.played.length > 0")
    for _ in range(50):
        if clips:
            break
        await asyncio.sleep(0.1)
    clip = clips[0]
    assert clip.status == 200 and clip.headers["content-type"].startswith("audio/"), clip
    # the display token travels in the screen's HttpOnly cookie, never in the page's or the clip's URL
    assert f"clinicall_display={live_server.display_token}" in (await clip.request.all_headers())["cookie"]
    assert live_server.display_token not in clip.url and live_server.display_token not in tv.url
    headers = {"Authorization": f"Bearer {live_server.display_token}"}
    async with aiohttp.ClientSession() as http, http.get(clip.url, headers=headers) as response:
        clip_bytes = await response.read()
    assert clip_bytes[:4] == b"RIFF"  # a real WAV file
    try:
        for _ in range(100):
            if speaker.played:
                break
            await asyncio.sleep(0.1)
        assert len(speaker.played) == 1 and number in speaker.played[0].name
        assert speaker.played[0].read_bytes() == clip_bytes  # the speaker got the very clip the TV played
    finally:
        listening.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listening

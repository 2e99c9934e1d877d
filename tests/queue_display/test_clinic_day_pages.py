"""A clinic day other than the scripted morning, through the pages in Chromium: the doctor of room 1 starts late
(the room page says the room is closed and opens it with O), a patient takes a number at the kiosk in English
(a closed service is greyed out with its hours), is called, sent to the lab with the page's defaults, sent on to
X-ray by the lab, and room 1 closes for lunch meanwhile; the patient's own phone page follows every step and never
sends them to the closed door, nor does the TV; room 2's door shows them as next while room 1 is closed and not once it reopens;
room 1's door says "closed" over lunch and lists them again once it reopens, live; the TV's big number never shows a
call taken back by a transfer or a return to a line, and follows a service renamed during the day; room 1 calls them back with their own number; a receptionist's double click gives one number. No 5xx, no script
error."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

from clinicall.keys import SETTINGS_KEY
from tests.browser import LiveServer

NewPage = Callable[..., Awaitable[Any]]


def watch(page: Any, problems: list[str]) -> None:
    page.on("pageerror", lambda error: problems.append(f"script error: {error}"))
    page.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 500 else None)


async def test_a_late_doctor_a_lab_and_xray_round_trip_and_lunch(live_server: LiveServer, new_page: NewPage) -> None:
    server = live_server
    A, C = server.services["A"], server.services["C"]
    made = await server.api("POST", "/api/services", json={"prefix": "D", "names": {"vi": "Chụp X-quang", "en": "X-ray"}})
    D = made["service"]["id"]
    imaging = (await server.api("POST", "/api/rooms", json={"kind": "imaging", "number": 1, "service_ids": [D]}))["room"]["id"]
    room1, room2, lab = server.rooms["consult:1"], server.rooms["consult:2"], server.rooms["lab:1"]
    await server.api("PATCH", f"/api/rooms/{room1}", json={"open": False})  # the doctor of room 1 is late
    weekday = dt.datetime.now(server.app[SETTINGS_KEY].clinic.zone()).weekday()
    await server.api("PATCH", f"/api/services/{C}", json={"open_days": [d for d in range(7) if d != weekday]})
    problems: list[str] = []

    kiosk = await new_page(lang="en")
    watch(kiosk, problems)
    await kiosk.goto(server.url("/kiosk", lang="en"))
    closed = kiosk.locator(f"#services button[data-service='{C}']")
    await closed.filter(has_text="Closed now (hours 00:00–24:00)").wait_for()
    assert await closed.is_disabled()
    await kiosk.locator(f"#services button[data-service='{A}']").click()
    await kiosk.locator("#ticket-number").filter(has_text="A001").wait_for()
    status_url = await kiosk.locator("#ticket-qr").get_attribute("data-url")
    issued = dt.datetime.fromisoformat((await server.api("GET", "/api/tickets", who="reception"))["tickets"][0]["issued_at"])
    clinic_time = issued.astimezone(server.app[SETTINGS_KEY].clinic.zone()).strftime("%H:%M")
    assert clinic_time in await kiosk.locator("#ticket-time").inner_text()  # the clinic's time, not the kiosk's zone

    phone = await new_page()
    watch(phone, problems)

    async def phone_says(*texts: str) -> None:
        await phone.goto(status_url)
        for text in texts:
            await phone.locator("main").filter(has_text=text).wait_for()

    await phone_says("A001", "Đang chờ")

    room = await new_page("doctor")
    watch(room, problems)
    await room.goto(server.url("/room", room=str(room1)))
    await room.wait_for_selector("body[data-ready='1']")
    message = room.locator("#message")

    async def press(key: str, answer: str) -> None:
        await room.evaluate("document.getElementById('message').textContent = ''")
        await room.keyboard.press(key)
        await message.filter(has_text=answer).wait_for()

    await room.locator("#room-state").filter(has_text="Phòng đang đóng").wait_for()
    await press("n", "Phòng đang đóng. Bấm Mở phòng (O) trước khi gọi số.")
    await press("o", "Đã mở phòng")
    assert await room.locator("#room-state").inner_text() == ""
    await press("n", "A001: đã gọi")
    await phone_says("Mời bạn vào", "Phòng khám số 1")
    await room.keyboard.press("t")
    await press("Enter", "→ B001")  # the page's defaults: the lab, and back to this room
    await phone_says("B001", "Xong Xét nghiệm, mời bạn quay lại Phòng khám số 1.")

    patient = (await server.api("POST", f"/api/rooms/{lab}/call-next", who="doctor"))["ticket"]
    onward = await server.api("POST", f"/api/tickets/{patient['id']}/transfer", who="doctor", json={"service_id": D})
    assert onward["ticket"]["number"] == "D001"
    await phone_says("D001", "Xong Chụp X-quang, mời bạn quay lại Phòng khám số 1.")
    tv = await new_page()
    watch(tv, problems)
    await tv.goto(server.url("/tv", token=server.display_token))
    await tv.locator("#services li").filter(has_text="D001").filter(has_text="Sau đó quay lại Phòng khám số 1").wait_for()
    assert await tv.locator("#now-number").inner_text() == "—"  # their calls were taken back by the transfers
    door1 = await new_page()
    watch(door1, problems)
    await door1.goto(server.url("/door", token=server.display_token, room=str(room1)))
    await door1.locator("#status[data-state='live']").wait_for()
    await press("o", "Đã đóng phòng")  # lunch, while the patient is at X-ray
    await door1.locator("#next[data-closed='true']").filter(has_text="Phòng đang đóng").wait_for()  # live
    await phone_says("D001", "Xong Chụp X-quang, mời bạn quay lại Khám tổng quát.")  # not the closed door
    await tv.locator("#services li").filter(has_text="D001").filter(has_text="Sau đó quay lại Khám tổng quát").wait_for()

    door = await new_page()
    watch(door, problems)
    await door.goto(server.url("/door", token=server.display_token, room=str(room2)))
    await door.locator("#status[data-state='live']").wait_for()
    await server.api("POST", f"/api/rooms/{imaging}/call-next", who="doctor")
    await tv.locator("#now-number").filter(has_text="D001").wait_for()
    back = (await server.api("POST", f"/api/tickets/{patient['id']}/done", who="doctor"))["ticket"]
    assert back["number"] == "A001" and back["status"] == "waiting"
    await tv.locator("#now-number").filter(has_text="—").wait_for()  # back in a line: no longer called
    await phone_says("A001", "Mời bạn quay lại Khám tổng quát")
    await door.locator("#next").filter(has_text="A001").wait_for()  # room 1 is closed: room 2 may call them

    await press("o", "Đã mở phòng")  # back from lunch before anyone called them: their own doctor again
    await door1.locator("#next[data-closed='false']").filter(has_text="A001").wait_for()
    await phone_says("A001", "Mời bạn quay lại Phòng khám số 1")
    await door.reload()
    await door.locator("#status[data-state='live']").wait_for()
    await door.locator("#next").filter(has_text="—").wait_for()
    assert (await server.api("POST", f"/api/rooms/{room2}/call-next", who="doctor"))["ticket"] is None
    await press("n", "A001: đã gọi")
    await phone_says("Mời bạn vào", "Phòng khám số 1")
    await press("d", "A001: Xong")
    await phone_says("Đã hoàn tất")
    await server.api("PATCH", f"/api/services/{A}", json={"names": {"vi": "Khám bệnh", "en": "Consultation"}})
    await tv.locator(f"#services [data-service='{A}'] h3").filter(has_text="Khám bệnh").wait_for()  # renamed, live
    await room.goto(server.url("/room", room=str(lab)))  # the lab's own page: its walk-ins sent on do not come back
    await room.wait_for_selector("body[data-ready='1']")
    assert not await room.locator("#transfer-return").is_checked()

    desk = await new_page("reception")  # a receptionist double-clicks "Cấp số": one number, not two
    watch(desk, problems)
    posts: list[str] = []
    desk.on("request", lambda r: posts.append(r.url) if r.method == "POST" and r.url.endswith("/api/tickets") else None)
    await desk.goto(server.url("/reception"))
    await desk.wait_for_selector("body[data-ready='1']")
    await desk.locator("#walkin-form button[type=submit]").dblclick()
    await desk.locator("#issued-number").filter(has_text="A00").wait_for()
    assert len(posts) == 1
    assert problems == []

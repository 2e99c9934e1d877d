"""The room page in Chromium does every operation with its key (N R S B H K U G T D), a transfer with the
page's defaults returns to the same doctor and says so on the room page, the TV and the patient's page;
reception's arrivals follow another desk's check-in live."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

from clinicall.keys import SETTINGS_KEY
from tests.browser import LiveServer
from tests.consoles.a11y import audit

NewPage = Callable[..., Awaitable[Any]]


async def ticket(server: LiveServer, ticket_id: int) -> dict[str, Any]:
    return (await server.api("GET", f"/api/tickets/{ticket_id}", who="doctor"))["ticket"]  # type: ignore[no-any-return]


async def test_every_operation_from_the_room_page_with_its_key(live_server: LiveServer, new_page: NewPage) -> None:
    server = live_server
    A, B = server.services["A"], server.services["B"]
    issued = [(await server.api("POST", "/api/tickets", who="reception", json={"service_id": A}))["ticket"]
              for _ in range(4)]
    t1, t2, t3, t4 = issued
    tv = await new_page()
    await tv.goto(server.url("/tv", token=server.display_token))
    await tv.wait_for_selector("#status[data-state='live']")
    room = await new_page("doctor")
    await room.goto(server.url("/room", room=str(server.rooms["consult:1"])))
    await room.wait_for_selector("body[data-ready='1']")
    await room.locator("#waiting tr[data-number='A004']").wait_for()
    message = room.locator("#message")

    async def press(key: str, answer: str) -> None:
        """A key, then the page's answer (the operation is done before the next key)."""
        await room.keyboard.press(key)
        await message.filter(has_text=answer).wait_for()

    await press("n", "A001: đã gọi")  # call next
    for count in (1, 2, 3):  # recall three times, then skip: a no-show
        await press("r", f"A001: Gọi lại ({count})")
    await press("s", "A001: bỏ qua")
    await room.locator("#aside tr[data-number='A001']").filter(has_text="vắng mặt").wait_for()
    await room.get_by_role("button", name="Khôi phục A001").wait_for()  # also a button on its row

    await press("n", "A002: đã gọi")
    await press("b", "A002: đang khám")  # start
    await press("h", "A002: đã tạm giữ")  # hold: the patient stepped out
    await room.locator("#aside tr[data-number='A002']").filter(has_text="tạm giữ").wait_for()
    assert (await ticket(server, t2["id"]))["status"] == "held"

    await press("k", "A001: đã khôi phục về chỗ cũ")  # restore the no-show: back where it stood, first in line
    assert (await ticket(server, t1["id"]))["status"] == "waiting"
    line = (await server.api("GET", "/api/queue", who="doctor"))["services"]
    assert [t["number"] for t in next(s for s in line if s["id"] == A)["waiting"]][:1] == ["A001"]
    await press("u", "A002: đã tiếp tục")  # resume the held one
    assert (await ticket(server, t2["id"]))["status"] == "waiting"

    await room.keyboard.press("g")  # call a given number
    await room.keyboard.type("a004")
    await press("Enter", "A004: đã gọi")
    await room.locator("#current-number").filter(has_text=t4["number"]).wait_for()
    await press("b", "A004: đang khám")

    # transfer with the page's defaults: the lab is pre-selected, "come back to this room" is ticked
    assert await room.locator("#transfer-service").input_value() == str(B)
    assert await room.locator("#transfer-return").is_checked()
    await room.locator("#transfer-note").filter(has_text="Sau khi xong, bệnh nhân quay lại Phòng khám số 1").wait_for()
    assert await audit(room) == []
    await room.keyboard.press("t")
    await press("Enter", "→ B001")
    moved = await ticket(server, t4["id"])
    assert moved["number"] == "B001" and moved["return_room_id"] == server.rooms["consult:1"]
    await tv.locator(f"[data-service='{B}'] li").filter(has_text="B001").filter(
        has_text="Sau đó quay lại Phòng khám số 1").wait_for()
    patient = await new_page()
    await patient.goto(moved["status_url"])
    await patient.locator("#back").filter(has_text="Xong Xét nghiệm, mời bạn quay lại Phòng khám số 1.").wait_for()
    await patient.get_by_role("button", name="English").click()
    await patient.locator("#back").filter(has_text="Back to Consultation room 1 after Laboratory tests.").wait_for()

    # the lab is done: not "finished" for the patient, who goes back to doctor 1 with their own number
    await server.api("POST", f"/api/rooms/{server.rooms['lab:1']}/call-next", who="doctor")
    await server.api("POST", f"/api/tickets/{t4['id']}/done", who="doctor")
    await patient.reload()
    await patient.locator("#number").filter(has_text="A004").wait_for()
    await patient.locator("#back").filter(has_text="Please go back to Consultation room 1").wait_for()
    assert "Finished" not in await patient.locator("#state").inner_text()
    await room.locator("#waiting tr[data-number='A004']").filter(has_text="quay lại").wait_for()
    await press("n", "A004: đã gọi")  # the returning patient first: their doctor waits for the results
    await press("d", "A004: Xong")  # done
    await room.locator("#current-number").filter(has_text="Chưa gọi ai").wait_for()
    assert (await ticket(server, t4["id"]))["status"] == "done"
    assert (await ticket(server, t3["id"]))["status"] == "waiting"


async def test_reception_arrivals_follow_another_desks_check_in(live_server: LiveServer, new_page: NewPage) -> None:
    server = live_server
    today = dt.datetime.now(server.app[SETTINGS_KEY].clinic.zone()).date().isoformat()
    made = await server.api("POST", "/api/patients", json={
        "full_name": "Phạm Văn Long", "assigned_agent_id": server.ids["agent"], "phones": [{"number": "0912000222"}]})
    patient_id = made["patient"]["id"]
    await server.api("POST", f"/api/patients/{patient_id}/notes", who="agent", json={
        "customer_status": "Đã đặt lịch", "booking_date": today, "arrival_date": today})
    desk = await new_page("reception")
    await desk.goto(server.url("/reception"))
    await desk.wait_for_selector("body[data-ready='1'][data-live='1']")
    row = desk.locator(f"#arrivals tr[data-patient='{patient_id}']")
    await row.get_by_role("button", name="Tiếp nhận Phạm Văn Long").wait_for()
    # the other desk checks the patient in: this desk's list shows the number without a reload
    data = await server.api("POST", "/api/checkins", who="reception",
                            json={"patient_id": patient_id, "service_id": server.services["A"]})
    number = data["ticket"]["number"]
    await row.locator(f"[data-ticket='{number}']").wait_for()
    assert await row.get_by_role("button").count() == 0
    await desk.locator(f"#queue tr[data-ticket='{number}']").wait_for()

"""The patient's status page in headless Chromium: number, people ahead and wait in Vietnamese,
English on request, and the room appears by itself (live refresh) once the ticket is called."""

from __future__ import annotations

from typing import Any

from tests.browser import LiveServer


async def test_status_page_follows_the_ticket(live_server: LiveServer, page: Any) -> None:
    service_id = live_server.services["A"]
    first = (await live_server.api("POST", "/api/kiosk/tickets", who=None, json={"service_id": service_id}, expect=201))["ticket"]
    mine = (await live_server.api("POST", "/api/kiosk/tickets", who=None, json={"service_id": service_id}, expect=201))["ticket"]
    assert mine["status_url"].startswith(live_server.base_url + "/t/")
    await page.goto(mine["status_url"])
    await page.locator("#number").filter(has_text=mine["number"]).wait_for()
    assert await page.locator("html").get_attribute("lang") == "vi"
    assert (await page.locator("#state").inner_text()).strip() == "Đang chờ"
    assert (await page.locator("#ahead").inner_text()).strip() == "1"
    assert "phút" in await page.locator("#wait").inner_text() or "sắp" in await page.locator("#wait").inner_text()

    await page.get_by_role("button", name="English").click()
    assert (await page.locator("#state").inner_text()).strip() == "Waiting"
    assert await page.locator("html").get_attribute("lang") == "en"

    room = live_server.rooms["consult:1"]
    await live_server.api("POST", f"/api/tickets/{first['id']}/call", who="doctor", json={"room_id": room})
    await live_server.api("POST", f"/api/tickets/{mine['id']}/call", who="doctor", json={"room_id": room})
    await page.locator("#state").filter(has_text="Consultation room 1").wait_for()
    assert "Please go to" in await page.locator("#state").inner_text()

    qr = await page.request.get(live_server.base_url + mine["qr_svg_url"])
    assert qr.ok and "<svg" in await qr.text()
    missing = await page.goto(live_server.base_url + "/t/this-token-does-not-exist")
    assert missing is not None and missing.status == 404

"""In Chromium: an agent opens a patient's card, picks a template, sends it as an SMS in one click and
watches it become delivered (through the local SMSC, live on /ws/messages); the supervisor's /messages
page shows it in the log and the SMPP adapter in force."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.messaging.smsc import Smsc


@pytest.fixture
async def smsc() -> AsyncIterator[Smsc]:
    server = Smsc()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def live_settings(smsc: Smsc) -> dict[str, Any]:
    return {"messaging": {"adapter": "smpp", "smpp_host": "127.0.0.1", "smpp_port": smsc.port,
                          "smpp_system_id": "clinicall", "smpp_password": "secret", "smpp_source_addr": "CLINIC"}}


async def test_agent_sends_a_template_from_the_card_and_sees_it_delivered(live_server: Any, new_page: Any,
                                                                         smsc: Smsc) -> None:
    created = await live_server.api("POST", "/api/patients", json={
        "full_name": "Nguyễn Văn An", "assigned_agent_id": live_server.ids["agent"],
        "phones": [{"number": "0912345678"}]})
    patient_id = created["patient"]["id"]
    await live_server.api("POST", "/api/templates", who="supervisor", json={
        "name": "Nhắc tái khám", "channel": "sms", "body": "Chào {fullName}, mời anh/chị tái khám."})
    errors: list[str] = []
    page = await new_page("agent")
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(live_server.url("/agent") + f"#patient={patient_id}")
    await page.wait_for_selector("body[data-ready='1']")
    await page.get_by_role("button", name="Tin nhắn mẫu").click()
    await page.get_by_label("Mẫu", exact=True).select_option(label="Nhắc tái khám")
    await page.wait_for_function("document.getElementById('tpl-text').value.includes('Nguyễn Văn An')")
    await page.get_by_role("button", name="Gửi SMS").click()
    await page.get_by_role("status").filter(has_text="Đã xếp tin nhắn vào hàng gửi.").wait_for()
    await page.get_by_role("button", name="Đóng").first.click()
    delivered = page.locator("#card-messages li[data-status=delivered]")
    await delivered.wait_for()
    assert "Đã nhận" in await delivered.inner_text()
    assert "Chào Nguyễn Văn An, mời anh/chị tái khám." in await delivered.inner_text()
    assert smsc.texts_to("84912345678") == ["Chào Nguyễn Văn An, mời anh/chị tái khám."]

    supervisor = await new_page("supervisor")
    supervisor.on("pageerror", lambda exc: errors.append(str(exc)))
    await supervisor.goto(live_server.url("/messages"))
    await supervisor.wait_for_selector("body[data-ready='1']")
    assert await supervisor.locator("#gw-adapter").inner_text() == "SMPP (tổng đài SMS)"
    row = supervisor.locator("#log-table tbody tr")
    assert await row.count() == 1 and "Đã nhận" in await row.inner_text()
    assert errors == []

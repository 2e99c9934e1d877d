"""Calls from the agent console through the demo PBX running inside the service (a real AMI peer
over TCP) and its FastAGI identify session: click-to-call with the live state over /ws/agent, the
outcome form opened when the call ends and logged against the call; inbound screen-pops for a known
caller (the card before answering) and for an unknown number (the quick new-patient form)."""

from __future__ import annotations

from typing import Any

from telephony.keys import DEMO_PBX_KEY
from tests.consoles.a11y import audit

WATCH_STATES = """() => {
  window.__states = [];
  new MutationObserver(() => {
    const s = document.getElementById("call-state").dataset.state;
    if (s && window.__states[window.__states.length - 1] !== s) window.__states.push(s);
  }).observe(document.getElementById("call-state"), {attributes: true, childList: true, characterData: true, subtree: true});
}"""


async def agent_console(new_page: Any, server: Any, hash_: str = "") -> Any:
    page = await new_page("agent")
    await page.goto(f"{server.base_url}/agent{hash_}")
    await page.wait_for_selector("body[data-ready='1'][data-ws='open']")
    return page


async def test_click_to_call_live_state_and_outcome(live_server: Any, new_page: Any) -> None:
    made = await live_server.api("POST", "/api/patients", json={
        "full_name": "Nguyễn Văn An", "assigned_agent_id": live_server.ids["agent"], "phones": [{"number": "0912345678"}]})
    patient_id = made["patient"]["id"]
    page = await agent_console(new_page, live_server, f"#patient={patient_id}")
    await page.get_by_role("heading", name="Nguyễn Văn An").wait_for()
    await page.evaluate(WATCH_STATES)

    await page.get_by_role("button", name="Gọi số 0912 345 678").click()
    callbar = page.locator("#callbar")
    await callbar.wait_for()
    await page.locator("#call-state[data-state='answered']").wait_for()
    assert await page.get_by_role("button", name="Gác máy").is_visible()
    # The outcome form opens by itself when the patient hangs up.
    dialog = page.get_by_role("dialog", name="Kết quả liên hệ")
    await dialog.wait_for()
    states = await page.evaluate("window.__states")
    assert states[-2:] == ["answered", "ended"] and states[0] in ("dialing", "ringing"), states
    assert "Đã kết thúc (Nghe máy)" in await page.locator("#call-state").inner_text()
    assert "Đã kết thúc" in await page.locator("#call-live").inner_text()  # spoken by screen readers
    assert await page.evaluate("document.activeElement.id") == "o-customer"

    await dialog.get_by_label("Trạng thái khách hàng").select_option("Đã đặt lịch")
    await dialog.get_by_label("Chi tiết").select_option("Đặt lịch tái khám")
    await dialog.get_by_label("Ghi chú").fill("Tái khám sau 2 tuần")
    await dialog.get_by_label("Ngày gọi lại").fill("2026-12-05")
    await dialog.get_by_role("button", name="Lưu").click()
    await dialog.wait_for(state="hidden")

    # The call is logged against the patient and the agent, with its outcome, and shown in the history.
    calls = (await live_server.api("GET", f"/api/calls?patient_id={patient_id}", who="agent"))["calls"]
    assert len(calls) == 1
    call = calls[0]
    assert (call["state"], call["disposition"], call["agent_id"]) == ("ended", "answered", live_server.ids["agent"])
    assert call["outcome"]["note"] == "Tái khám sau 2 tuần" and call["outcome"]["detail_status"] == "Đặt lịch tái khám"
    row = page.locator(f"#card-calls tr[data-call='{call['id']}']")
    await row.get_by_text("Tái khám sau 2 tuần", exact=False).wait_for()
    assert "Nghe máy" in await row.inner_text()
    assert await audit(page) == []

    # The admin's statistics count it: calls per agent and day, answer rate, outcome.
    admin = await new_page("admin")
    await admin.goto(f"{live_server.base_url}/admin/stats")
    await admin.wait_for_selector("body[data-ready='1']")
    tables = admin.locator("details table")
    per_agent = tables.filter(has=admin.locator("caption", has_text="Tỉ lệ nghe máy theo tổng đài viên"))
    text = await per_agent.text_content()  # the data table sits in a closed <details>
    assert "Agent" in text and "100%" in text
    outcomes = tables.filter(has=admin.locator("caption", has_text="Kết quả cuộc gọi (Chi tiết)"))
    assert "Đã đặt lịch / Đặt lịch tái khám" in await outcomes.text_content()


async def test_inbound_screenpops_known_and_unknown(live_server: Any, new_page: Any) -> None:
    made = await live_server.api("POST", "/api/patients", json={
        "full_name": "Trần Thị Bình", "assigned_agent_id": live_server.ids["agent"], "phones": [{"number": "0987654321"}]})
    patient_id = made["patient"]["id"]
    page = await agent_console(new_page, live_server)

    # A known caller: the card is on screen before the agent answers.
    await live_server.api("POST", "/api/demo/inbound", who="agent", json={"number": "0987654321"}, expect=202)
    pop = page.get_by_role("dialog", name="Cuộc gọi đến")
    await pop.wait_for()
    assert await pop.locator("#pop-name").inner_text() == "Trần Thị Bình"
    await page.get_by_role("heading", name="Trần Thị Bình").wait_for()
    assert await page.evaluate("document.activeElement.id") == "pop-open"
    assert await audit(page) == []
    await page.keyboard.press("Enter")  # "Mở hồ sơ"
    await pop.wait_for(state="hidden")
    await page.wait_for_function("document.activeElement && document.activeElement.id === 'card'")
    # The inbound call becomes the current call (the agent's phone answers); hanging up from the call
    # bar ends it and opens the outcome form for that patient.
    await page.locator("#call-state[data-state='answered']").wait_for()
    await page.get_by_role("button", name="Gác máy").click()
    outcome = page.get_by_role("dialog", name="Kết quả liên hệ")
    await outcome.wait_for()
    assert "Trần Thị Bình" in await outcome.locator("#outcome-context").inner_text()
    await outcome.get_by_label("Ghi chú").fill("Bệnh nhân gọi hỏi lịch")
    await outcome.get_by_role("button", name="Lưu").click()
    await outcome.wait_for(state="hidden")
    card = await live_server.api("GET", f"/api/patients/{patient_id}")
    assert card["notes"][0]["note"] == "Bệnh nhân gọi hỏi lịch"

    # An unknown number, played from the console's own demo-PBX form: the quick new-patient form,
    # with the caller's number filled in.
    demo = page.get_by_role("region", name="Tổng đài thử (demo)")
    await demo.get_by_label("Giả lập cuộc gọi đến từ số").fill("0909888777")
    await demo.get_by_role("button", name="Gọi đến").click()
    await pop.wait_for()
    assert await pop.locator("#pop-new").is_visible()
    assert await page.evaluate("document.activeElement.id") == "np-name"
    phone = await pop.get_by_label("Số điện thoại").input_value()
    assert phone.replace(" ", "").endswith("909888777")
    await pop.get_by_label("Họ và tên").fill("Võ Minh Khang")
    await pop.get_by_role("button", name="Tạo hồ sơ").click()
    await page.get_by_role("heading", name="Võ Minh Khang").wait_for()
    found = (await live_server.api("GET", "/api/patients?q=0909888777", who="agent"))["items"]
    assert [p["full_name"] for p in found] == ["Võ Minh Khang"]
    await page.locator("#call-state[data-state='answered']").wait_for()
    await page.get_by_role("button", name="Gác máy").click()
    await outcome.wait_for()
    assert "Võ Minh Khang" in await outcome.locator("#outcome-context").inner_text()
    await page.keyboard.press("Escape")


async def test_hang_up_unanswered_call_then_not_reached_worklist(live_server: Any, new_page: Any) -> None:
    made = await live_server.api("POST", "/api/patients", json={
        "full_name": "Đặng Thu Hà", "assigned_agent_id": live_server.ids["agent"], "phones": [{"number": "0903000003"}]})
    patient_id = made["patient"]["id"]
    pbx = live_server.app[DEMO_PBX_KEY]
    assert pbx is not None
    pbx.no_answer_seconds = 600  # the page is reloaded while the phone rings, however long that takes here
    page = await agent_console(new_page, live_server, f"#patient={patient_id}")
    assert await page.locator("[data-count=not_reached]").inner_text() == "0"
    await page.get_by_role("button", name="Gọi số 0903 000 003").click()
    await page.locator("#call-state[data-state='ringing']").wait_for()
    # The page is reloaded while the patient's phone rings: the call bar follows the call again.
    await page.goto(f"{live_server.base_url}/agent")
    await page.wait_for_selector("body[data-ready='1'][data-ws='open']")
    await page.locator("#call-state[data-state='ringing']").wait_for()
    await page.get_by_role("heading", name="Đặng Thu Hà").wait_for()
    await page.locator("#call-who").filter(has_text="Đặng Thu Hà").wait_for()  # named once the card is read
    await page.get_by_role("button", name="Gác máy").click()
    dialog = page.get_by_role("dialog", name="Kết quả liên hệ")
    await dialog.wait_for()
    assert await page.locator("#call-state").get_attribute("data-state") == "ended"
    # Reloaded before the outcome is saved: the call is on the list of calls to log and its form opens again.
    await page.goto(f"{live_server.base_url}/agent")
    await page.wait_for_selector("body[data-ready='1']")
    await dialog.wait_for()
    assert "Đặng Thu Hà" in await dialog.locator("#outcome-context").inner_text()
    to_log = page.get_by_role("region", name="Cuộc gọi chưa ghi kết quả")
    assert "Đặng Thu Hà" in await to_log.inner_text()
    await dialog.get_by_label("Trạng thái khách hàng").select_option("Không liên lạc được")
    await dialog.get_by_label("Chi tiết").select_option("Không nghe máy")
    await dialog.get_by_role("button", name="Lưu").click()
    await dialog.wait_for(state="hidden")
    await page.locator("[data-count=not_reached]").filter(has_text="1").wait_for()
    await to_log.wait_for(state="hidden")
    assert (await live_server.api("GET", "/api/calls?unlogged=1", who="agent"))["calls"] == []
    call = (await live_server.api("GET", f"/api/calls?patient_id={patient_id}", who="agent"))["calls"][0]
    assert call["state"] == "ended" and call["disposition"] in ("cancelled", "no_answer")
    assert call["outcome"]["customer_status"] == "Không liên lạc được"
    row = page.locator(f"#card-calls tr[data-call='{call['id']}']")
    assert ("Đã huỷ" if call["disposition"] == "cancelled" else "Không nghe máy") in await row.inner_text()

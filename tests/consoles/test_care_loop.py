"""The care loop's "done when", walked in Chromium: a referrer registers a patient with two files; the
referral is at the top of the care team's new list and its card names the referrer; the agent records the
booking; reception checks the patient in; staff record progress and upload results, marking some visible;
the patient logs in on a 390x844 screen, changes the one-time password and sees exactly the visible
entries and files and today's ticket; the referrer sees "in treatment" and the results meant for him;
another referrer and another patient see none of it."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from clinicall.keys import SETTINGS_KEY
from tests.browser import PAGE_TIMEOUT_MS, login
from tests.conftest import PASSWORD

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
PHONE = "0912000222"
PHONE_SIZE = {"width": 390, "height": 844}


def upload(name: str, data: bytes, mime: str) -> dict[str, Any]:
    return {"name": name, "mimeType": mime, "buffer": data}


async def patient_page(browser: Any, base_url: str, phone: str, password: str, new_password: str) -> Any:
    context = await browser.new_context(locale="vi-VN", viewport=PHONE_SIZE, is_mobile=True)
    page = await context.new_page()
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    await page.goto(f"{base_url}/me")
    await page.get_by_label("Số điện thoại").fill(phone)
    await page.get_by_label("Mật khẩu", exact=True).fill(password)
    await page.get_by_role("button", name="Đăng nhập").click()
    await page.get_by_label("Mật khẩu tạm").fill(password)
    await page.get_by_label("Mật khẩu mới").fill(new_password)
    await page.get_by_role("button", name="Đổi mật khẩu").click()
    await page.locator("#records:not([hidden]), #error:not([hidden])").wait_for()
    assert await page.locator("#error").is_hidden(), await page.locator("#error").get_attribute("data-code")
    return page


async def test_referral_to_results_walk(live_server: Any, new_page: Any, browser: Any) -> None:
    base = live_server.base_url
    today = dt.datetime.now(live_server.app[SETTINGS_KEY].clinic.zone()).date()
    for name in ("refa", "refb"):
        await live_server.api("POST", "/api/users", json={"username": name, "password": PASSWORD, "roles": ["referrer"],
                                                          "display_name": f"BS. {name[-1].upper()}"}, expect=201)
    await live_server.api("POST", "/api/patients", json={"full_name": "Phạm Cũ", "phones": [{"number": "0912000111"}]})

    # The referrer registers a patient with two files; a page disguised as a PDF is refused with a sentence.
    ref = await new_page()
    await login(ref, base, "refa", "/referrer")
    await ref.wait_for_selector("body[data-ready='1']")
    await ref.get_by_label("Họ tên").fill("Võ Thị Giới")
    await ref.get_by_label("Số điện thoại").fill("091200022")  # a digit short: the sentence sits under the phone
    await ref.get_by_role("button", name="Gửi giới thiệu").click()
    assert await ref.locator("#r-phone + [data-field-error]").inner_text() == \
        "Số điện thoại không hợp lệ; hãy viết như 0912 345 678."
    await ref.get_by_label("Số điện thoại").fill(PHONE)
    await ref.get_by_label("Dịch vụ quan tâm").fill("Nội soi")
    files = ref.get_by_label("Tệp đính kèm (PDF, JPEG, PNG, DICOM)")
    await files.set_input_files([upload("thu.pdf", b"<html><script>alert(1)</script></html>", "application/pdf")])
    await ref.get_by_role("button", name="Gửi giới thiệu").click()
    await ref.locator("#refer-error").filter(has_text="Chỉ nhận tệp PDF").wait_for()
    # The care team's console is open meanwhile: the referral shows up in its new list by itself.
    agent = await new_page("supervisor")
    await agent.goto(f"{base}/agent")
    await agent.wait_for_selector("body[data-ready='1'][data-ws='open']")
    await agent.get_by_role("tab", name=re.compile("^Mới")).click()
    new_count = int(await agent.locator("[data-count=new]").inner_text())
    await files.set_input_files([upload("sieu-am.pdf", PDF, "application/pdf"), upload("phim.png", PNG, "image/png")])
    await ref.get_by_role("button", name="Gửi giới thiệu").click()
    await ref.locator("#referrals li.referral-new").filter(has_text="Võ Thị Giới").wait_for()
    mine = await live_server.api("GET", "/api/referrals?list=new", who="supervisor")
    pid = next(p["id"] for p in mine["items"] if p["full_name"] == "Võ Thị Giới")

    # The care team: the referral first in the new list, highlighted; the card names the referrer; booked.
    await agent.locator("[data-count=new]").filter(has_text=str(new_count + 1)).wait_for()
    first = agent.locator("#worklist li").first
    await first.filter(has_text="Võ Thị Giới").wait_for()
    assert "Võ Thị Giới" in await first.inner_text() and await first.locator("[data-referral=new]").count() == 1
    await first.get_by_role("button").click()
    await agent.get_by_role("heading", name="Võ Thị Giới").wait_for()
    assert "BS. A" in await agent.locator("#card-details").inner_text()
    await agent.get_by_role("button", name="Ghi kết quả liên hệ").click()
    dialog = agent.get_by_role("dialog", name="Kết quả liên hệ")
    await dialog.get_by_label("Trạng thái khách hàng").select_option("Đã đặt lịch")
    await dialog.get_by_label("Ngày đặt lịch").fill(today.strftime("%d/%m/%Y"))
    await dialog.get_by_role("button", name="Lưu").click()
    await dialog.wait_for(state="hidden")

    # Reception checks the patient in.
    desk = await new_page("reception")
    await desk.goto(f"{base}/reception")
    await desk.wait_for_selector("body[data-ready='1']")
    await desk.get_by_label("Dịch vụ khi tiếp nhận").select_option(str(live_server.services["A"]))
    await desk.get_by_role("button", name="Tiếp nhận Võ Thị Giới").click()
    await desk.locator(f"#arrivals tr[data-patient='{pid}'] [data-ticket='A001']").wait_for()

    # Staff record progress (one entry for the patient and the referrer, one internal) and upload results.
    await agent.get_by_role("link", name="Điều trị và kết quả").click()
    await agent.wait_for_selector("body[data-ready='1']")
    revisit = today + dt.timedelta(days=14)
    form = agent.locator("#entry-form")
    await form.get_by_label("Ngày", exact=True).fill(today.strftime("%d/%m/%Y"))
    await form.get_by_label("Bác sĩ điều trị").fill("BS. Hà")
    await form.get_by_label("Diễn tiến").fill("Đỡ đau nhiều")
    await form.get_by_label("Ngày tái khám").fill(revisit.strftime("%d/%m/%Y"))
    await form.get_by_label("Bệnh nhân xem").check()
    await form.get_by_label("Bác sĩ giới thiệu xem").check()
    await form.get_by_role("button", name="Ghi diễn tiến").click()
    await agent.locator("#account-new").wait_for()
    otp = re.search(r"Mật khẩu tạm: (\S+)", await agent.locator("#account-state").inner_text())[1]  # type: ignore[index]
    assert "Võ Thị Giới" in await agent.locator("#account-message").input_value()
    assert "Tái khám lần 1" in await agent.locator("#visits").inner_text()
    assert revisit.strftime("%d/%m/%Y") in await agent.locator("#revisit-message").input_value()
    await agent.get_by_role("button", name="Hẹn gửi SMS trước một ngày").click()  # through the messaging room
    day_before = (revisit - dt.timedelta(days=1)).strftime("%d/%m/%Y")
    await agent.locator("#page-status").filter(has_text=day_before).wait_for()
    texts = [m["text"] for m in (await live_server.api("GET", f"/api/patients/{pid}/messages", who="supervisor"))["items"]]
    assert texts == [await agent.locator("#revisit-message").input_value()]
    await form.get_by_label("Ngày", exact=True).fill(today.strftime("%d/%m/%Y"))
    await form.get_by_label("Diễn tiến").fill("Ghi chú nội bộ")
    await form.get_by_role("button", name="Ghi diễn tiến").click()
    await agent.locator("#entries tbody tr").nth(1).wait_for()
    results = agent.locator("#file-form")
    await results.get_by_label("Nhóm").select_option("lab")
    await results.get_by_label("Tệp (PDF, JPEG, PNG, DICOM)").set_input_files([upload("xet-nghiem.pdf", PDF, "application/pdf")])
    await results.get_by_label("Bệnh nhân xem").check()
    await results.get_by_role("button", name="Tải lên").click()
    await agent.locator("#files li").filter(has_text="xet-nghiem.pdf").wait_for()
    await results.get_by_label("Nhóm").select_option("imaging")
    await results.get_by_label("Tệp (PDF, JPEG, PNG, DICOM)").set_input_files([upload("x-quang.png", PNG, "image/png")])
    await results.get_by_label("Bác sĩ giới thiệu xem").check()
    await results.get_by_role("button", name="Tải lên").click()
    await agent.locator("#files li").filter(has_text="x-quang.png").wait_for()
    care = await live_server.api("GET", f"/api/patients/{pid}/care", who="supervisor")
    by_name = {f["filename"]: f["id"] for f in care["files"]}

    # The patient, on a phone: changes the one-time password, sees exactly what is visible and today's ticket.
    me = await patient_page(browser, base, "+84 912 000 222", otp, "trời-xanh-mây-trắng")
    assert await me.evaluate("document.documentElement.scrollWidth") <= PHONE_SIZE["width"]
    assert [t.strip() for t in await me.locator("#entries li").all_inner_texts()] == [
        f"{today.strftime('%d/%m/%Y')} BS. Hà · Đỡ đau nhiều · Tái khám: {revisit.strftime('%d/%m/%Y')}"]
    assert [await a.inner_text() for a in await me.locator("#files a").all()] == ["xet-nghiem.pdf"]
    assert "Tái khám lần 1" in await me.locator("#visits").inner_text()
    assert "A001" in await me.locator("#tickets").inner_text()
    assert (await me.request.get(f"{base}/api/files/{by_name['x-quang.png']}")).status == 404
    assert (await me.request.get(f"{base}/api/files/{by_name['sieu-am.pdf']}")).status == 404
    download = await me.request.get(f"{base}/api/files/{by_name['xet-nghiem.pdf']}")
    assert download.status == 200 and download.headers["content-disposition"].startswith("attachment")

    # The referrer: "in treatment", the entry and the result meant for him, what he sent.
    await ref.reload()
    await ref.wait_for_selector("body[data-ready='1']")
    await ref.get_by_role("tab", name="Đang điều trị (1)").click()
    await ref.get_by_role("button", name="Võ Thị Giới").click()
    await ref.locator("#detail[data-patient]").wait_for()
    assert await ref.locator("#detail-status").inner_text() == "Đang điều trị"
    assert "Đỡ đau nhiều" in await ref.locator("#detail-entries").inner_text()
    assert "Ghi chú nội bộ" not in await ref.locator("#detail").inner_text()
    assert [await a.inner_text() for a in await ref.locator("#detail-results a").all()] == ["x-quang.png"]
    assert sorted([await a.inner_text() for a in await ref.locator("#detail-sent a").all()]) == ["phim.png", "sieu-am.pdf"]

    # Another referrer and another patient see none of it.
    other = await new_page()
    await login(other, base, "refb", "/referrer")
    await other.wait_for_selector("body[data-ready='1']")
    assert await other.locator("#list-tabs button").all_inner_texts() == [
        "Mới (0)", "Đang điều trị (0)", "Đã điều trị xong (0)", "Đã đóng chăm sóc (0)"]
    assert (await other.request.get(f"{base}/api/referrals/{pid}")).status == 404
    assert (await other.request.get(f"{base}/api/files/{by_name['x-quang.png']}")).status == 404
    stranger = await live_server.api("POST", "/api/patients", json={"full_name": "Đỗ Lạ", "phones": [{"number": "0912000333"}]})
    made = await live_server.api("POST", f"/api/patients/{stranger['patient']['id']}/treatment", who="supervisor",
                                 json={"day": today.isoformat(), "progress": "Khám"}, expect=201)
    them = await patient_page(browser, base, "0912000333", made["account"]["one_time_password"], "biển-xanh-cát-vàng")
    assert await them.locator("#files").inner_text() == "Chưa có."
    assert (await them.request.get(f"{base}/api/files/{by_name['xet-nghiem.pdf']}")).status == 404
    for page in (me, them):
        await page.context.close()

    # The admin: referrers, patient accounts (a reset shows a new one-time password once), referral statistics.
    admin = await new_page("admin")
    await admin.goto(f"{base}/admin/referrers")
    await admin.wait_for_selector("body[data-ready='1']")
    assert "BS. A" in await admin.locator("#section").inner_text()
    invite = admin.locator("form").filter(has_text="Mời bằng đường dẫn")
    await invite.get_by_label("Tên hiển thị").fill("BS. Mời")
    await invite.get_by_role("button").click()
    assert "/referrer/join?token=" in await admin.locator("#invite-url").inner_text()
    await admin.goto(f"{base}/admin/patient-accounts")
    await admin.wait_for_selector("body[data-ready='1']")
    await admin.locator(f"[data-reset='{pid}']").click()
    otp_again = await admin.locator("#account-otp").inner_text()
    assert otp_again.startswith(f"{PHONE}: ") and otp not in otp_again
    await admin.goto(f"{base}/admin/stats")
    await admin.locator("#referral-stats td").first.wait_for()
    assert (await admin.locator("#referral-stats tbody tr").first.all_inner_texts())[0].split("\t") == [
        "BS. A", "1", "1", "1", "1", "100%"]

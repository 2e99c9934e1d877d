"""Excel and CSV exports through the running service: the rows are the list's rows with the exporter's
rights (an agent exports only their own worklist; the audit trail only for admins), dates and phones as the
pages show them, text a spreadsheet would run as a formula is neutralised, and each exported patient is
audited."""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

import aiohttp
from openpyxl import load_workbook

from clinicall.exports import neutralise
from clinicall.keys import SETTINGS_KEY


async def fetch(server: Any, path: str, who: str) -> tuple[int, str, bytes]:
    async with aiohttp.ClientSession() as http, http.get(server.base_url + path, headers=server.headers(who)) as resp:
        return resp.status, resp.headers.get("Content-Type", ""), await resp.read()


def test_neutralise() -> None:
    for text in ("=1+1", "+84912", "-2", "@SUM(A1)", "\tx", "\rx"):
        assert neutralise(text) == "'" + text
    assert neutralise("Nguyễn Văn An") == "Nguyễn Văn An" and neutralise(-2) == -2


async def test_worklist_export_is_the_list_with_its_rights(live_server: Any) -> None:
    today = dt.datetime.now(live_server.app[SETTINGS_KEY].clinic.zone()).date()
    mine = []
    for name, phone in (("=HYPERLINK(\"http://x\") Lê", "0912345678"), ("Trần Thị Bình", "0987654321")):
        body = await live_server.api("POST", "/api/patients", json={
            "full_name": name, "assigned_agent_id": live_server.ids["agent"], "phones": [{"number": phone}]})
        mine.append(body["patient"]["id"])
        await live_server.api("POST", f"/api/patients/{body['patient']['id']}/notes", who="agent", json={
            "customer_status": "Hẹn gọi lại", "callback_date": today.isoformat(), "note": "-danger"})
    other = await live_server.api("POST", "/api/patients", json={
        "full_name": "Nguyễn Văn Anh", "assigned_agent_id": live_server.ids["agent2"], "phones": [{"number": "0903000111"}]})
    await live_server.api("POST", f"/api/patients/{other['patient']['id']}/notes", who="agent2", json={
        "customer_status": "Hẹn gọi lại", "callback_date": today.isoformat()})

    listed = await live_server.api("GET", "/api/worklists/due_today", who="agent")
    status, kind, data = await fetch(live_server, "/api/worklists/due_today?export=xlsx&lang=vi", "agent")
    assert status == 200 and kind.startswith("application/vnd.openxmlformats")
    sheet = load_workbook(io.BytesIO(data)).active
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][:3] == ("Mã bệnh nhân", "Họ và tên", "Số điện thoại")
    assert [r[0] for r in rows[1:]] == [p["id"] for p in listed["items"]] and sorted(r[0] for r in rows[1:]) == sorted(mine)
    by_id = {r[0]: r for r in rows[1:]}
    assert by_id[mine[0]][1] == "'=HYPERLINK(\"http://x\") Lê"
    assert by_id[mine[0]][2] == "0912 345 678" and by_id[mine[0]][6] == today.strftime("%d/%m/%Y")
    assert all(cell.data_type == "s" for cell in sheet[2] if isinstance(cell.value, str))

    status, kind, data = await fetch(live_server, "/api/worklists/due_today?export=csv&lang=en", "agent")
    assert status == 200 and kind.startswith("text/csv")
    table = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert table[0][:2] == ["Patient id", "Full name"] and len(table) == 1 + len(mine)

    # Each exported patient is in the audit trail, for the exporting user.
    exported = await live_server.api("GET", f"/api/audit?action=export&user_id={live_server.ids['agent']}", who="admin")
    assert sorted({e["patient_id"] for e in exported["items"]}) == sorted(mine)
    assert {e["detail"] for e in exported["items"]} == {"export xlsx: /api/worklists/due_today",
                                                       "export csv: /api/worklists/due_today"}

    # A supervisor's export of the same list holds every agent's patients, as the list does.
    everyone = await live_server.api("GET", "/api/worklists/due_today", who="supervisor")
    status, _, data = await fetch(live_server, "/api/worklists/due_today?export=xlsx", "supervisor")
    assert len(list(load_workbook(io.BytesIO(data)).active.iter_rows())) == 1 + everyone["count"] == 4

    # The audit trail is the admin's: an agent's export is refused exactly like the list.
    status, kind, data = await fetch(live_server, "/api/audit?export=xlsx", "agent")
    assert status == 403 and b"role_required" in data
    audit = await live_server.api("GET", "/api/audit?limit=2000", who="admin")
    status, _, data = await fetch(live_server, "/api/audit?limit=2000&export=csv", "admin")
    assert status == 200 and len(list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))) == 1 + len(audit["items"])

    status, _, data = await fetch(live_server, "/api/worklists/due_today?export=pdf", "agent")
    assert status == 400 and b"export_unsupported" in data
    status, _, data = await fetch(live_server, "/api/customer-statuses?export=xlsx", "agent")
    assert status == 400 and b"export_unsupported" in data


async def test_statistics_exports(live_server: Any) -> None:
    status, _, data = await fetch(live_server, "/api/stats/queue?export=xlsx&lang=zh", "supervisor")
    assert status == 200
    book = load_workbook(io.BytesIO(data))
    assert book.sheetnames == ["按诊室", "按服务", "按日期"]
    status, _, data = await fetch(live_server, "/api/stats/calls?export=xlsx", "supervisor")
    assert status == 200 and load_workbook(io.BytesIO(data)).sheetnames == ["Theo tổng đài viên", "Theo ngày"]
    status, _, _ = await fetch(live_server, "/api/stats/queue?export=xlsx", "agent")
    assert status == 403


async def test_front_desk_and_campaign_exports(live_server: Any) -> None:
    """Reception exports the day's tickets and expected arrivals (its own days only); a supervisor a reminder
    campaign's call list; codes come out as the pages' words."""
    today = dt.datetime.now(live_server.app[SETTINGS_KEY].clinic.zone()).date().isoformat()
    made = await live_server.api("POST", "/api/patients", json={
        "full_name": "Phạm Văn Đức", "assigned_agent_id": live_server.ids["agent"], "phones": [{"number": "0912000222"}]})
    await live_server.api("POST", f"/api/patients/{made['patient']['id']}/notes", who="agent", json={
        "booking_date": today, "note": "đặt lịch"})
    issued = await live_server.api("POST", "/api/tickets", who="reception", json={
        "service_id": live_server.services["A"], "priority": "elderly"})
    status, _, data = await fetch(live_server, f"/api/tickets?date={today}&export=xlsx&lang=vi", "reception")
    assert status == 200
    rows = list(load_workbook(io.BytesIO(data)).active.iter_rows(values_only=True))
    assert rows[0][:4] == ("Số", "Dịch vụ", "Ưu tiên", "Trạng thái")
    assert rows[1][:4] == (issued["ticket"]["number"], issued["ticket"]["service_name"], "Người cao tuổi", "Đang chờ")
    status, _, data = await fetch(live_server, f"/api/arrivals?date={today}&export=csv&lang=en", "reception")
    table = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert status == 200 and [r[1] for r in table[1:]] == ["Phạm Văn Đức"] and table[1][0] == str(made["patient"]["id"])
    status, _, data = await fetch(live_server, "/api/arrivals?date=2020-01-01&export=xlsx", "reception")
    assert status == 403 and b"date_outside_window" in data

    campaign = await live_server.api("POST", "/api/reminders/campaigns", who="supervisor", json={"kind": "callback"})
    path = f"/api/reminders/campaigns/{campaign['campaign']['id']}"
    listed = await live_server.api("GET", path, who="supervisor")
    status, _, data = await fetch(live_server, f"{path}?export=xlsx&lang=zh", "supervisor")
    book = load_workbook(io.BytesIO(data))
    assert status == 200 and book.sheetnames == ["呼叫名单"]
    assert len(list(book.active.iter_rows())) == 1 + len(listed["targets"])
    status, _, _ = await fetch(live_server, f"{path}?export=xlsx", "agent")
    assert status == 403

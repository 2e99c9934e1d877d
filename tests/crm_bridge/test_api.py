"""crm_bridge through its HTTP API, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from aiohttp.test_utils import TestClient

from clinicall.keys import BUS_KEY, SETTINGS_KEY
from tests.conftest import Staff


def local_today(client: TestClient) -> dt.date:
    return dt.datetime.now(client.app[SETTINGS_KEY].clinic.zone()).date()  # type: ignore[index]


async def make(client: TestClient, staff: Staff, who: str = "supervisor", **fields: Any) -> dict[str, Any]:
    response = await client.post("/api/patients", json=fields, headers=staff.headers(who))
    assert response.status == 201, await response.text()
    return (await response.json())["patient"]


async def get(client: TestClient, staff: Staff, who: str, url: str, status: int = 200) -> Any:
    response = await client.get(url, headers=staff.headers(who))
    assert response.status == status, await response.text()
    return await response.json()


async def test_search_by_name_and_phone(client: TestClient, staff: Staff) -> None:
    an = await make(client, staff, full_name="Nguyễn Văn An", phones=[{"number": "0912345678"}])
    anh = await make(client, staff, full_name="Nguyễn Văn Anh", phones=[{"number": "+84 98 765 4321"}])
    duc = await make(client, staff, full_name="Đặng Đức Thắng", phones=[{"number": "028 3812 3456"}])
    await make(client, staff, full_name="Trần Thị Bình")

    async def names(q: str, who: str = "supervisor") -> list[str]:
        body = await get(client, staff, who, f"/api/patients?q={q}")
        return [p["full_name"] for p in body["items"]]

    assert await names("nguyen van a") == ["Nguyễn Văn An", "Nguyễn Văn Anh"]
    assert await names("Nguyễn Văn An") == ["Nguyễn Văn An", "Nguyễn Văn Anh"]
    assert await names("NGUYEN VAN AN") == ["Nguyễn Văn An", "Nguyễn Văn Anh"]
    assert await names("van an") == ["Nguyễn Văn An", "Nguyễn Văn Anh"]
    assert await names("anh") == ["Nguyễn Văn Anh"]
    assert await names("dang duc") == ["Đặng Đức Thắng"]
    assert await names("thang") == ["Đặng Đức Thắng"]
    assert await names("thang dang") == ["Đặng Đức Thắng"]  # words in any order
    assert await names("nguyen an") == ["Nguyễn Văn An", "Nguyễn Văn Anh"]
    assert await names("xyz") == []
    for form in ("0912345678", "%2B84912345678", "84912345678", "091%20234%205678", "091-234-5678"):
        body = await get(client, staff, "supervisor", f"/api/patients?q={form}")
        assert [p["id"] for p in body["items"]] == [an["id"]], form
    assert [p["id"] for p in (await get(client, staff, "agent", "/api/patients?q=0987654321"))["items"]] == [anh["id"]]
    assert [p["id"] for p in (await get(client, staff, "agent", "/api/patients?q=02838123456"))["items"]] == [duc["id"]]
    # An agent sees their own and unassigned patients only.
    await client.post(f"/api/patients/{an['id']}/assign", json={"agent_id": staff.ids["agent2"]},
                      headers=staff.headers("supervisor"))
    assert await names("nguyen van a", "agent") == ["Nguyễn Văn Anh"]
    assert await names("nguyen van a", "agent2") == ["Nguyễn Văn An", "Nguyễn Văn Anh"]
    await get(client, staff, "reception", "/api/patients?q=an", status=403)


async def test_card_roles_notes_life_cycle_and_audit(client: TestClient, staff: Staff) -> None:
    mine = await make(client, staff, "agent", full_name="Lê Thị Hoa", date_of_birth="1980-05-01",
                      phones=[{"number": "0903123456", "label": "di động"}])
    assert mine["assigned_agent_id"] == staff.ids["agent"]
    url = f"/api/patients/{mine['id']}"
    card = await get(client, staff, "agent", url)
    assert card["patient"]["phones"][0]["e164"] == "+84903123456"
    assert card["allowed_care_statuses"] == ["in_treatment", "care_closed"]
    problem = await client.get(url, headers=staff.headers("agent2"))
    assert problem.status == 403 and problem.content_type == "application/problem+json"
    await get(client, staff, "reception", url, status=403)

    today = local_today(client)
    note = await client.post(f"{url}/notes", headers=staff.headers("agent"), json={
        "customer_status": "Đã đặt lịch", "detail_status": "Đặt lịch khám", "note": "Hẹn khám sáng",
        "booking_date": today.isoformat(), "care_status": "in_treatment", "call_id": 5})
    assert note.status == 201, await note.text()
    assert (await note.json())["patient"]["care_status"] == "in_treatment"
    # Reception now sees the patient among today's arrivals, and may open the card.
    arrivals = await get(client, staff, "reception", "/api/arrivals")
    assert [a["id"] for a in arrivals["items"]] == [mine["id"]]
    assert (await get(client, staff, "reception", url))["patient"]["full_name"] == "Lê Thị Hoa"
    assert (await get(client, staff, "reception", f"/api/arrivals?date={today + dt.timedelta(days=1)}"))["items"] == []

    refused = await client.patch(url, json={"care_status": "new"}, headers=staff.headers("agent"))
    assert refused.status == 409 and "cannot move" in (await refused.json())["detail"]
    done = await client.patch(url, json={"care_status": "treatment_finished", "care_status_reason": "khỏi bệnh"},
                              headers=staff.headers("agent"))
    assert done.status == 200
    card = await get(client, staff, "agent", url)
    assert [(h["from"], h["to"], h["changed_by"]) for h in card["status_history"]] == [
        ("new", "in_treatment", staff.ids["agent"]), ("in_treatment", "treatment_finished", staff.ids["agent"])]
    assert card["notes"][0]["call_id"] == 5 and card["notes"][0]["detail_status"] == "Đặt lịch khám"
    bad = await client.post(f"{url}/notes", headers=staff.headers("agent"),
                            json={"customer_status": "Đã đặt lịch", "detail_status": "Không nghe máy"})
    assert bad.status == 422

    trail = await get(client, staff, "admin", f"/api/audit?patient_id={mine['id']}")
    actions = [(row["action"], row["user_id"]) for row in trail["items"]]
    assert ("view", staff.ids["agent"]) in actions and ("denied", staff.ids["agent2"]) in actions
    assert ("view", staff.ids["reception"]) in actions and ("create", staff.ids["agent"]) in actions
    assert ("note", staff.ids["agent"]) in actions and ("care_status", staff.ids["agent"]) in actions
    by_user = await get(client, staff, "admin", f"/api/audit?user_id={staff.ids['agent2']}")
    assert {row["action"] for row in by_user["items"]} == {"denied"}
    tomorrow = (today + dt.timedelta(days=2)).isoformat()
    assert (await get(client, staff, "admin", f"/api/audit?from={tomorrow}"))["items"] == []
    assert len((await get(client, staff, "admin", f"/api/audit?from={today}&to={today}"))["items"]) == len(actions)
    await get(client, staff, "supervisor", "/api/audit", status=403)


async def test_worklists_assignment_transfer_followups(client: TestClient, staff: Staff) -> None:
    today = local_today(client)
    due = await make(client, staff, "agent", full_name="Phạm Minh Due")
    late = await make(client, staff, "agent", full_name="Phạm Minh Late")
    early = await make(client, staff, "agent", full_name="Phạm Minh Early")
    missed = await make(client, staff, "agent", full_name="Phạm Minh Missed")
    fresh = await make(client, staff, "agent", full_name="Phạm Minh Fresh")
    free = await make(client, staff, "supervisor", full_name="Võ Thị Free")
    for patient, fields in ((due, {"callback_date": today.isoformat()}),
                            (late, {"callback_date": (today - dt.timedelta(days=3)).isoformat()}),
                            (early, {"callback_date": (today - dt.timedelta(days=2)).isoformat()}),
                            (missed, {"customer_status": "Không liên lạc được", "detail_status": "Không nghe máy"})):
        response = await client.post(f"/api/patients/{patient['id']}/notes", json=fields, headers=staff.headers("agent"))
        assert response.status == 201, await response.text()
    counts = (await get(client, staff, "agent", "/api/worklists"))["counts"]
    assert counts == {"due_today": 1, "overdue": 1, "not_reached": 1, "new": 1, "unassigned": 1}

    async def ids(kind: str, who: str = "agent", query: str = "") -> list[int]:
        return [p["id"] for p in (await get(client, staff, who, f"/api/worklists/{kind}{query}"))["items"]]

    assert await ids("due_today") == [due["id"]]
    assert await ids("overdue") == [late["id"]]
    assert await ids("not_reached") == [missed["id"]]
    assert await ids("new") == [fresh["id"]]
    assert await ids("unassigned") == [free["id"]]
    assert await ids("due_today", "agent2") == []
    assert await ids("due_today", "supervisor", f"?agent_id={staff.ids['agent']}") == [due["id"]]
    await get(client, staff, "agent2", f"/api/worklists/due_today?agent_id={staff.ids['agent']}", status=403)
    await get(client, staff, "agent", "/api/worklists/bogus", status=404)
    # Tomorrow the patient due today is not due any more; three days on it is overdue.
    assert await ids("due_today", query=f"?date={today + dt.timedelta(days=1)}") == []
    assert due["id"] in await ids("overdue", query=f"?date={today + dt.timedelta(days=3)}")

    # Agents take unassigned patients for themselves, but not others'.
    taken = await client.post(f"/api/patients/{free['id']}/assign", json={"agent_id": staff.ids["agent2"]},
                              headers=staff.headers("agent2"))
    assert taken.status == 200
    stolen = await client.post(f"/api/patients/{free['id']}/assign", json={"agent_id": staff.ids["agent"]},
                               headers=staff.headers("agent"))
    assert (stolen.status, (await stolen.json())["code"]) == (409, "already_assigned")  # someone was first
    for_another = await client.post(f"/api/patients/{free['id']}/assign", json={"agent_id": staff.ids["agent2"]},
                                    headers=staff.headers("agent"))
    assert for_another.status == 403
    # Transfer: agent2 asks to hand the patient to agent; a supervisor approves.
    asked = await client.post(f"/api/patients/{free['id']}/transfer-requests",
                              json={"to_agent_id": staff.ids["agent"], "reason": "quen khách"},
                              headers=staff.headers("agent2"))
    assert asked.status == 201, await asked.text()
    transfer = await asked.json()
    again = await client.post(f"/api/patients/{free['id']}/transfer-requests",
                              json={"to_agent_id": staff.ids["agent"]}, headers=staff.headers("agent2"))
    assert again.status == 409
    assert (await client.post(f"/api/transfers/{transfer['id']}/approve", headers=staff.headers("agent2"))).status == 403
    approved = await client.post(f"/api/transfers/{transfer['id']}/approve", headers=staff.headers("supervisor"))
    assert (await approved.json())["status"] == "approved"
    card = await get(client, staff, "agent", f"/api/patients/{free['id']}")
    assert card["patient"]["assigned_agent_id"] == staff.ids["agent"]
    assert (await client.post(f"/api/transfers/{transfer['id']}/reject", headers=staff.headers("supervisor"))).status == 409
    # An agent may ask for another agent's patient; rejected, nothing moves.
    wish = await client.post(f"/api/patients/{due['id']}/transfer-requests", json={"to_agent_id": staff.ids["agent2"]},
                             headers=staff.headers("agent2"))
    assert wish.status == 201, await wish.text()
    listed = await get(client, staff, "agent2", "/api/transfers?status=pending")
    assert [t["id"] for t in listed["items"]] == [(await wish.json())["id"]]
    rejected = await client.post(f"/api/transfers/{(await wish.json())['id']}/reject", headers=staff.headers("supervisor"))
    assert (await rejected.json())["status"] == "rejected"
    assert (await get(client, staff, "agent", f"/api/patients/{due['id']}"))["patient"]["assigned_agent_id"] == staff.ids["agent"]

    # Follow-up plans with the 7-day and 1-month views.
    for days, method in ((0, "phone"), (6, "sms"), (7, "visit"), (29, "phone"), (30, "sms")):
        response = await client.post(f"/api/patients/{due['id']}/follow-ups", headers=staff.headers("agent"), json={
            "method": method, "theme": f"Nhắc tái khám +{days}", "due_date": (today + dt.timedelta(days=days)).isoformat()})
        assert response.status == 201, await response.text()
    week = await get(client, staff, "agent", "/api/follow-ups?view=week")
    assert [f["theme"] for f in week["items"]] == ["Nhắc tái khám +0", "Nhắc tái khám +6"]
    month = await get(client, staff, "agent", "/api/follow-ups?view=month")
    assert len(month["items"]) == 4 and month["items"][0]["patient_name"] == "Phạm Minh Due"
    first = week["items"][0]["id"]
    moved = await client.patch(f"/api/follow-ups/{first}", json={"status": "done"}, headers=staff.headers("agent"))
    assert (await moved.json())["status"] == "done"
    assert (await client.patch(f"/api/follow-ups/{first}", json={"status": "later"},
                               headers=staff.headers("agent"))).status == 422
    assert (await client.patch(f"/api/follow-ups/{first}", json={"status": "pending"},
                               headers=staff.headers("agent2"))).status == 403
    assert len((await get(client, staff, "agent", "/api/follow-ups?view=week&open_only=true"))["items"]) == 1
    # The patient moves to agent2: agent's plans for them leave agent's list and cannot be changed by agent.
    moved = await client.post(f"/api/patients/{due['id']}/assign", json={"agent_id": staff.ids["agent2"]},
                              headers=staff.headers("supervisor"))
    assert moved.status == 200
    assert (await get(client, staff, "agent", "/api/follow-ups?view=month"))["items"] == []
    stale = await client.patch(f"/api/follow-ups/{first}", json={"theme": "x"}, headers=staff.headers("agent"))
    assert stale.status == 403 and (await stale.json())["code"] == "not_your_patient"


async def test_statuses_templates_duplicates_merge(client: TestClient, staff: Staff) -> None:
    tree = (await get(client, staff, "agent", "/api/customer-statuses"))["items"]
    labels = [s["label"] for s in tree]
    assert "Chưa đặt lịch" in labels and "Không liên lạc được" in labels
    unbooked = next(s for s in tree if s["label"] == "Chưa đặt lịch")
    assert "Cần tư vấn thêm" in [d["label"] for d in unbooked["details"]]
    added = await client.post("/api/customer-statuses", json={"label": "Muốn đổi bác sĩ", "parent_id": unbooked["id"]},
                              headers=staff.headers("admin"))
    assert added.status == 201
    assert (await client.post("/api/customer-statuses", json={"label": "X"}, headers=staff.headers("agent"))).status == 403
    retired = await client.patch(f"/api/customer-statuses/{(await added.json())['id']}", json={"active": False},
                                 headers=staff.headers("admin"))
    assert retired.status == 200

    an = await make(client, staff, full_name="Nguyễn Văn An", date_of_birth="1990-01-02",
                    phones=[{"number": "0912345678"}], assigned_agent_id=staff.ids["agent"])
    twin = await client.post("/api/patients", headers=staff.headers("agent"), json={
        "full_name": "NGUYEN VAN AN", "date_of_birth": "1990-01-02", "address": "12 Lê Lợi",
        "phones": [{"number": "+84912345678"}, {"number": "0987654321"}]})
    assert (await twin.json())["possible_duplicates"] == [an["id"]]
    twin_id = (await twin.json())["patient"]["id"]
    await client.post(f"/api/patients/{twin_id}/notes", json={"note": "gọi lần đầu", "call_id": 42},
                      headers=staff.headers("agent"))
    groups = (await get(client, staff, "supervisor", "/api/duplicates"))["groups"]
    assert {g["reason"] for g in groups} == {"same_phone", "same_name_and_birth_date"}
    assert all({p["id"] for p in g["patients"]} == {an["id"], twin_id} for g in groups)

    events: list[Any] = []

    async def seen(event: Any) -> None:
        events.append(event)

    client.app[BUS_KEY].subscribe("patient.merged", seen)  # type: ignore[index]
    assert (await client.post("/api/merges", json={"from_id": twin_id, "into_id": an["id"]},
                              headers=staff.headers("agent"))).status == 403
    merged = await client.post("/api/merges", json={"from_id": twin_id, "into_id": an["id"]},
                               headers=staff.headers("supervisor"))
    assert merged.status == 200, await merged.text()
    for _ in range(50):
        if events:
            break
        await asyncio.sleep(0.02)
    assert events and events[0].data == {"from_id": twin_id, "into_id": an["id"]}
    card = await get(client, staff, "supervisor", f"/api/patients/{an['id']}")
    assert sorted(p["e164"] for p in card["patient"]["phones"]) == ["+84912345678", "+84987654321"]
    assert card["patient"]["address"] == "12 Lê Lợi" and card["notes"][0]["call_id"] == 42
    assert (await get(client, staff, "supervisor", f"/api/patients/{twin_id}"))["patient"]["id"] == an["id"]
    assert (await get(client, staff, "supervisor", "/api/duplicates"))["groups"] == []
    assert [p["id"] for p in (await get(client, staff, "supervisor", "/api/patients?q=0987654321"))["items"]] == [an["id"]]
    assert (await client.post("/api/merges", json={"from_id": twin_id, "into_id": an["id"]},
                              headers=staff.headers("supervisor"))).status == 409

    saved = await client.post("/api/templates", headers=staff.headers("supervisor"), json={
        "name": "Nhắc lịch", "body": "Chào {fullName}, {clinicName} hẹn gọi lại ngày {callbackDate}. SĐT {phone}."})
    assert saved.status == 201, await saved.text()
    template = await saved.json()
    wrong = await client.post("/api/templates", headers=staff.headers("supervisor"),
                              json={"name": "Sai", "body": "Chào {fullname} {ho_ten}"})
    assert wrong.status == 422 and "{fullname}" in (await wrong.json())["detail"]
    assert (await wrong.json())["unknown"] == ["fullname", "ho_ten"]
    unbalanced = await client.patch(f"/api/templates/{template['id']}", headers=staff.headers("supervisor"),
                                    json={"body": "Chào {fullName"})
    assert unbalanced.status == 422
    await client.post(f"/api/patients/{an['id']}/notes", headers=staff.headers("agent"),
                      json={"callback_date": "2031-03-04"})
    rendered = await get(client, staff, "agent", f"/api/templates/{template['id']}/render?patient_id={an['id']}")
    clinic = client.app[SETTINGS_KEY].clinic.name  # type: ignore[index]
    assert rendered["text"] == f"Chào Nguyễn Văn An, {clinic} hẹn gọi lại ngày 04/03/2031. SĐT 0912 345 678."
    await get(client, staff, "agent2", f"/api/templates/{template['id']}/render?patient_id={an['id']}", status=403)

"""Statistics APIs behind the admin charts: calls per agent and day, answer rate and outcomes
(telephony/stats.py), booking -> arrival conversion (queue_display/booking_stats.py). On SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from typing import Any

from clinicall.keys import DB_KEY, SETTINGS_KEY
from crm_bridge.patients import PatientIn, create_patient
from crm_bridge.service import add_care_note
from telephony.models import Call


async def test_call_stats_per_agent_day_and_outcomes(client: Any, staff: Any) -> None:
    db = client.app[DB_KEY]
    zone = client.app[SETTINGS_KEY].clinic.zone()
    today = dt.datetime.now(zone).date()
    # 23:30 local yesterday is still "yesterday" although it is a different UTC day in some zones.
    late_yesterday = dt.datetime.combine(today - dt.timedelta(days=1), dt.time(23, 30), zone).astimezone(dt.UTC)
    noon = dt.datetime.combine(today, dt.time(12), zone).astimezone(dt.UTC)
    agent, agent2 = staff.ids["agent"], staff.ids["agent2"]
    patient_id = await create_patient(db, PatientIn(full_name="Nguyễn Văn An", phones=[{"number": "0912345678"}]), agent)
    rows = [(agent, late_yesterday, "answered", 40), (agent, noon, "answered", 65), (agent, noon, "no_answer", 0),
            (agent2, noon, "busy", 0), (agent2, noon - dt.timedelta(days=30), "answered", 10)]
    async with db.transaction() as s:
        calls = [Call(direction="outbound", state="ended", disposition=disp, agent_id=who, patient_id=patient_id,
                      number="+84912345678", created_at=at, billsec=billsec) for who, at, disp, billsec in rows]
        s.add_all(calls)
        s.add(Call(direction="outbound", state="ringing", agent_id=agent, patient_id=patient_id, created_at=noon))
    await add_care_note(db, patient_id=patient_id, author_id=agent, call_id=calls[1].id,
                        customer_status="Đã đặt lịch", note="hẹn khám")

    frm, to = (today - dt.timedelta(days=6)).isoformat(), today.isoformat()
    resp = await client.get(f"/api/stats/calls?from={frm}&to={to}", headers=staff.headers("admin"))
    assert resp.status == 200, await resp.text()
    data = await resp.json()
    assert data["total"] == 5 and data["answered"] == 2
    assert data["answer_rate"] == 0.5  # 2 answered of 4 ended; the ringing call is not finished
    assert len(data["days"]) == 7
    by_day = {d["day"]: d for d in data["days"]}
    assert by_day[(today - dt.timedelta(days=1)).isoformat()]["calls"] == 1
    assert by_day[today.isoformat()]["calls"] == 4
    agents = {a["agent_id"]: a for a in data["agents"]}
    assert agents[agent]["calls"] == 4 and agents[agent]["answered"] == 2 and agents[agent]["talk_seconds"] == 105
    assert agents[agent]["agent_name"] == "Agent"
    assert agents[agent2]["calls"] == 1 and agents[agent2]["answer_rate"] == 0.0
    assert data["dispositions"] == {"answered": 2, "no_answer": 1, "busy": 1}
    assert data["outcomes"] == [{"customer_status": "Đã đặt lịch", "detail_status": None, "count": 1}]
    assert {"day": today.isoformat(), "agent_id": agent, "calls": 3, "answered": 1} in data["per_agent_day"]

    for query, status in (("from=2026-13-01", 400), (f"from={to}&to={frm}", 400), ("from=2020-01-01&to=2026-01-01", 400)):
        bad = await client.get(f"/api/stats/calls?{query}", headers=staff.headers("admin"))
        assert bad.status == status and bad.content_type == "application/problem+json"
    assert (await client.get("/api/stats/calls", headers=staff.headers("agent"))).status == 403


async def test_booking_stats_counts_bookings(client: Any, staff: Any) -> None:
    db = client.app[DB_KEY]
    today = dt.datetime.now(client.app[SETTINGS_KEY].clinic.zone()).date()
    agent = staff.ids["agent"]
    a = await create_patient(db, PatientIn(full_name="Trần Thị Bình"), agent)
    b = await create_patient(db, PatientIn(full_name="Lê Văn Cường"), agent)
    await add_care_note(db, patient_id=a, author_id=agent, booking_date=today - dt.timedelta(days=2))
    await add_care_note(db, patient_id=b, author_id=agent, booking_date=today + dt.timedelta(days=3))
    resp = await client.get(f"/api/stats/bookings?from={(today - dt.timedelta(days=5)).isoformat()}"
                            f"&to={(today + dt.timedelta(days=5)).isoformat()}", headers=staff.headers("supervisor"))
    assert resp.status == 200, await resp.text()
    data = await resp.json()
    assert data["booked"] == 1 and data["pending"] == 1 and data["arrived"] == 0 and data["conversion"] == 0.0
    assert len(data["days"]) == 11
    assert (await client.get("/api/stats/bookings?to=nope", headers=staff.headers("admin"))).status == 400
    assert (await client.get("/api/stats/bookings", headers=staff.headers("reception"))).status == 403

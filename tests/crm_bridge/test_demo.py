"""The demo clinic's patients: deterministic, on every worklist, the traced caller known."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import func, select

from clinicall.auth import service as auth_service
from clinicall.db import Database
from clinicall.settings import Settings
from crm_bridge import demo
from crm_bridge.models import Patient, PatientPhone
from crm_bridge.patients import search_patients
from crm_bridge.service import expected_arrivals, lookup_caller
from crm_bridge.worklists import clinic_today, worklist_counts


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_demo_patients(db: Database, db_url: str, make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(db_url)
    for name, roles, ext in (("agent1", ["agent"], "1001"), ("agent2", ["agent"], "1002"),
                             ("supervisor", ["supervisor", "agent"], "1009")):
        await auth_service.create_user(db, name, "correct-horse-battery", roles, name, ext)
    users = {u.username: u.id for u in await auth_service.list_users(db)}
    await demo.load(db, settings)
    await demo.load(db, settings)  # a second run adds nothing
    async with db.session() as s:
        assert await s.scalar(select(func.count()).select_from(Patient)) == demo.COUNT
        two_phones = await s.scalar(select(func.count()).select_from(
            select(PatientPhone.patient_id).group_by(PatientPhone.patient_id).having(func.count() > 1).subquery()))
        names = (await s.scalars(select(Patient.full_name))).all()
    assert two_phones and two_phones >= 5
    assert sum(any(ch in name for ch in "ăâđêôơưạảãáàệễếềộổốồợởớờụủũúùịỉĩíì") for name in names) > 150
    an = await lookup_caller(db, "+84912345678")
    assert an is not None and an.full_name == "Nguyễn Văn An" and an.assigned_agent_id == users["agent1"]
    binh = await lookup_caller(db, "0987654321")
    assert binh is not None and binh.full_name == "Trần Thị Bình"
    zone = settings.clinic.zone()
    today = clinic_today(zone)
    for agent in ("agent1", "agent2"):
        counts = await worklist_counts(db, today=today, zone=zone, overdue_days=3, agent_id=users[agent])
        assert all(counts[k] > 0 for k in ("due_today", "overdue", "not_reached", "new", "unassigned")), counts
    arrivals = await expected_arrivals(db, today)
    assert len(arrivals) >= 10 and binh.patient_id in [a.id for a in arrivals]
    assert [p["full_name"] for p in await search_patients(db, "nguyen van an")][0] == "Nguyễn Văn An"

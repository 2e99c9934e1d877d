"""The functions other rooms call, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest

from clinicall.auth.service import Principal
from clinicall.db import Database
from clinicall.problem import Problem
from crm_bridge import service
from crm_bridge.patients import PatientIn, PhoneIn, create_patient
from crm_bridge.service import local_today


async def test_lookup_brief_notes_and_arrivals(db: Database, users: dict[str, int]) -> None:
    an = await create_patient(db, PatientIn(full_name="Nguyễn Văn An", assigned_agent_id=users["agent"],
                                            phones=[PhoneIn(number="0912345678", label="di động")]), users["agent"])
    binh = await create_patient(db, PatientIn(full_name="Trần Thị Bình", phones=[
        PhoneIn(number="0987654321"), PhoneIn(number="028 3812 3456", label="nhà")]), None)

    for form in ("0912345678", "+84912345678", "84912345678", "091 234 5678", " 091-234-5678 "):
        match = await service.lookup_caller(db, form)
        assert match is not None and match.patient_id == an, form
        assert match.phone_e164 == "+84912345678" and match.full_name == "Nguyễn Văn An"
        assert match.assigned_agent_id == users["agent"] and match.care_status == "new"
    for garbage in ("", "unknown", "anonymous", "0912", "+84\r\n912345678", "9" * 200, "'; DROP TABLE x"):
        assert await service.lookup_caller(db, garbage) is None
    assert await service.lookup_caller(db, "0900000000") is None

    brief = await service.patient_brief(db, binh)
    assert brief is not None and [p.e164 for p in brief.phones] == ["+84987654321", "+842838123456"]
    assert brief.phones[1].raw == "028 3812 3456" and brief.phones[1].label == "nhà"
    assert await service.patient_brief(db, 999999) is None
    assert await service.patient_phone(db, binh, brief.phones[0].id) == brief.phones[0]
    assert await service.patient_phone(db, an, brief.phones[0].id) is None

    today = local_today()
    note_id = await service.add_care_note(
        db, patient_id=binh, author_id=users["agent"], call_id=77, customer_status="Đã đặt lịch",
        detail_status="Đặt lịch khám", note="Hẹn khám", booking_date=today, care_status="in_treatment")
    assert note_id > 0
    notes = await service.notes_for_calls(db, [77, 78])
    assert set(notes) == {77} and notes[77]["booking_date"] == today.isoformat()
    assert notes[77]["reached"] is True and notes[77]["care_status"] == "in_treatment"
    arrivals = await service.expected_arrivals(db, today)
    assert [b.id for b in arrivals] == [binh]
    assert await service.expected_arrivals(db, today + dt.timedelta(days=1)) == []

    with pytest.raises(Problem) as refused:
        await service.add_care_note(db, patient_id=binh, author_id=users["agent"], care_status="new")
    assert refused.value.status == 409
    with pytest.raises(Problem) as unknown:
        await service.add_care_note(db, patient_id=binh, author_id=users["agent"], customer_status="Bogus")
    assert unknown.value.status == 422
    assert len(await service.notes_for_calls(db, [77])) == 1

    agent = Principal(kind="user", user_id=users["agent"], roles=frozenset({"agent"}))
    agent2 = Principal(kind="user", user_id=users["agent2"], roles=frozenset({"agent"}))
    desk = Principal(kind="user", user_id=users["desk"], roles=frozenset({"reception"}))
    boss = Principal(kind="user", user_id=users["boss"], roles=frozenset({"supervisor", "agent"}))
    assert await service.agent_may_access(db, agent, an)
    assert not await service.agent_may_access(db, agent2, an)
    assert await service.agent_may_access(db, agent2, binh)  # unassigned
    assert await service.agent_may_access(db, boss, an)
    assert await service.agent_may_access(db, desk, binh)  # booked today
    assert not await service.agent_may_access(db, desk, an)
    await service.record_access(db, users["agent"], an, "view", "test")


def test_masked_name() -> None:
    assert service.masked_name("Nguyễn Văn An") == "Nguyễn V. A."
    assert service.masked_name("  Trần   Thị Bình ") == "Trần T. B."
    assert service.masked_name("Madonna") == "M."
    assert service.masked_name("") == ""


def test_fold_and_phone_forms() -> None:
    from crm_bridge.names import fold, search_keys
    from crm_bridge.phones import normalise

    assert fold("Nguyễn Văn Đức") == "nguyen van duc"
    assert fold("  ĐẶNG   thị  Ánh-Tuyết ") == "dang thi anh tuyet"
    assert fold("Hồ Thị Kim Huệ") == "ho thi kim hue"
    assert search_keys("le thi hoa") == ["le thi hoa", "thi hoa", "hoa"]
    for form in ("0912345678", "+84912345678", "84912345678", "091 234 5678", "(091) 234-5678", "+84 91 234 56 78"):
        assert normalise(form) == "+84912345678", form
    assert normalise("028 3812 3456") == "+842838123456"
    assert normalise("+1 415 555 2671") == "+14155552671"
    assert normalise("0912345678\r\n") == "+84912345678"  # surrounding whitespace is trimmed; E.164 has none
    for garbage in (None, "", "abc", "0912", "0912\r\n345678", "0912345678;", "+84" + "9" * 30, "00000000"):
        assert normalise(garbage) is None, garbage  # type: ignore[arg-type]

"""Demo patients for `clinicall demo`: 200 Vietnamese patients spread over care statuses and the
agents' worklists (due today, overdue, not reached today, booked today, new, unassigned).
Deterministic: the same seed gives the same clinic, relative to the clinic's local today."""

from __future__ import annotations

import datetime as dt
import random

from sqlalchemy import func, select

from clinicall.auth.service import list_users
from clinicall.db import Database
from clinicall.settings import Settings
from crm_bridge.models import (
    CareNote,
    CareStatusChange,
    FollowUp,
    MessageTemplate,
    Patient,
    PatientAudit,
    PatientNameKey,
    PatientPhone,
    TransferRequest,
)
from crm_bridge.names import fold, search_keys
from crm_bridge.phones import normalise

SEED = 20261122
COUNT = 200
SURNAMES = ("Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ", "Đặng", "Bùi", "Đỗ", "Hồ",
            "Ngô", "Dương", "Lý")
MIDDLE_MALE = ("Văn", "Minh", "Hữu", "Đức", "Quốc", "Thanh", "Công", "Gia")
MIDDLE_FEMALE = ("Thị", "Ngọc", "Thu", "Kim", "Thanh", "Mỹ", "Bảo", "Phương")
GIVEN_MALE = ("An", "Bình", "Cường", "Dũng", "Hải", "Hùng", "Khánh", "Long", "Nam", "Phúc", "Quân", "Sơn",
              "Tuấn", "Đạt", "Hiếu", "Tài", "Thắng", "Vinh")
GIVEN_FEMALE = ("Hà", "Hạnh", "Hoa", "Hương", "Lan", "Linh", "Mai", "Nga", "Tâm", "Thảo", "Trang", "Vy", "Yến",
                "Phương", "Ngân", "Nhung", "Quyên", "Uyên")
MOBILE_PREFIXES = ("090", "091", "093", "094", "096", "097", "098", "032", "033", "035", "037", "039", "070",
                   "077", "079", "081", "083", "085", "086", "088", "089")
STREETS = ("Lê Lợi", "Nguyễn Huệ", "Hai Bà Trưng", "Trần Hưng Đạo", "Điện Biên Phủ", "Cách Mạng Tháng Tám",
           "Võ Văn Tần", "Nguyễn Thị Minh Khai", "Pasteur", "Lý Thường Kiệt")
DISTRICTS = ("Quận 1", "Quận 3", "Quận 5", "Quận 10", "Bình Thạnh", "Phú Nhuận", "Gò Vấp", "Tân Bình",
             "Thủ Đức", "Bình Tân")
SERVICES = ("Khám tổng quát", "Nội tiết", "Tim mạch", "Sản phụ khoa", "Nhi khoa", "Xét nghiệm máu", "Siêu âm")
DOCTORS = ("BS. Trần Minh", "BS. Lê Thu Hà", "BS. Phạm Quốc Bảo", "")
NOTES_REACHED = ("Khách hẹn sẽ sắp xếp thời gian", "Đã tư vấn gói khám tổng quát", "Khách hỏi chi phí xét nghiệm",
                 "Nhắc lịch tái khám", "Khách cảm thấy khỏe hơn sau điều trị")
TEMPLATES = (
    ("Nhắc lịch hẹn", "sms",
     "Chào {fullName}, {clinicName} nhắc lịch hẹn khám của anh/chị vào ngày {bookingDate}. "
     "Cần hỗ trợ xin gọi lại cho {agentName}."),
    ("Hẹn gọi lại", "sms",
     "Chào {fullName}, {agentName} từ {clinicName} sẽ gọi lại cho anh/chị vào ngày {callbackDate}."),
    ("Chúc mừng sinh nhật", "sms", "{clinicName} chúc {fullName} (sinh ngày {dateOfBirth}) một tuổi mới thật nhiều sức khỏe!"),
)


def demo_phone(rng: random.Random, used: set[str]) -> str:
    while True:
        if rng.random() < 0.85:
            raw = rng.choice(MOBILE_PREFIXES) + f"{rng.randrange(10**7):07d}"
        else:
            raw = "028" + rng.choice("2356789") + f"{rng.randrange(10**7):07d}"
        e164 = normalise(raw)
        if e164 and e164 not in used:
            used.add(e164)
            return raw


def spaced(raw: str) -> str:
    return f"{raw[:4]} {raw[4:7]} {raw[7:]}" if len(raw) == 10 else f"{raw[:3]} {raw[3:7]} {raw[7:]}"


def demo_name(rng: random.Random) -> tuple[str, str]:
    if rng.random() < 0.5:
        return f"{rng.choice(SURNAMES)} {rng.choice(MIDDLE_MALE)} {rng.choice(GIVEN_MALE)}", "male"
    return f"{rng.choice(SURNAMES)} {rng.choice(MIDDLE_FEMALE)} {rng.choice(GIVEN_FEMALE)}", "female"


def at_local(day: dt.date, hour: int, minute: int, zone: dt.tzinfo) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), zone).astimezone(dt.UTC)


async def load(db: Database, settings: Settings) -> None:
    async with db.session() as s:
        if await s.scalar(select(func.count()).select_from(Patient).where(Patient.his_id.like("DEMO-%"))):
            print("crm_bridge: demo patients already loaded")
            return
    users = {u.username: u.id for u in await list_users(db)}
    agent1, agent2 = users.get("agent1"), users.get("agent2")
    supervisor = users.get("supervisor")
    zone = settings.clinic.zone()
    now = dt.datetime.now(dt.UTC)
    today = now.astimezone(zone).date()
    rng = random.Random(SEED)
    used: set[str] = set()
    used.update({"+84912345678", "+84987654321"})
    twin: tuple[str, str, dt.date] | None = None
    async with db.transaction() as s:
        for i in range(COUNT):
            if i == 0:
                name, gender, phones = "Nguyễn Văn An", "male", ["0912345678"]
            elif i == 1:
                name, gender, phones = "Trần Thị Bình", "female", ["0987654321"]
            else:
                name, gender = demo_name(rng)
                phones = [demo_phone(rng, used)]
                if i % 25 == 3:
                    phones.append(demo_phone(rng, used))
            kind = "special" if i < 2 else ("due_today", "overdue", "not_reached", "booked", "new", "new",
                                            "future", "future", "arrived", "closed")[i % 10]
            draw = rng.random()
            agent = agent1 if draw < 0.4 else agent2 if draw < 0.8 else None
            if i == 0:
                agent, kind = agent1, "due_today"
            elif i == 1:
                agent, kind = agent2, "booked"
            dob = dt.date(1940, 1, 1) + dt.timedelta(days=rng.randrange(365 * 65))
            if i == 3:
                twin = (name, gender, dob)
            elif i == COUNT - 1 and twin:  # a likely duplicate of patient 3, for the duplicates review
                name, gender, dob = twin
            created = now - dt.timedelta(days=rng.randrange(5, 200), minutes=rng.randrange(600))
            patient = Patient(
                full_name=name, name_folded=fold(name), date_of_birth=dob, gender=gender,
                address=f"{rng.randrange(1, 400)} {rng.choice(STREETS)}, {rng.choice(DISTRICTS)}, TP. Hồ Chí Minh",
                referring_doctor=rng.choice(DOCTORS), service_of_interest=rng.choice(SERVICES),
                care_status="new", assigned_agent_id=agent, notes="", his_id=f"DEMO-{i + 1:04d}",
                created_at=created, updated_at=created, last_activity_at=created)
            s.add(patient)
            await s.flush()
            s.add_all(PatientNameKey(patient_id=patient.id, key=k) for k in search_keys(patient.name_folded))
            for n, raw in enumerate(phones):
                s.add(PatientPhone(patient_id=patient.id, e164=normalise(raw) or raw,
                                   raw=spaced(raw) if rng.random() < 0.3 else raw,
                                   label=("di động", "người nhà")[n] if not raw.startswith("028") else "nhà"))
            author = agent or supervisor
            await _care_history(s, rng, patient, kind, author, today, zone)
            s.add(PatientAudit(at=created, user_id=None, patient_id=patient.id, action="create", detail="demo data"))
            if kind in ("future", "booked") and rng.random() < 0.6:
                s.add(FollowUp(patient_id=patient.id, method=rng.choice(("phone", "sms", "visit")),
                               theme=rng.choice(("Nhắc lịch tái khám", "Hỏi thăm sau điều trị", "Tư vấn gói khám")),
                               due_date=today + dt.timedelta(days=rng.randrange(0, 30)),
                               status=rng.choice(("pending", "pending", "in_progress")), agent_id=agent,
                               created_by=author))
            if i == 12 and agent1 and agent2 and agent == agent2:
                s.add(TransferRequest(patient_id=patient.id, from_agent_id=agent2, to_agent_id=agent1,
                                      requested_by=agent2, reason="Khách quen của chị Hoa"))
        for name, channel, body in TEMPLATES:
            s.add(MessageTemplate(name=name, channel=channel, body=body, updated_by=supervisor))
    print(f"crm_bridge: {COUNT} demo patients loaded")


async def _care_history(s: object, rng: random.Random, patient: Patient, kind: str, author: int | None,
                        today: dt.date, zone: dt.tzinfo) -> None:
    """Past contacts that put the patient on the intended worklist."""
    from sqlalchemy.ext.asyncio import AsyncSession

    assert isinstance(s, AsyncSession)
    if kind == "new":
        return
    status = {"closed": "care_closed", "arrived": "treatment_finished"}.get(kind, "in_treatment")
    changed = at_local(today - dt.timedelta(days=rng.randrange(10, 40)), 9, rng.randrange(60), zone)
    path = ["in_treatment"] + (["treatment_finished"] if status == "treatment_finished" else []) + \
        (["care_closed"] if status == "care_closed" else [])
    previous = "new"
    for step in path:
        s.add(CareStatusChange(patient_id=patient.id, from_status=previous, to_status=step, changed_by=author,
                               changed_at=changed, reason="demo"))
        previous = step
    patient.care_status, patient.care_status_changed_at, patient.care_status_changed_by = status, changed, author

    def note(day: dt.date, hour: int, **fields: object) -> None:
        at = at_local(day, hour, rng.randrange(60), zone)
        if day == today:  # earlier today, whatever the time the demo is loaded
            midnight = at_local(today, 0, 1, zone)
            at = max(midnight, dt.datetime.now(dt.UTC) - dt.timedelta(minutes=rng.randrange(5, 240)))
        s.add(CareNote(patient_id=patient.id, author_id=author, created_at=at, **fields))
        patient.last_contact_at = at
        patient.last_contact_reached = fields.get("reached")  # type: ignore[assignment]
        patient.last_activity_at = at

    earlier = today - dt.timedelta(days=rng.randrange(5, 15))
    if kind == "due_today":
        note(earlier, 10, customer_status="Hẹn gọi lại", detail_status="Khách bận, hẹn gọi lại", reached=True,
             note="Khách hẹn gọi lại", callback_date=today)
        patient.callback_date = today
    elif kind == "overdue":
        due = today - dt.timedelta(days=rng.randrange(3, 9))
        note(due - dt.timedelta(days=5), 15, customer_status="Chưa đặt lịch", detail_status="Cần tư vấn thêm",
             reached=True, note=rng.choice(NOTES_REACHED), callback_date=due)
        patient.callback_date = due
    elif kind == "not_reached":
        note(earlier, 9, customer_status="Chưa đặt lịch", detail_status="Cần tư vấn thêm", reached=True,
             note=rng.choice(NOTES_REACHED), callback_date=today)
        note(today, 8, customer_status="Không liên lạc được", detail_status=rng.choice(
            ("Không nghe máy", "Thuê bao không liên lạc được", "Máy bận")), reached=False, note="",
             callback_date=today + dt.timedelta(days=1))
        patient.callback_date = today + dt.timedelta(days=1)
    elif kind == "booked":
        note(earlier, 14, customer_status="Đã đặt lịch", detail_status="Đặt lịch khám", reached=True,
             note="Khách đặt lịch khám", booking_date=today, arrival_date=today)
        patient.booking_date = patient.arrival_date = today
    elif kind == "future":
        due = today + dt.timedelta(days=rng.randrange(1, 25))
        note(earlier, 11, customer_status="Chưa đặt lịch", detail_status="Chưa sắp xếp được thời gian",
             reached=True, note=rng.choice(NOTES_REACHED), callback_date=due)
        patient.callback_date = due
    elif kind == "arrived":
        visit = today - dt.timedelta(days=rng.randrange(1, 20))
        note(visit - dt.timedelta(days=3), 10, customer_status="Đã đặt lịch", detail_status="Đặt lịch tái khám",
             reached=True, note="Hẹn tái khám", booking_date=visit, arrival_date=visit)
        note(visit, 16, customer_status="Đã đến khám", detail_status="Đến đúng hẹn", reached=True,
             note="Đã khám xong", arrival_date=visit)
        patient.booking_date = patient.arrival_date = visit
    elif kind == "closed":
        note(earlier, 10, customer_status="Từ chối", detail_status="Đã khám nơi khác", reached=True,
             note="Khách không còn nhu cầu")

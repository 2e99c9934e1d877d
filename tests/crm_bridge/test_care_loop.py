"""The care loop through the API on SQLite and PostgreSQL: a referrer sends a patient with files, the
care team finds the referral first, staff record treatment and results, the patient logs in with the
phone and a one-time password, and every role sees exactly its own: hostile uploads store nothing."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from clinicall.app import create_app
from clinicall.auth import service as auth_service
from clinicall.keys import DB_KEY
from clinicall.problem import Problem
from clinicall.settings import Settings
from crm_bridge.models import PatientAudit, PatientFile, StoredBlob
from crm_bridge.sniff import checked_file
from tests.conftest import Staff

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
HTML = b"<!doctype html><script>alert(document.cookie)</script>"


@pytest.fixture
def settings(db_url: str, make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(db_url, crm={"max_file_mb": 1})


def form(fields: dict[str, str], files: list[tuple[str, bytes, str]]) -> aiohttp.FormData:
    data = aiohttp.FormData()
    for name, value in fields.items():
        data.add_field(name, value)
    for filename, content, ctype in files:
        data.add_field("files", content, filename=filename, content_type=ctype)
    return data


async def call(client: TestClient, method: str, path: str, headers: dict[str, str] | None = None,
               expect: int = 200, **kwargs: Any) -> Any:
    response = await client.request(method, path, headers=headers or {}, **kwargs)
    body = await response.json() if "json" in response.content_type else await response.read()
    assert response.status == expect, (method, path, response.status, body)
    return body


async def bearer(client: TestClient, username: str, roles: list[str]) -> dict[str, str]:
    db = client.app[DB_KEY]
    user = await auth_service.create_user(db, username, "correct-horse-battery", roles, f"BS. {username.title()}")
    return {"Authorization": f"Bearer {await auth_service.create_api_token(db, user.id, 'tests')}"}


async def stored(client: TestClient) -> tuple[int, int]:
    async with client.app[DB_KEY].session() as s:
        return (await s.scalar(select(func.count()).select_from(PatientFile)) or 0,
                await s.scalar(select(func.count()).select_from(StoredBlob)) or 0)


async def test_the_care_loop(client: TestClient, staff: Staff) -> None:
    sup = staff.headers("supervisor")
    ref_a, ref_b = await bearer(client, "refa", ["referrer"]), await bearer(client, "refb", ["referrer"])
    await call(client, "POST", "/api/patients", sup, 201, json={"full_name": "Trần Thị Cũ", "phones": [{"number": "0912000001"}],
                                                               "assigned_agent_id": None})
    # the referrer sends a patient with two files
    fields = {"full_name": "Lê Văn Giới", "phone": "0912 000 002", "service_of_interest": "Nội soi", "note": "đau dạ dày"}
    sent = await call(client, "POST", "/api/referrals", ref_a, 201,
                      data=form(fields, [("chup.pdf", PDF, "application/pdf"), ("anh.png", PNG, "image/png")]))
    pid = sent["id"]
    # hostile uploads: a clear problem, nothing stored
    before = await stored(client)
    for name, content, code in (("ketqua.pdf", HTML, "file_type_not_allowed"), ("../../etc/x.pdf", PDF, "file_name_has_path"),
                                ("anh.pdf", PNG, "file_type_mismatch"), ("big.pdf", PDF + b"0" * (1024 * 1024), "file_too_large")):
        problem = await call(client, "POST", "/api/referrals", ref_a, 413 if code == "file_too_large" else
                             422 if code == "file_name_has_path" else 415,
                             data=form({**fields, "phone": "0912000009"}, [("ok.pdf", PDF, "application/pdf"), (name, content, "application/pdf")]))
        assert problem["code"] == code
    assert await stored(client) == before
    counts = (await call(client, "GET", "/api/referrals?list=new", ref_a))["counts"]
    assert counts == {"new": 1, "in_treatment": 0, "finished": 0, "closed": 0}
    # another referrer sees none of it
    assert (await call(client, "GET", "/api/referrals?list=new", ref_b))["items"] == []
    assert (await call(client, "GET", f"/api/referrals/{pid}", ref_b, 404))["code"] == "referral_not_found"
    card = await call(client, "GET", f"/api/referrals/{pid}", ref_a)
    sent_files = card["files"]
    assert sorted(f["filename"] for f in sent_files) == ["anh.png", "chup.pdf"]
    for f in sent_files:
        await call(client, "GET", f["url"], ref_b, 404)
    # the care team: the referral comes first; the card names the referrer
    unassigned = await call(client, "GET", "/api/worklists/unassigned", sup)
    assert unassigned["items"][0]["id"] == pid and unassigned["count"] == 2
    care = await call(client, "GET", f"/api/patients/{pid}/care", sup)
    assert care["referrer"]["name"] == "BS. Refa" and care["patient"]["referring_doctor"] == "BS. Refa"
    # treatment: the first entry starts treatment and makes the account
    today = dt.date.today()
    revisit = today + dt.timedelta(days=7)
    first = await call(client, "POST", f"/api/patients/{pid}/treatment", sup, 201, json={
        "day": today.isoformat(), "doctor": "BS. Hà", "technician": "KTV Minh", "progress": "Đỡ đau",
        "orders": "Uống thuốc", "revisit_date": revisit.isoformat(), "visible_to_patient": True, "visible_to_referrer": True})
    assert first["care_status"] == "in_treatment"
    assert first["callback_date"] == (revisit - dt.timedelta(days=1)).isoformat()
    account = first["account"]
    otp = account["one_time_password"]
    assert account["username"] == "0912000002" and "0912000002" not in otp and "Lê Văn Giới" in account["message"]
    await call(client, "POST", f"/api/patients/{pid}/treatment", sup, 201, json={
        "day": today.isoformat(), "progress": "Ghi chú nội bộ"})
    due = await call(client, "GET", f"/api/worklists/due_today?date={(revisit - dt.timedelta(days=1)).isoformat()}", sup)
    assert pid in [p["id"] for p in due["items"]]
    care = await call(client, "GET", f"/api/patients/{pid}/care", sup)
    assert [v["label"] for v in care["visits"]] == ["Khám lần đầu", "Tái khám lần 1"]
    assert "Lê Văn Giới" in care["revisit_message"] and revisit.strftime("%d/%m/%Y") in care["revisit_message"]
    # results in two groups, one visible to the patient
    lab = await call(client, "POST", f"/api/patients/{pid}/files", sup, 201, data=form(
        {"group": "lab", "visible_to_patient": "true"}, [("xet-nghiem.pdf", PDF, "application/pdf")]))
    imaging = await call(client, "POST", f"/api/patients/{pid}/files", sup, 201, data=form(
        {"group": "imaging", "visible_to_referrer": "on"}, [("phim.png", PNG, "image/png")]))
    lab_id, imaging_id = lab["files"][0]["id"], imaging["files"][0]["id"]
    # reception checks the booked patient in and opens the card, but reads neither treatment nor results
    await call(client, "PATCH", f"/api/patients/{pid}", sup, json={"booking_date": today.isoformat()})
    desk = staff.headers("reception")
    assert (await call(client, "GET", f"/api/patients/{pid}", desk))["patient"]["id"] == pid
    assert (await call(client, "GET", f"/api/patients/{pid}/care", desk, 403))["code"] == "role_required"
    await call(client, "GET", f"/api/files/{lab_id}", desk, 404)
    # the patient: phone login, one-time password, the change is required first
    login = await call(client, "POST", "/api/patient/login", {}, 200, json={"phone": "+84 912 000 002", "password": otp})
    assert login["must_change_password"] is True
    assert (await call(client, "GET", "/api/patient/me", {}, 403))["code"] == "password_change_required"
    await call(client, "GET", f"/api/files/{lab_id}", {}, 404)
    bad = await call(client, "POST", "/api/patient/password", {}, 422,
                     json={"current_password": otp, "new_password": "so-0912000002-x"})
    assert bad["code"] == "password_contains_phone"
    await call(client, "POST", "/api/patient/password", {}, 200,
               json={"current_password": otp, "new_password": "mây-trắng-bay-xa"})
    mine = await call(client, "GET", "/api/patient/me", {})
    assert [e["progress"] for e in mine["entries"]] == ["Đỡ đau"]
    assert [f["id"] for f in mine["files"]] == [lab_id]
    response = await client.get(f"/api/files/{lab_id}")
    assert response.status == 200 and await response.read() == PDF
    assert response.headers["Content-Type"] == "application/pdf"
    assert response.headers["Content-Disposition"].startswith("attachment;")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    await call(client, "GET", f"/api/files/{imaging_id}", {}, 404)
    for f in sent_files:
        await call(client, "GET", f["url"], {}, 404)
    await call(client, "GET", f"/api/patients/{pid}", {}, 403)
    client.session.cookie_jar.clear()
    # the referrer sees the status and what is meant for him
    card = await call(client, "GET", f"/api/referrals/{pid}", ref_a)
    assert card["patient"]["care_status"] == "in_treatment"
    assert [e["progress"] for e in card["entries"]] == ["Đỡ đau"]
    assert sorted(f["id"] for f in card["files"]) == sorted([*(f["id"] for f in sent_files), imaging_id])
    await call(client, "GET", f"/api/files/{imaging_id}", ref_a, 200)
    await call(client, "GET", f"/api/files/{lab_id}", ref_a, 404)
    # statistics and their export
    stats = await call(client, "GET", "/api/stats/referrals", sup)
    assert stats["referrers"][0]["referred"] == 1 and stats["referrers"][0]["in_treatment"] == 1
    xlsx = await client.get("/api/stats/referrals?export=xlsx", headers=sup)
    assert xlsx.status == 200 and (await xlsx.read())[:2] == b"PK"
    # admin: reset and disable the account
    admin = staff.headers("admin")
    reset = await call(client, "POST", f"/api/patient-accounts/{pid}/reset", admin)
    assert reset["one_time_password"] != otp
    await call(client, "PATCH", f"/api/patient-accounts/{pid}", admin, json={"active": False})
    await call(client, "POST", "/api/patient/login", {}, 401, json={"phone": "0912000002", "password": reset["one_time_password"]})
    async with client.app[DB_KEY].session() as s:
        views = (await s.scalars(select(PatientAudit.detail).where(PatientAudit.action == "file_view"))).all()
    assert any(f"file {lab_id}" in v for v in views) and any(f"file {imaging_id}" in v for v in views)


@pytest.mark.parametrize(("name", "data", "expected"), [
    ("Kết quả.PDF", PDF, ("Kết quả.PDF", "application/pdf")),
    ("anh", b"\xff\xd8\xff\xe0" + b"\x00" * 16, ("anh.jpg", "image/jpeg")),
    ("ct.dcm", b"\x00" * 128 + b"DICM" + b"\x00" * 8, ("ct.dcm", "application/dicom")),
    ("phim chup\u202e.png", PNG, ("phim chup.png", "image/png")),
    ("report.txt", PDF, ("report.txt.pdf", "application/pdf")),
])
def test_accepted_files_are_named_by_their_content(name: str, data: bytes, expected: tuple[str, str]) -> None:
    assert checked_file(name, data, 1024) == expected


@pytest.mark.parametrize(("name", "data", "code"), [
    ("x.pdf", b"%PD", "file_type_not_allowed"), ("x.pdf", b"GIF89a", "file_type_not_allowed"),
    ("x.svg", b"<svg onload=alert(1)>", "file_type_not_allowed"), ("x.jpg", PNG, "file_type_mismatch"),
    ("C:\\tmp\\x.pdf", PDF, "file_name_has_path"), ("..", PDF, "file_name_has_path"), (".htaccess", PDF, "file_name_has_path"),
    ("x.pdf", b"", "file_empty"), ("x.pdf", PDF * 100, "file_too_large"),
])
def test_refused_files(name: str, data: bytes, code: str) -> None:
    with pytest.raises(Problem) as refused:
        checked_file(name, data, 1024)
    assert refused.value.code == code


async def test_referrer_invited_by_link(client: TestClient, staff: Staff) -> None:
    made = await call(client, "POST", "/api/referrer-invites", staff.headers("admin"), 201,
                      json={"display_name": "BS. Mời", "days": 3})
    token = made["url"].split("token=")[1]
    assert made["url"].startswith("http") and "/referrer/join?token=" in made["url"]
    assert (await call(client, "POST", "/api/referrer-invites/accept", {}, 404, json={
        "token": "x" * 43, "username": "bsmoi", "password": "mây-trắng-bay-xa"}))["code"] == "invite_invalid"
    await call(client, "POST", "/api/referrer-invites/accept", {}, 201,
               json={"token": token, "username": "bsmoi", "password": "mây-trắng-bay-xa"})
    assert (await call(client, "GET", "/api/referrals?list=new", {}))["counts"]["new"] == 0  # logged in as the referrer
    me = await call(client, "GET", "/api/me", {})
    assert me["roles"] == ["referrer"] and me["display_name"] == "BS. Mời"
    client.session.cookie_jar.clear()
    assert (await call(client, "POST", "/api/referrer-invites/accept", {}, 404, json={
        "token": token, "username": "bsmoi2", "password": "mây-trắng-bay-xa"}))["code"] == "invite_invalid"


async def test_patient_login_is_throttled_per_number_in_any_writing(
        aiohttp_client: Callable[..., Any], sqlite_url: str, make_settings: Callable[..., Settings]) -> None:
    """The per-account limit counts the number, not its spelling: other digit scripts (fullwidth,
    Arabic-Indic) name the same phone, and the staff login form reaches the same account."""
    settings = make_settings(sqlite_url, auth={"login_failures_per_account": 3, "login_failures_per_address": 100})
    client: TestClient = await aiohttp_client(create_app(settings))
    wrong = {"password": "not-the-password"}
    await call(client, "POST", "/api/patient/login", expect=401, json={"phone": "0912000005", **wrong})
    await call(client, "POST", "/api/patient/login", expect=401, json={"phone": "０９１２０００００５", **wrong})
    await call(client, "POST", "/api/login", expect=401, json={"username": "0912000005", **wrong})
    throttled = await call(client, "POST", "/api/patient/login", expect=429, json={"phone": "٠٩١٢٠٠٠٠٠٥", **wrong})
    assert throttled["code"] == "login_throttled"
    # a stolen session cannot guess the password either: the current password is counted like a login
    from crm_bridge import accounts
    from crm_bridge.patients import PatientIn, PhoneIn, create_patient

    db = client.app[DB_KEY]
    patient_id = await create_patient(db, PatientIn(full_name="Lý Thị Mai", phones=[PhoneIn(number="0912000006")]), None, "VN")
    made = await accounts.create_account(db, patient_id, template="{password}", link="", by=None)
    assert made is not None
    await call(client, "POST", "/api/patient/login", json={"phone": "0912000006", "password": made["one_time_password"]})
    guess = {"new_password": "mây-trắng-bay-xa"}
    for n in range(3):
        await call(client, "POST", "/api/patient/password", expect=422, json={"current_password": f"guess-{n}", **guess})
    refused = await call(client, "POST", "/api/patient/password", expect=429,
                         json={"current_password": made["one_time_password"], **guess})
    assert refused["code"] == "login_throttled"

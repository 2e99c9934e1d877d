"""Holes a hostile user found, each probed as it was found: health details for anyone, reception reading
clinical notes, a merged-away or disabled patient login that kept its access, the login limit behind the
proxy, the public turn-near sign-up as an SMS cannon, one-time passwords in the message log."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select, update

from clinicall.app import create_app
from clinicall.auth import service as auth_service
from clinicall.keys import DB_KEY
from clinicall.settings import Settings
from crm_bridge import accounts
from crm_bridge.models import PatientAccount
from crm_bridge.worklists import clinic_today
from messaging.models import Message
from tests.conftest import PASSWORD, STAFF, Staff
from tests.waiting import until

SCRAPE_TOKEN = "scrape-token-0123456789abcdef"


@pytest.fixture
def settings(sqlite_url: str, make_settings: Callable[..., Settings]) -> Settings:
    """Access rules live above the database: SQLite is enough. nginx is the trusted proxy on the loopback."""
    return make_settings(sqlite_url, auth={"metrics_token": SCRAPE_TOKEN, "login_failures_per_address": 3},
                         http={"cookie_secure": False, "trusted_proxies": ["127.0.0.1"]},
                         messaging={"turn_near_per_number_per_day": 2, "turn_near_public_per_address_per_hour": 4,
                                    "turn_near_public_per_day": 5})


def walk(value: Any) -> set[str]:
    """Every key anywhere in a JSON value."""
    if isinstance(value, dict):
        return set(value) | set().union(*(walk(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(walk(v) for v in value)) if value else set()
    return set()


def fields(checks: dict[str, Any]) -> set[str]:
    """Every key inside the checks (not their names)."""
    return set().union(*(walk(check) for check in checks.values()))


async def new_patient(client: TestClient, staff: Staff, name: str, phone: str, **fields: Any) -> int:
    created = await client.post("/api/patients", json={"full_name": name, "phones": [{"number": phone}], **fields},
                                headers=staff.headers("supervisor"))
    assert created.status == 201, await created.text()
    return int((await created.json())["patient"]["id"])


async def test_health_details_only_for_admins_and_the_scraper(client: TestClient, staff: Staff) -> None:
    anonymous = await client.get("/healthz")
    body = await anonymous.json()
    assert anonymous.status == 200 and body["status"] == "ok" and body["checks"]["database"]["ok"] is True
    public = {"ok", "optional", "state", "kind", "demo"}
    assert fields(body["checks"]) <= public, body  # no address, host, port, error text, detail or counter
    assert fields((await (await client.get("/readyz")).json())["checks"]) <= public
    for headers in (staff.headers("agent"), staff.headers("supervisor")):
        assert fields((await (await client.get("/healthz", headers=headers)).json())["checks"]) <= public
    for headers in (staff.headers("admin"), {"Authorization": f"Bearer {SCRAPE_TOKEN}"}):
        checks = (await (await client.get("/healthz", headers=headers)).json())["checks"]
        assert checks["asterisk"]["detail"] == "no Asterisk configured", checks


async def test_reception_reads_no_clinical_notes(client: TestClient, staff: Staff) -> None:
    db = client.app[DB_KEY]  # type: ignore[index]
    referrer = await auth_service.create_user(db, "dr-outside", PASSWORD, ["referrer"])
    token = await auth_service.create_api_token(db, referrer.id, "t")
    with aiohttp.MultipartWriter("form-data") as form:
        for name, value in (("full_name", "Lê Thị Mai"), ("phone", "0912000401"), ("note", "nghi ung thư vú")):
            form.append(value).set_content_disposition("form-data", name=name)
    referred = await client.post("/api/referrals", data=form, headers={"Authorization": f"Bearer {token}"})
    assert referred.status == 201, await referred.text()
    patient_id = (await referred.json())["id"]
    patched = await client.patch(f"/api/patients/{patient_id}", headers=staff.headers("supervisor"), json={
        "notes": "HIV dương tính", "booking_date": clinic_today(Settings().clinic.zone()).isoformat()})
    assert patched.status == 200, await patched.text()
    card = await client.get(f"/api/patients/{patient_id}", headers=staff.headers("reception"))
    assert card.status == 200
    shown = await card.json()
    assert shown["patient"]["full_name"] == "Lê Thị Mai"
    assert not {"notes", "referral_note"} & walk(shown), shown
    assert "HIV" not in json.dumps(shown, ensure_ascii=False) and "ung thư" not in json.dumps(shown, ensure_ascii=False)
    for who in ("doctor", "agent", "supervisor"):  # staff who treat still read them
        treated = await (await client.get(f"/api/patients/{patient_id}", headers=staff.headers(who))).json()
        assert treated["patient"]["notes"] == "HIV dương tính", who
        assert treated["patient"]["referral_note"] == "nghi ung thư vú", who


async def patient_account(client: TestClient, staff: Staff, name: str, phone: str) -> tuple[int, str, str]:
    """(patient id, user name, password) of a patient whose account is past its first password change."""
    db = client.app[DB_KEY]  # type: ignore[index]
    patient_id = await new_patient(client, staff, name, phone)
    made = await accounts.create_account(db, patient_id, template="{password}", link="/me", by=None)
    assert made is not None
    async with db.transaction() as s:
        await s.execute(update(PatientAccount).where(PatientAccount.patient_id == patient_id)
                        .values(must_change_password=False))
    return patient_id, made["username"], made["one_time_password"]


async def bearer_of(client: TestClient, username: str) -> dict[str, str]:
    db = client.app[DB_KEY]  # type: ignore[index]
    user = await auth_service.user_by_name(db, username)
    assert user is not None
    return {"Authorization": f"Bearer {await auth_service.create_api_token(db, user.id, 'legacy')}"}


async def test_patient_logins_close_at_once(client: TestClient, staff: Staff) -> None:
    """A merged-away record's login, a disabled account and a reset password lose access at once, though
    bearer tokens are remembered for a few seconds (the cache forgets them)."""
    merged, merged_user, merged_password = await patient_account(client, staff, "Trần Văn Hợp", "0912000301")
    survivor, survivor_user, _ = await patient_account(client, staff, "Trần Văn Hợp", "0912000302")
    old, kept = await bearer_of(client, merged_user), await bearer_of(client, survivor_user)
    for who in ("admin", "supervisor"):  # patients' logins (their phone, their name) are not among the staff
        users = (await (await client.get("/api/users", headers=staff.headers(who))).json())["users"]
        assert {merged_user, survivor_user}.isdisjoint(u["username"] for u in users) and len(users) > 1, who
    patient_login = await auth_service.user_by_name(client.app[DB_KEY], survivor_user)  # type: ignore[index]
    assert patient_login is not None  # nor can the staff's user form change one (a new password, a role)
    renamed = await client.patch(f"/api/users/{patient_login.id}", json={"display_name": "x"}, headers=staff.headers("admin"))
    assert (renamed.status, (await renamed.json())["code"]) == (404, "user_not_found")
    for headers in (old, kept):  # both remembered now
        assert (await client.get("/api/patient/me", headers=headers)).status == 200
    merge = await client.post("/api/merges", json={"from_id": merged, "into_id": survivor},
                              headers=staff.headers("supervisor"))
    assert merge.status == 200, await merge.text()
    assert (await client.get("/api/patient/me", headers=old)).status == 401
    login = await client.post("/api/login", json={"username": merged_user, "password": merged_password})
    assert login.status == 401
    assert (await client.get("/api/patient/me", headers=kept)).status == 200
    # a login merged away before this fix (still active): it opens nobody's page
    db = client.app[DB_KEY]  # type: ignore[index]
    user = await auth_service.user_by_name(db, merged_user)
    assert user is not None
    await auth_service.update_user(db, user.id, active=True)
    legacy = await client.get("/api/patient/me", headers=await bearer_of(client, merged_user))
    assert legacy.status == 404 and (await legacy.json())["code"] == "patient_account_missing"

    assert (await client.get("/api/patient/me", headers=kept)).status == 200  # remembered again
    off = await client.patch(f"/api/patient-accounts/{survivor}", json={"active": False}, headers=staff.headers("admin"))
    assert off.status == 200
    assert (await client.get("/api/patient/me", headers=kept)).status == 401
    assert (await client.patch(f"/api/patient-accounts/{survivor}", json={"active": True},
                               headers=staff.headers("admin"))).status == 200
    assert (await client.get("/api/patient/me", headers=kept)).status == 200  # remembered again
    reset = await client.post(f"/api/patient-accounts/{survivor}/reset", headers=staff.headers("admin"))
    assert reset.status == 200
    assert (await client.get("/api/patient/me", headers=kept)).status == 401
    # the merged record's closed login is not reopened through its old id
    reopen = await client.patch(f"/api/patient-accounts/{merged}", json={"active": True}, headers=staff.headers("admin"))
    assert reopen.status == 404


async def test_login_limit_per_address_sees_the_client_behind_the_proxy(client: TestClient, staff: Staff) -> None:
    """Behind nginx every login comes from the proxy: counting that address would let one guesser lock the
    whole clinic out. The client nginx names (X-Forwarded-For) is counted instead."""
    guesser = {"X-Forwarded-For": "203.0.113.9"}
    for n in range(3):
        wrong = await client.post("/api/login", json={"username": f"nobody{n}", "password": "wrong-guess"},
                                  headers=guesser)
        assert wrong.status == 401
    throttled = await client.post("/api/login", json={"username": "nobody9", "password": "wrong-guess"},
                                  headers=guesser)
    assert throttled.status == 429 and (await throttled.json())["code"] == "login_throttled"
    colleague = await client.post("/api/login", json={"username": "agent", "password": PASSWORD},
                                  headers={"X-Forwarded-For": "198.51.100.4"})
    assert colleague.status == 200, await colleague.text()


async def test_turn_near_sign_ups_are_bounded(client: TestClient, staff: Staff) -> None:
    """The kiosk issues tickets to anyone (120 a minute per address) and each ticket may ask for one SMS to
    any number: per number and clinic day, per address and hour, and per clinic day the sign-ups without
    login are bounded (here 2, 4 and 5); reception's are bounded per number only."""
    service = await client.post("/api/services", json={"prefix": "A", "names": {"vi": "Khám"}},
                                headers=staff.headers("admin"))
    service_id = (await service.json())["service"]["id"]

    async def sign_up(phone: str, address: str) -> tuple[int, Any, int]:
        issued = await client.post("/api/kiosk/tickets", json={"service_id": service_id},
                                   headers={"X-Forwarded-For": address})
        assert issued.status == 201, await issued.text()
        ticket = (await issued.json())["ticket"]
        token = ticket["status_url"].rsplit("/", 1)[1]
        response = await client.post(f"/api/t/{token}/turn-near", json={"phone": phone},
                                     headers={"X-Forwarded-For": address})
        return response.status, (await response.json()).get("code"), ticket["id"]

    here, there = "198.51.100.7", "198.51.100.8"
    assert (await sign_up("0912000501", here))[0] == 201
    assert (await sign_up("0912000501", here))[0] == 201
    assert (await sign_up("0912000501", here))[:2] == (429, "turn_near_number_limit")
    assert (await sign_up("0912000502", here))[0] == 201
    assert (await sign_up("0912000503", here))[0] == 201
    assert (await sign_up("0912000504", here))[:2] == (429, "turn_near_address_limit")
    assert (await sign_up("0912000504", there))[0] == 201
    status, code, ticket_id = await sign_up("0912000505", there)
    assert (status, code) == (429, "turn_near_daily_limit")
    desk = await client.post("/api/turn-near", json={"ticket_id": ticket_id, "phone": "0912000505"},
                             headers=staff.headers("reception"))
    assert desk.status == 201, await desk.text()
    _, _, other = await sign_up("0912000506", there)
    desk = await client.post("/api/turn-near", json={"ticket_id": other, "phone": "0912000501"},
                             headers=staff.headers("reception"))
    assert desk.status == 429 and (await desk.json())["code"] == "turn_near_number_limit"


async def make_staff(client: TestClient) -> Staff:
    db = client.app[DB_KEY]  # type: ignore[index]
    tokens, ids = {}, {}
    for name, (roles, ext) in STAFF.items():
        user = await auth_service.create_user(db, name, PASSWORD, roles, name.title(), ext)
        ids[name], tokens[name] = user.id, await auth_service.create_api_token(db, user.id, "tests")
    return Staff(tokens=tokens, ids=ids)


async def test_account_password_is_masked_where_staff_read_messages(
        aiohttp_client: Callable[..., Any], sqlite_url: str, make_settings: Callable[..., Settings]) -> None:
    """The account SMS carries the one-time password: the patient's phone gets it, the message log, the card's
    list and the export show it masked, and the stored row keeps it only until it is sent."""
    from tests.messaging.test_http_gateway import Gateway

    gateway = Gateway()
    await gateway.start()
    try:
        settings = make_settings(sqlite_url, messaging={
            "adapter": "http", "http_url": f"http://127.0.0.1:{gateway.port}/send", "http_basic_user": "clinic",
            "http_basic_password": "pw", "http_headers": {"X-Brand": "CLINIC"},
            "http_body_template": '{"to": "{to}", "text": "{text}", "ref": "{ref}"}', "http_success_field": "error",
            "http_success_value": "0", "http_message_id_field": "data.msg_id", "timeout_seconds": 5})
        client: TestClient = await aiohttp_client(create_app(settings))
        staff = await make_staff(client)
        db = client.app[DB_KEY]
        patient_id = await new_patient(client, staff, "Phạm Thị Dung", "0912000601",
                                       assigned_agent_id=staff.ids["agent"])
        made = await accounts.create_account(db, patient_id, template="Mật khẩu: {password} tại {link}",
                                             link="https://clinic.example/me", by=None)
        assert made is not None
        secret = made["one_time_password"]
        sent = await client.post(f"/api/patients/{patient_id}/messages", json={"text": made["message"]},
                                 headers=staff.headers("agent"))
        assert sent.status == 201, await sent.text()
        message_id = (await sent.json())["message"]["id"]

        async def delivered() -> Any:
            async with db.session() as s:
                row = await s.get(Message, message_id)
                return row if row is not None and row.status == "sent" else None

        row = await until(delivered, "the account SMS sent")
        assert [b["text"] for b in gateway.received] == [made["message"]]  # the patient gets the password
        assert secret not in row.text and row.send_text is None  # the row keeps it no longer
        views = [await client.get(f"/api/patients/{patient_id}/messages", headers=staff.headers("agent")),
                 await client.get("/api/messages", headers=staff.headers("supervisor")),
                 await client.get("/api/messages?export=csv", headers=staff.headers("supervisor"))]
        for view in views:
            assert view.status == 200
            text = await view.text()
            if view.content_type == "application/json":
                text = json.dumps(json.loads(text), ensure_ascii=False)
            assert secret not in text and "••••-••••-••••" in text
        async with db.session() as s:
            stored = (await s.scalars(select(Message.text))).all()
        assert stored and not any(secret in text for text in stored)
    finally:
        await gateway.stop()


async def test_front_desk_reads_a_patients_tickets_of_its_days_only(client: TestClient, staff: Staff) -> None:
    """Reception and doctors see patients from yesterday to tomorrow: a patient booked today opens, but not
    their visits of other days (the days they may not list through GET /api/tickets either)."""
    from queue_display.models import Ticket

    db = client.app[DB_KEY]  # type: ignore[index]
    today = clinic_today(Settings().clinic.zone())
    patient_id = await new_patient(client, staff, "Ngô Văn Lâu", "0912000801")
    assert (await client.patch(f"/api/patients/{patient_id}", json={"booking_date": today.isoformat()},
                               headers=staff.headers("supervisor"))).status == 200
    service = await client.post("/api/services", json={"prefix": "A", "names": {"vi": "Khám"}},
                                headers=staff.headers("admin"))
    service_id = (await service.json())["service"]["id"]
    for day in (today - dt.timedelta(days=7), today):  # a visit a week ago, and today's
        issued = await client.post("/api/tickets", json={"service_id": service_id, "patient_id": patient_id},
                                   headers=staff.headers("admin"))
        assert issued.status == 201, await issued.text()
        async with db.transaction() as s:
            await s.execute(update(Ticket).where(Ticket.id == (await issued.json())["ticket"]["id"])
                            .values(local_day=day, status="done"))
    for who, seen in (("reception", 1), ("doctor", 1), ("agent", 2), ("supervisor", 2)):
        response = await client.get(f"/api/patient-tickets?patient_id={patient_id}", headers=staff.headers(who))
        assert response.status == 200, who
        assert len((await response.json())["tickets"]) == seen, who


async def test_a_doctor_works_only_their_own_rooms_queue(client: TestClient, staff: Staff) -> None:
    db = client.app[DB_KEY]  # type: ignore[index]
    other = await auth_service.create_user(db, "doctor2", PASSWORD, ["doctor"])
    intruder = {"Authorization": f"Bearer {await auth_service.create_api_token(db, other.id, 't')}"}
    admin, doctor = staff.headers("admin"), staff.headers("doctor")
    service = await (await client.post("/api/services", json={"prefix": "A", "names": {"vi": "Khám"}},
                                       headers=admin)).json()
    service_id = service["service"]["id"]
    room = await client.post("/api/rooms", headers=admin, json={
        "kind": "consult", "number": 1, "service_ids": [service_id], "doctor_user_id": staff.ids["doctor"]})
    room_id = (await room.json())["room"]["id"]
    for _ in range(2):
        assert (await client.post("/api/tickets", json={"service_id": service_id},
                                  headers=staff.headers("reception"))).status == 201
    refused = await client.post(f"/api/rooms/{room_id}/call-next", json={}, headers=intruder)
    assert refused.status == 403 and (await refused.json())["code"] == "not_your_room"
    taken = await client.patch(f"/api/rooms/{room_id}", json={"doctor_user_id": other.id}, headers=intruder)
    assert taken.status == 403 and (await taken.json())["code"] == "not_your_room"
    called = await client.post(f"/api/rooms/{room_id}/call-next", json={}, headers=doctor)
    assert called.status == 200, await called.text()
    ticket_id = (await called.json())["ticket"]["id"]
    done = await client.post(f"/api/tickets/{ticket_id}/done", json={}, headers=intruder)
    assert done.status == 403 and (await done.json())["code"] == "not_your_room"
    assert (await client.post(f"/api/tickets/{ticket_id}/recall", json={}, headers=doctor)).status == 200
    assert (await client.post(f"/api/rooms/{room_id}/call-next", json={},
                              headers=staff.headers("reception"))).status == 200  # reception runs every room
    # (redteam4) reception put any user on duty, an agent or a patient's login too, locking the doctors out
    for user_id in (staff.ids["agent"], staff.ids["reception"]):
        named = await client.patch(f"/api/rooms/{room_id}", json={"doctor_user_id": user_id},
                                   headers=staff.headers("reception"))
        problem = await named.json()
        assert (named.status, problem["code"], problem["errors"][0]["field"]) == (422, "not_a_doctor", "doctor_user_id")
    assert (await client.patch(f"/api/rooms/{room_id}", json={"doctor_user_id": other.id},
                               headers=staff.headers("reception"))).status == 200

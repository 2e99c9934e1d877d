"""The breaches of issue 13, each as it was probed: open redirect after login, lists wider than the
card, malformed forms, cross-site writes, password guessing, weak passwords, live sessions after a
password change, unaudited lists, and /metrics for the scraper."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from clinicall.app import create_app
from clinicall.auth import service as auth_service
from clinicall.keys import DB_KEY
from clinicall.settings import Settings
from crm_bridge.audit import AUDIT_BATCH_KEY, AuditBatch
from crm_bridge.models import PatientAudit
from crm_bridge.worklists import clinic_today
from tests.conftest import PASSWORD, STAFF, Staff

SCRAPE_TOKEN = "scrape-token-0123456789abcdef"


@pytest.fixture
def settings(sqlite_url: str, make_settings: Callable[..., Settings]) -> Settings:
    """These rules live above the database: SQLite is enough (the matrix and schemathesis run on both)."""
    return make_settings(sqlite_url, auth={"metrics_token": SCRAPE_TOKEN, "login_failures_per_account": 5,
                                           "login_failures_per_address": 8})


def own(client: TestClient) -> dict[str, str]:
    return {"Origin": str(client.make_url("/").origin())}


async def login_cookie(client: TestClient, who: str) -> None:
    response = await client.post("/api/login", json={"username": who, "password": PASSWORD})
    assert response.status == 200, await response.text()


def today() -> dt.date:
    return clinic_today(Settings().clinic.zone())


async def patient(client: TestClient, staff: Staff, name: str, agent: str | None, phone: str,
                  booking: dt.date | None = None) -> int:
    body = {"full_name": name, "date_of_birth": "1980-02-03", "phones": [{"number": phone}],
            "assigned_agent_id": staff.ids[agent] if agent else None}
    created = await client.post("/api/patients", json=body, headers=staff.headers("supervisor"))
    assert created.status == 201, await created.text()
    patient_id = (await created.json())["patient"]["id"]
    if booking:
        patched = await client.patch(f"/api/patients/{patient_id}", json={"booking_date": booking.isoformat()},
                                     headers=staff.headers("supervisor"))
        assert patched.status == 200, await patched.text()
    return int(patient_id)


# ---- 1. redirects after login ------------------------------------------------------------------

@pytest.mark.parametrize("target", ["/\t/evil.example/", "//evil.example/", "/\\evil.example", "https://evil.example/",
                                    "/\n/evil.example", "javascript:alert(1)", "/%0a/x\r\nSet-Cookie: a=b", " /agent"])
async def test_login_never_redirects_off_site(client: TestClient, staff: Staff, target: str) -> None:
    response = await client.post("/login", data={"username": "admin", "password": PASSWORD, "next": target},
                                 allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"] == "/"


async def test_login_keeps_a_local_next_and_encodes_it_on_error(client: TestClient, staff: Staff) -> None:
    ok = await client.post("/login", data={"username": "admin", "password": PASSWORD, "next": "/agent?tab=new"},
                           allow_redirects=False)
    assert ok.headers["Location"] == "/agent?tab=new"
    client.session.cookie_jar.clear()
    sneaky = '/agent?x=1&error=0&next=//evil"><script>alert(1)</script>'
    bad = await client.post("/login", data={"username": "admin", "password": "wrong-guess-1", "next": sneaky},
                            allow_redirects=False)
    location = bad.headers["Location"]
    assert "<" not in location and '"' not in location
    query = parse_qs(urlsplit(location).query)
    assert query == {"error": ["1"], "next": ["/"]} or query["next"] == [sneaky]


# ---- 2, 3. lists scoped like the card ------------------------------------------------------------

async def test_arrivals_and_identify_are_scoped_like_the_card(client: TestClient, staff: Staff) -> None:
    day = today()
    mine = await patient(client, staff, "Lê Thị Mai", "agent", "0912000101", day)
    theirs = await patient(client, staff, "Trần Văn Bình", "agent2", "0912000102", day)
    old = await patient(client, staff, "Phạm Văn Cũ", "agent2", "0912000103", dt.date(2000, 1, 1))

    agent = await (await client.get("/api/arrivals", headers=staff.headers("agent"))).json()
    assert [item["id"] for item in agent["items"]] == [mine]
    card = await client.get(f"/api/patients/{theirs}", headers=staff.headers("agent"))
    assert card.status == 403

    reception = await (await client.get("/api/arrivals", headers=staff.headers("reception"))).json()
    assert {item["id"] for item in reception["items"]} == {mine, theirs}
    for who in ("reception", "doctor"):
        for far in (dt.date(2000, 1, 1), day + dt.timedelta(days=60), day - dt.timedelta(days=2)):
            response = await client.get(f"/api/arrivals?date={far.isoformat()}", headers=staff.headers(who))
            assert response.status == 403
            assert (await response.json())["code"] == "date_outside_window"
        assert (await client.get(f"/api/patients/{old}", headers=staff.headers(who))).status == 403
        tickets = await client.get("/api/tickets?date=2000-01-01", headers=staff.headers(who))
        assert tickets.status == 403
    supervisor = await client.get("/api/arrivals?date=2000-01-01", headers=staff.headers("supervisor"))
    assert [item["id"] for item in (await supervisor.json())["items"]] == [old]

    seen = await (await client.get("/api/callers/identify?number=0912000102", headers=staff.headers("agent"))).json()
    assert seen["known"] is True and seen["patient_id"] is None
    assert "Bình" not in str(seen) and "Binh" not in str(seen)
    own_caller = await (await client.get("/api/callers/identify?number=0912000101",
                                         headers=staff.headers("agent"))).json()
    assert own_caller["patient"]["full_name"] == "Lê Thị Mai"
    boss = await (await client.get("/api/callers/identify?number=0912000102",
                                   headers=staff.headers("supervisor"))).json()
    assert boss["patient"]["full_name"] == "Trần Văn Bình"


# ---- 4. malformed forms ------------------------------------------------------------------------------

@pytest.mark.parametrize("body, ctype", [
    (b"--x\r\nContent-Disposition: form-data; name=username\r\n\r\nadmin", "multipart/form-data; boundary=zzz"),
    (b"garbage", "multipart/form-data"),
    (b"--b\r\nContent-Disposition: form-data\r\n\r\nv\r\n--b--\r\n", "multipart/form-data; boundary=b"),
    (b"username=%ff%fe&password=x", "application/x-www-form-urlencoded; charset=utf-8"),
    (b"\xff\xfe\x00", "application/x-www-form-urlencoded; charset=utf-16"),
])
async def test_malformed_login_forms_are_4xx_problems(client: TestClient, body: bytes, ctype: str) -> None:
    response = await client.post("/login", data=body, headers={"Content-Type": ctype}, allow_redirects=False)
    assert 400 <= response.status < 500 or response.status == 303
    if response.status != 303:
        assert response.content_type == "application/problem+json"
        assert (await response.json())["code"]


# ---- 5. cross-site writes ---------------------------------------------------------------------------

async def test_cookie_writes_need_our_origin_or_referer(client: TestClient, staff: Staff) -> None:
    await login_cookie(client, "supervisor")
    body = {"full_name": "Nguyễn Thị Hoa"}
    foreign = await client.post("/api/patients", json=body, headers={"Referer": "https://evil.example/x"})
    assert foreign.status == 403 and (await foreign.json())["code"] == "cross_site_request"
    null_origin = await client.post("/api/patients", json=body, headers={"Origin": "null"})
    assert null_origin.status == 403
    form = await client.post("/logout", data={"a": "b"}, allow_redirects=False)
    assert form.status == 403 and (await form.json())["code"] == "origin_missing"
    referer = str(client.make_url("/agent"))
    assert (await client.post("/api/patients", json=body, headers={"Referer": referer})).status == 201
    assert (await client.post("/api/patients", json=body, headers=own(client))).status == 201
    client.session.cookie_jar.clear()
    bearer = await client.post("/api/patients", json=body,
                               headers={**staff.headers("supervisor"), "Origin": "https://evil.example"})
    assert bearer.status == 201  # a bearer token is not ambient: no browser sends it by itself


# ---- 6. password guessing, weak passwords, sessions ---------------------------------------------

async def test_login_throttled_per_account_with_the_wait(client: TestClient, staff: Staff) -> None:
    for i in range(5):
        wrong = await client.post("/api/login", json={"username": "agent", "password": f"guess-{i}-xxxxx"})
        assert wrong.status == 401
    locked = await client.post("/api/login", json={"username": "agent", "password": PASSWORD})
    assert locked.status == 429
    wait = int(locked.headers["Retry-After"])
    assert 1 <= wait <= 900
    problem = await locked.json()
    assert problem["code"] == "login_throttled" and problem["retry_after"] == wait
    assert "thử lại sau" in problem["detail"]
    form = await client.post("/login", data={"username": "Agent", "password": PASSWORD}, allow_redirects=False)
    assert form.status == 429 and "thử lại sau" in await form.text()
    assert (await client.post("/api/login", json={"username": "doctor", "password": PASSWORD})).status == 200


async def test_login_throttled_per_address(client: TestClient, staff: Staff) -> None:
    for i in range(8):
        await client.post("/api/login", json={"username": f"nobody{i}", "password": "guess-guess-1"})
    response = await client.post("/api/login", json={"username": "doctor", "password": PASSWORD})
    assert response.status == 429


async def test_throttle_is_shared_through_redis(aiohttp_client: Callable[..., object], make_settings: Callable[..., Settings],
                                                sqlite_url: str, redis_url: str) -> None:
    settings = make_settings(sqlite_url, bus={"redis_url": redis_url, "channel": f"t:{id(object())}"},
                             auth={"login_failures_per_account": 3})
    one: TestClient = await aiohttp_client(create_app(settings))  # type: ignore[operator]
    two: TestClient = await aiohttp_client(create_app(settings))  # type: ignore[operator]
    name = f"shared{id(one) % 100000}"
    await auth_service.create_user(one.app[DB_KEY], name, PASSWORD, ["agent"])
    for i in range(3):
        assert (await one.post("/api/login", json={"username": name, "password": f"nope-{i}-abcdef"})).status == 401
    response = await two.post("/api/login", json={"username": name, "password": PASSWORD})
    assert response.status == 429


@pytest.mark.parametrize("password, code", [
    (" " * 10, "password_too_simple"), ("1234567890", "password_common"), ("short", "password_too_short"),
    ("matkhau2026!", "password_common"), ("P@ssw0rd", "password_too_short"), ("Password123", "password_common"),
    ("newbie-is-my-name", "password_contains_username"), ("aaaaabbbbbaaaaa", "password_too_simple"),
])
async def test_password_policy(client: TestClient, staff: Staff, password: str, code: str) -> None:
    response = await client.post("/api/users", json={"username": "newbie", "password": password, "roles": ["agent"]},
                                 headers=staff.headers("admin"))
    assert response.status == 422
    assert (await response.json())["code"] == code


async def test_password_with_the_extension_refused(client: TestClient, staff: Staff) -> None:
    response = await client.patch(f"/api/users/{staff.ids['agent']}", json={"password": "my-phone-is-1001"},
                                  headers=staff.headers("admin"))
    assert response.status == 422 and (await response.json())["code"] == "password_contains_phone"


async def test_password_reset_ends_every_session(client: TestClient, staff: Staff,
                                                 aiohttp_client: Callable[..., object]) -> None:
    await login_cookie(client, "agent")
    other: TestClient = await aiohttp_client(client.server)  # type: ignore[operator]
    await login_cookie(other, "agent")
    assert (await client.get("/api/me")).status == 200
    minted = await client.post(f"/api/users/{staff.ids['agent']}/tokens", json={"name": "mine"}, headers=own(client))
    token = {"Authorization": f"Bearer {(await minted.json())['token']}"}
    assert (await other.get("/api/me", headers=token)).status == 200
    reset = await client.patch(f"/api/users/{staff.ids['agent']}", json={"password": "a-new-long-secret-7"},
                               headers=staff.headers("admin"))
    assert reset.status == 200
    assert (await client.get("/api/me")).status == 401
    assert (await other.get("/api/me")).status == 401
    assert (await other.get("/api/me", headers=token)).status == 401
    assert (await client.get("/api/me", headers=staff.headers("agent"))).status == 401
    await auth_service.create_user(client.app[DB_KEY], "carer", PASSWORD, ["agent"])  # type: ignore[index]
    await login_cookie(client, "carer")
    user_id = (await (await client.get("/api/me")).json())["id"]
    await auth_service.set_password(client.app[DB_KEY], user_id, "another-long-secret-8")  # type: ignore[index]
    assert (await client.get("/api/me")).status == 401


async def test_referrers_and_patients_mint_no_api_tokens(client: TestClient, staff: Staff) -> None:
    for name, role in (("ref-doctor", "referrer"), ("own-patient", "patient")):
        user = await auth_service.create_user(client.app[DB_KEY], name, PASSWORD, [role])  # type: ignore[index]
        client.session.cookie_jar.clear()
        await login_cookie(client, name)
        minted = await client.post(f"/api/users/{user.id}/tokens", json={"name": "mine"}, headers=own(client))
        assert minted.status == 403 and (await minted.json())["code"] == "role_required", name
        for_them = await client.post(f"/api/users/{user.id}/tokens", json={"name": "theirs"},
                                     headers=staff.headers("admin"))  # nor does an admin mint one for them
        assert for_them.status == 403 and (await for_them.json())["code"] == "role_required", name


async def test_a_remembered_bearer_token_is_forgotten_when_access_changes(client: TestClient, staff: Staff) -> None:
    from clinicall.auth.token_cache import TOKEN_CACHE_KEY

    cache = client.app[TOKEN_CACHE_KEY]  # type: ignore[index]
    doctor = staff.headers("doctor")
    assert (await client.get("/api/me", headers=doctor)).status == 200
    hits = cache.hits
    assert (await client.get("/api/me", headers=doctor)).status == 200
    assert cache.hits == hits + 1  # answered without asking the database again
    off = await client.patch(f"/api/users/{staff.ids['doctor']}", json={"active": False}, headers=staff.headers("admin"))
    assert off.status == 200
    assert (await client.get("/api/me", headers=doctor)).status == 401
    assert (await client.get("/api/me", headers={"Authorization": "Bearer not-a-token"})).status == 401


# ---- 7. lists, searches and lookups are audited ------------------------------------------------------

async def test_lists_and_searches_are_audited(client: TestClient, staff: Staff) -> None:
    mine = await patient(client, staff, "Đỗ Thị Lan", "agent", "0912000201", today())
    for path in ("/api/patients?q=lan", "/api/patients", "/api/arrivals", "/api/worklists/new",
                 "/api/callers/identify?number=0912000201"):
        assert (await client.get(path, headers=staff.headers("agent"))).status == 200, path
    await client.app[AUDIT_BATCH_KEY].flush()  # type: ignore[index]
    rows = await (await client.get(f"/api/audit?patient_id={mine}&user_id={staff.ids['agent']}",
                                   headers=staff.headers("admin"))).json()
    actions = {row["action"] for row in rows["items"]}
    assert {"search", "list", "arrivals", "caller_identified"} <= actions


async def test_audit_rows_are_written_at_shutdown(sqlite_url: str) -> None:
    from clinicall.db import Database

    db = Database(sqlite_url)
    batch = AuditBatch(db, interval=3600)
    batch.start()
    batch.add(7, [1, 2, 2, 3], "list", "GET /api/patients")
    await asyncio.sleep(0)
    await batch.close()
    async with db.session() as s:
        rows = (await s.scalars(select(PatientAudit).where(PatientAudit.user_id == 7))).all()
    await db.dispose()
    assert sorted(r.patient_id for r in rows) == [1, 2, 3]


# ---- /metrics -----------------------------------------------------------------------------------------

async def test_metrics_by_scrape_token(client: TestClient, staff: Staff) -> None:
    scraper = {"Authorization": f"Bearer {SCRAPE_TOKEN}"}
    response = await client.get("/metrics", headers=scraper)
    assert response.status == 200 and "clinicall_http_requests" in await response.text()
    assert (await client.get("/metrics", headers={"Authorization": "Bearer wrong-token-0123456789"})).status == 401
    assert (await client.get("/api/me", headers=scraper)).status == 401
    assert (await client.get("/metrics", headers=staff.headers("agent"))).status == 403
    assert (await client.get("/metrics", headers=staff.headers("admin"))).status == 200
    assert set(STAFF) >= {"admin", "agent"}


async def test_responses_carry_security_headers(client: TestClient) -> None:
    for path in ("/login", "/api/me", "/healthz"):
        response = await client.get(path)
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Referrer-Policy"] in ("same-origin", "no-referrer")


async def test_a_parallel_burst_of_guesses_stays_within_the_limit(client: TestClient, staff: Staff) -> None:
    async def guess(i: int) -> int:
        response = await client.post("/api/login", json={"username": "reception", "password": f"burst-{i}-abcdef"})
        return response.status

    statuses = await asyncio.gather(*(guess(i) for i in range(12)))
    assert statuses.count(401) == 5 and statuses.count(429) == 7


async def test_throttle_counts_in_process_when_redis_is_away() -> None:
    from clinicall.auth.throttle import Limits, LoginThrottle

    throttle = LoginThrottle(Limits(2, 100, 60), "redis://127.0.0.1:1/0")
    assert [await throttle.attempt("x", "10.0.0.1") for _ in range(3)][:2] == [0, 0]
    assert await throttle.attempt("x", "10.0.0.1") > 0
    await throttle.close()


async def test_deactivating_a_user_ends_their_sessions(client: TestClient, staff: Staff) -> None:
    await login_cookie(client, "doctor")
    assert (await client.get("/api/me")).status == 200
    await auth_service.update_user(client.app[DB_KEY], staff.ids["doctor"], active=False)  # type: ignore[index]
    await auth_service.update_user(client.app[DB_KEY], staff.ids["doctor"], active=True)  # type: ignore[index]
    assert (await client.get("/api/me")).status == 401

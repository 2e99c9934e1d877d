"""Garbage at every crm_bridge endpoint: always a 4xx problem+json, never a 500, nothing written."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from clinicall.keys import DB_KEY
from crm_bridge import models
from tests.conftest import Staff

TABLES = (models.Patient, models.PatientPhone, models.PatientNameKey, models.CareNote, models.CareStatusChange,
          models.CustomerStatus, models.TransferRequest, models.FollowUp, models.MessageTemplate, models.PatientAudit)

BAD_IDS = ("abc", "-1", "0", "99999999999999999999999", "1.5", "1e3", "%00", "%E2%80%AE1")
HUGE = "Nguyễn " * 40000
CONTROL = ("Nguyễn\x00Văn An", "An\r\nAction: Originate", "\x1b[31mred", "Bình\u202e", "Lan\x7f")
BAD_DATES = ("2024-02-30", "not-a-date", "0000-01-01", "9999-12-31", "1800-01-01", "2024-13-01", 20240101, "",
             "2024-01-01T25:00")
MULTILINE = ("note", "notes", "body")  # line breaks are fine here, other control characters are not
WRONG_TYPES: tuple[Any, ...] = (None, 123, 1.5, True, [], {}, ["x"], {"a": 1}, 2**70, -(2**70))


@pytest.fixture
def db_url(pg_url: str) -> str:
    """PostgreSQL only: it is the stricter of the two (NUL bytes, types); SQLite adds minutes, not coverage."""
    return pg_url


def garbage_for(key: str, value: Any) -> list[Any]:
    """Values that are wrong for this field, whatever else is in the body."""
    if isinstance(value, bool):
        return ["maybe", 2, -1, [], {}, "\x00"]
    if isinstance(value, int):
        zero = [] if key == "position" else [0]  # position 0 is a real position
        return ["abc", 1.5, -1, *zero, 2**70, -(2**70), [], {}, "1; DROP TABLE patients", "\x00"]
    if isinstance(value, list):
        return ["x", 5, {}, [1], [None], [{"number": "abc"}], [{"number": "0912345678\r\n"}],
                [{"number": "0903123456", "evil": 1}], [{"number": HUGE}], [{"number": "0903123456"}] * 50]
    control = [c for c in CONTROL if "\r\n" not in c] if key in MULTILINE else list(CONTROL)
    bad: list[Any] = [123, 1.5, True, [], {}, ["x"], {"a": 1}, HUGE, *control]
    if key.endswith("date") or key == "date_of_birth":
        bad += list(BAD_DATES)
    return bad


def bodies_for(valid: dict[str, Any], nullable: frozenset[str]) -> list[Any]:
    """Malformed variants of a valid body: wrong shapes, unknown fields, each field broken in turn."""
    variants: list[Any] = [None, [], "text", 42, [valid], {**valid, "unknown_field": 1}, {**valid, "id": 5}]
    for key, value in valid.items():
        for bad in garbage_for(key, value):
            variants.append({**valid, key: bad})
        if key not in nullable:
            variants.append({**valid, key: None})
    return variants


async def counts(client: TestClient) -> dict[str, int]:
    db = client.app[DB_KEY]  # type: ignore[index]
    async with db.session() as s:
        return {m.__tablename__: await s.scalar(select(func.count()).select_from(m)) or 0 for m in TABLES}


def assert_problem(status: int, content_type: str, text: str, what: str) -> None:
    assert 400 <= status < 500, f"{what} -> {status}: {text[:300]}"
    assert content_type == "application/problem+json", f"{what} -> {content_type}"
    body = json.loads(text)
    assert body["status"] == status and body["detail"], what


async def test_garbage_everywhere(client: TestClient, staff: Staff) -> None:
    created = await client.post("/api/patients", headers=staff.headers("supervisor"), json={
        "full_name": "Nguyễn Văn An", "phones": [{"number": "0912345678"}]})
    patient = (await created.json())["patient"]
    pid = patient["id"]
    other = (await (await client.post("/api/patients", headers=staff.headers("supervisor"),
                                      json={"full_name": "Trần Thị Bình"})).json())["patient"]["id"]
    follow = await (await client.post(f"/api/patients/{pid}/follow-ups", headers=staff.headers("supervisor"), json={
        "method": "phone", "theme": "x", "due_date": "2030-01-01"})).json()
    template = await (await client.post("/api/templates", headers=staff.headers("admin"),
                                         json={"name": "t", "body": "Chào {fullName}"})).json()
    statuses = (await (await client.get("/api/customer-statuses", headers=staff.headers("admin"))).json())["items"]
    before = await counts(client)

    endpoints: list[tuple[str, str, dict[str, Any], frozenset[str]]] = [
        ("POST", "/api/patients", {"full_name": "Lê Văn C", "date_of_birth": "1990-01-01", "gender": "male",
                                    "phones": [{"number": "0903123456", "label": "x"}], "his_id": "H1"},
         frozenset({"date_of_birth", "gender", "his_id"})),
        ("PATCH", f"/api/patients/{pid}", {"full_name": "Lê Văn D", "date_of_birth": "1990-01-01",
                                            "care_status": "in_treatment", "booking_date": "2030-01-01"},
         frozenset({"date_of_birth", "booking_date"})),
        ("POST", f"/api/patients/{pid}/notes", {"customer_status": "Chưa đặt lịch", "detail_status": "Cần tư vấn thêm",
                                                 "note": "ok", "callback_date": "2030-01-01", "call_id": 3,
                                                 "care_status": "in_treatment", "reached": True},
         frozenset({"customer_status", "detail_status", "callback_date", "call_id", "care_status", "reached"})),
        ("POST", f"/api/patients/{pid}/phones", {"number": "0987654321", "label": "nhà"}, frozenset()),
        ("POST", f"/api/patients/{pid}/assign", {"agent_id": staff.ids["agent"]}, frozenset({"agent_id"})),
        ("POST", f"/api/patients/{pid}/transfer-requests", {"to_agent_id": staff.ids["agent2"], "reason": "r"},
         frozenset()),
        ("POST", f"/api/patients/{pid}/follow-ups", {"method": "sms", "theme": "t", "due_date": "2030-02-02",
                                                      "status": "pending"}, frozenset()),
        ("PATCH", f"/api/follow-ups/{follow['id']}", {"status": "done", "due_date": "2030-03-03", "method": "visit"},
         frozenset()),
        ("POST", "/api/customer-statuses", {"label": "Mới", "parent_id": statuses[0]["id"], "not_reached": False},
         frozenset({"parent_id", "not_reached"})),
        ("PATCH", f"/api/customer-statuses/{statuses[0]['id']}", {"label": "Đổi", "active": False, "position": 3},
         frozenset()),
        ("POST", "/api/merges", {"from_id": other, "into_id": pid}, frozenset()),
        ("POST", "/api/templates", {"name": "n", "body": "Chào {fullName}", "channel": "sms"}, frozenset()),
        ("PATCH", f"/api/templates/{template['id']}", {"name": "n2", "body": "Hi {phone}", "channel": "sms"},
         frozenset()),
    ]
    checked = 0
    rng = random.Random(7)
    for method, path, valid, nullable in endpoints:
        for body in bodies_for(valid, nullable):
            response = await client.request(method, path, json=body, headers=staff.headers("admin"))
            text = await response.text()
            if response.status < 400:
                # A variant that happens to be valid must not exist: every garbage body is refused.
                raise AssertionError(f"{method} {path} accepted garbage {str(body)[:200]}")
            assert_problem(response.status, response.content_type, text, f"{method} {path} {str(body)[:120]}")
            checked += 1
        raw_bodies = [b"{", b"\xff\xfe\x00", b"[" * 100000 + b"]" * 100000, b'{"full_name": "x"' + b" " * 10,
                      bytes(rng.randrange(256) for _ in range(300))]
        for raw in raw_bodies:
            response = await client.request(method, path, data=raw, headers={
                **staff.headers("admin"), "Content-Type": "application/json"})
            assert_problem(response.status, response.content_type, await response.text(), f"{method} {path} raw")
        response = await client.request(method, path, data=json.dumps(valid), headers={
            **staff.headers("admin"), "Content-Type": "text/plain"})
        assert_problem(response.status, response.content_type, await response.text(), f"{method} {path} text/plain")
        for bad_id in BAD_IDS:
            bad_path = path.replace(f"/{pid}", f"/{bad_id}").replace(f"/{follow['id']}", f"/{bad_id}").replace(
                f"/{template['id']}", f"/{bad_id}").replace(f"/{statuses[0]['id']}", f"/{bad_id}")
            if bad_path == path:
                continue
            response = await client.request(method, bad_path, json=valid, headers=staff.headers("admin"))
            assert_problem(response.status, response.content_type, await response.text(), f"{method} {bad_path}")

    queries = [
        "/api/patients?limit=abc", "/api/patients?limit=-1", "/api/patients?limit=100000", "/api/patients?offset=x",
        f"/api/patients?q={'a' * 5000}", "/api/patients?q=%00abc", "/api/patients?care_status=dead",
        "/api/patients?agent_id=-4", "/api/worklists?date=2024-02-30", "/api/worklists/due_today?agent_id=abc",
        "/api/worklists/overdue?date=yesterday", "/api/worklists/%00", "/api/arrivals?date=2024-13-01",
        "/api/arrivals?date=", "/api/audit?from=garbage", "/api/audit?patient_id=x", "/api/audit?to=2024-02-30",
        "/api/audit?limit=0", "/api/follow-ups?view=year", "/api/follow-ups?from=tomorrow",
        f"/api/templates/{template['id']}/render?patient_id=abc", f"/api/templates/{template['id']}/render",
        "/api/templates/abc/render?patient_id=1", "/api/transfers?status=maybe", "/api/patients/abc",
        "/api/patients/0/notes", "/api/patients/99999999/notes", "/api/patients/99999999",
    ]
    for url in queries:
        response = await client.get(url, headers=staff.headers("admin"))
        assert_problem(response.status, response.content_type, await response.text(), f"GET {url}")
    for raw, ctype in ((b"\xff\xfe\xfa garbage", "text/csv"), (b"", "text/csv"), (b"a,b\n1,2\n", "text/csv"),
                       (b"his_id,full_name\n1,An\n", "application/json"), (b"--x\r\n\r\n", "multipart/form-data")):
        response = await client.post("/api/imports/patients", data=raw, headers={
            **staff.headers("admin"), "Content-Type": ctype})
        assert_problem(response.status, response.content_type, await response.text(), f"import {raw[:20]!r}")
    bad_mapping = await client.post("/api/imports/patients?mapping={nope", data=b"his_id,full_name\n1,An\n",
                                    headers={**staff.headers("admin"), "Content-Type": "text/csv"})
    assert_problem(bad_mapping.status, bad_mapping.content_type, await bad_mapping.text(), "import bad mapping")
    assert checked > 500
    assert await counts(client) == before

"""Hostile probes of the second and third red teams, each as it was found: an agent's own call list after the
patient moved on, a waiting ticket of another day signed up for a turn-near text, any client printing on any
kiosk's printer, the kiosk limit counted per instance, display tokens looked up on every request; a huge JSON
body holding the loop, a display token choosing another axis, the message feed after the patient moved,
direction marks in staff-set names, a ticket link that never expired; then the fourth: days out of any range,
upload forms with any number of fields."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import FormData, WSMsgType, WSServerHandshakeError
from aiohttp.test_utils import TestClient
from sqlalchemy import select, update

from clinicall.app import create_app
from clinicall.auth import service as auth_service
from clinicall.auth.middleware import DISPLAY_COOKIE
from clinicall.auth.token_cache import TOKEN_CACHE_KEY
from clinicall.keys import DB_KEY
from clinicall.settings import Settings
from crm_bridge.uploads import MAX_FIELDS
from messaging.models import Message, TurnNearOptIn
from queue_display.models import Ticket
from telephony.models import Call
from tests.conftest import PASSWORD, Staff
from tests.servers import free_port


@pytest.fixture
def settings(sqlite_url: str, make_settings: Callable[..., Settings]) -> Settings:
    """Access rules live above the database: SQLite is enough. nginx is the trusted proxy on the loopback;
    the kiosk "entrance" prints only from its own address, "lobby" (named nowhere) only from the loopback."""
    closed = f"tcp://127.0.0.1:{free_port()}"
    return make_settings(sqlite_url, http={"cookie_secure": False, "trusted_proxies": ["127.0.0.1"]},
                         queue={"kiosk_printers": {"entrance": closed, "lobby": closed},
                                "kiosk_clients": {"entrance": ["192.0.2.10", "198.51.100.0/24"]}},
                         auth={"token_cache_seconds": 60}, messaging={"sends_per_minute_per_user": 3})


async def new_service(client: TestClient, admin: dict[str, str]) -> int:
    created = await client.post("/api/services", json={"prefix": "A", "names": {"vi": "Khám"}}, headers=admin)
    assert created.status == 201, await created.text()
    return int((await created.json())["service"]["id"])


async def test_an_agents_own_calls_follow_the_patient_to_the_new_agent(client: TestClient, staff: Staff) -> None:
    created = await client.post("/api/patients", json={"full_name": "Lê Thị Hoa", "phones": [{"number": "0912000333"}],
                                                       "assigned_agent_id": staff.ids["agent"]},
                                headers=staff.headers("supervisor"))
    patient_id = (await created.json())["patient"]["id"]
    async with client.app[DB_KEY].transaction() as s:
        call = Call(direction="outbound", origin="click_to_call", state="ended", disposition="answered",
                    agent_id=staff.ids["agent"], patient_id=patient_id, number="+84912000333")
        s.add(call)
        s.add(Call(direction="inbound", state="ended", disposition="answered", agent_id=staff.ids["agent"],
                   number="+84912999888"))  # a caller never linked to a card stays the agent's
        await s.flush()
        call_id = call.id
    noted = await client.post(f"/api/calls/{call_id}/outcome", json={"note": "đau dạ dày, hẹn tái khám"},
                              headers=staff.headers("agent"))
    assert noted.status == 201, await noted.text()
    moved = await client.post(f"/api/patients/{patient_id}/assign", json={"agent_id": staff.ids["agent2"]},
                              headers=staff.headers("supervisor"))
    assert moved.status == 200, await moved.text()

    listed = await client.get("/api/calls", headers=staff.headers("agent"))
    assert [c["number"] for c in (await listed.json())["calls"]] == ["+84912999888"]
    exported = await client.get("/api/calls?export=csv", headers=staff.headers("agent"))
    assert exported.status == 200 and "dạ dày" not in await exported.text()
    one = await client.get(f"/api/calls/{call_id}", headers=staff.headers("agent"))
    assert (one.status, (await one.json())["code"]) == (403, "not_your_patient")
    # the patient's new agent and the supervisor read it, with its outcome
    for who, url in (("agent2", f"/api/calls?patient_id={patient_id}"), ("supervisor", "/api/calls?all=1")):
        calls = (await (await client.get(url, headers=staff.headers(who))).json())["calls"]
        assert [c["outcome"]["note"] for c in calls if c["id"] == call_id] == ["đau dạ dày, hẹn tái khám"], who


async def test_an_agent_cannot_text_without_a_limit(client: TestClient, staff: Staff) -> None:
    created = await client.post("/api/patients", json={"full_name": "Vũ Thị Lan", "phones": [{"number": "0912000777"}],
                                                       "assigned_agent_id": staff.ids["agent"]},
                                headers=staff.headers("supervisor"))
    patient_id = (await created.json())["patient"]["id"]
    statuses = []
    for who in ("agent", "agent", "agent", "agent", "supervisor"):
        sent = await client.post(f"/api/patients/{patient_id}/messages", json={"text": "Nhắc lịch hẹn"},
                                 headers=staff.headers(who))
        statuses.append((sent.status, (await sent.json()).get("code")))
    assert statuses == [(201, None)] * 3 + [(429, "rate_limited"), (201, None)]  # per user


async def test_turn_near_only_for_todays_waiting_tickets(client: TestClient, staff: Staff) -> None:
    service_id = await new_service(client, staff.headers("admin"))
    tickets = []
    for _ in range(2):
        issued = await client.post("/api/tickets", json={"service_id": service_id}, headers=staff.headers("reception"))
        assert issued.status == 201, await issued.text()
        tickets.append((await issued.json())["ticket"])
    async with client.app[DB_KEY].transaction() as s:  # tickets a past day left waiting (no day-end expiry)
        await s.execute(update(Ticket).where(Ticket.id.in_([t["id"] for t in tickets]))
                        .values(local_day=dt.date.today() - dt.timedelta(days=3)))
        token = (await s.get(Ticket, tickets[1]["id"])).token  # type: ignore[union-attr]
    by_reception = await client.post("/api/turn-near", json={"ticket_id": tickets[0]["id"], "phone": "0912000444"},
                                     headers=staff.headers("reception"))
    by_link = await client.post(f"/api/t/{token}/turn-near", json={"phone": "0912000555"})
    for response in (by_reception, by_link):
        assert (response.status, (await response.json())["code"]) == (409, "ticket_not_today")

    # (redteam4) sign-ups racing the text renamed the number on record after the text had gone to another one
    issued = await client.post("/api/tickets", json={"service_id": service_id}, headers=staff.headers("reception"))
    ticket_id = (await issued.json())["ticket"]["id"]  # the first waiting today: near at once
    signed = await asyncio.gather(*(client.post("/api/turn-near", json={"ticket_id": ticket_id, "phone": f"09120007{i:02d}"},
                                                headers=staff.headers("reception")) for i in range(12)))
    assert {r.status for r in signed} <= {201, 409}, [r.status for r in signed]
    async with client.app[DB_KEY].session() as s:
        optin = await s.scalar(select(TurnNearOptIn).where(TurnNearOptIn.ticket_id == ticket_id))
        assert optin is not None and optin.message_id is not None
        message = await s.get(Message, optin.message_id)
    assert message is not None and message.to_e164 == optin.to_e164


KIOSK_PROBES = [  # (kiosk, X-Forwarded-For, status)
    ("entrance", None, 403),             # the loopback is not the entrance kiosk
    ("entrance", "203.0.113.7", 403),    # nor is a client on the internet
    ("entrance", "192.0.2.10", 201),     # the entrance kiosk itself
    ("entrance", "198.51.100.23", 201),  # its network
    ("lobby", "192.0.2.10", 403),        # the entrance kiosk may not print in the lobby
    ("lobby", None, 201),                # a kiosk named nowhere prints from the loopback only
    ("nowhere", "203.0.113.7", 201),     # no such printer: the browser prints
]


async def test_a_kiosk_prints_only_on_its_own_printer(client: TestClient, staff: Staff) -> None:
    service_id = await new_service(client, staff.headers("admin"))
    for kiosk, forwarded, status in KIOSK_PROBES:
        headers = {"X-Forwarded-For": forwarded} if forwarded else {}
        response = await client.post("/api/kiosk/tickets", json={"service_id": service_id, "kiosk": kiosk},
                                     headers=headers)
        body = await response.json()
        assert response.status == status, (kiosk, forwarded, body)
        if status == 403:
            assert body["code"] == "kiosk_not_allowed"
        else:
            assert body.get("printed") is (None if kiosk == "nowhere" else False), body  # the printer is off


async def test_the_kiosk_limit_is_shared_through_redis(aiohttp_client: Callable[..., Any], sqlite_url: str,
                                                       redis_url: str, make_settings: Callable[..., Settings]) -> None:
    shared = make_settings(sqlite_url, bus={"redis_url": redis_url, "channel": f"t:{id(object())}"},
                           http={"trusted_proxies": ["127.0.0.1"]}, queue={"kiosk_tickets_per_minute": 2})
    one: TestClient = await aiohttp_client(create_app(shared))
    two: TestClient = await aiohttp_client(create_app(shared))
    admin = await auth_service.create_user(one.app[DB_KEY], "boss", PASSWORD, ["admin"])
    token = await auth_service.create_api_token(one.app[DB_KEY], admin.id, "t")
    service_id = await new_service(one, {"Authorization": f"Bearer {token}"})
    kiosk = {"X-Forwarded-For": f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"}
    statuses = [(await instance.post("/api/kiosk/tickets", json={"service_id": service_id}, headers=kiosk)).status
                for instance in (one, two, two)]
    assert statuses == [201, 201, 429]
    refused = await one.post("/api/kiosk/tickets", json={"service_id": service_id}, headers=kiosk)
    assert refused.status == 429 and int(refused.headers["Retry-After"]) > 0
    assert (await refused.json())["code"] == "rate_limited"


async def test_display_tokens_in_the_cookie_or_the_query_are_remembered(client: TestClient) -> None:
    _, token = await auth_service.create_display_token(client.app[DB_KEY], "tv")
    cache = client.app[TOKEN_CACHE_KEY]
    before = cache.hits
    for _ in range(2):
        assert (await client.get(f"/api/display/snapshot?token={token}")).status == 200
    client.session.cookie_jar.update_cookies({DISPLAY_COOKIE: token})
    assert (await client.get("/api/display/snapshot")).status == 200
    assert cache.hits - before == 2


NUL_PROBES = [  # (who, method, path, body): PostgreSQL cannot store or even compare a NUL: a 500 before
    ("admin", "POST", "/api/services", {"prefix": "N", "names": {"vi": "Khám\u0000"}}),
    ("admin", "POST", "/api/display-tokens", {"name": "tv\u0000"}),
    ("admin", "POST", "/api/users", {"username": "nul", "password": "a-long-password-9", "roles": ["agent"],
                                     "display_name": "An\u0000"}),
    ("admin", "POST", "/api/services", {"prefix": "N", "names": {"vi\u0000": "Khám"}}),
    (None, "GET", "/t/%00%00%00%00%00%00%00%00%00%00", None),
    (None, "POST", "/api/t/%00%00%00%00%00%00%00%00%00%00/turn-near", {"phone": "0912000666"}),
    ("reception", "GET", "/api/tickets?status=%00", None),
]


async def test_nul_characters_are_refused_before_the_database(aiohttp_client: Callable[..., Any], pg_url: str,
                                                              make_settings: Callable[..., Settings]) -> None:
    client: TestClient = await aiohttp_client(create_app(make_settings(pg_url)))
    db = client.app[DB_KEY]
    tokens = {}
    for name, roles in (("admin", ["admin"]), ("reception", ["reception"])):
        user = await auth_service.create_user(db, name, PASSWORD, roles)
        tokens[name] = {"Authorization": f"Bearer {await auth_service.create_api_token(db, user.id, 't')}"}
    for who, method, path, body in NUL_PROBES:
        response = await client.request(method, path, json=body, headers=tokens.get(who or "", {}))
        problem = await response.json()
        assert (response.status, problem["code"]) in ((400, "invalid_characters"), (422, "invalid_characters")), \
            (path, body, problem)


async def test_click_to_call_limit_is_shared_through_redis(redis_url: str) -> None:
    """Two instances behind one proxy: an agent's calls per minute count together (toll fraud from a stolen
    session must not scale with the number of instances)."""
    from clinicall.problem import Problem
    from telephony.ratelimit import RateLimiter

    one, two = RateLimiter(2, redis_url), RateLimiter(2, redis_url)
    agent = random.randrange(10**6, 10**9)
    try:
        await one.check(agent)
        await two.check(agent)
        with pytest.raises(Problem) as refused:
            await one.check(agent)
        assert refused.value.code == "rate_limited" and int(refused.value.headers["Retry-After"]) > 0
    finally:
        await one.close()
        await two.close()


# ---- the third red team -----------------------------------------------------------------------------------

async def test_a_json_body_is_bounded_before_it_is_parsed(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    """An anonymous 30 MB body of empty lists held the event loop 100 s (parsing, then the NUL walk) and took
    1.6 GB: every JSON body is refused past 256 KB, announced or chunked."""
    big = b"[" + b"[]," * 100_000 + b"[]]"
    announced = await client.post("/api/kiosk/tickets", data=big, headers={"Content-Type": "application/json"})

    async def chunks() -> Any:
        for start in range(0, len(big), 65536):
            yield big[start:start + 65536]

    chunked = await client.post("/api/kiosk/tickets", data=chunks(), headers={"Content-Type": "application/json"})
    for response in (announced, chunked):
        assert (response.status, (await response.json())["code"]) == (413, "too_large")

    # a client that sends part of its body and goes away is not a server error in the log
    went_away = asyncio.Event()
    watch = logging.Handler()
    watch.emit = lambda record: went_away.set() if "tickets 499" in record.getMessage() else None  # type: ignore[method-assign]
    logging.getLogger("clinicall").addHandler(watch)
    try:
        with caplog.at_level(logging.INFO, logger="clinicall"):
            _, writer = await asyncio.open_connection(client.host, client.port)
            writer.write(b"POST /api/kiosk/tickets HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 1000\r\n\r\n{\"service_id\":")
            await writer.drain()
            writer.close()
            await asyncio.wait_for(went_away.wait(), 30)
    finally:
        logging.getLogger("clinicall").removeHandler(watch)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_screens_and_ticket_links_keep_to_their_scope(client: TestClient, staff: Staff) -> None:
    """A door's token for room 1 asked for ?services=<another service> and saw that line, live too; a ticket's
    public link (a photo of the paper) opened for ever."""
    admin = staff.headers("admin")
    own, other = await new_service(client, admin), int((await (await client.post(
        "/api/services", json={"prefix": "B", "names": {"vi": "Xét nghiệm"}}, headers=admin)).json())["service"]["id"])
    room = await client.post("/api/rooms", json={"kind": "consult", "number": 1, "service_ids": [own]}, headers=admin)
    _, token = await auth_service.create_display_token(client.app[DB_KEY], "door 1", [(await room.json())["room"]["id"]])
    snapshot = await client.get(f"/api/display/snapshot?token={token}&services={other}")
    assert (snapshot.status, (await snapshot.json())["code"]) == (403, "not_on_display_token")
    with pytest.raises(WSServerHandshakeError) as refused:
        await client.ws_connect(f"/ws/display?token={token}&services={other}")
    assert refused.value.status == 403
    mine = await (await client.get(f"/api/display/snapshot?token={token}")).json()
    assert [s["id"] for s in mine["services"]] == [own]

    issued = await client.post("/api/tickets", json={"service_id": own}, headers=staff.headers("reception"))
    ticket_id = (await issued.json())["ticket"]["id"]
    async with client.app[DB_KEY].transaction() as s:
        link = (await s.get(Ticket, ticket_id)).token  # type: ignore[union-attr]
    assert (await client.get(f"/api/t/{link}")).status == 200
    async with client.app[DB_KEY].transaction() as s:  # the day before yesterday's, finished
        await s.execute(update(Ticket).where(Ticket.id == ticket_id)
                        .values(status="done", local_day=dt.date.today() - dt.timedelta(days=3)))
    status = await client.get(f"/api/t/{link}")
    assert (status.status, (await status.json())["code"]) == (410, "ticket_link_expired")
    page = await client.get(f"/t/{link}")
    assert (page.status, page.content_type) == (410, "text/html")  # the page says it in the patient's language
    assert (await client.get(f"/t/{link}/qr.svg")).status == 410


BIDI_NAMES = [  # (path, body, field): a right-to-left override turns "Khám 1" round on every screen
    ("/api/services", {"prefix": "K", "names": {"vi": "Khám\u202e 1"}}, "names.vi"),
    ("/api/rooms", {"kind": "consult", "number": 7, "doctor_name": "BS.\u2066 An"}, "doctor_name"),
    ("/api/users", {"username": "bidi", "password": "a-long-password-9Q", "roles": ["agent"],
                    "display_name": "An\u001b[2J"}, "display_name"),
    ("/api/display-tokens", {"name": "tv\u200f\nsảnh"}, "name"),
]


async def test_names_set_by_staff_refuse_controls_and_direction_marks(client: TestClient, staff: Staff) -> None:
    for path, body, field in BIDI_NAMES:
        response = await client.post(path, json=body, headers=staff.headers("admin"))
        problem = await response.json()
        assert response.status == 422, (path, problem)
        assert {"field": field, "code": "invalid_characters"}.items() <= problem["errors"][0].items(), problem
    # a regular expression's "$" also matched before a final line break: "1001\n" was a valid extension (it
    # reaches the Originate's channel and the FastAGI's SET VARIABLE)
    for method, path, body in (("POST", "/api/users", {"username": "nl", "password": "a-long-password-9Q",
                                                       "roles": ["agent"], "extension": "1077\n"}),
                               ("PATCH", f"/api/users/{staff.ids['agent']}", {"extension": "1001\n"})):
        response = await client.request(method, path, json=body, headers=staff.headers("admin"))
        assert (response.status, (await response.json())["code"]) == (422, "invalid_extension"), path


async def test_live_feeds_end_with_access(client: TestClient, staff: Staff) -> None:
    """A socket is authenticated when it opens: a patient moved to another agent kept streaming their texts to
    the old agent's card; a user disabled, a screen's token revoked or a logout left a socket streaming
    (screen-pops with patients' names, the waiting room) to whoever held the credential."""
    created = await client.post("/api/patients", json={"full_name": "Đỗ Thị Mai", "phones": [{"number": "0912000888"}],
                                                       "assigned_agent_id": staff.ids["agent"]},
                                headers=staff.headers("supervisor"))
    patient_id = (await created.json())["patient"]["id"]
    card = await client.ws_connect(f"/ws/messages?patient_id={patient_id}", headers=staff.headers("agent"))
    assert (await card.receive_json(timeout=30))["type"] == "hello"
    moved = await client.post(f"/api/patients/{patient_id}/assign", json={"agent_id": staff.ids["agent2"]},
                              headers=staff.headers("supervisor"))
    assert moved.status == 200, await moved.text()
    sent = await client.post(f"/api/patients/{patient_id}/messages", json={"text": "Kết quả xét nghiệm đã có"},
                             headers=staff.headers("supervisor"))
    assert sent.status == 201, await sent.text()
    closing = await card.receive(timeout=30)
    assert (closing.type, closing.data) == (WSMsgType.CLOSE, 4403), closing

    own = f"http://{client.host}:{client.port}"
    agent = await client.ws_connect("/ws/agent", headers=staff.headers("agent"))
    token_id, token = await auth_service.create_display_token(client.app[DB_KEY], "tv")
    screen = await client.ws_connect(f"/ws/display?token={token}")
    logged_in = await client.post("/api/login", json={"username": "doctor", "password": PASSWORD})
    assert logged_in.status == 200
    doctors = await client.ws_connect("/ws/display", headers={"Origin": own})
    for ws in (agent, screen, doctors):
        assert (await ws.receive_json(timeout=30))["type"] in ("hello", "snapshot")

    async def closed_with(ws: Any) -> int | None:
        while (message := await ws.receive(timeout=30)).type != WSMsgType.CLOSE:
            assert message.type in (WSMsgType.TEXT, WSMsgType.BINARY), message  # frames sent before the close
        return message.data  # type: ignore[no-any-return]  # the close frame's code

    off = await client.patch(f"/api/users/{staff.ids['agent']}", json={"active": False}, headers=staff.headers("admin"))
    assert off.status == 200
    assert await closed_with(agent) == 4401
    assert (await client.delete(f"/api/display-tokens/{token_id}", headers=staff.headers("admin"))).status == 200
    assert await closed_with(screen) == 4401
    assert (await client.post("/logout", headers={"Origin": own}, allow_redirects=False)).status == 303
    assert await closed_with(doctors) == 4401


OUT_OF_RANGE_DAYS = ("/api/messages?from=0001-01-01", "/api/messages?to=9999-12-31", "/api/worklists?date=9999-12-31",
                     "/api/worklists/due_today?date=0001-01-01", "/api/follow-ups?from=9999-12-31",
                     "/api/stats/queue?to=0001-01-01", "/api/stats/referrals?to=9999-12-31",
                     "/api/stats/calls?from=0001-01-01", "/api/stats/bookings?to=9999-12-31",
                     "/api/tickets?date=9999-12-31")


async def test_days_and_form_fields_are_bounded(client: TestClient, staff: Staff) -> None:
    """(redteam4) A day of year 1 or 9999 in a filter was a 500 on six lists (the filter's arithmetic overflowed);
    an upload form took any number of distinct text fields, each kept in memory."""
    for url in OUT_OF_RANGE_DAYS:
        response = await client.get(url, headers=staff.headers("supervisor"))
        problem = await response.json()
        assert response.status == 422 and [e["code"] for e in problem["errors"]] == ["invalid_date"], (url, problem)

    created = await client.post("/api/patients", json={"full_name": "Lê Thị Hoa", "phones": [{"number": "0912000444"}],
                                                       "assigned_agent_id": staff.ids["agent"]},
                                headers=staff.headers("supervisor"))
    patient_id = (await created.json())["patient"]["id"]
    form = FormData()
    for i in range(MAX_FIELDS + 1):
        form.add_field(f"field{i}", "x")
    form.add_field("files", b"%PDF-1.4 result", filename="kq.pdf", content_type="application/pdf")
    flooded = await client.post(f"/api/patients/{patient_id}/files", data=form, headers=staff.headers("agent"))
    assert (flooded.status, (await flooded.json())["code"]) == (413, "too_many_fields")

"""The HTTP gateway adapter against a local aiohttp gateway over real TCP, on PostgreSQL: messages sent
while the gateway is down wait, survive a restart of the service and go out when it is back; the body
template keeps hostile text inside its JSON string; the success rule reads the status and a JSON field;
a refusal fails the message with the gateway's reply."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pydantic import ValidationError

from clinicall.app import create_app
from clinicall.auth import service as auth_service
from clinicall.db import utcnow
from clinicall.keys import DB_KEY
from clinicall.settings import MessagingSettings, Settings
from messaging.keys import MESSAGING_KEY
from messaging.retention import purge
from messaging.senders.base import Outgoing
from messaging.senders.http_gateway import render_body
from messaging.service import LogFilter
from tests.conftest import PASSWORD, STAFF, Staff
from tests.messaging.helpers import make_patient, messages_of, until
from tests.servers import free_port


class Gateway:
    """A brandname-SMS-like gateway: basic auth, JSON in, {"error": 0, "data": {"msg_id": ...}} out."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.port = free_port()
        self.runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != "Basic Y2xpbmljOnB3"  or request.headers.get("X-Brand") != "CLINIC":
            return web.json_response({"error": 401}, status=401)
        body = json.loads(await request.read())
        self.received.append(body)
        if body["to"].endswith("99"):
            return web.json_response({"error": 12, "message": "blocked subscriber"})
        return web.json_response({"error": 0, "data": {"msg_id": f"gw-{len(self.received)}"}})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/send", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


async def test_gateway_down_restart_then_up(aiohttp_client: Callable[..., Any], pg_url: str,
                                            make_settings: Callable[..., Settings]) -> None:
    gateway = Gateway()
    settings = make_settings(pg_url, messaging={
        "adapter": "http", "http_url": f"http://127.0.0.1:{gateway.port}/send", "http_basic_user": "clinic",
        "http_basic_password": "pw", "http_headers": {"X-Brand": "CLINIC"},
        "http_body_template": '{"to": "{to}", "text": "{text}", "ref": "{ref}", "brand": "CLINIC"}',
        "http_success_field": "error", "http_success_value": "0", "http_message_id_field": "data.msg_id",
        "retry_base_seconds": 0.05, "retry_max_seconds": 0.3, "timeout_seconds": 5})
    first: TestClient = await aiohttp_client(create_app(settings))
    staff = await make_staff(first)
    patient_id = await make_patient(first, staff, "Đỗ Văn Em", "0912000111")
    hostile = 'Trả lời "OK", "to": "84900000000"} \\ nhé'
    ids = []
    for text in ("Lịch hẹn 8 giờ", hostile):
        sent = await first.post(f"/api/patients/{patient_id}/messages", json={"text": text}, headers=staff.headers("agent"))
        assert sent.status == 201, await sent.text()
        ids.append((await sent.json())["message"]["id"])

    async def tried() -> Any:
        items = await messages_of(first, staff, patient_id)
        return all(m["status"] == "queued" and "unreachable" in m["gateway_reply"] for m in items)

    await until(tried, "both messages tried while the gateway is down")
    await first.close()  # the service stops with both messages waiting

    await gateway.start()
    second: TestClient = await aiohttp_client(create_app(settings))
    try:
        async def sent_both() -> Any:
            items = await messages_of(second, staff, patient_id)
            return items if all(m["status"] == "sent" for m in items) else None

        items = {m["id"]: m for m in await until(sent_both, "both messages sent after the restart")}
        assert sorted(items) == sorted(ids) and {m["gateway_id"] for m in items.values()} == {"gw-1", "gw-2"}
        assert all(m["attempts"] >= 2 for m in items.values())
        assert sorted(b["text"] for b in gateway.received) == sorted(["Lịch hẹn 8 giờ", hostile])
        assert all(b["to"] == "84912000111" and b["brand"] == "CLINIC" for b in gateway.received)

        blocked = await make_patient(second, staff, "Bùi Thị Giang", "0912000199")
        sent = await second.post(f"/api/patients/{blocked}/messages", json={"text": "xin chào"},
                                 headers=staff.headers("agent"))
        assert sent.status == 201

        async def failed() -> Any:
            items = await messages_of(second, staff, blocked)
            return items[0] if items[0]["status"] == "failed" else None

        refused = await until(failed, "the gateway's refusal")
        assert refused["attempts"] == 1 and "blocked subscriber" in refused["gateway_reply"]
        log = await second.get("/api/messages?status=failed", headers=staff.headers("supervisor"))
        assert [m["id"] for m in (await log.json())["items"]] == [refused["id"]]
        export = await second.get("/api/messages?export=xlsx", headers=staff.headers("supervisor"))
        assert export.status == 200 and export.content_type.startswith("application/vnd.openxmlformats")
        waiting = await second.app[MESSAGING_KEY].send(text="chờ", to="0912000111", origin="test")
        later = settings.model_copy(update={"retention": settings.retention.model_copy(update={"message_days": 1})})
        removed = await purge(second.app[DB_KEY], later, utcnow() + dt.timedelta(days=2))
        assert removed == {"messages": 3, "turn-near opt-ins": 0}  # the queued one stays
        assert [m.id for m in await second.app[MESSAGING_KEY].log(LogFilter())] == [waiting.id]
    finally:
        await second.close()
        await gateway.stop()


async def make_staff(client: TestClient) -> Staff:
    db = client.app[DB_KEY]
    tokens, ids = {}, {}
    for name in ("supervisor", "agent"):
        roles, ext = STAFF[name]
        user = await auth_service.create_user(db, name, PASSWORD, roles, name.title(), ext)
        ids[name] = user.id
        tokens[name] = await auth_service.create_api_token(db, user.id, "tests")
    return Staff(tokens=tokens, ids=ids)


def test_settings_refuse_unknown_keys_and_unsafe_values() -> None:
    for bad in ({"adaptor": "smpp"}, {"adapter": "smpp"}, {"adapter": "http", "http_url": "ftp://x"},
                {"http_headers": {"X-A": "b\r\nX-Injected: 1"}}, {"smpp_source_addr": "CLINIC\n"},
                {"turn_near_text": "no number here"}):
        with pytest.raises(ValidationError):
            MessagingSettings(**bad)
    body = render_body('{"text": "{text}", "to": "{to}"}', Outgoing(1, "+84912000111", 'a"b\\c\u2028\x01'))
    assert json.loads(body) == {"text": 'a"b\\c\u2028\x01', "to": "84912000111"}


@pytest.mark.parametrize(("url", "shown"), [
    ("https://gw.example/send", "https://gw.example/send"),
    ("https://gw.example/send?api_key=s3cret", "https://gw.example/send?••••"),
    ("https://acct:s3cret@gw.example:8443/send?x=1", "https://••••@gw.example:8443/send?••••"),
])
def test_the_gateway_view_hides_secrets_in_the_url(url: str, shown: str) -> None:
    from messaging.http import shown_url

    assert shown_url(url) == shown

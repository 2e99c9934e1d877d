"""The HTTP gateway adapter against a local aiohttp gateway over real TCP, on PostgreSQL: messages sent
while the gateway is down wait, survive a restart of the service and go out when it is back; the body
template keeps hostile text inside its JSON string; the success rule reads the status and a JSON field;
a refusal fails the message with the gateway's reply; the gateway's delivery receipts, posted back to
the service over real TCP, move messages to delivered or failed (token checked, idempotent, hostile
receipts refused as problem+json)."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs
from xml.etree import ElementTree

import aiohttp
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
from messaging.receipts import authentic
from messaging.retention import purge
from messaging.senders.base import Outgoing
from messaging.senders.http_gateway import render_body
from messaging.service import LogFilter
from tests.conftest import PASSWORD, STAFF, Staff
from tests.messaging.helpers import make_patient, messages_of
from tests.servers import free_port
from tests.waiting import until

RECEIPT_TOKEN = "receipt-token-0123456789"


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

    async def report(self, url: str, body: Any, token: str = RECEIPT_TOKEN) -> tuple[int, Any]:
        """The gateway posts delivery receipts back to the service (its callback URL)."""
        async with aiohttp.ClientSession() as session, session.post(
                url, data=body if isinstance(body, bytes) else json.dumps(body).encode(),
                headers={"Content-Type": "application/json", "X-Receipt-Token": token}) as response:
            return response.status, await response.json(content_type=None)



async def test_gateway_down_restart_then_up(aiohttp_client: Callable[..., Any], pg_url: str,
                                            make_settings: Callable[..., Settings]) -> None:
    gateway = Gateway()
    settings = make_settings(pg_url, messaging={
        "adapter": "http", "http_url": f"http://127.0.0.1:{gateway.port}/send", "http_basic_user": "clinic",
        "http_basic_password": "pw", "http_headers": {"X-Brand": "CLINIC"},
        "http_body_template": '{"to": "{to}", "text": "{text}", "ref": "{ref}", "brand": "CLINIC"}',
        "http_success_field": "error", "http_success_value": "0", "http_message_id_field": "data.msg_id",
        "retry_base_seconds": 0.05, "retry_max_seconds": 0.3, "timeout_seconds": 5,
        "http_receipt_token": RECEIPT_TOKEN, "http_receipt_id_field": "message.msg_id",
        "http_receipt_status_field": "event", "http_receipt_statuses": {"user_received_message": "delivered",
                                                                        "message_failed": "failed"}})
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
        await receipts_move_messages(second, staff, gateway, patient_id, items)

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
        assert [m["id"] for m in (await log.json())["items"]] == [refused["id"], max(ids)]  # max: failed by receipt
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


async def receipts_move_messages(client: TestClient, staff: Staff, gateway: Gateway, patient_id: int,
                                 items: dict[int, dict[str, Any]]) -> None:
    url = str(client.make_url("/api/messaging/receipts"))
    first_id, second_id = (items[i]["gateway_id"] for i in sorted(items))

    def receipt(gateway_id: str, event: str) -> dict[str, Any]:  # Zalo ZNS-like: the id is nested
        return {"event": event, "message": {"msg_id": gateway_id, "delivery_time": "1733100000000"}}

    status, body = await gateway.report(url, [receipt(first_id, "user_received_message"),
                                              receipt(second_id, "user_seen_message")])
    assert status == 200 and [r["result"] for r in body["results"]] == ["applied", "ignored"]
    status, body = await gateway.report(url, receipt(first_id, "user_received_message"))  # sent again
    assert status == 200 and body["results"][0]["result"] == "unchanged"
    status, body = await gateway.report(url, receipt(second_id, "message_failed"))
    assert status == 200 and body["results"][0]["result"] == "applied"
    by_id = {m["id"]: m for m in await messages_of(client, staff, patient_id)}
    first, second = (by_id[i] for i in sorted(items))
    assert (first["status"], second["status"]) == ("delivered", "failed")
    assert second["gateway_reply"] == "receipt: event=message_failed"
    status, body = await gateway.report(url, receipt(first_id, "message_failed"))  # the first final one stands
    assert body["results"][0]["result"] == "unchanged"
    assert (await messages_of(client, staff, patient_id))[-1]["status"] == "delivered"

    status, body = await gateway.report(url, receipt(first_id, "user_received_message"), token="wrong-token")
    assert (status, body["code"]) == (401, "receipt_unauthorized")
    hostile = [receipt("gw-1\r\nX-Injected: 1", "user_received_message"), {"event": ["x"], "message": {}}, "text"]
    status, body = await gateway.report(url, hostile)
    assert (status, body["code"]) == (422, "receipt_invalid")
    assert {(e["field"], e["code"]) for e in body["errors"]} == {
        ("0.message.msg_id", "receipt_id_invalid"), ("1.message.msg_id", "receipt_id_invalid"),
        ("1.event", "receipt_status_invalid"), ("2", "receipt_invalid")}
    status, body = await gateway.report(url, b"{not json")
    assert (status, body["code"]) == (400, "receipt_invalid")
    status, body = await gateway.report(url, receipt("gw-unknown", "user_received_message"))
    assert status == 200 and body["results"][0]["result"] == "waiting"  # kept: its message may land later


def test_receipt_signatures() -> None:
    settings = MessagingSettings(adapter="http", http_url="http://127.0.0.1:1/x",
                                 http_receipt_hmac_secret="hmac-secret-0123456789")
    body = b'{"msg_id": "gw-1", "status": "DELIVRD"}'
    now = 1_800_000_000
    good = hmac.new(b"hmac-secret-0123456789", f"{now}.".encode() + body, hashlib.sha256).hexdigest()
    signed = {"X-Signature": good, "X-Timestamp": str(now)}
    assert authentic(settings, signed, {}, body, now=now + 299)
    assert authentic(settings, {**signed, "X-Signature": f"sha256={good.upper()}"}, {}, body, now=now)
    assert not authentic(settings, signed, {}, body + b" ", now=now)
    # a captured receipt replayed later, or signed over the body alone, is refused
    assert not authentic(settings, signed, {}, body, now=now + 301)
    assert not authentic(settings, {**signed, "X-Timestamp": str(now + 1)}, {}, body, now=now)
    assert not authentic(settings, {"X-Signature": hmac.new(b"hmac-secret-0123456789", body, hashlib.sha256)
                                    .hexdigest()}, {}, body, now=now)
    assert not authentic(settings, {}, {"token": "hmac-secret-0123456789"}, body)  # a secret is not a token
    token = MessagingSettings(http_receipt_token=RECEIPT_TOKEN)
    assert authentic(token, {}, {"token": RECEIPT_TOKEN}, b"") and not authentic(token, {}, {}, b"")
    with pytest.raises(ValidationError):
        MessagingSettings(http_receipt_token="short")


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
    # a form or an XML (SOAP) gateway: a text cannot add a recipient or an element
    hostile = Outgoing(2, "+84912000111", "hẹn mai&to=84900000000&x=</Content><Phone>84900000000</Phone>")
    form = render_body("to={to}&text={text}", hostile, "application/x-www-form-urlencoded; charset=utf-8")
    assert parse_qs(form) == {"to": ["84912000111"], "text": [hostile.text]}
    xml = render_body("<Sms><Phone>{to}</Phone><Content>{text}</Content></Sms>", hostile, "text/xml")
    parsed = ElementTree.fromstring(xml)
    assert [e.tag for e in parsed] == ["Phone", "Content"] and parsed.findtext("Content") == hostile.text


@pytest.mark.parametrize(("url", "shown"), [
    ("https://gw.example/send", "https://gw.example/send"),
    ("https://gw.example/send?api_key=s3cret", "https://gw.example/send?••••"),
    ("https://acct:s3cret@gw.example:8443/send?x=1", "https://••••@gw.example:8443/send?••••"),
])
def test_the_gateway_view_hides_secrets_in_the_url(url: str, shown: str) -> None:
    from messaging.http import shown_url

    assert shown_url(url) == shown

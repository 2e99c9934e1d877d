"""SMS through SMPP to a local SMSC over real TCP (tests/messaging/smsc.py): a template sent from the
card is bound, submitted, receipted and shown delivered; a long Vietnamese text goes in UCS-2 parts;
the link is kept with enquire_link and unbound at shutdown; the SMSC going away loses nothing. Also
the card's rule for who may send, and hostile text and numbers refused before any gateway."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from clinicall.app import create_app
from clinicall.problem import Problem
from clinicall.settings import Settings
from messaging.keys import MESSAGING_KEY
from tests.conftest import Staff
from tests.messaging.helpers import make_patient, messages_of
from tests.messaging.smsc import Smsc
from tests.queue_display.conftest import build_clinic
from tests.waiting import until


@pytest.fixture
async def smsc() -> AsyncIterator[Smsc]:
    server = Smsc()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def smpp_settings(smsc: Smsc) -> dict[str, Any]:
    return {"adapter": "smpp", "smpp_host": "127.0.0.1", "smpp_port": smsc.port, "smpp_system_id": "clinicall",
            "smpp_password": "secret", "smpp_source_addr": "CLINIC", "smpp_enquire_link_seconds": 0.2,
            "retry_base_seconds": 0.05, "retry_max_seconds": 0.2, "timeout_seconds": 5,
            "turn_near_positions": 1, "turn_near_minutes": 0}


@pytest.fixture
async def client(aiohttp_client: Callable[..., Any], sqlite_url: str, make_settings: Callable[..., Settings],
                 smpp_settings: dict[str, Any]) -> TestClient:
    return await aiohttp_client(create_app(make_settings(sqlite_url, messaging=smpp_settings)))  # type: ignore[no-any-return]


async def test_template_from_the_card_is_delivered_through_the_smsc(client: TestClient, staff: Staff,
                                                                    smsc: Smsc) -> None:
    patient_id = await make_patient(client, staff, "Nguyễn Văn An", "0912345678")
    template = await client.post("/api/templates", headers=staff.headers("supervisor"), json={
        "name": "Nhắc lịch", "channel": "sms", "body": "Chào {fullName},\nphòng khám nhắc lịch hẹn. SĐT {phone}"})
    assert template.status == 201, await template.text()
    template_id = (await template.json())["id"]

    sent = await client.post(f"/api/patients/{patient_id}/messages", json={"template_id": template_id},
                             headers=staff.headers("agent"))
    assert sent.status == 201, await sent.text()
    message = (await sent.json())["message"]
    assert message["status"] == "queued" and message["template_id"] == template_id
    assert message["text"] == "Chào Nguyễn Văn An, phòng khám nhắc lịch hẹn. SĐT 0912 345 678"

    async def delivered() -> Any:
        items = await messages_of(client, staff, patient_id)
        return items[0] if items[0]["status"] == "delivered" else None

    done = await delivered_or_fail(delivered)
    assert done["gateway_id"] == smsc.submitted[0].message_id and done["adapter"] == "smpp"
    assert done["attempts"] == 1 and done["sent_by"] == staff.ids["agent"] and done["origin"] == "agent"
    assert smsc.submitted[0].destination == "84912345678" and smsc.submitted[0].data_coding == 8
    assert smsc.texts_to("84912345678") == [message["text"]]

    long_text = "Phòng khám xin nhắc: " + "lịch tái khám ngày mai lúc 8 giờ. " * 6
    sent = await client.post(f"/api/patients/{patient_id}/messages", json={"text": long_text},
                             headers=staff.headers("agent"))
    assert sent.status == 201, await sent.text()
    long_id = (await sent.json())["message"]["id"]

    async def long_delivered() -> Any:
        return next((m for m in await messages_of(client, staff, patient_id)
                     if m["id"] == long_id and m["status"] == "delivered"), None)

    await delivered_or_fail(long_delivered)
    parts = [s for s in smsc.submitted if s.esm_class & 0x40]
    assert len(parts) >= 3 and smsc.texts_to("84912345678")[-1] == long_text.strip()
    await scoping_and_hostile_input(client, staff, smsc)
    await smsc.wait_for(lambda: smsc.enquire_links >= 1)
    await client.close()
    assert smsc.unbinds == 1


async def scoping_and_hostile_input(client: TestClient, staff: Staff, smsc: Smsc) -> None:
    """The card's rule for who may send and read; text and numbers refused before any gateway."""
    mine = await make_patient(client, staff, "Lê Văn Cường", "0903123456")
    theirs = await make_patient(client, staff, "Phạm Thị Dung", "0903123457", agent="agent2")

    async def post(who: str, patient_id: int, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        response = await client.post(f"/api/patients/{patient_id}/messages", json=body, headers=staff.headers(who))
        return response.status, await response.json()

    assert (await post("agent2", mine, {"text": "xin chào"}))[1]["code"] == "not_your_patient"
    assert (await post("reception", mine, {"text": "xin chào"}))[0] == 403
    assert (await post("doctor", mine, {"text": "xin chào"}))[0] == 403
    assert (await post("supervisor", theirs, {"text": "xin chào"}))[0] == 201
    read = await client.get(f"/api/patients/{mine}/messages", headers=staff.headers("agent2"))
    assert read.status == 403
    assert (await client.get("/api/messages", headers=staff.headers("agent"))).status == 403
    log = await client.get("/api/messages?status=queued", headers=staff.headers("supervisor"))
    assert log.status == 200

    for text, code in (("dòng 1\ndòng 2", "message_control_chars"), ("a\rb", "message_control_chars"),
                       ("chuông\x07", "message_control_chars"), ("đảo\u202echiều", "message_control_chars"),
                       ("x" * 481, "message_too_long"), ("   ", "message_empty")):
        status, body = await post("agent", mine, {"text": text})
        assert (status, body["code"]) == (422, code), text
    service = client.app[MESSAGING_KEY]
    for number in ("19001234", "+12025550123", "0903 123 456\n\rATD", "abc", "", "1" * 60):
        with pytest.raises(Problem) as refused:
            await service.send(text="xin chào", to=number, origin="test")
        assert refused.value.code == "number_not_allowed", number
    gateway = await client.get("/api/messaging/gateway", headers=staff.headers("supervisor"))
    view = await gateway.json()
    assert view["adapter"] == "smpp" and view["settings"]["smpp_password"] == "••••"
    assert smsc.texts_to("84903123456") == []  # nothing hostile reached the SMSC


async def delivered_or_fail(check: Any) -> Any:
    return await until(check, "delivered")


async def test_smsc_down_then_back_loses_nothing(client: TestClient, staff: Staff, smsc: Smsc) -> None:
    patient_id = await make_patient(client, staff, "Trần Thị Bình", "0987654321")
    await smsc.wait_for(lambda: smsc.binds >= 1)
    await smsc.stop()
    ids = []
    for n in range(3):
        sent = await client.post(f"/api/patients/{patient_id}/messages", json={"text": f"Tin số {n}"},
                                 headers=staff.headers("agent"))
        assert sent.status == 201
        ids.append((await sent.json())["message"]["id"])

    async def all_tried() -> Any:
        items = await messages_of(client, staff, patient_id)
        return all(m["status"] == "queued" and m["gateway_reply"] for m in items) and len(items) == 3

    await until(all_tried, "every message tried while the SMSC is away")
    await smsc.start(smsc.port)

    async def all_delivered() -> Any:
        items = await messages_of(client, staff, patient_id)
        return sorted(m["id"] for m in items if m["status"] == "delivered") == sorted(ids)

    await until(all_delivered, "every message delivered after the SMSC came back")
    assert sorted(s.text for s in smsc.submitted) == ["Tin số 0", "Tin số 1", "Tin số 2"]


async def test_turn_near_is_texted_once_through_the_smsc(client: TestClient, staff: Staff, smsc: Smsc) -> None:
    clinic = await build_clinic(client, staff)
    tickets = [await clinic.issue("A") for _ in range(4)]
    reception = await client.post("/api/turn-near", headers=staff.headers("reception"),
                                  json={"ticket_id": tickets[3]["id"], "phone": "0912 345 679"})
    assert reception.status == 201 and (await reception.json())["texted"] is False
    token = tickets[2]["status_url"].rsplit("/", 1)[1]
    hostile = await client.post(f"/api/t/{token}/turn-near", json={"phone": "0912345680\r\nATD"})
    assert (await hostile.json())["code"] == "number_not_allowed"
    kiosk = await client.post(f"/api/t/{token}/turn-near", json={"phone": "0912345680"})
    assert kiosk.status == 201 and (await kiosk.json())["texted"] is False

    await clinic.call_next("consult1")  # the third ticket now has one person ahead: near
    await smsc.wait_for(lambda: len(smsc.texts_to("84912345680")) == 1)
    text = smsc.texts_to("84912345680")[0]
    assert f"sắp đến lượt số {tickets[2]['number']} (Khám tổng quát)" in text
    again = await client.post(f"/api/t/{token}/turn-near", json={"phone": "0912345680"})
    assert (await again.json())["code"] == "turn_near_already_sent"
    await clinic.call_next("consult1")
    await smsc.wait_for(lambda: len(smsc.texts_to("84912345679")) == 1)
    await clinic.call_next("consult1")
    await clinic.call_next("consult1")
    near = {**tickets[3], "status": "waiting", "position": 1, "estimated_wait_seconds": 0}
    assert await client.app[MESSAGING_KEY].turn_near([near]) == 0  # once: the opt-in is spent
    log = await client.get("/api/messages?origin=turn_near", headers=staff.headers("supervisor"))
    origins = sorted(m["origin"] for m in (await log.json())["items"])
    assert origins == sorted(f"turn_near:{t['id']}" for t in tickets[2:])
    late = await client.post("/api/turn-near", headers=staff.headers("reception"),
                             json={"ticket_id": tickets[0]["id"], "phone": "0912345681"})
    assert (await late.json())["code"] == "ticket_not_waiting"

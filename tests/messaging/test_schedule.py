"""A prepared text (a re-visit reminder from the treatment page) can be scheduled: it is stored at once,
queued, and due at 08:00 clinic time on the day asked; a day past is sent at once; too far ahead is a
clear 422 that stores nothing."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from aiohttp.test_utils import TestClient

from tests.conftest import Staff
from tests.messaging.helpers import make_patient, messages_of

CLINIC = ZoneInfo("Asia/Ho_Chi_Minh")


async def test_a_text_scheduled_for_a_day_is_due_at_eight_that_morning(client: TestClient, staff: Staff) -> None:
    patient_id = await make_patient(client, staff, "Lê Thị Hoa", "0912555111")
    today = dt.datetime.now(CLINIC).date()
    headers = staff.headers("agent")

    tomorrow = today + dt.timedelta(days=1)
    sent = await client.post(f"/api/patients/{patient_id}/messages", headers=headers,
                             json={"text": "Nhắc tái khám ngày mai", "send_on": tomorrow.isoformat()})
    assert sent.status == 201, await sent.text()
    message = (await sent.json())["message"]
    assert message["status"] == "queued"
    due = dt.datetime.fromisoformat(message["next_attempt_at"])
    assert due == dt.datetime.combine(tomorrow, dt.time(8, 0), CLINIC)

    past = await client.post(f"/api/patients/{patient_id}/messages", headers=headers,
                             json={"text": "Gửi ngay", "send_on": (today - dt.timedelta(days=3)).isoformat()})
    assert past.status == 201
    assert dt.datetime.fromisoformat((await past.json())["message"]["next_attempt_at"]) <= dt.datetime.now(dt.UTC)

    far = await client.post(f"/api/patients/{patient_id}/messages", headers=headers,
                            json={"text": "Quá xa", "send_on": (today + dt.timedelta(days=401)).isoformat()})
    assert far.status == 422
    problem = await far.json()
    assert problem["code"] == "send_on_invalid" and problem["errors"][0]["field"] == "send_on"
    assert [m["text"] for m in await messages_of(client, staff, patient_id)] == ["Gửi ngay", "Nhắc tái khám ngày mai"]

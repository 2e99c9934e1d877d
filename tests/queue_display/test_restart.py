"""A real `clinicall serve` process killed with SIGKILL mid-day loses no ticket: after a restart
every ticket is there with its status, and numbering continues where it stopped."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from clinicall.auth import service as auth_service
from clinicall.db import Database
from tests.servers import free_port


def start_server(db_url: str, port: int, tmp: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLINICALL_")}
    env.update({
        "CLINICALL_DATABASE__URL": db_url, "CLINICALL_HTTP__PORT": str(port), "CLINICALL_DATA_DIR": str(tmp / "var"),
        "CLINICALL_HTTP__COOKIE_SECURE": "false", "CLINICALL_TELEPHONY__AGI_ENABLED": "false",
        "CLINICALL_AUDIO__CACHE_DIR": str(tmp / "var" / "audio"), "CLINICALL_AUDIO__ENGINES": '["espeak"]',
    })
    command = str(Path(sys.executable).parent / "clinicall")
    with open(tmp / "serve.log", "ab") as log:
        return subprocess.Popen([command, "serve"], env=env, cwd=str(tmp), stdout=log, stderr=log)


async def wait_healthy(session: aiohttp.ClientSession, base: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, "clinicall serve exited early"
        try:
            async with session.get(f"{base}/healthz") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.2)
    raise AssertionError("clinicall serve did not become healthy")


async def test_sigkill_mid_day_loses_no_ticket(db_url: str, tmp_path: Path) -> None:
    db = Database(db_url)
    headers = {}
    for name, roles in (("admin", ["admin"]), ("reception", ["reception"])):
        user = await auth_service.create_user(db, name, "correct-horse-battery", roles)
        headers[name] = {"Authorization": f"Bearer {await auth_service.create_api_token(db, user.id, 'tests')}"}
    await db.dispose()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process = start_server(db_url, port, tmp_path)
    try:
        async with aiohttp.ClientSession() as http:
            await wait_healthy(http, base, process)

            async def post(path: str, body: dict[str, Any], who: str = "reception") -> dict[str, Any]:
                async with http.post(base + path, json=body, headers=headers[who]) as response:
                    data: dict[str, Any] = await response.json()
                    assert response.status in (200, 201), data
                    return data

            service = (await post("/api/services", {"prefix": "A", "names": {"vi": "Khám"}}, "admin"))["service"]
            room = (await post("/api/rooms", {"kind": "consult", "number": 1, "service_ids": [service["id"]]}, "admin"))["room"]
            tickets = [(await post("/api/tickets", {"service_id": service["id"]}))["ticket"] for _ in range(5)]
            await post(f"/api/rooms/{room['id']}/call-next", {})
            await post(f"/api/rooms/{room['id']}/call-next", {})
            await post(f"/api/tickets/{tickets[3]['id']}/hold", {})
            before = {}
            for ticket in tickets:
                async with http.get(f"{base}/api/tickets/{ticket['id']}", headers=headers["reception"]) as r:
                    before[ticket["id"]] = (await r.json())["ticket"]

            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
            process = start_server(db_url, port, tmp_path)
            await wait_healthy(http, base, process)

            for ticket in tickets:
                async with http.get(f"{base}/api/tickets/{ticket['id']}", headers=headers["reception"]) as r:
                    after = (await r.json())["ticket"]
                old = before[ticket["id"]]
                assert (after["number"], after["status"], after["called_at"]) == (old["number"], old["status"], old["called_at"])
            assert [before[t["id"]]["status"] for t in tickets] == ["done", "called", "waiting", "held", "waiting"]
            async with http.get(f"{base}/api/queue", headers=headers["reception"]) as r:
                line = (await r.json())["services"][0]["waiting"]
            assert [t["number"] for t in line] == ["A003", "A005"]
            assert (await post("/api/tickets", {"service_id": service["id"]}))["ticket"]["number"] == "A006"
            called = (await post(f"/api/rooms/{room['id']}/call-next", {}))["ticket"]
            assert called["number"] == "A003"
    finally:
        process.kill()
        process.wait(timeout=10)

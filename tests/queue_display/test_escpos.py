"""Kiosk tickets on ESC/POS printers: the bytes a real network printer (a local socket on port 0 in
place of port 9100) and a USB device file receive, and a ticket that survives a printer that is off."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from clinicall.app import create_app
from clinicall.auth import service as auth_service
from clinicall.keys import DB_KEY
from clinicall.settings import Settings
from queue_display.escpos import CUT, INIT, fold, qr_code
from tests.servers import free_port

QR_PRINT = b"\x1d(k\x03\x001Q0"


class PrinterSocket:
    """A network printer's raw port: takes whatever is sent, one job per connection."""

    def __init__(self) -> None:
        self.jobs: list[bytes] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._job, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def _job(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.jobs.append(await reader.read())
        writer.close()

    async def close(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


async def kiosk_client(aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings], url: str,
                       printers: dict[str, str]) -> tuple[Any, int]:
    settings = make_settings(url, clinic={"name": "Phòng khám Đa khoa Hòa Bình"},
                             http={"public_url": "https://clinic.example", "cookie_secure": False},
                             queue={"kiosk_printers": printers})
    client = await aiohttp_client(create_app(settings))
    admin = await auth_service.create_user(client.app[DB_KEY], "boss", "a-long-password", ["admin"])
    headers = {"Authorization": f"Bearer {await auth_service.create_api_token(client.app[DB_KEY], admin.id, 't')}"}
    created = await client.post("/api/services", json={"prefix": "A", "names": {"vi": "Khám tổng quát"}}, headers=headers)
    assert created.status == 201, await created.text()
    return client, (await created.json())["service"]["id"]


def test_fold_and_qr_commands() -> None:
    assert fold("Phòng khám Đa khoa Hòa Bình") == "Phong kham Da khoa Hoa Binh"
    qr = qr_code("https://clinic.example/t/abc")
    assert qr.startswith(b"\x1d(k\x04\x001A2\x00")  # model 2
    store = b"\x1d(k" + bytes([len("https://clinic.example/t/abc") + 3, 0]) + b"1P0https://clinic.example/t/abc"
    assert store in qr and qr.endswith(QR_PRINT)


async def test_a_kiosk_ticket_printed_on_a_network_printer(aiohttp_client: Callable[..., Any], sqlite_url: str,
                                                           make_settings: Callable[..., Settings]) -> None:
    printer = PrinterSocket()
    port = await printer.start()
    try:
        client, service_id = await kiosk_client(aiohttp_client, make_settings, sqlite_url,
                                                {"entrance": f"tcp://127.0.0.1:{port}"})
        response = await client.post("/api/kiosk/tickets", json={"service_id": service_id, "kiosk": "entrance"})
        assert response.status == 201
        body = await response.json()
        assert body["printed"] is True
        for _ in range(100):
            if printer.jobs:
                break
            await asyncio.sleep(0.05)
    finally:
        await printer.close()
    [job] = printer.jobs
    url = body["ticket"]["status_url"].encode()
    assert url.startswith(b"https://clinic.example/t/")
    assert job.startswith(INIT) and job.endswith(CUT)
    assert b"Phong kham Da khoa Hoa Binh" in job and b"A001" in job and b"Kham tong quat" in job
    assert b"Du kien cho: " in job
    store = b"\x1d(k" + bytes([(len(url) + 3) & 0xFF, (len(url) + 3) >> 8]) + b"1P0" + url
    assert store in job and job.index(store) < job.index(QR_PRINT)

    no_printer = await client.post("/api/kiosk/tickets", json={"service_id": service_id})
    assert no_printer.status == 201 and "printed" not in await no_printer.json()  # the browser prints


async def test_a_usb_printer_device_file_and_a_printer_that_is_off(aiohttp_client: Callable[..., Any], sqlite_url: str,
                                                                   make_settings: Callable[..., Settings],
                                                                   tmp_path: Path) -> None:
    device = tmp_path / "lp0"
    device.touch()
    client, service_id = await kiosk_client(aiohttp_client, make_settings, sqlite_url,
                                            {"usb": str(device), "off": f"tcp://127.0.0.1:{free_port()}"})
    usb = await client.post("/api/kiosk/tickets", json={"service_id": service_id, "kiosk": "usb"})
    assert (await usb.json())["printed"] is True
    job = device.read_bytes()
    assert job.startswith(INIT) and b"A001" in job and job.endswith(CUT)
    off = await client.post("/api/kiosk/tickets", json={"service_id": service_id, "kiosk": "off"})
    assert off.status == 201  # the ticket is issued all the same
    body = await off.json()
    assert body["printed"] is False and body["ticket"]["number"] == "A002"

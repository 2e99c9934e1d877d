"""Client addresses behind a trusted proxy, and JSON log lines with UTC time and request context."""

from __future__ import annotations

import ipaddress
import json
import logging
import re
from collections.abc import Callable

import pytest

from clinicall.app import create_app
from clinicall.client_address import forwarded_client
from clinicall.logs import JsonFormatter, RequestContext, TextFormatter
from clinicall.settings import Settings

NGINX = [ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("10.0.0.0/8")]


@pytest.mark.parametrize(("peer", "header", "client"), [
    ("127.0.0.1", "203.0.113.7", "203.0.113.7"),
    ("127.0.0.1", "1.2.3.4, 203.0.113.7", "203.0.113.7"),  # the client forged the first hop
    ("127.0.0.1", "203.0.113.7, 10.1.1.1", "203.0.113.7"),  # two trusted proxies
    ("198.51.100.9", "203.0.113.7", "198.51.100.9"),  # not from a trusted proxy: the header is ignored
    ("127.0.0.1", "", "127.0.0.1"),
    ("127.0.0.1", "not-an-address", "127.0.0.1"),
])
def test_forwarded_client(peer: str, header: str, client: str) -> None:
    assert forwarded_client(peer, header, NGINX) == client


def test_no_trusted_proxies_means_the_peer() -> None:
    assert forwarded_client("127.0.0.1", "203.0.113.7", []) == "127.0.0.1"


async def test_kiosk_limit_and_logs_see_the_client_behind_the_proxy(
        aiohttp_client: Callable[..., object], make_settings: Callable[..., Settings], sqlite_url: str,
        caplog: pytest.LogCaptureFixture) -> None:
    settings = make_settings(sqlite_url, http={"trusted_proxies": ["127.0.0.1"]}, queue={"kiosk_tickets_per_minute": 1})
    client = await aiohttp_client(create_app(settings))  # type: ignore[operator]
    caplog.set_level(logging.INFO, logger="clinicall.http")
    caplog.handler.addFilter(RequestContext())
    await client.get("/livez", headers={"X-Forwarded-For": "203.0.113.7", "X-Request-Id": "abc123"})
    record = next(r for r in caplog.records if r.name == "clinicall.http" and "/livez" in r.getMessage())
    assert (record.client, record.request_id) == ("203.0.113.7", "abc123")  # type: ignore[attr-defined]
    line = json.loads(JsonFormatter().format(record))
    assert line["client"] == "203.0.113.7" and line["request_id"] == "abc123" and line["ts"].endswith("Z")
    assert TextFormatter().format(record).split()[0].endswith("Z")
    forged = await client.get("/livez", headers={"X-Request-Id": "x user=admin client=10.0.0.1 GET /admin 200"})
    assert re.fullmatch(r"[0-9a-f]{16}", forged.headers["X-Request-Id"])  # a forged id never reaches the log


async def test_the_kiosk_limit_counts_per_client_behind_the_proxy(
        aiohttp_client: Callable[..., object], make_settings: Callable[..., Settings], sqlite_url: str) -> None:
    settings = make_settings(sqlite_url, http={"trusted_proxies": ["127.0.0.1"]}, queue={"kiosk_tickets_per_minute": 1})
    client = await aiohttp_client(create_app(settings))  # type: ignore[operator]

    async def take(address: str) -> int:
        response = await client.post("/api/kiosk/tickets", json={"service_id": 999}, headers={"X-Forwarded-For": address})
        return response.status

    assert await take("203.0.113.7") != 429
    assert await take("203.0.113.7") == 429
    assert await take("203.0.113.8") != 429  # another patient at another kiosk is not held back


async def test_log_lines_name_the_user(aiohttp_client: Callable[..., object], make_settings: Callable[..., Settings],
                                       sqlite_url: str, caplog: pytest.LogCaptureFixture) -> None:
    from clinicall.auth import service as auth_service
    from clinicall.keys import DB_KEY

    client = await aiohttp_client(create_app(make_settings(sqlite_url)))  # type: ignore[operator]
    db = client.app[DB_KEY]
    user = await auth_service.create_user(db, "nurse", "a-long-password", ["reception"])
    token = await auth_service.create_api_token(db, user.id, "t")
    caplog.set_level(logging.INFO, logger="clinicall.http")
    caplog.handler.addFilter(RequestContext())
    assert (await client.get("/api/me", headers={"Authorization": f"Bearer {token}"})).status == 200
    record = next(r for r in caplog.records if r.name == "clinicall.http" and "/api/me" in r.getMessage())
    assert json.loads(JsonFormatter().format(record))["user"] == "nurse"

"""Display tokens leave the URL after a screen's first visit: an HttpOnly cookie carries them, for
the page, the feed websocket and the clips; a speaker sends them as a bearer header."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import WSMsgType

from clinicall.app import create_app
from clinicall.auth import service as auth_service
from clinicall.auth.middleware import DISPLAY_COOKIE
from clinicall.auth.token_cache import forget_tokens
from clinicall.keys import DB_KEY
from clinicall.settings import Settings

HTML = {"Accept": "text/html"}


async def test_first_visit_moves_the_token_into_a_cookie(aiohttp_client: Callable[..., Any], sqlite_url: str,
                                                         make_settings: Callable[..., Settings]) -> None:
    client = await aiohttp_client(create_app(make_settings(sqlite_url)))
    token_id, token = await auth_service.create_display_token(client.app[DB_KEY], "hall TV")
    first = await client.get(f"/door?room=3&token={token}&lang=en", headers=HTML, allow_redirects=False)
    assert first.status == 303
    assert first.headers["Location"] == "/door?room=3&lang=en"  # the token is gone from the address
    cookie = first.cookies[DISPLAY_COOKIE]
    assert cookie.value == token and cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/"

    assert (await client.get("/tv", headers=HTML, allow_redirects=False)).status == 200  # from the cookie
    own = f"http://{client.host}:{client.port}"
    ws = await client.ws_connect("/ws/display", headers={"Origin": own})
    message = await ws.receive(timeout=10)
    assert message.type == WSMsgType.TEXT and '"snapshot"' in message.data
    await ws.close()
    assert (await client.get("/api/me")).status == 401  # the screen cookie counts only on the display paths

    await auth_service.revoke_display_token(client.app[DB_KEY], token_id)
    await forget_tokens(client.app)  # as DELETE /api/display-tokens/{id} does: the remembered token is gone
    revoked = await client.get("/tv", headers=HTML, allow_redirects=False)
    assert revoked.status == 401 and "revoked" in await revoked.text()


async def test_a_speaker_sends_the_token_as_a_header(aiohttp_client: Callable[..., Any], sqlite_url: str,
                                                     make_settings: Callable[..., Settings]) -> None:
    client = await aiohttp_client(create_app(make_settings(sqlite_url)))
    _, token = await auth_service.create_display_token(client.app[DB_KEY], "room speaker")
    ws = await client.ws_connect("/ws/display", headers={"Authorization": f"Bearer {token}"})
    message = await ws.receive(timeout=10)
    assert message.type == WSMsgType.TEXT and '"snapshot"' in message.data
    await ws.close()

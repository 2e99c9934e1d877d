import asyncio
from collections.abc import Callable

from aiohttp import WSCloseCode, WSMsgType, web
from aiohttp.test_utils import TestClient

from clinicall.app import create_app
from clinicall.auth.access import public
from clinicall.keys import TASKS_KEY, WEBSOCKETS_KEY
from clinicall.settings import Settings


async def test_shutdown_closes_websockets_and_cancels_tasks(aiohttp_client: Callable[..., object],
                                                            make_settings: Callable[..., Settings],
                                                            sqlite_url: str) -> None:
    app = create_app(make_settings(sqlite_url))
    cancelled = asyncio.Event()
    spawned: list[asyncio.Task[None]] = []

    async def forever() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    @public
    async def socket(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        request.app[WEBSOCKETS_KEY].add(ws)
        spawned.append(request.app[TASKS_KEY].spawn(forever(), name="test-forever"))
        async for _ in ws:
            pass
        return ws

    app.router.add_get("/ws/test", socket)
    client: TestClient = await aiohttp_client(app)  # type: ignore[operator]
    ws = await client.ws_connect("/ws/test")
    await asyncio.sleep(0.05)
    assert len(spawned) == 1 and not spawned[0].done()
    closing = asyncio.create_task(client.server.close())
    message = await asyncio.wait_for(ws.receive(), 30)
    assert message.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING)
    assert ws.close_code == WSCloseCode.GOING_AWAY or message.data == WSCloseCode.GOING_AWAY
    await asyncio.wait_for(closing, 10)
    assert cancelled.is_set() and spawned[0].cancelled()
    assert len(app[TASKS_KEY]) == 0

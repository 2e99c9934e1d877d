"""Call-next to every screen: how long until each of N websocket screens has the ticket.called frame,
and how much server memory one connected screen costs.

    .venv/bin/python bench/display_fanout.py --screens 1000 --calls 20

The server runs in a child process (create_app on a fresh SQLite file, in-process bus, the audio room
rendering with espeak as in production); this process opens the screens (aiohttp websockets over a few
client sessions), waits for every snapshot, then makes `--calls` call-next requests through the HTTP API
one after another. Latency = time from just before POST /api/rooms/{id}/call-next to the frame arriving
at a screen (client and server share 2 cores here, so it includes the client's own parsing).
Memory per screen = (server RSS with all screens connected - RSS before) / screens.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def raise_file_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def serve(directory: str, port: int) -> None:
    """The child: migrate, create an admin and a display token, serve until killed."""
    from aiohttp import web

    from clinicall.app import create_app
    from clinicall.auth import service as auth_service
    from clinicall.db import Database
    from clinicall.migrate import migrate
    from clinicall.settings import Settings

    raise_file_limit()
    url = f"sqlite+aiosqlite:///{directory}/bench.db"
    settings = Settings(database={"url": url}, data_dir=directory, log_level="WARNING",
                        http={"host": "127.0.0.1", "port": port, "cookie_secure": False},
                        telephony={"agi_enabled": False},
                        audio={"cache_dir": f"{directory}/audio", "engines": ["espeak"]})
    db = Database(url)
    await migrate(db)
    admin = await auth_service.create_user(db, "admin", "bench-password-1", ["admin"])
    token = await auth_service.create_api_token(db, admin.id, "bench")
    _, display = await auth_service.create_display_token(db, "bench screens")
    await db.dispose()
    import logging

    logging.basicConfig(level=logging.WARNING)
    runner = web.AppRunner(create_app(settings), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=2048).start()
    print(json.dumps({"token": token, "display": display}), flush=True)
    await asyncio.Event().wait()


class Screens:
    def __init__(self) -> None:
        self.received: dict[int, list[float]] = {}  # ticket id -> arrival times (perf_counter)
        self.fanout: dict[int, list[float]] = {}  # ticket id -> seconds from the event's publication to arrival
        self.snapshots = 0
        self.progress = asyncio.Event()  # set whenever a counted frame arrives
        self.sockets: list[aiohttp.ClientWebSocketResponse] = []

    async def reader(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for message in ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                break
            now = time.perf_counter()
            wall = time.time()
            raw = message.data
            if raw.startswith('{"type": "ticket.called"'):
                frame = json.loads(raw)
                ticket_id = frame["data"]["ticket"]["id"]
                self.received.setdefault(ticket_id, []).append(now)
                published = datetime.datetime.fromisoformat(frame["at"]).timestamp()
                self.fanout.setdefault(ticket_id, []).append(wall - published)
                self.progress.set()
            elif raw.startswith('{"type": "snapshot"'):
                self.snapshots += 1
                self.progress.set()

    async def until(self, done: Callable[[], bool], seconds: float) -> None:
        async with asyncio.timeout(seconds):
            while not done():
                await self.progress.wait()
                self.progress.clear()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


async def run(args: argparse.Namespace) -> None:
    raise_file_limit()
    directory = tempfile.mkdtemp(prefix="clinicall-bench-")
    from tests.servers import free_port

    port = free_port()
    child = await asyncio.create_subprocess_exec(sys.executable, __file__, "--serve", directory, "--port", str(port),
                                                 stdout=asyncio.subprocess.PIPE, cwd=ROOT,
                                                 env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert child.stdout is not None
        line = await child.stdout.readline()
        secrets = json.loads(line)
        base = f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {secrets['token']}"}
        async with aiohttp.ClientSession(base, headers=headers) as api:
            async def post(path: str, body: dict[str, Any]) -> Any:
                async with api.post(path, json=body) as resp:
                    data = await resp.json(content_type=None)
                    assert resp.status < 300, (path, resp.status, data)
                    return data

            service = await post("/api/services", {"prefix": "A", "names": {"vi": "Khám tổng quát", "en": "General"}})
            service_id = (service.get("service") or service)["id"]
            room = await post("/api/rooms", {"kind": "consult", "number": 1, "service_ids": [service_id]})
            room_id = (room.get("room") or room)["id"]
            for _ in range(args.calls + args.warmup):
                await post("/api/tickets", {"service_id": service_id})

            process = psutil.Process(child.pid)
            await asyncio.sleep(0.5)
            rss_before = process.memory_info().rss
            screens = Screens()
            sessions = [aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) for _ in range(args.sessions)]
            readers = []
            started = time.perf_counter()
            url = f"{base}/ws/display?token={secrets['display']}"
            for batch in range(0, args.screens, 100):
                opened = await asyncio.gather(*(sessions[i % len(sessions)].ws_connect(url, heartbeat=None)
                                                for i in range(batch, min(batch + 100, args.screens))))
                screens.sockets.extend(opened)
                readers.extend(asyncio.create_task(screens.reader(ws)) for ws in opened)
            await screens.until(lambda: screens.snapshots >= args.screens, 120)
            connect_seconds = time.perf_counter() - started
            await asyncio.sleep(1.0)
            rss_after = process.memory_info().rss

            latencies: list[float] = []
            fanout: list[float] = []
            to_all: list[float] = []
            http_times: list[float] = []
            for call in range(args.calls + args.warmup):
                sent = time.perf_counter()
                called = await post(f"/api/rooms/{room_id}/call-next", {})
                answered = time.perf_counter()
                ticket_id = (called.get("ticket") or called)["id"]
                with contextlib.suppress(TimeoutError):
                    await screens.until(lambda: len(screens.received.get(ticket_id, [])) >= args.screens, 30)  # noqa: B023
                arrivals = screens.received.get(ticket_id, [])
                assert len(arrivals) == args.screens, f"only {len(arrivals)} of {args.screens} screens got {ticket_id}"
                if call >= args.warmup:
                    latencies.extend(at - sent for at in arrivals)
                    fanout.extend(screens.fanout[ticket_id])
                    to_all.append(max(arrivals) - sent)
                    http_times.append(answered - sent)
                await asyncio.sleep(args.pause)

            for ws in screens.sockets:
                await ws.close()
            for reader in readers:
                reader.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
            for session in sessions:
                await session.close()

        ms = [x * 1000 for x in latencies]
        hub_ms = [x * 1000 for x in fanout]
        print(f"screens: {args.screens} connected in {connect_seconds:.2f} s (all snapshots received)")
        print(f"call-next -> screen received ({args.calls} calls x {args.screens} screens = {len(ms)} frames): "
              f"p50 {percentile(ms, 0.50):.1f} ms, p99 {percentile(ms, 0.99):.1f} ms, max {max(ms):.1f} ms")
        print(f"event published on the bus -> screen received: p50 {percentile(hub_ms, 0.50):.1f} ms, "
              f"p99 {percentile(hub_ms, 0.99):.1f} ms (the hub's own share)")
        print(f"POST call-next answered: median {statistics.median(http_times) * 1000:.1f} ms")
        print(f"call-next -> last screen received: median {statistics.median(to_all) * 1000:.1f} ms, "
              f"worst {max(to_all) * 1000:.1f} ms")
        print(f"server RSS: {rss_before / 2**20:.1f} MiB before, {rss_after / 2**20:.1f} MiB with screens; "
              f"{(rss_after - rss_before) / args.screens / 1024:.1f} KiB per connected screen")
    finally:
        child.terminate()
        await child.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--screens", type=int, default=1000)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=2, help="call-nexts made first and not counted")
    parser.add_argument("--sessions", type=int, default=10, help="aiohttp client sessions the screens are spread over")
    parser.add_argument("--pause", type=float, default=0.2, help="seconds between call-nexts")
    parser.add_argument("--serve", metavar="DIR", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.serve, args.port))
    else:
        asyncio.run(run(args))


if __name__ == "__main__":
    main()

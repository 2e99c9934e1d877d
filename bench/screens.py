"""Call-next to the LAST screen, clinicall against the floor of this stack, in the same run.

    .venv/bin/python bench/screens.py --screens 200 --calls 100
    .venv/bin/python bench/screens.py --screens 1000 --calls 100

Two servers run in child processes: clinicall (create_app on a fresh SQLite file, in-process bus, the
audio room rendering announcements with espeak as in production) and the floor, a bare aiohttp app that
broadcasts one pre-encoded frame (no database) to its websockets with `await ws.send_str(frame)` each.
This process opens the same number of screens on both (aiohttp websocket clients spread over a few
sessions; the same reader code for both) and then alternates: one call-next on clinicall
(POST /api/rooms/{id}/call-next), one call on the floor (POST /call), each timed from just before the
request until the last screen has the frame with the called number. Printed: p50/p95/p99 of that time for
both and clinicall's ratio to the floor, the goal (p95 <= 1.1x at 200 screens, p99 <= 1.2x at 1,000),
and clinicall's frames and bytes per screen per call-next by type (everything a screen receives until
the next call, pings excluded: the call itself, the waiting lines' estimates that follow, the announcement),
and each server's CPU time per call (every thread of its process; clinicall's includes the estimates and the
announcement's rendering, not espeak's own processes).
Caches: the first --warmup calls are not counted; the speech of every number called is in the speech cache
first (as after `clinicall audio warm`; kept between runs in --speech), so each call's clip is assembled from
cached pieces, as a clinic's are; --cold-speech leaves espeak to speak each number during the run instead.
"server wrote" is when the call's frame was in every screen's socket (the server's share; the rest of
"request -> last screen" is the measuring process reading 200+ sockets).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def raise_file_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def warm_speech(settings: Any, numbers: int) -> None:
    """As `clinicall audio warm` does before a clinic opens: every piece of speech the calls will need (the
    ticket numbers, room 1) is in the speech cache, so each call's clip is assembled, not spoken by espeak."""
    from audio.cli import warm_segments
    from audio.service import make_renderer
    from audio.wording import wording_from_settings

    audio = settings.audio
    renderer = make_renderer(audio)
    room = {"id": 1, "kind": "consult", "number": 1, "names": {}}
    pieces = warm_segments(wording_from_settings(audio), audio.languages, ["A"], numbers, [room])
    missing = [(lang, text) for lang, text in pieces if renderer.speak_cached(text, lang) is None]
    for start in range(0, len(missing), 8):
        await asyncio.gather(*(asyncio.to_thread(renderer.speak, text, lang) for lang, text in missing[start:start + 8]))


async def serve_clinicall(directory: str, port: int, speech: str | None, numbers: int) -> None:
    """Child: migrate, an admin with an API token, a display token; serve until killed."""
    import logging
    import shutil

    from aiohttp import web

    from clinicall.app import create_app
    from clinicall.auth import service as auth_service
    from clinicall.db import Database
    from clinicall.migrate import migrate
    from clinicall.settings import Settings

    raise_file_limit()
    url = f"sqlite+aiosqlite:///{directory}/bench.db"
    settings = Settings(database={"url": url}, data_dir=directory, log_level="WARNING",  # type: ignore[arg-type]
                        http={"host": "127.0.0.1", "port": port, "cookie_secure": False},
                        telephony={"agi_enabled": False},
                        audio={"cache_dir": speech or f"{directory}/audio", "engines": ["espeak"]})
    if speech:
        shutil.rmtree(Path(speech) / "clips", ignore_errors=True)  # clips are assembled anew in every run
        await warm_speech(settings, numbers)
    db = Database(url)
    await migrate(db)
    admin = await auth_service.create_user(db, "admin", "bench-password-1", ["admin"])
    token = await auth_service.create_api_token(db, admin.id, "bench")
    _, display = await auth_service.create_display_token(db, "bench screens")
    await db.dispose()
    logging.basicConfig(level=logging.WARNING)
    app = create_app(settings)
    app.router.add_get("/bench/cpu", cpu_seconds)
    app.router.add_get("/bench/written", written_times)
    time_the_call_frames()
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=4096).start()
    print(json.dumps({"token": token, "display": display}), flush=True)
    await asyncio.Event().wait()


WRITTEN: dict[str, float] = {}  # in a server child: called number -> when its frame was in every socket


def time_the_call_frames() -> None:
    """When the frame with each called number has been written to every screen's socket (perf_counter is the
    machine's monotonic clock, so the measuring process compares it with its own request times): the server's
    share of request -> last screen, apart from the measuring client's own reading."""
    from queue_display.display import DisplayHub

    flush = DisplayHub.flush

    def timed_flush(self: DisplayHub) -> None:
        called = [e.data["ticket"]["number"] for e in self._pending if e.type == "ticket.called"]
        flush(self)
        now = time.perf_counter()
        WRITTEN.update(dict.fromkeys(called, now))

    DisplayHub.flush = timed_flush  # type: ignore[method-assign]


async def written_times(_request: Any) -> Any:
    from aiohttp import web

    return web.json_response(WRITTEN)


async def cpu_seconds(_request: Any) -> Any:
    """The serving process's CPU time so far (every thread), for the CPU per call-next."""
    from aiohttp import web

    return web.json_response({"cpu": time.process_time()})


async def serve_floor(port: int) -> None:
    """Child: the floor. Websockets at /ws; POST /call?number=N encodes one frame and sends it to every one."""
    from aiohttp import web

    raise_file_limit()
    sockets: set[web.WebSocketResponse] = set()

    async def ws_handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=False)
        await ws.prepare(request)
        sockets.add(ws)
        try:
            async for _message in ws:
                pass
        finally:
            sockets.discard(ws)
        return ws

    async def call(request: web.Request) -> web.Response:
        number = request.query["number"]
        frame = json.dumps({"type": "ticket.called", "data": {"ticket": {"number": number, "room": {"number": 1}}}})
        for ws in list(sockets):
            await ws.send_str(frame)
        WRITTEN[number] = time.perf_counter()
        return web.json_response({"ticket": {"number": number}})

    app = web.Application()
    app.router.add_get("/bench/cpu", cpu_seconds)
    app.router.add_get("/bench/written", written_times)
    app.router.add_get("/ws", ws_handler)
    app.router.add_post("/call", call)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=4096).start()
    print(json.dumps({"ready": True}), flush=True)
    await asyncio.Event().wait()


class Screens:
    """N websocket screens on one server: when each saw a called number, and what else they received."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.seen: dict[str, list[float]] = {}  # called number -> arrival times (perf_counter)
        self.counting = False
        self.frames: Counter[str] = Counter()
        self.bytes: Counter[str] = Counter()
        self.progress = asyncio.Event()
        self.ready = 0
        self.sockets: list[aiohttp.ClientWebSocketResponse] = []
        self.readers: list[asyncio.Task[None]] = []

    async def open(self, sessions: list[aiohttp.ClientSession], url: str, count: int, wait_first: bool) -> None:
        for start in range(0, count, 100):
            opened = await asyncio.gather(*(sessions[i % len(sessions)].ws_connect(url, heartbeat=None)
                                            for i in range(start, min(start + 100, count))))
            self.sockets.extend(opened)
            self.readers.extend(asyncio.create_task(self.read(ws)) for ws in opened)
        if wait_first:
            await self.until(lambda: self.ready >= count, 300)
        else:
            self.ready = count

    async def read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for message in ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                break
            now = time.perf_counter()
            raw = message.data
            if '"ticket.called"' in raw:
                frame = json.loads(raw)
                for event in frame["events"] if frame["type"] == "batch" else [frame]:
                    if event["type"] == "ticket.called":
                        self.seen.setdefault(event["data"]["ticket"]["number"], []).append(now)
                        self.progress.set()
            elif raw.startswith('{"type": "snapshot"'):
                self.ready += 1
                self.progress.set()
            if self.counting and not raw.startswith('{"type": "ping"'):
                kind = raw[10:raw.index('"', 10)] if raw.startswith('{"type": "') else "?"
                self.frames[kind] += 1
                self.bytes[kind] += len(raw.encode())

    async def until(self, done: Any, seconds: float) -> None:
        async with asyncio.timeout(seconds):
            while not done():
                await self.progress.wait()
                self.progress.clear()

    async def last_arrival(self, number: str, count: int, sent: float) -> float:
        await self.until(lambda: len(self.seen.get(number, ())) >= count, 60)
        return max(self.seen[number]) - sent

    async def close(self) -> None:
        for ws in self.sockets:
            await ws.close()
        for reader in self.readers:
            reader.cancel()
        await asyncio.gather(*self.readers, return_exceptions=True)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


async def start_child(*args: str) -> tuple[asyncio.subprocess.Process, dict[str, Any]]:
    child = await asyncio.create_subprocess_exec(sys.executable, __file__, *args, stdout=asyncio.subprocess.PIPE,
                                                 cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert child.stdout is not None
    return child, json.loads(await child.stdout.readline())


async def run(args: argparse.Namespace) -> None:
    from tests.servers import free_port

    raise_file_limit()
    directory = tempfile.mkdtemp(prefix="clinicall-bench-")
    clinicall_port, floor_port = free_port(), free_port()
    speech = ["--speech", "" if args.cold_speech else args.speech]
    clinicall, secrets = await start_child("--serve-clinicall", directory, "--port", str(clinicall_port), *speech,
                                           "--numbers", str(args.calls + args.warmup + args.waiting))
    floor, _ = await start_child("--serve-floor", "--port", str(floor_port))
    base = f"http://127.0.0.1:{clinicall_port}"
    sessions = [aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) for _ in range(args.sessions)]
    try:
        async with aiohttp.ClientSession(base, headers={"Authorization": f"Bearer {secrets['token']}"}) as api, \
                aiohttp.ClientSession(f"http://127.0.0.1:{floor_port}") as floor_api:
            async def post(path: str, body: dict[str, Any]) -> Any:
                async with api.post(path, json=body) as resp:
                    data = await resp.json(content_type=None)
                    assert resp.status < 300, (path, resp.status, data)
                    return data

            service = (await post("/api/services", {"prefix": "A", "names": {"vi": "Khám", "en": "General"}}))["service"]
            room = (await post("/api/rooms", {"kind": "consult", "number": 1, "service_ids": [service["id"]]}))["room"]
            total = args.calls + args.warmup
            for _ in range(total + args.waiting):
                await post("/api/tickets", {"service_id": service["id"]})

            ours, bare = Screens("clinicall"), Screens("floor")
            await ours.open(sessions, f"{base.replace('http', 'ws')}/ws/display?token={secrets['display']}",
                            args.screens, wait_first=True)
            await bare.open(sessions, f"ws://127.0.0.1:{floor_port}/ws", args.screens, wait_first=False)
            await asyncio.sleep(1.0)

            times: dict[str, list[float]] = {"clinicall": [], "floor": [], "clinicall: reply": [],
                                             "clinicall: first screen": [], "clinicall: server wrote": [],
                                             "floor: server wrote": []}
            sent_at: dict[str, dict[str, float]] = {"clinicall": {}, "floor": {}}

            async def cpu(session: aiohttp.ClientSession) -> float:
                async with session.get("/bench/cpu") as resp:
                    return float((await resp.json())["cpu"])

            for call in range(total):
                if call == args.warmup:
                    cpu_before = {"clinicall": await cpu(api), "floor": await cpu(floor_api)}
                counted = call >= args.warmup
                ours.counting = counted
                sent = time.perf_counter()
                called = await post(f"/api/rooms/{room['id']}/call-next", {})
                replied = time.perf_counter() - sent
                number = called["ticket"]["number"]
                last = await ours.last_arrival(number, args.screens, sent)
                first = min(ours.seen[number]) - sent
                if counted:
                    sent_at["clinicall"][number] = sent
                await asyncio.sleep(args.pause)  # what follows the call (estimates, announcement) lands here
                ours.counting = False
                sent = time.perf_counter()
                async with floor_api.post("/call", params={"number": f"F{call:04d}"}) as resp:
                    assert resp.status == 200
                floor_last = await bare.last_arrival(f"F{call:04d}", args.screens, sent)
                if counted:
                    sent_at["floor"][f"F{call:04d}"] = sent
                    times["clinicall"].append(last)
                    times["floor"].append(floor_last)
                    times["clinicall: reply"].append(replied)
                    times["clinicall: first screen"].append(first)
                await asyncio.sleep(args.pause / 2)
            await asyncio.sleep(args.pause)  # the last call's estimates and announcement
            times["cpu"] = [(await cpu(api) - cpu_before["clinicall"]) / args.calls,
                            (await cpu(floor_api) - cpu_before["floor"]) / args.calls]
            for name, session in (("clinicall", api), ("floor", floor_api)):
                async with session.get("/bench/written") as resp:
                    written = await resp.json()
                times[f"{name}: server wrote"] = [written[n] - at for n, at in sent_at[name].items() if n in written]
            await ours.close()
            await bare.close()
    finally:
        for session in sessions:
            await session.close()
        for child in (clinicall, floor):
            child.terminate()
            await child.wait()
    report(args, times, ours)


def report(args: argparse.Namespace, times: dict[str, list[float]], ours: Screens) -> None:
    print(f"load average before/after: {args.load_before} / {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{args.screens} screens, {args.calls} call-nexts counted ({args.warmup} warm-up), alternating with the floor; "
          + ("speech cache cold (espeak speaks each number during the run)" if args.cold_speech
             else "speech cache warm (as after `clinicall audio warm`; each clip assembled anew)"))
    print(f"{'request -> last screen':28s} {'p50':>9s} {'p95':>9s} {'p99':>9s}")
    marks = {}
    for name in ("clinicall", "floor"):
        ms = [x * 1000 for x in times[name]]
        marks[name] = [percentile(ms, f) for f in (0.50, 0.95, 0.99)]
        print(f"{name:28s} " + " ".join(f"{m:7.1f}ms" for m in marks[name]))
    for name in ("clinicall: reply", "clinicall: first screen", "clinicall: server wrote", "floor: server wrote"):
        print(f"{name:28s} " + " ".join(f"{percentile([x * 1000 for x in times[name]], f):7.1f}ms"
                                        for f in (0.50, 0.95, 0.99)))
    ratios = [c / f if f else float("inf") for c, f in zip(marks["clinicall"], marks["floor"], strict=True)]
    print(f"{'clinicall / floor':28s} " + " ".join(f"{r:8.2f}x" for r in ratios))
    goal = (1, 1.1, "p95") if args.screens <= 200 else (2, 1.2, "p99")
    verdict = "met" if ratios[goal[0]] <= goal[1] else "NOT met"
    print(f"goal: {goal[2]} <= {goal[1]}x the floor: {verdict} (a loaded machine says little: re-measure quietly)")
    ours_cpu, floor_cpu = times["cpu"]
    print(f"server CPU per call (every thread; clinicall's includes the estimates and the announcement's rendering): "
          f"clinicall {ours_cpu * 1000:.1f} ms, floor {floor_cpu * 1000:.1f} ms")
    per = args.calls * args.screens
    frames = sum(ours.frames.values())
    print(f"per screen per call-next: {frames / per:.2f} frames, {sum(ours.bytes.values()) / per:.0f} bytes: " +
          ", ".join(f"{kind} {ours.frames[kind] / per:.2f} ({ours.bytes[kind] / per:.0f} B)"
                    for kind in sorted(ours.frames)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--screens", type=int, default=50)
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3, help="call-nexts made first and not counted")
    parser.add_argument("--waiting", type=int, default=20, help="tickets left waiting after the last call")
    parser.add_argument("--sessions", type=int, default=10, help="client sessions the screens are spread over")
    parser.add_argument("--pause", type=float, default=0.4, help="seconds after each call before the next")
    parser.add_argument("--cold-speech", action="store_true",
                        help="no speech cache: espeak speaks every called number during the run")
    parser.add_argument("--speech", default=str(Path(tempfile.gettempdir()) / "clinicall-bench-speech"),
                        help="the speech cache, warmed first and kept between runs (clips are not kept)")
    parser.add_argument("--numbers", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--serve-clinicall", metavar="DIR", help=argparse.SUPPRESS)
    parser.add_argument("--serve-floor", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_clinicall:
        asyncio.run(serve_clinicall(args.serve_clinicall, args.port, args.speech, args.numbers))
    elif args.serve_floor:
        asyncio.run(serve_floor(args.port))
    else:
        args.load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
        asyncio.run(run(args))


if __name__ == "__main__":
    main()

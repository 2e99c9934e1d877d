"""Call-next to audio playable: the time from POST /api/rooms/{id}/call-next until a speaker client
has the whole announcement clip (announcement.ready arrived on /ws/display and GET /audio/clips/...
returned the WAV), p50 and p99, in three cases:

  hit     every piece of speech is already in the cache (after `clinicall audio warm`); the clip for
          this number and room is assembled (chime + pieces) and written
  recall  the same ticket announced again (POST /api/tickets/{id}/recall): the clip already exists
  miss    empty cache: espeak-ng renders every piece (offline, no network), then the clip is assembled

    .venv/bin/python bench/audio_latency.py --calls 50 --languages vi,en,zh

The app (create_app, fresh SQLite file, in-process bus, engines recorded -> espeak -> gTTS with gTTS
pointed at a closed local port, so Google is never reached) serves on 127.0.0.1 in this process;
the measuring client talks to it over real TCP. Two cores are shared by both.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

GOAL_HIT_P99_MS = 50.0
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def event_types(frame: dict[str, Any]) -> list[str]:
    """The event types a /ws/display frame carries (one event, or several in a "batch" frame)."""
    events = frame.get("events") if frame.get("type") == "batch" else [frame]
    return [str(e.get("type")) for e in events if isinstance(e, dict)] if isinstance(events, list) else []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=15 if os.environ.get("CLINICALL_BENCH_SMALL") == "1" else 50,
                        help="call-next operations per case")
    parser.add_argument("--languages", default="vi,en,zh")
    args = parser.parse_args()

    from aiohttp import web

    from audio.cli import warm_segments
    from audio.service import make_renderer
    from audio.wording import wording_from_settings
    from clinicall.app import create_app
    from clinicall.auth import service as auth_service
    from clinicall.db import Database
    from clinicall.heap import freeze_startup_objects
    from clinicall.keys import DB_KEY
    from clinicall.migrate import migrate
    from clinicall.settings import Settings

    languages = [lang.strip() for lang in args.languages.split(",") if lang.strip()]
    tmp = Path(tempfile.mkdtemp(prefix="clinicall-audio-bench-"))
    url = f"sqlite+aiosqlite:///{tmp / 'bench.db'}"
    db = Database(url)
    await migrate(db)
    await db.dispose()
    settings = Settings(data_dir=str(tmp), database={"url": url}, http={"cookie_secure": False},
                        telephony={"agi_enabled": False},
                        audio={"cache_dir": str(tmp / "audio"), "recorded_dir": str(tmp / "recorded"),
                               "languages": languages, "gtts_url": "http://127.0.0.1:9/closed"})
    app = create_app(settings)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    freeze_startup_objects()  # as `clinicall serve` does once it serves
    base = f"http://127.0.0.1:{port}"
    db = app[DB_KEY]
    admin = await auth_service.create_user(db, "bench", "correct-horse-battery", ["admin"])
    headers = {"Authorization": f"Bearer {await auth_service.create_api_token(db, admin.id, 'bench')}"}
    results: dict[str, list[float]] = {"hit": [], "recall": [], "miss": []}
    own: dict[str, list[float]] = {"hit": [], "recall": [], "miss": []}
    try:
        async with aiohttp.ClientSession(base_url=base, headers=headers) as api:
            async def post(path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
                async with api.post(path, json=body or {}) as response:
                    if response.status not in (200, 201):
                        raise SystemExit(f"{path}: HTTP {response.status} {await response.text()}")
                    return dict(await response.json())

            service = (await post("/api/services", {"prefix": "A", "names": {"vi": "Khám"}}))["service"]
            room = (await post("/api/rooms", {"kind": "consult", "number": 3, "service_ids": [service["id"]]}))["room"]
            room_words = {"id": room["id"], "kind": "consult", "number": 3, "names": {}}
            _id, token = await auth_service.create_display_token(db, "bench speaker", room_ids=[room["id"]])

            print(f"warming the speech cache for A001..A{3 * args.calls:03d} in {', '.join(languages)} ...", flush=True)
            renderer = make_renderer(settings.audio)
            pieces = warm_segments(wording_from_settings(settings.audio), languages, ["A"], 3 * args.calls, [room_words])
            await asyncio.gather(*(asyncio.to_thread(renderer.speak, text, lang) for lang, text in pieces))

            speaker = {"Authorization": f"Bearer {token}"}  # as clinicall-speaker sends its display token
            async with aiohttp.ClientSession() as plain, plain.ws_connect(
                    f"{base}/ws/display?rooms={room['id']}", headers=speaker) as ws:
                await ws.receive_json(timeout=30)  # the snapshot

                async def drain() -> None:
                    while True:
                        try:
                            await ws.receive(timeout=0.3)
                        except TimeoutError:
                            return

                async def announced(action: Any) -> tuple[float, float]:
                    """(ms from the operation's request to the clip in hand, ms from the ticket event's
                    frame to the clip in hand: the audio room's own share)"""
                    await drain()
                    started = time.perf_counter()
                    await action()
                    called_at = None
                    while True:
                        frame = json.loads((await ws.receive(timeout=60)).data)
                        types = event_types(frame)
                        if called_at is None and {"ticket.called", "ticket.recalled"} & set(types):
                            called_at = time.perf_counter()
                        if "announcement.ready" in types:
                            break
                    ready = frame if frame.get("type") != "batch" else next(
                        e for e in frame["events"] if e.get("type") == "announcement.ready")
                    async with plain.get(base + ready["data"]["audio_url"], headers=speaker) as clip:
                        body = await clip.read()
                        assert clip.status == 200 and body[:4] == b"RIFF", clip.status
                    done = time.perf_counter()
                    return (done - started) * 1000, (done - (called_at or started)) * 1000

                for case in ("hit", "recall", "miss"):
                    for _ in range(args.calls):
                        await post("/api/tickets", {"service_id": service["id"]})
                        if case == "miss":
                            shutil.rmtree(tmp / "audio", ignore_errors=True)
                        if case == "recall":
                            ticket = (await post(f"/api/rooms/{room['id']}/call-next"))["ticket"]
                            while "announcement.ready" not in event_types(json.loads((await ws.receive(timeout=60)).data)):
                                pass
                            total, part = await announced(lambda t=ticket: post(f"/api/tickets/{t['id']}/recall"))
                        else:
                            total, part = await announced(lambda: post(f"/api/rooms/{room['id']}/call-next"))
                        results[case].append(total)
                        own[case].append(part)
    finally:
        await runner.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"call-next -> audio playable ({args.calls} calls per case, languages {','.join(languages)}, "
          f"chime on, repeat 1)")
    print("  case     request -> clip in hand            ticket event on the socket -> clip in hand (audio's share)")
    for case, values in results.items():
        part = own[case]
        print(f"  {case:<7} p50 {statistics.median(values):7.1f} ms  p99 {percentile(values, 99):7.1f} ms"
              f"      p50 {statistics.median(part):7.1f} ms  p99 {percentile(part, 99):7.1f} ms")
    hit = percentile(results["hit"], 99)
    print(f"  goal: cache hit, request -> clip in hand, p99 < {GOAL_HIT_P99_MS:g} ms: "
          f"{'meets' if hit < GOAL_HIT_P99_MS else 'MISSES'} the goal ({hit:.1f} ms); warm: the speech cache and "
          f"the app ({args.calls} calls per case after the snapshot); machine load average "
          + ", ".join(f"{x:.2f}" for x in os.getloadavg()))


if __name__ == "__main__":
    asyncio.run(main())

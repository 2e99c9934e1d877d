"""The speaker client end to end: a real app on a real port, the display websocket, a ticket call,
and a WAV file written by `clinicall speaker` (a separate process), with Google out of reach."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer
from clinicall_speaker import Speaker, display_socket_url

from clinicall.app import create_app
from clinicall.auth import service as auth_service
from clinicall.keys import BUS_KEY, DB_KEY, WEBSOCKETS_KEY
from clinicall.settings import Settings
from tests.audio.test_announcer import ticket

REPO = Path(__file__).resolve().parents[2]


async def wait_for(condition: Callable[[], Any], seconds: float, what: str) -> Any:
    deadline = asyncio.get_running_loop().time() + seconds
    while asyncio.get_running_loop().time() < deadline:
        value = condition()
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def wav_seconds(path: Path) -> float:
    with wave.open(str(path), "rb") as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (22050, 1, 2)
        return w.getnframes() / w.getframerate()


async def test_speaker_process_plays_call_next_from_the_queue_api(
        aiohttp_server: Callable[..., Any], sqlite_url: str, make_settings: Callable[..., Settings],
        tmp_path: Path) -> None:
    settings = make_settings(sqlite_url, audio={"languages": ["vi", "en"], "engines": ["espeak", "gtts"],
                                                "gtts_url": "http://127.0.0.1:9/unreachable"})
    app = create_app(settings)
    server: TestServer = await aiohttp_server(app)
    db = app[DB_KEY]
    admin = await auth_service.create_user(db, "boss", "correct-horse-battery", ["admin"])
    headers = {"Authorization": f"Bearer {await auth_service.create_api_token(db, admin.id, 'tests')}"}
    async with ClientSession(base_url=str(server.make_url("/")), headers=headers) as api:
        async def post(path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
            async with api.post(path, json=body or {}) as response:
                assert response.status in (200, 201), (path, response.status, await response.text())
                return dict(await response.json())

        service = (await post("/api/services", {"prefix": "A", "names": {"vi": "Khám tổng quát"}}))["service"]
        room = (await post("/api/rooms", {"kind": "consult", "number": 3, "service_ids": [service["id"]]}))["room"]
        other = (await post("/api/rooms", {"kind": "consult", "number": 4, "service_ids": [service["id"]]}))["room"]
        for _ in range(3):
            await post("/api/tickets", {"service_id": service["id"]})

        _id, token = await auth_service.create_display_token(db, "speaker room 3", room_ids=[room["id"]])
        out = tmp_path / "speaker-out"
        log = (tmp_path / "speaker.log").open("wb")
        env = {k: v for k, v in os.environ.items() if not k.startswith("CLINICALL_")}
        env["CLINICALL_SPEAKER_TOKEN"] = token  # from the environment: never on the command line (ps) or in a URL
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "clinicall_speaker", "--room", str(room["id"]),
            "--server", str(server.make_url("/")), "--out-dir", str(out),
            cwd=REPO, env=env, stdout=log, stderr=log)
        try:
            await wait_for(lambda: len(app[WEBSOCKETS_KEY]) >= 1, 30, "the speaker to connect")
            first = (await post(f"/api/rooms/{room['id']}/call-next"))["ticket"]
            await post(f"/api/rooms/{other['id']}/call-next")  # another room: not for this speaker
            await post(f"/api/tickets/{first['id']}/recall")
            await wait_for(lambda: len(list(out.glob("*.wav"))) >= 2, 60, "two announcement files")
            await asyncio.sleep(1.0)
            files = sorted(out.glob("*.wav"))
            assert len(files) == 2, files
            assert all(first["number"] in f.name for f in files)
            assert files[0].read_bytes() == files[1].read_bytes()  # the recall is the same clip
            assert 4 < wav_seconds(files[0]) < 40  # chime, Vietnamese and English
            assert process.returncode is None  # still running, waiting for the next call
        finally:
            process.terminate()
            await process.wait()
            log.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_speaker_reconnects_by_itself(sqlite_url: str, make_settings: Callable[..., Settings],
                                            tmp_path: Path) -> None:
    port = free_port()
    settings = make_settings(sqlite_url, audio={"languages": ["vi"], "chime": False})
    app = create_app(settings)
    runner = web.AppRunner(app)
    await runner.setup()
    _id, token = await auth_service.create_display_token(app[DB_KEY], "speaker")
    out = tmp_path / "out"
    speaker = Speaker(server=f"http://127.0.0.1:{port}", token=token, room_ids=(7,), out_dir=out, max_backoff=0.5)
    task = asyncio.create_task(speaker.run())
    try:
        await asyncio.sleep(1.0)  # nobody listens yet: the speaker keeps retrying
        assert not speaker.connected.is_set() and not task.done()
        site = web.TCPSite(runner, "127.0.0.1", port)
        await site.start()
        await asyncio.wait_for(speaker.connected.wait(), 10)
        await app[BUS_KEY].publish("ticket.called", ticket(7, "C101", 7, 1))
        await wait_for(lambda: speaker.played, 60, "the announcement file")
        assert wav_seconds(speaker.played[0]) > 1

        # the server goes away and comes back: the speaker reconnects and plays the next call
        await site.stop()
        for ws in list(app[WEBSOCKETS_KEY]):
            await ws.close()
        await wait_for(lambda: not speaker.connected.is_set(), 10, "the speaker to notice")
        site = web.TCPSite(runner, "127.0.0.1", port)
        await site.start()
        await asyncio.wait_for(speaker.connected.wait(), 10)
        for number in ("C102", "C103", "C104"):
            await app[BUS_KEY].publish("ticket.called", ticket(8, number, 7, 1))
        await wait_for(lambda: len(speaker.played) == 4, 60, "three more announcement files")
        # written one after another, in the order of the calls
        assert [p.name.split("-")[-1] for p in speaker.played] == ["C101.wav", "C102.wav", "C103.wav", "C104.wav"]
        assert [p.name.split("-")[1] for p in speaker.played] == ["00001", "00002", "00003", "00004"]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await runner.cleanup()


def test_socket_url_from_server_url() -> None:
    assert display_socket_url("https://clinic.example/base/", [3, 4]) == "wss://clinic.example/base/ws/display?rooms=3%2C4"


def test_the_speaker_imports_nothing_of_the_server() -> None:
    """clinicall-speaker installs alone (speaker/pyproject.toml: only aiohttp) and never imports the server."""
    import subprocess
    import tomllib

    probe = ("import sys, clinicall_speaker; "
             "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))")
    loaded = set(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                                timeout=60).stdout.split())
    server_side = {"clinicall", "audio", "queue_display", "telephony", "crm_bridge", "sqlalchemy", "pydantic",
                   "redis", "websockets", "gtts", "alembic", "asyncpg", "panoramisk"}
    assert not loaded & server_side and "aiohttp" in loaded
    with open(Path(REPO) / "speaker" / "pyproject.toml", "rb") as file:
        project = tomllib.load(file)["project"]
    assert [d.split(">")[0] for d in project["dependencies"]] == ["aiohttp"]
    assert project["scripts"]["clinicall-speaker"] == "clinicall_speaker:main"


def test_the_token_comes_from_a_file_or_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from clinicall_speaker import read_token

    (tmp_path / "token").write_text("file-token\n", encoding="utf-8")
    monkeypatch.setenv("CLINICALL_SPEAKER_TOKEN", "env-token")
    assert read_token(str(tmp_path / "token")) == "file-token"
    assert read_token(None) == "env-token"
    monkeypatch.delenv("CLINICALL_SPEAKER_TOKEN")
    with pytest.raises(SystemExit, match="CLINICALL_SPEAKER_TOKEN"):
        read_token(None)


def test_the_speaker_takes_announcements_out_of_a_batch_frame() -> None:
    speaker = Speaker(server="http://127.0.0.1:9", token="t", room_ids=(3,), out_dir=Path("unused"))
    ready = {"type": "announcement.ready", "id": "e1",
             "data": {"room_id": 3, "audio_url": "/audio/clips/a.wav", "number": "A001"}}
    other_room = {**ready, "id": "e2", "data": {**ready["data"], "room_id": 4}}
    called = {"type": "ticket.called", "id": "e0", "data": {"ticket": {"number": "A001"}}}
    speaker.handle(json.dumps({"type": "batch", "events": [called, ready, other_room]}))
    speaker.handle(json.dumps(ready))  # the same event again is played once
    assert speaker._queue.qsize() == 1 and speaker._queue.get_nowait()[1]["number"] == "A001"

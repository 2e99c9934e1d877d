"""A room's speaker: listens to the display websocket for its rooms' announcement.ready events, fetches
each clip and plays it (aplay, paplay or ffplay) or writes it to a folder, strictly one after another.
Reconnects by itself with back-off. Installable alone (only aiohttp): `pip install ./speaker`.

    clinicall-speaker --room 3 --server https://clinic.example [--token-file FILE] [--out-dir DIR]

The display token comes from --token-file, else CLINICALL_SPEAKER_TOKEN; it is sent as a bearer
header, never in a URL.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import logging
import os
import random
import shutil
import sys
import tempfile
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import aiohttp

log = logging.getLogger(__name__)

PLAYERS: dict[str, list[str]] = {
    "aplay": ["aplay", "-q"],
    "paplay": ["paplay"],
    "ffplay": ["ffplay", "-nodisp", "-autoexit", "-loglevel", "quiet"],
}


def find_player(preferred: str | None = None) -> list[str] | None:
    names = [preferred] if preferred else list(PLAYERS)
    for name in names:
        if name in PLAYERS and shutil.which(PLAYERS[name][0]):
            return PLAYERS[name]
    return None


TOKEN_ENV = "CLINICALL_SPEAKER_TOKEN"


def display_socket_url(server: str, room_ids: Sequence[int]) -> str:
    parts = urlsplit(server.rstrip("/"))
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme)
    if scheme is None or not parts.netloc:
        raise ValueError(f"--server must be an http(s) URL such as http://127.0.0.1:8080; got {server!r}")
    query = urlencode({"rooms": ",".join(str(r) for r in room_ids)})
    return urlunsplit((scheme, parts.netloc, parts.path + "/ws/display", query, ""))


@dataclass
class Speaker:
    server: str
    token: str
    room_ids: tuple[int, ...]
    out_dir: Path | None = None
    player: list[str] | None = None
    max_backoff: float = 10.0
    max_age_seconds: float = 300.0
    played: list[Path] = field(default_factory=list)  # files written with out_dir
    plays: int = 0  # announcements played or written
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    _queue: asyncio.Queue[tuple[float, dict[str, Any]]] = field(default_factory=asyncio.Queue)
    _seen: deque[str] = field(default_factory=lambda: deque(maxlen=500))
    _count: int = 0

    async def run(self) -> None:
        """Until cancelled: keep the websocket open and play what arrives."""
        if self.out_dir is None and self.player is None:
            raise RuntimeError("no audio player found (aplay, paplay or ffplay); pass --player or --out-dir")
        headers = {"Authorization": f"Bearer {self.token}"}
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30), headers=headers) as http:
            playing = asyncio.create_task(self._play_loop(http), name="speaker-play")
            try:
                await self._listen_forever(http)
            finally:
                playing.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await playing

    async def _listen_forever(self, http: aiohttp.ClientSession) -> None:
        url = display_socket_url(self.server, self.room_ids)
        delay = 0.5
        while True:
            try:
                async with http.ws_connect(url, heartbeat=20, max_msg_size=8 * 1024 * 1024,
                                           timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=10)) as ws:
                    log.info("speaker connected to %s for room(s) %s", self.server, self.room_ids)
                    self.connected.set()
                    delay = 0.5
                    async for message in ws:
                        if message.type == aiohttp.WSMsgType.TEXT:
                            self.handle(message.data)
                        elif message.type == aiohttp.WSMsgType.ERROR:
                            break
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # refused, reset, handshake rejected, server restart ...
                log.warning("speaker connection lost (%s: %s); retrying in %.1f s", type(exc).__name__, exc, delay)
            self.connected.clear()
            await asyncio.sleep(delay * (0.8 + 0.4 * random.random()))
            delay = min(delay * 2, self.max_backoff)

    def handle(self, message: str | bytes) -> None:
        try:
            frame = json.loads(message)
        except ValueError:
            return
        if isinstance(frame, dict) and frame.get("type") == "batch" and isinstance(frame.get("events"), list):
            for event in frame["events"]:  # events the server sent together, in order
                self._handle_frame(event)
        else:
            self._handle_frame(frame)

    def _handle_frame(self, frame: Any) -> None:
        if not isinstance(frame, dict) or frame.get("type") != "announcement.ready":
            return
        data = frame.get("data")
        if not isinstance(data, dict) or data.get("room_id") not in self.room_ids:
            return
        url = data.get("audio_url")
        if not isinstance(url, str) or not url.startswith("/audio/clips/"):
            return
        event_id = str(frame.get("id") or f"{url}:{data.get('at')}")
        if event_id in self._seen:
            return
        self._seen.append(event_id)
        self._queue.put_nowait((time.monotonic(), data))

    async def _play_loop(self, http: aiohttp.ClientSession) -> None:
        while True:
            received, data = await self._queue.get()
            try:
                if time.monotonic() - received > self.max_age_seconds:
                    # waited too long behind others (e.g. a stuck player): the patient has long gone in
                    log.info("skipped the stale announcement of %s", data.get("number"))
                    continue
                audio = await self._fetch(http, data["audio_url"])
                if audio is not None:
                    await self._output(data, audio)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("could not play the announcement of %s", data.get("number"))

    async def _fetch(self, http: aiohttp.ClientSession, path: str) -> bytes | None:
        url = self.server.rstrip("/") + path
        for attempt in range(3):
            try:
                async with http.get(url) as response:
                    if response.status == 200:
                        return await response.read()
                    log.warning("fetching %s gave HTTP %s", path, response.status)
                    if response.status in (401, 403, 404):
                        return None
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.warning("fetching %s failed: %s", path, exc)
            await asyncio.sleep(0.5 * (attempt + 1))
        return None

    async def _output(self, data: dict[str, Any], audio: bytes) -> None:
        self._count += 1
        number = "".join(c for c in str(data.get("number") or "") if c.isalnum())[:16] or "call"
        if self.out_dir is not None:
            stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
            target = self.out_dir / f"{stamp}-{self._count:05d}-{number}.wav"
            await asyncio.to_thread(_write_atomically, target, audio)
            self.played.append(target)
            self.plays += 1
            log.info("wrote %s", target)
            return
        assert self.player is not None
        with tempfile.TemporaryDirectory(prefix="clinicall-speaker-") as tmp:
            clip = Path(tmp) / f"{number}.wav"
            clip.write_bytes(audio)
            process = await asyncio.create_subprocess_exec(*self.player, str(clip), stdout=asyncio.subprocess.DEVNULL,
                                                           stderr=asyncio.subprocess.PIPE)
            try:
                _out, err = await process.communicate()
            except asyncio.CancelledError:
                process.kill()
                raise
            if process.returncode != 0:
                log.warning("%s failed: %s", self.player[0], err.decode(errors="replace").strip())
            self.plays += 1


def _write_atomically(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.part")
    tmp.write_bytes(data)
    os.replace(tmp, target)


def read_token(token_file: str | None) -> str:
    if token_file:
        token = Path(token_file).read_text(encoding="utf-8").strip()
        if not token:
            raise SystemExit(f"{token_file} is empty; put the room's display token in it")
        return token
    token = os.environ.get(TOKEN_ENV, "").strip()
    if not token:
        raise SystemExit(f"no display token: pass --token-file FILE or set {TOKEN_ENV}")
    return token


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--room", type=int, action="append", required=True, help="room id (repeatable)")
    parser.add_argument("--server", required=True, help="clinicall's URL, e.g. https://clinic.example")
    parser.add_argument("--token-file", help=f"a file holding the display token (default: ${TOKEN_ENV})")
    parser.add_argument("--out-dir", help="write each announcement as a WAV file here instead of playing it")
    parser.add_argument("--player", choices=sorted(PLAYERS), help="default: the first one installed")


async def run_from_arguments(args: argparse.Namespace) -> int:
    token = read_token(args.token_file)
    out_dir = Path(args.out_dir) if args.out_dir else None
    player = None if out_dir else find_player(args.player)
    if out_dir is None and player is None:
        print("No audio player found (aplay, paplay or ffplay); install one or use --out-dir.", file=sys.stderr)
        return 2
    try:
        display_socket_url(args.server, args.room)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    speaker = Speaker(server=args.server, token=token, room_ids=tuple(args.room), out_dir=out_dir, player=player)
    print(f"speaker for room(s) {', '.join(map(str, args.room))} -> {out_dir or player[0]}", flush=True)  # type: ignore[index]
    await speaker.run()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="clinicall-speaker", description="Play a room's announcements.")
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        return asyncio.run(run_from_arguments(args))
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())

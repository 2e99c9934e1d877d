"""One announcement clip: chime, then each language in order, repeated with a gap. Clips are named
by the hash of what they contain, so the same call twice is a file that already exists."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audio.chime import chime_frames
from audio.tts import NoSpeech, Renderer, Speech
from audio.wav import CHANNELS, RATE, SAMPLE_WIDTH, duration, read_frames, silence, write_frames
from audio.wording import Wording, announcement_segments, announcement_text

log = logging.getLogger(__name__)

CLIP_NAME = re.compile(r"^[0-9a-f]{64}$")
SEGMENT_GAP_SECONDS = 0.1
AFTER_CHIME_SECONDS = 0.3
FORMAT_VERSION = 1
PIECES_MEMORY_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class Sound:
    """How an announcement sounds (from settings.audio)."""

    languages: tuple[str, ...] = ("vi", "en", "zh")
    repeat: int = 1
    gap_seconds: float = 0.8
    language_gap_seconds: float = 0.4
    chime: bool = True


@dataclass
class Announcement:
    name: str
    path: Path
    texts: dict[str, str]
    languages: list[str]  # the languages actually spoken (a language no engine could say is left out)
    engines: dict[str, list[str]]
    reused: bool  # the clip existed already
    all_cached: bool  # every piece of speech came from the cache
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0  # how long the clip plays

    @property
    def url(self) -> str:
        return f"/audio/clips/{self.name}.wav"


def prune_clips(clips_dir: Path, keep_seconds: float, now: float | None = None) -> int:
    """Delete clips not used for `keep_seconds` (and stray temporary files); returns how many."""
    cutoff = (now if now is not None else time.time()) - keep_seconds
    removed = 0
    try:
        entries = list(os.scandir(clips_dir))
    except FileNotFoundError:
        return 0
    for entry in entries:
        try:
            if entry.is_file() and entry.name.endswith(".wav") and entry.stat().st_mtime < cutoff:
                os.unlink(entry.path)
                removed += 1
        except FileNotFoundError:
            continue
    return removed


def clip_path(clips_dir: Path, name: str) -> Path | None:
    """The file for a clip name, or None if the name is not a clip name (no path can escape clips_dir)."""
    if not CLIP_NAME.fullmatch(name):
        return None
    return clips_dir / f"{name}.wav"


class AnnouncementBuilder:
    """Blocking: run it in a thread."""

    def __init__(self, renderer: Renderer, wording: Wording, sound: Sound, clips_dir: Path,
                 pieces_pool: Executor | None = None) -> None:
        self.renderer = renderer
        self.wording = wording
        self.sound = sound
        self.clips_dir = clips_dir
        self.pieces_pool = pieces_pool  # renders the pieces of one announcement side by side on a miss
        self._chime: bytes | None = None
        # Speech files are named by their content and never change: their frames are kept in memory.
        self._pieces: OrderedDict[Path, bytes] = OrderedDict()
        self._pieces_bytes = 0
        self._pieces_lock = threading.Lock()

    def chime(self) -> bytes:
        if self._chime is None:
            self._chime = chime_frames()
        return self._chime

    def speech_for(self, number: str, room: Mapping[str, Any], lang: str) -> list[Speech]:
        return [self.renderer.speak(segment, lang)
                for segment in announcement_segments(number, room, lang, self.wording)]

    def build(self, number: str, room: Mapping[str, Any], languages: Sequence[str] | None = None) -> Announcement:
        languages = list(languages or self.sound.languages)
        texts: dict[str, str] = {}
        planned: list[tuple[str, list[Future[Speech] | Speech]]] = []
        problems: list[str] = []
        for lang in languages:
            try:
                texts[lang] = announcement_text(number, room, lang, self.wording)
                segments = announcement_segments(number, room, lang, self.wording)
            except ValueError as exc:
                problems.append(f"{lang}: {exc}")
                continue
            if self.pieces_pool is None:
                try:
                    planned.append((lang, [self.renderer.speak(segment, lang) for segment in segments]))
                except NoSpeech as exc:
                    problems.append(f"{lang}: {exc}")
            else:  # only the pieces not in the cache go to the pool (a hit needs no thread hop)
                planned.append((lang, [self.renderer.speak_cached(segment, lang)
                                       or self.pieces_pool.submit(self.renderer.speak, segment, lang)
                                       for segment in segments]))
        spoken: list[tuple[str, list[Speech]]] = []
        for lang, pieces in planned:
            try:
                spoken.append((lang, [p.result() if isinstance(p, Future) else p for p in pieces]))
            except NoSpeech as exc:
                problems.append(f"{lang}: {exc}")
        for problem in problems:
            log.error("announcement of %s: left out %s", number, problem)
        recipe = {
            "v": FORMAT_VERSION,
            "speech": [[lang, [[s.engine, s.key] for s in pieces]] for lang, pieces in spoken],
            "repeat": self.sound.repeat, "gap": self.sound.gap_seconds,
            "language_gap": self.sound.language_gap_seconds, "chime": self.sound.chime,
        }
        name = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()
        path = self.clips_dir / f"{name}.wav"
        reused = path.is_file()
        if reused:
            with contextlib.suppress(OSError):
                os.utime(path)  # recently used: kept by prune_clips
            seconds = duration(path)
        else:
            frames = b"".join(self._frames(spoken))
            write_frames(path, frames)
            seconds = len(frames) / (RATE * CHANNELS * SAMPLE_WIDTH)
        return Announcement(
            name=name, path=path, texts=texts, languages=[lang for lang, _ in spoken],
            engines={lang: [s.engine for s in pieces] for lang, pieces in spoken},
            reused=reused, all_cached=all(s.cached for _, pieces in spoken for s in pieces), problems=problems,
            seconds=seconds,
        )

    def piece_frames(self, path: Path) -> bytes:
        with self._pieces_lock:
            frames = self._pieces.get(path)
            if frames is not None:
                self._pieces.move_to_end(path)
                return frames
        frames = read_frames(path)
        with self._pieces_lock:
            if path not in self._pieces:
                self._pieces[path] = frames
                self._pieces_bytes += len(frames)
            while self._pieces_bytes > PIECES_MEMORY_BYTES and len(self._pieces) > 1:
                self._pieces_bytes -= len(self._pieces.popitem(last=False)[1])
        return frames

    def _frames(self, spoken: list[tuple[str, list[Speech]]]) -> list[bytes]:
        frames: list[bytes] = []
        if self.sound.chime:
            frames += [self.chime(), silence(AFTER_CHIME_SECONDS)]
        voice: list[bytes] = []
        for index, (_lang, pieces) in enumerate(spoken):
            if index:
                voice.append(silence(self.sound.language_gap_seconds))
            for number, speech in enumerate(pieces):
                if number:
                    voice.append(silence(SEGMENT_GAP_SECONDS))
                voice.append(self.piece_frames(speech.path))
        for round_number in range(self.sound.repeat if voice else 0):
            if round_number:
                frames.append(silence(self.sound.gap_seconds))
            frames += voice
        return frames

"""The audio room's pieces built from settings: engines, cache, renderer, announcement builder."""

from __future__ import annotations

from concurrent.futures import Executor
from pathlib import Path

from audio.announcement import AnnouncementBuilder, Sound
from audio.engines import Engine
from audio.engines.espeak import EspeakEngine
from audio.engines.gtts_engine import GttsEngine
from audio.engines.recorded import RecordedEngine
from audio.tts import Renderer, TtsCache
from audio.wording import wording_from_settings
from clinicall.settings import AudioSettings


def make_engine(name: str, audio: AudioSettings) -> Engine:
    if name == "espeak":
        return EspeakEngine(audio.espeak_voices, audio.espeak_speed)
    if name == "gtts":
        return GttsEngine(audio.gtts_url, audio.gtts_timeout_seconds)
    if name == "recorded":
        return RecordedEngine(Path(audio.recorded_dir))
    raise ValueError(f"unknown text-to-speech engine {name!r}")


def make_engines(audio: AudioSettings) -> list[Engine]:
    return [make_engine(name, audio) for name in dict.fromkeys(audio.engines)]


def make_renderer(audio: AudioSettings, background: Executor | None = None,
                  engines: list[Engine] | None = None) -> Renderer:
    return Renderer(engines if engines is not None else make_engines(audio), TtsCache(Path(audio.cache_dir)),
                    online_timeout=audio.gtts_timeout_seconds, retry_after=audio.gtts_retry_after_seconds,
                    background=background)


def sound_from_settings(audio: AudioSettings) -> Sound:
    return Sound(languages=tuple(audio.languages), repeat=audio.repeat, gap_seconds=audio.gap_seconds,
                 language_gap_seconds=audio.language_gap_seconds, chime=audio.chime)


def clips_dir(audio: AudioSettings) -> Path:
    return Path(audio.cache_dir) / "clips"


def make_builder(audio: AudioSettings, renderer: Renderer, pieces_pool: Executor | None = None) -> AnnouncementBuilder:
    return AnnouncementBuilder(renderer, wording_from_settings(audio), sound_from_settings(audio), clips_dir(audio),
                               pieces_pool)

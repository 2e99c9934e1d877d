"""Engines, the speech cache, the fallback order, gTTS's deadline and circuit breaker, and clips."""

from __future__ import annotations

import time
import wave
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from audio.announcement import AnnouncementBuilder, Sound, clip_path
from audio.chime import chime_frames
from audio.engines import EngineError
from audio.engines.espeak import EspeakEngine
from audio.engines.gtts_engine import GttsEngine
from audio.service import make_builder, make_renderer
from audio.tts import CircuitBreaker, NoSpeech, Renderer, TtsCache, run_with_deadline
from audio.wav import RATE, duration, is_normal, read_frames
from audio.wording import Wording
from clinicall.settings import AudioSettings
from tests.audio.conftest import BlackHole

VOICES = {"vi": "vi", "en": "en-us", "zh": "cmn-latn-pinyin"}
ROOM = {"id": 3, "kind": "consult", "number": 3, "names": {}}


@pytest.mark.parametrize(("lang", "text"), [("vi", "Mời số a mười lăm"), ("en", "Number A fifteen"),
                                            ("zh", "请A十五号到三号诊室就诊")])
def test_espeak_speaks_each_language_in_one_format(tmp_path: Path, lang: str, text: str) -> None:
    target = tmp_path / f"{lang}.wav"
    EspeakEngine(VOICES).synthesize(text, lang, target)
    assert is_normal(target)
    assert 0.5 < duration(target) < 8


def test_chinese_goes_to_espeak_as_pinyin_and_english_letters_as_letter_names() -> None:
    engine = EspeakEngine(VOICES)
    assert engine.prepare("请A十五号", "zh") == ("qing3 A shi2 wu3 hao4", False)
    spoken, ssml = engine.prepare("Number A fifteen", "en")
    assert ssml and '<say-as interpret-as="characters">A</say-as>' in spoken
    assert engine.prepare("Mời số a", "vi") == ("Mời số a", False)


def test_cache_hit_needs_no_engine(tmp_path: Path) -> None:
    cache = TtsCache(tmp_path)
    first = Renderer([EspeakEngine(VOICES)], cache, online_timeout=1)
    made = first.speak("mười lăm", "vi")
    assert (made.engine, made.cached, first.engine_calls) == ("espeak", False, 1)

    # the same cache with an espeak-ng that does not exist: served from the cache, no engine runs
    second = Renderer([EspeakEngine(VOICES, binary="/nonexistent/espeak-ng")], cache, online_timeout=1)
    hit = second.speak("mười lăm", "vi")
    assert (hit.path, hit.cached, second.engine_calls) == (made.path, True, 0)
    with pytest.raises(NoSpeech, match="not available"):
        second.speak("mười sáu", "vi")


def test_speak_cached_is_what_speak_returns_without_rendering(tmp_path: Path) -> None:
    """The announcement's cache-hit path takes speech from here without a thread hop: the same speech
    speak() would return, and nothing when speak() would render (an offline engine earlier in the order)."""
    from audio.engines.recorded import RecordedEngine, write_manifest
    from audio.wav import silence, write_frames

    write_frames(tmp_path / "rec" / "vi" / "moi_so.wav", silence(0.2))
    write_manifest(tmp_path / "rec" / "vi", {"mời số": "moi_so.wav"})
    renderer = Renderer([RecordedEngine(tmp_path / "rec"), EspeakEngine(VOICES)], TtsCache(tmp_path / "cache"),
                        online_timeout=1)
    assert renderer.speak_cached("mời số", "vi") is None and renderer.speak_cached("hai", "en") is None
    recorded, spoken = renderer.speak("mời số", "vi"), renderer.speak("hai", "en")  # en: no recorded set
    calls = renderer.engine_calls
    assert renderer.speak_cached("mời số", "vi") == renderer.speak("mời số", "vi")
    assert renderer.speak_cached("mời số", "vi").path == recorded.path and recorded.engine == "recorded"
    assert renderer.speak_cached("hai", "en").path == spoken.path and spoken.engine == "espeak"
    assert renderer.engine_calls == calls


def test_cache_key_holds_engine_voice_and_text(tmp_path: Path) -> None:
    cache = TtsCache(tmp_path)
    paths = {cache.path("espeak", "vi", "mười lăm"), cache.path("espeak", "vi-vn-x-south", "mười lăm"),
             cache.path("espeak", "vi", "mười bốn"), cache.path("gtts", "vi", "mười lăm")}
    assert len(paths) == 4
    north = Renderer([EspeakEngine(VOICES)], cache, online_timeout=1).speak("mười lăm", "vi")
    south = Renderer([EspeakEngine({**VOICES, "vi": "vi-vn-x-south"})], cache, online_timeout=1).speak("mười lăm", "vi")
    assert north.path != south.path and north.voice == "vi" and south.voice == "vi-vn-x-south"
    assert north.path.is_file() and south.path.is_file()


def test_gtts_to_an_unanswering_endpoint_gives_up_at_the_deadline(blackhole: BlackHole) -> None:
    engine = GttsEngine(blackhole.url, timeout_seconds=30)  # its own timeout is long: the deadline must cut it
    started = time.monotonic()
    with pytest.raises(EngineError, match="no answer within 0.5 s"):
        run_with_deadline(lambda: engine.fetch_mp3("Mời số a mười lăm", "vi"), 0.5, "gtts")
    assert time.monotonic() - started < 5
    assert blackhole.connected.wait(5), "gTTS never reached the local endpoint"
    deadline = time.monotonic() + 5
    while not blackhole.requests and time.monotonic() < deadline:
        time.sleep(0.05)
    assert blackhole.requests[0].startswith(b"POST /_/TranslateWebserverUi/data/batchexecute ")


def test_gtts_failure_is_an_engine_error(tmp_path: Path) -> None:
    closed_port = "http://127.0.0.1:9/_/TranslateWebserverUi/data/batchexecute"
    with pytest.raises(EngineError, match="gTTS failed"):
        GttsEngine(closed_port, timeout_seconds=2).fetch_mp3("xin chào", "vi")


def test_circuit_breaker_rests_after_a_failure() -> None:
    now = [100.0]
    breaker = CircuitBreaker(retry_after=60, clock=lambda: now[0])
    assert breaker.allow()
    breaker.failed("timeout")
    assert not breaker.allow() and breaker.last_error == "timeout"
    now[0] += 59
    assert not breaker.allow()
    now[0] += 2
    assert breaker.allow()
    breaker.succeeded()
    assert breaker.allow() and breaker.last_error is None


def test_preferred_gtts_unreachable_espeak_serves_at_once(tmp_path: Path, blackhole: BlackHole) -> None:
    timeout = 3.0
    gtts = GttsEngine(blackhole.url, timeout_seconds=timeout)
    with ThreadPoolExecutor(max_workers=1) as background:
        renderer = Renderer([gtts, EspeakEngine(VOICES)], TtsCache(tmp_path), online_timeout=timeout,
                            retry_after=300, background=background)
        started = time.monotonic()
        speech = renderer.speak("hai mươi tư", "vi")
        served_in = time.monotonic() - started
    assert speech.engine == "espeak" and speech.path.is_file()
    assert served_in < timeout, "the offline engine must not wait for gTTS"
    # gTTS was either left to the background (and failed there, so it rests) or stood aside here
    # because this machine cannot decode MP3; either way it never silenced the call
    breaker = renderer.breakers["gtts"]
    assert (not breaker.allow()) or not gtts.available()


def test_gtts_in_the_fallback_chain_never_holds_up_a_call(tmp_path: Path, blackhole: BlackHole) -> None:
    """gTTS made usable (as with ffmpeg installed) but its endpoint never answers: espeak serves while
    gTTS is still waiting in the background; gTTS then hits its deadline and rests (no second request)."""
    deadline = 3.0
    gtts = GttsEngine(blackhole.url, timeout_seconds=30, decoder=["ffmpeg"])
    assert gtts.available()
    with ThreadPoolExecutor(max_workers=1) as background:
        renderer = Renderer([gtts, EspeakEngine(VOICES)], TtsCache(tmp_path), online_timeout=deadline,
                            retry_after=300, background=background)
        speech = renderer.speak("một trăm linh năm", "vi")
        assert speech.engine == "espeak"
        assert renderer.breakers["gtts"].failures == 0, "the call was served before gTTS gave up"
    assert blackhole.connected.is_set(), "the background gTTS attempt went to the local endpoint"
    assert not renderer.breakers["gtts"].allow() and "no answer" in str(renderer.breakers["gtts"].last_error)
    connections = len(blackhole.requests)
    assert renderer.speak("một trăm mười", "vi").engine == "espeak"  # gTTS rests: not even a background try
    assert len(blackhole.requests) == connections

    # with no offline engine left, gTTS is tried on the hot path, bounded by its deadline
    only_online = Renderer([gtts, EspeakEngine(VOICES, binary="/nonexistent/espeak-ng")], TtsCache(tmp_path),
                           online_timeout=1.0)
    started = time.monotonic()
    with pytest.raises(NoSpeech, match="no answer within 1 s"):
        only_online.speak("hai mươi lăm", "vi")
    assert 1.0 <= time.monotonic() - started < 15


def test_all_engines_failing_says_why(tmp_path: Path, blackhole: BlackHole) -> None:
    renderer = Renderer([EspeakEngine(VOICES, binary="/nonexistent/espeak-ng"),
                         GttsEngine(blackhole.url, timeout_seconds=1)], TtsCache(tmp_path), online_timeout=1)
    with pytest.raises(NoSpeech) as failure:
        renderer.speak("mười lăm", "vi")
    assert "espeak: not available here" in str(failure.value)
    assert "gtts" in str(failure.value)


def test_chime_is_two_tones_in_our_format() -> None:
    frames = chime_frames()
    assert 1.0 < len(frames) / 2 / RATE < 2.0
    assert max(abs(int.from_bytes(frames[i:i + 2], "little", signed=True)) for i in range(0, len(frames), 2)) > 8000


def test_announcement_is_chime_then_languages_repeated(audio_settings: Callable[..., AudioSettings]) -> None:
    audio = audio_settings(repeat=2, gap_seconds=0.5, language_gap_seconds=0.4)
    builder = make_builder(audio, make_renderer(audio))
    announcement = builder.build("A015", ROOM)
    assert announcement.languages == ["vi", "en", "zh"] and not announcement.reused
    assert announcement.texts["vi"] == "Mời số a mười lăm vào phòng khám số ba"
    assert announcement.url == f"/audio/clips/{announcement.name}.wav"
    with wave.open(str(announcement.path), "rb") as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (22050, 1, 2)
        total = w.getnframes() / w.getframerate()

    speech = 0.0
    pieces = 0
    for lang in ("vi", "en", "zh"):
        for item in builder.speech_for("A015", ROOM, lang):
            speech += len(read_frames(item.path)) / 2 / RATE
            pieces += 1
    one_round = speech + 0.1 * (pieces - 3) + 0.4 * 2
    expected = len(chime_frames()) / 2 / RATE + 0.3 + 2 * one_round + 0.5
    assert abs(total - expected) < 0.01
    assert 6 < total < 60

    again = builder.build("A015", ROOM)
    assert again.reused and again.all_cached and again.path == announcement.path


def test_a_language_no_engine_can_say_is_left_out(tmp_path: Path) -> None:
    renderer = Renderer([EspeakEngine({"vi": "vi"})], TtsCache(tmp_path), online_timeout=1)
    builder = AnnouncementBuilder(renderer, Wording(), Sound(languages=("vi", "zh")), tmp_path / "clips")
    announcement = builder.build("B004", ROOM)
    assert announcement.languages == ["vi"] and announcement.problems and announcement.path.is_file()


@pytest.mark.parametrize("name", ["../../etc/passwd", "abc", "A" * 64, "0" * 63, "0" * 64 + "/x"])
def test_clip_names_cannot_escape(tmp_path: Path, name: str) -> None:
    assert clip_path(tmp_path, name) is None
    assert clip_path(tmp_path, "0" * 64) == tmp_path / f"{'0' * 64}.wav"


def test_unused_clips_are_pruned_and_reused_ones_kept(audio_settings: Callable[..., AudioSettings]) -> None:
    import os

    from audio.announcement import prune_clips

    audio = audio_settings(languages=["vi"], chime=False)
    builder = make_builder(audio, make_renderer(audio))
    old = builder.build("A001", ROOM)
    kept = builder.build("A002", ROOM)
    os.utime(old.path, (1, 1))
    os.utime(kept.path, (1, 1))
    assert builder.build("A002", ROOM).reused  # reuse marks it as used now
    assert prune_clips(old.path.parent, keep_seconds=3600) == 1
    assert not old.path.exists() and kept.path.exists()
    assert builder.build("A001", ROOM).path == old.path and old.path.exists()  # re-made from the cache
    assert prune_clips(old.path.parent / "missing", 1) == 0

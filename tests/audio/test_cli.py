"""`clinicall audio record-set`, the recorded engine, and `clinicall audio warm`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from audio.engines.espeak import EspeakEngine
from audio.engines.recorded import RecordedEngine
from audio.service import make_builder, make_renderer
from audio.tts import Renderer, TtsCache
from audio.wording import announcement_segments
from clinicall.cli import main
from clinicall.settings import AudioSettings

ROOM = {"id": 3, "kind": "consult", "number": 3, "names": {}}


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Path]:
    paths = {"cache": tmp_path / "cache", "recorded": tmp_path / "recorded"}
    monkeypatch.setenv("CLINICALL_AUDIO__CACHE_DIR", str(paths["cache"]))
    monkeypatch.setenv("CLINICALL_AUDIO__RECORDED_DIR", str(paths["recorded"]))
    monkeypatch.setenv("CLINICALL_AUDIO__ENGINES", '["espeak"]')
    monkeypatch.setenv("CLINICALL_DATABASE__URL", f"sqlite+aiosqlite:///{tmp_path / 'none.db'}")
    return paths


def test_record_set_then_recorded_engine_speaks_whole_announcements(env: dict[str, Path]) -> None:
    assert main(["audio", "record-set", "--languages", "vi"]) == 0
    manifest = json.loads((env["recorded"] / "vi" / "manifest.json").read_text(encoding="utf-8"))["phrases"]
    assert manifest["mời số"] == "moi_so.wav" and manifest["lăm"] and manifest["phòng khám số"]
    assert (env["recorded"] / "vi" / "moi_so.wav").is_file()

    recorded = RecordedEngine(env["recorded"])
    for segment in announcement_segments("C124", ROOM, "vi"):
        assert recorded.can_say(segment, "vi"), segment
    assert not recorded.can_say("phòng nha khoa", "vi")
    assert recorded.voice("en") is None  # no English set: the engine stands aside for English

    audio = AudioSettings(cache_dir=str(env["cache"]), recorded_dir=str(env["recorded"]),
                          engines=["recorded", "espeak"], languages=["vi", "en"])
    announcement = make_builder(audio, make_renderer(audio)).build("C124", ROOM)
    assert announcement.engines == {"vi": ["recorded"] * 4, "en": ["espeak"] * 4}

    # a phrase the set lacks falls back to the next engine
    renderer = Renderer([recorded, EspeakEngine({"vi": "vi"})], TtsCache(env["cache"]), online_timeout=1)
    assert renderer.speak("phòng nha khoa", "vi").engine == "espeak"

    # the set's fingerprint is in the cache key: re-recording a clip gives new speech
    before = recorded.voice("vi")
    (env["recorded"] / "vi" / "vao.wav").write_bytes((env["recorded"] / "vi" / "moi_so.wav").read_bytes())
    (env["recorded"] / "vi" / "manifest.json").touch()
    assert RecordedEngine(env["recorded"]).voice("vi") != before


def test_recorded_manifest_cannot_point_outside_its_folder(tmp_path: Path) -> None:
    folder = tmp_path / "vi"
    folder.mkdir()
    (tmp_path / "secret.wav").write_bytes(b"RIFF")
    (folder / "manifest.json").write_text(json.dumps({"phrases": {"mời": "../secret.wav"}}), encoding="utf-8")
    assert not RecordedEngine(tmp_path).can_say("mời", "vi")


def test_warm_prerenders_numbers_and_rooms(env: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audio", "warm", "--prefixes", "A,B", "--rooms", "consult:1,counter:2", "--numbers", "5",
                 "--languages", "vi,zh"]) == 0
    out = capsys.readouterr()
    assert "warming" in out.out and "done" in out.out
    renderer = Renderer([EspeakEngine({"vi": "vi", "zh": "cmn-latn-pinyin"}, binary="/nonexistent/espeak-ng")],
                        TtsCache(env["cache"]), online_timeout=1)
    for number in ("A001", "A005", "B004"):
        for room in (ROOM | {"number": 1}, {"id": 2, "kind": "counter", "number": 2}):
            for lang in ("vi", "zh"):
                for segment in announcement_segments(number, room, lang):
                    assert renderer.cached(segment, lang) is not None, (lang, segment)
    assert renderer.engine_calls == 0


def test_warm_without_catalog_says_what_to_pass(env: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audio", "warm", "--numbers", "3"]) == 2
    assert "--prefixes" in capsys.readouterr().err

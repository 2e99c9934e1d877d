"""gTTS (Google's online text-to-speech). Only as good as the network: the renderer runs it with a
hard deadline and a circuit breaker, and never on the hot path when an offline engine can serve.
It produces MP3, decoded with ffmpeg or with sox built with MP3 support; without either it stands aside."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from audio.engines import EngineError
from audio.wav import AudioFormatError, normalise, read_frames, trim_silence, write_frames

GTTS_LANGS = {"vi": "vi", "en": "en", "zh": "zh-CN"}


def mp3_decoder() -> list[str] | None:
    """The command prefix that turns an MP3 file into WAV, or None when nothing here can."""
    if shutil.which("ffmpeg"):
        return ["ffmpeg"]
    sox = shutil.which("sox")
    if sox:
        result = subprocess.run([sox, "-h"], capture_output=True, text=True, timeout=10, check=False)
        formats = next((line for line in result.stdout.splitlines() if line.startswith("AUDIO FILE FORMATS")), "")
        if "mp3" in formats.split(":", 1)[-1].split():
            return ["sox"]
    return None


def _gtts_class() -> Any:
    from gtts import gTTS

    class RoutedGTTS(gTTS):  # type: ignore[misc]
        """gTTS whose requests go to a configured URL (Google's by default; a proxy or test endpoint)."""

        endpoint: str = ""

        def _prepare_requests(self) -> list[Any]:
            prepared = super()._prepare_requests()
            for request in prepared:
                request.prepare_url(self.endpoint, None)
            return prepared

    return RoutedGTTS


class GttsEngine:
    name = "gtts"
    online = True

    def __init__(self, endpoint: str, timeout_seconds: float, decoder: list[str] | None | bool = False) -> None:
        """`decoder`: the MP3 decoder command prefix (["ffmpeg"] or ["sox"]); False looks it up on first use."""
        self.endpoint = endpoint
        self.timeout_seconds = timeout_seconds
        self._decoder = decoder

    def voice(self, lang: str) -> str | None:
        return GTTS_LANGS.get(lang)

    def decoder(self) -> list[str] | None:
        if self._decoder is False:
            self._decoder = mp3_decoder()
        return self._decoder  # type: ignore[return-value]

    def available(self) -> bool:
        return self.decoder() is not None

    def can_say(self, text: str, lang: str) -> bool:
        return self.voice(lang) is not None

    def fetch_mp3(self, text: str, lang: str) -> bytes:
        """The MP3 bytes from the endpoint; raises EngineError on any failure or after the timeout."""
        voice = self.voice(lang)
        if voice is None:
            raise EngineError(f"gTTS has no voice for {lang}")
        tts = _gtts_class()(text, lang=voice, lang_check=False, timeout=self.timeout_seconds)
        tts.endpoint = self.endpoint
        try:
            chunks = list(tts.stream())
        except Exception as exc:  # gTTSError, requests errors, anything the network throws
            raise EngineError(f"gTTS failed: {exc}") from None
        if not chunks:
            raise EngineError("gTTS returned no audio")
        return b"".join(chunks)

    def synthesize(self, text: str, lang: str, target: Path) -> None:
        decoder = self.decoder()
        if decoder is None:
            raise EngineError("gTTS needs ffmpeg or sox with MP3 support to decode its MP3; neither is installed")
        mp3 = self.fetch_mp3(text, lang)
        with tempfile.TemporaryDirectory(prefix="clinicall-gtts-") as tmp:
            source = Path(tmp) / "speech.mp3"
            source.write_bytes(mp3)
            normal = Path(tmp) / "normal.wav"
            try:
                if decoder[0] == "ffmpeg":
                    raw = Path(tmp) / "raw.wav"
                    result = subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(source), str(raw)],
                                            capture_output=True, timeout=30, check=False)
                    if result.returncode != 0:
                        raise EngineError(f"ffmpeg could not decode gTTS's MP3: {result.stderr.decode(errors='replace')}")
                    normalise(raw, normal)
                else:
                    normalise(source, normal, source_type="mp3")
                frames = trim_silence(read_frames(normal))
            except AudioFormatError as exc:
                raise EngineError(str(exc)) from None
        write_frames(target, frames)

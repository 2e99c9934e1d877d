"""espeak-ng, offline: vi, en-us, and Chinese through pinyin (cmn-latn-pinyin)."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from xml.sax.saxutils import escape

from audio.engines import EngineError
from audio.wav import AudioFormatError, normalise, read_frames, trim_silence, write_frames

_SINGLE_CAPITAL = re.compile(r"(?<![\w])([A-Z])(?![\w])")
_HAN = re.compile(r"[\u3400-\u9fff]")


class EspeakEngine:
    name = "espeak"
    online = False

    def __init__(self, voices: Mapping[str, str], speed: int = 150, binary: str = "espeak-ng",
                 timeout_seconds: float = 15.0) -> None:
        self.voices = dict(voices)
        self.speed = speed
        self.binary = binary
        self.timeout_seconds = timeout_seconds

    def voice(self, lang: str) -> str | None:
        return self.voices.get(lang)

    def available(self) -> bool:
        return shutil.which(self.binary) is not None

    def can_say(self, text: str, lang: str) -> bool:
        return self.voice(lang) is not None

    def prepare(self, text: str, lang: str) -> tuple[str, bool]:
        """The text espeak-ng is given, and whether it is SSML."""
        voice = self.voice(lang) or ""
        if "pinyin" in voice and _HAN.search(text):
            from pypinyin import Style, lazy_pinyin

            return " ".join(lazy_pinyin(text, style=Style.TONE3, neutral_tone_with_five=True)), False
        if lang == "en" and _SINGLE_CAPITAL.search(text):
            # a lone capital is a ticket letter: say its name ("ay"), not the article ("a")
            body = _SINGLE_CAPITAL.sub(lambda m: f'<say-as interpret-as="characters">{m.group(1)}</say-as>',
                                       escape(text))
            return f"<speak>{body}</speak>", True
        return text, False

    def synthesize(self, text: str, lang: str, target: Path) -> None:
        voice = self.voice(lang)
        if voice is None:
            raise EngineError(f"espeak-ng has no voice configured for {lang}")
        binary = shutil.which(self.binary)
        if binary is None:
            raise EngineError(f"{self.binary} is not installed")
        spoken, ssml = self.prepare(text, lang)
        with tempfile.TemporaryDirectory(prefix="clinicall-espeak-") as tmp:
            raw = Path(tmp) / "out.wav"
            command = [binary, "-v", voice, "-s", str(self.speed), "-w", str(raw)]
            if ssml:
                command.append("-m")
            try:
                result = subprocess.run(command, input=spoken.encode(), capture_output=True,
                                        timeout=self.timeout_seconds, check=False)
            except subprocess.TimeoutExpired:
                raise EngineError(f"espeak-ng took longer than {self.timeout_seconds} s") from None
            if result.returncode != 0 or not raw.exists():
                raise EngineError(f"espeak-ng failed ({result.returncode}): {result.stderr.decode(errors='replace').strip()}")
            try:
                normal = Path(tmp) / "normal.wav"
                normalise(raw, normal)
                frames = trim_silence(read_frames(normal))
            except AudioFormatError as exc:
                raise EngineError(str(exc)) from None
        if not frames:
            raise EngineError(f"espeak-ng produced no sound for {text!r}")
        write_frames(target, frames)

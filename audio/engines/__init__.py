"""Text-to-speech engines; each writes our WAV format (see audio.wav) for one text in one language."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol


class EngineError(Exception):
    """The engine could not speak this text now (the next engine in the fallback order is tried)."""


class Engine(Protocol):
    name: str
    online: bool  # needs the network: never on the hot path when an offline engine can serve

    def voice(self, lang: str) -> str | None:
        """The voice used for `lang` (part of the cache key), or None if this engine cannot speak it."""

    def available(self) -> bool:
        """Installed and usable now (binary present, recorded set there ...)."""

    def can_say(self, text: str, lang: str) -> bool:
        """Whether this engine can speak this exact text (a recorded set needs every phrase)."""

    def synthesize(self, text: str, lang: str, target: Path) -> None:
        """Write the speech for `text` to `target` (22050 Hz mono 16-bit WAV). Raises EngineError."""

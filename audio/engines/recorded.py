"""Recorded clip sets: one folder per language with a WAV per word or phrase and a manifest.json
that says which phrase each file speaks. A text is spoken by joining the clips of its phrases
(longest phrase first); the engine stands aside when any phrase of the text has no clip.

    <recorded_dir>/vi/manifest.json   {"phrases": {"mời số": "moi_so.wav", "mười": "muoi.wav", ...}}
    <recorded_dir>/vi/moi_so.wav ...

`clinicall audio record-set` makes a set from any engine; real recordings can replace the files.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from pathlib import Path

from audio.engines import EngineError
from audio.wav import AudioFormatError, read_frames, silence, write_frames

MANIFEST = "manifest.json"
JOIN_GAP_SECONDS = 0.06
_WORD = re.compile(r"[\w']+(?:-[\w']+)*")


def tokens(text: str, lang: str) -> list[str]:
    """Words (Chinese: one token per character, Latin letter runs kept whole), lowercased."""
    text = unicodedata.normalize("NFC", text).lower()
    if lang == "zh":
        out: list[str] = []
        for run in re.findall(r"[a-z0-9]+|[^\sa-z0-9\W]", text):
            out.append(run)
        return out
    return _WORD.findall(text)


def slug(phrase: str) -> str:
    """An ASCII file name for a phrase: "mời số" -> "moi_so"; Chinese falls back to a short hash."""
    folded = unicodedata.normalize("NFKD", phrase.replace("đ", "d").replace("Đ", "D"))
    ascii_only = "".join(c for c in folded if ord(c) < 128)
    name = re.sub(r"[^a-z0-9]+", "_", ascii_only.lower()).strip("_")
    return name or "p_" + hashlib.sha1(phrase.encode()).hexdigest()[:10]


class RecordedSet:
    """One language's clips."""

    def __init__(self, folder: Path, lang: str) -> None:
        self.folder = folder
        self.lang = lang
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        phrases = manifest.get("phrases", {})
        self.files: dict[tuple[str, ...], Path] = {}
        for phrase, file_name in phrases.items():
            path = (folder / file_name).resolve()
            if path.parent != folder.resolve() or not path.is_file():
                continue  # a manifest never points outside its folder; missing files are just not covered
            key = tuple(tokens(phrase, lang))
            if key:
                self.files[key] = path
        self.longest = max((len(k) for k in self.files), default=0)
        digest = hashlib.sha256()
        for key in sorted(self.files):
            path = self.files[key]
            stat = path.stat()
            digest.update(f"{' '.join(key)}\0{path.name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        self.fingerprint = digest.hexdigest()[:12]

    def plan(self, text: str) -> list[Path] | None:
        """The clips that speak `text`, longest phrase first; None when a word has no clip."""
        words = tokens(text, self.lang)
        if not words:
            return None
        clips: list[Path] = []
        i = 0
        while i < len(words):
            for size in range(min(self.longest, len(words) - i), 0, -1):
                path = self.files.get(tuple(words[i:i + size]))
                if path is not None:
                    clips.append(path)
                    i += size
                    break
            else:
                return None
        return clips


class RecordedEngine:
    name = "recorded"
    online = False

    def __init__(self, root: Path) -> None:
        self.root = root
        self._sets: dict[str, tuple[float, RecordedSet | None]] = {}

    def _set(self, lang: str) -> RecordedSet | None:
        manifest = self.root / lang / MANIFEST
        try:
            mtime = manifest.stat().st_mtime
        except OSError:
            return None
        cached = self._sets.get(lang)
        if cached is None or cached[0] != mtime:
            try:
                cached = (mtime, RecordedSet(self.root / lang, lang))
            except (OSError, ValueError) as exc:
                raise EngineError(f"the recorded set for {lang} is unreadable: {exc}") from None
            self._sets[lang] = cached
        return cached[1]

    def voice(self, lang: str) -> str | None:
        clip_set = self._set(lang)
        return f"{lang}-{clip_set.fingerprint}" if clip_set else None

    def available(self) -> bool:
        return self.root.is_dir()

    def can_say(self, text: str, lang: str) -> bool:
        clip_set = self._set(lang)
        return clip_set is not None and clip_set.plan(text) is not None

    def synthesize(self, text: str, lang: str, target: Path) -> None:
        clip_set = self._set(lang)
        plan = clip_set.plan(text) if clip_set else None
        if plan is None:
            raise EngineError(f"the recorded set for {lang} lacks a clip for part of {text!r}")
        gap = silence(JOIN_GAP_SECONDS)
        parts: list[bytes] = []
        try:
            for index, clip in enumerate(plan):
                if index:
                    parts.append(gap)
                parts.append(read_frames(clip))
        except AudioFormatError as exc:
            raise EngineError(str(exc)) from None
        write_frames(target, b"".join(parts))


def write_manifest(folder: Path, phrases: dict[str, str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MANIFEST).write_text(json.dumps({"phrases": phrases}, ensure_ascii=False, indent=1, sort_keys=True),
                                   encoding="utf-8")

"""Speech for one text in one language: the engines in the configured fallback order, each from
the disk cache first. Online engines (gTTS) run with a hard deadline and a circuit breaker, and only
when no offline engine can serve; when an online engine is preferred, it fills the cache in the
background so that later calls get its voice from the cache.

Everything here is blocking (files, subprocesses, network): call it from a thread, never the event loop.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path

from audio.engines import Engine, EngineError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Speech:
    path: Path
    engine: str
    voice: str
    text: str
    cached: bool

    @property
    def key(self) -> str:
        return self.path.stem


class TtsCache:
    """<cache_dir>/tts/<engine>/<sha256(engine, voice, text)>.wav"""

    def __init__(self, cache_dir: Path) -> None:
        self.root = cache_dir / "tts"

    @staticmethod
    def key(engine: str, voice: str, text: str) -> str:
        return hashlib.sha256(f"{engine}\0{voice}\0{text}".encode()).hexdigest()

    def path(self, engine: str, voice: str, text: str) -> Path:
        return self.root / engine / f"{self.key(engine, voice, text)}.wav"

    def get(self, engine: str, voice: str, text: str) -> Path | None:
        path = self.path(engine, voice, text)
        return path if path.is_file() else None


class CircuitBreaker:
    """After a failure, say no for `retry_after` seconds; then let one attempt through."""

    def __init__(self, retry_after: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.retry_after = retry_after
        self.clock = clock
        self.open_until = 0.0
        self.failures = 0
        self.last_error: str | None = None
        self._lock = threading.Lock()

    def allow(self) -> bool:
        with self._lock:
            return self.clock() >= self.open_until

    def failed(self, error: str) -> None:
        with self._lock:
            self.failures += 1
            self.last_error = error
            self.open_until = self.clock() + self.retry_after

    def succeeded(self) -> None:
        with self._lock:
            self.open_until = 0.0
            self.last_error = None


def run_with_deadline(work: Callable[[], None], seconds: float, what: str) -> None:
    """Run `work` in its own daemon thread and give up waiting after `seconds` (the thread is left to
    finish or fail on its own; its result is then discarded)."""
    outcome: list[BaseException | None] = []

    def target() -> None:
        try:
            work()
            outcome.append(None)
        except BaseException as exc:  # handed to the caller below
            outcome.append(exc)

    thread = threading.Thread(target=target, name=f"deadline-{what}", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise EngineError(f"{what} gave no answer within {seconds:g} s")
    error = outcome[0] if outcome else EngineError(f"{what} stopped without a result")
    if error is not None:
        raise error


class NoSpeech(Exception):
    """No engine could speak this text (each engine's reason is in the message)."""


class Renderer:
    def __init__(self, engines: Sequence[Engine], cache: TtsCache, online_timeout: float,
                 retry_after: float = 300.0, background: Executor | None = None) -> None:
        self.engines = list(engines)
        self.cache = cache
        self.online_timeout = online_timeout
        self.breakers = {e.name: CircuitBreaker(retry_after) for e in self.engines if e.online}
        self.background = background
        self._filling: set[str] = set()
        self._lock = threading.Lock()
        self.engine_calls = 0

    def cached(self, text: str, lang: str) -> Speech | None:
        """The most preferred engine's cached speech for this text, without calling any engine."""
        for engine in self.engines:
            if (hit := self._from_cache(engine, text, lang)) is not None:
                return hit
        return None

    def speak_cached(self, text: str, lang: str) -> Speech | None:
        """What speak() returns when it renders nothing (the first engine in order with this speech cached,
        unless an offline engine before it would render first); None when speak() would have to render.
        File look-ups only: no engine runs."""
        for engine in self.engines:
            if engine.voice(lang) is None:
                continue
            if (hit := self._from_cache(engine, text, lang)) is not None:
                return hit
            if not engine.online:
                return None
        return None

    def _from_cache(self, engine: Engine, text: str, lang: str) -> Speech | None:
        voice = engine.voice(lang)
        if voice is None:
            return None
        path = self.cache.get(engine.name, voice, text)
        return None if path is None else Speech(path, engine.name, voice, text, cached=True)

    def speak(self, text: str, lang: str) -> Speech:
        """Engines in the configured order, each from the cache first. An offline engine that has no
        cached speech renders it; an online engine with no cached speech is passed over while a later
        offline engine can serve (and fills the cache in the background); it is tried, with its deadline,
        only when no offline engine could speak."""
        errors: list[str] = []
        passed_over: list[Engine] = []
        for engine in self.engines:
            if engine.voice(lang) is None:
                continue
            if (hit := self._from_cache(engine, text, lang)) is not None:
                return hit
            if engine.online:
                passed_over.append(engine)
                continue
            speech = self._try(engine, text, lang, errors)
            if speech is not None:
                for preferred in passed_over:
                    self._fill_later(preferred, text, lang)
                return speech
        for engine in passed_over:
            speech = self._try(engine, text, lang, errors)
            if speech is not None:
                return speech
        raise NoSpeech(f"no engine could say {text!r} in {lang}: " + "; ".join(errors or ["no engine configured"]))

    def render_with(self, engine: Engine, text: str, lang: str) -> Speech | None:
        """Render with this one engine (cache first); None if it cannot. Used by warm and record-set."""
        if engine.voice(lang) is None:
            return None
        return self._from_cache(engine, text, lang) or self._try(engine, text, lang, [])

    def _try(self, engine: Engine, text: str, lang: str, errors: list[str]) -> Speech | None:
        voice = engine.voice(lang)
        if voice is None:
            return None
        breaker = self.breakers.get(engine.name)
        if breaker is not None and not breaker.allow():
            errors.append(f"{engine.name}: resting after a failure ({breaker.last_error})")
            return None
        try:
            if not engine.available():
                errors.append(f"{engine.name}: not available here")
                return None
            if not engine.can_say(text, lang):
                errors.append(f"{engine.name}: cannot say this text")
                return None
            target = self.cache.path(engine.name, voice, text)
            with self._lock:
                self.engine_calls += 1
            if engine.online:
                run_with_deadline(lambda: engine.synthesize(text, lang, target), self.online_timeout, engine.name)
            else:
                engine.synthesize(text, lang, target)
        except EngineError as exc:
            errors.append(f"{engine.name}: {exc}")
            if breaker is not None:
                breaker.failed(str(exc))
            log.warning("%s could not say %r (%s): %s", engine.name, text, lang, exc)
            return None
        if breaker is not None:
            breaker.succeeded()
        return Speech(target, engine.name, voice, text, cached=False)

    def _fill_later(self, engine: Engine, text: str, lang: str) -> None:
        """Let a preferred online engine render this text in the background for next time."""
        if self.background is None:
            return
        breaker = self.breakers.get(engine.name)
        if breaker is not None and not breaker.allow():
            return
        token = f"{engine.name}\0{lang}\0{text}"
        with self._lock:
            if token in self._filling:
                return
            self._filling.add(token)

        def fill() -> None:
            try:
                self._try(engine, text, lang, [])
            finally:
                with self._lock:
                    self._filling.discard(token)

        try:
            self.background.submit(fill)
        except RuntimeError:  # executor shut down
            with self._lock:
                self._filling.discard(token)

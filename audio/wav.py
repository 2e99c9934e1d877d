"""WAV in one format everywhere (22050 Hz, mono, 16-bit PCM): read, write, join, convert."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import wave
from collections.abc import Iterable
from pathlib import Path

RATE = 22050
CHANNELS = 1
SAMPLE_WIDTH = 2


class AudioFormatError(Exception):
    """A file is not audio we can read or convert."""


def is_normal(path: Path) -> bool:
    try:
        with wave.open(str(path), "rb") as w:
            return (w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getcomptype()) == (RATE, CHANNELS, SAMPLE_WIDTH, "NONE")
    except (wave.Error, EOFError, OSError):
        return False


def sox_path() -> str | None:
    return shutil.which("sox")


def normalise(source: Path, target: Path, source_type: str | None = None) -> None:
    """Write `source` (any format sox reads) to `target` as our WAV format, atomically."""
    if source_type is None and is_normal(source):
        write_frames(target, read_frames(source))
        return
    sox = sox_path()
    if sox is None:
        raise AudioFormatError(f"{source.name} is not {RATE} Hz mono 16-bit WAV and sox is not installed to convert it")
    tmp = _temp_beside(target)
    command = [sox]
    if source_type:
        command += ["-t", source_type]
    command += [str(source), "-r", str(RATE), "-c", str(CHANNELS), "-b", "16", "-e", "signed-integer", "-t", "wav", str(tmp)]
    result = subprocess.run(command, capture_output=True, timeout=60, check=False)
    if result.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise AudioFormatError(f"sox could not convert {source.name}: {result.stderr.decode(errors='replace').strip()}")
    # sox writes a WAV header that the stdlib reads; rewrite it through wave so every file is uniform
    try:
        write_frames(target, read_frames(tmp))
    finally:
        tmp.unlink(missing_ok=True)


def read_frames(path: Path) -> bytes:
    try:
        with wave.open(str(path), "rb") as w:
            if (w.getframerate(), w.getnchannels(), w.getsampwidth()) != (RATE, CHANNELS, SAMPLE_WIDTH):
                raise AudioFormatError(f"{path.name} is {w.getframerate()} Hz, {w.getnchannels()} channel(s), "
                                       f"{8 * w.getsampwidth()}-bit; expected {RATE} Hz mono 16-bit")
            return w.readframes(w.getnframes())
    except (wave.Error, EOFError) as exc:
        raise AudioFormatError(f"{path.name} is not a readable WAV file: {exc}") from None


def write_frames(path: Path, frames: bytes | Iterable[bytes]) -> None:
    """Atomic: readers never see a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_beside(path)
    try:
        with wave.open(str(tmp), "wb") as w:
            w.setnchannels(CHANNELS)
            w.setsampwidth(SAMPLE_WIDTH)
            w.setframerate(RATE)
            if isinstance(frames, bytes | bytearray):
                w.writeframes(frames)
            else:
                for chunk in frames:
                    w.writeframes(chunk)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def silence(seconds: float) -> bytes:
    return b"\x00\x00" * int(round(seconds * RATE))


def duration(path: Path) -> float:
    with wave.open(str(path), "rb") as w:
        return w.getnframes() / w.getframerate()


def trim_silence(frames: bytes, threshold: int = 200, keep_seconds: float = 0.03) -> bytes:
    """Drop near-silent samples at both ends (engines pad their output), keeping a little air."""
    import array

    samples = array.array("h")
    samples.frombytes(frames)
    start, end = 0, len(samples)
    while start < end and abs(samples[start]) < threshold:
        start += 1
    while end > start and abs(samples[end - 1]) < threshold:
        end -= 1
    keep = int(keep_seconds * RATE)
    return samples[max(0, start - keep):min(len(samples), end + keep)].tobytes()


def _temp_beside(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp.wav", dir=path.parent)
    os.close(fd)
    return Path(name)

"""Overhead paging through Asterisk: when `audio.paging_channel` is set and the telephony room's AMI
link is up, each announcement is also played to that channel (a paging extension or amplifier) with
an async Originate running Playback of an 8 kHz copy of the clip. Every field goes through telephony's
AMI encoder, which refuses control characters; a missing link or a failure is logged, never raised."""

from __future__ import annotations

import asyncio
import logging
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

from aiohttp import web

from clinicall.settings import AudioSettings

log = logging.getLogger(__name__)
PAGING_RATE = 8000  # what Asterisk's format_wav plays (.wav, 8 kHz, 16-bit mono)
ORIGINATE_TIMEOUT_MS = 15000


def to_paging_format(source: Path, target: Path) -> None:
    if target.is_file():
        return
    sox = shutil.which("sox")
    if sox is None:
        raise RuntimeError("sox is needed to make 8 kHz copies of the clips for Asterisk")
    target.parent.mkdir(parents=True, exist_ok=True)
    # one temporary file per conversion: calls converting the same text at once (a common sentence) each
    # write their own, and the atomic rename makes the last one win with the same content
    tmp = target.with_name(f".{target.stem}.{uuid.uuid4().hex[:12]}.part.wav")
    result = subprocess.run([sox, str(source), "-r", str(PAGING_RATE), "-c", "1", "-b", "16", "-e", "signed-integer",
                             str(tmp)], capture_output=True, timeout=60, check=False)
    if result.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise RuntimeError(f"sox could not convert {source.name}: {result.stderr.decode(errors='replace').strip()}")
    tmp.replace(target)


class Pager:
    def __init__(self, audio: AudioSettings, app: web.Application) -> None:
        self.channel = audio.paging_channel
        self.sound_dir = Path(audio.paging_sound_dir)
        self.caller_id = audio.paging_caller_id
        self.app = app
        self.paged = 0
        self.skipped = 0

    @property
    def enabled(self) -> bool:
        return bool(self.channel)

    def _ami_link(self) -> Any:
        try:
            from telephony.keys import AMI_LINK_KEY
        except ImportError:
            return None
        return self.app.get(AMI_LINK_KEY)

    async def page(self, clip_name: str, clip: Path) -> bool:
        """Send the Originate; False (and a log line) when paging is off or not possible now."""
        if not self.channel:
            return False
        link = self._ami_link()
        if link is None or not getattr(link, "ready", False):
            self.skipped += 1
            log.warning("overhead paging skipped: the Asterisk (AMI) link is not up")
            return False
        target = self.sound_dir / f"{clip_name}.wav"
        try:
            await asyncio.to_thread(to_paging_format, clip, target)
            link.send_own([
                ("Action", "Originate"),
                ("ActionID", f"clinicall-page-{uuid.uuid4().hex[:16]}"),
                ("Channel", self.channel),
                ("Application", "Playback"),
                ("Data", str(target.with_suffix(""))),
                ("Async", "true"),
                ("Timeout", str(ORIGINATE_TIMEOUT_MS)),
                ("CallerID", self.caller_id),
            ])
        except Exception as exc:  # link dropped, unsafe field, conversion failed
            self.skipped += 1
            log.warning("overhead paging of %s failed: %s", clip_name, exc)
            return False
        self.paged += 1
        return True

"""`make run` prints the URLs it really serves (scripts/print_urls.py) and local files default under the
data directory (the speech cache)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from clinicall.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def run(tmp_path: Path, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CLINICALL_")}
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "print_urls.py")], capture_output=True, text=True,
                          env={**clean, "CLINICALL_DATA_DIR": str(tmp_path), **env}, timeout=60, check=True)
    return done.stdout


def test_printed_urls_follow_the_settings(tmp_path: Path) -> None:
    assert "http://127.0.0.1:8080/ " in run(tmp_path)
    out = run(tmp_path, CLINICALL_HTTP__PORT="8123", CLINICALL_HTTP__HOST="0.0.0.0")
    assert "http://127.0.0.1:8123/   health: http://127.0.0.1:8123/healthz" in out and "0.0.0.0:8123" in out
    (tmp_path / "demo-login.txt").write_text("agent1 / secret\n", encoding="utf-8")
    out = run(tmp_path, CLINICALL_HTTP__HOST="10.0.0.5", CLINICALL_HTTP__PUBLIC_URL="https://clinic.example")
    assert "http://10.0.0.5:8080/" in out and "https://clinic.example/" in out and "agent1 / secret" in out


def test_speech_cache_lives_under_the_data_dir(tmp_path: Path) -> None:
    audio = Settings(data_dir=str(tmp_path)).audio
    assert (Path(audio.cache_dir), Path(audio.recorded_dir)) == (tmp_path / "audio", tmp_path / "audio-recorded")
    assert Settings(data_dir=str(tmp_path), audio={"cache_dir": "/srv/speech"}).audio.cache_dir == "/srv/speech"  # type: ignore[arg-type]

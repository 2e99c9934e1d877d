"""The IT person's commands, run as processes: --version, user list/passwd/disable, backup and
restore (SQLite and PostgreSQL, recordings included), purge, and clear errors."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from clinicall.auth import service as auth_service
from clinicall.db import Database
from crm_bridge.models import PatientAudit
from telephony.models import Call, CallEvent
from tests.servers import free_port

CLI = [sys.executable, "-m", "clinicall.cli"]


def env_for(tmp_path: Path, url: str | None = None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLINICALL_")}
    env.update({"CLINICALL_DATABASE__URL": url or f"sqlite+aiosqlite:///{tmp_path}/c.db", "CLINICALL_DATA_DIR": str(tmp_path),
                "CLINICALL_LOG_LEVEL": "WARNING", "CLINICALL_TELEPHONY__RECORDING_DIR": str(tmp_path / "recordings")},
               **extra)
    return env


def run(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], input=stdin, text=True, capture_output=True, env=env, timeout=240)


def test_version() -> None:
    result = subprocess.run([*CLI, "--version"], capture_output=True, text=True, timeout=240)
    assert result.returncode == 0 and result.stdout.startswith("clinicall ") and result.stdout.split()[1][0].isdigit()


def test_user_list_passwd_disable_end_sessions(tmp_path: Path) -> None:
    env = env_for(tmp_path)
    assert run(env, "user", "add", "nurse", "--role", "reception", stdin="first-password\n").returncode == 0
    db_url = env["CLINICALL_DATABASE__URL"]

    async def login(password: str) -> str | None:
        db = Database(db_url)
        try:
            user = await auth_service.authenticate(db, "nurse", password)
            return await auth_service.start_session(db, user.id, 1) if user else None
        finally:
            await db.dispose()

    async def session_works(token: str) -> bool:
        db = Database(db_url)
        try:
            return await auth_service.principal_from_session(db, token) is not None
        finally:
            await db.dispose()

    session = asyncio.run(login("first-password"))
    assert session and asyncio.run(session_works(session))

    changed = run(env, "user", "passwd", "nurse", stdin="second-password\n")
    assert changed.returncode == 0 and "ended 1 login session" in changed.stdout, changed.stderr
    assert not asyncio.run(session_works(session))
    assert asyncio.run(login("first-password")) is None
    session = asyncio.run(login("second-password"))
    assert session

    disabled = run(env, "user", "disable", "nurse")
    assert disabled.returncode == 0 and "ended 1 login session" in disabled.stdout
    assert not asyncio.run(session_works(session))
    assert asyncio.run(login("second-password")) is None
    listed = run(env, "user", "list")
    assert listed.returncode == 0 and "reception" in listed.stdout
    assert listed.stdout.splitlines()[1].split()[:2] == ["nurse", "no"]

    missing = run(env, "user", "disable", "nobody")
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1 and "nobody" in missing.stderr


def test_unreachable_database_is_one_line_and_exit_2(tmp_path: Path) -> None:
    url = f"postgresql+asyncpg://clinicall:secret@127.0.0.1:{free_port()}/clinicall"
    for args in (["migrate"], ["user", "list"], ["serve"]):
        result = run(env_for(tmp_path, url, CLINICALL_HTTP__PORT=str(free_port())), *args)
        assert result.returncode == 2, result.stderr
        assert result.stderr.count("\n") == 1 and "cannot reach the database" in result.stderr, result.stderr
        assert "secret" not in result.stderr and "Traceback" not in result.stderr


def test_bad_setting_in_a_toml_section_is_one_line_and_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[retention]\ncall_log_dayz = 30\n', encoding="utf-8")
    result = run(env_for(tmp_path, CLINICALL_CONFIG=str(config)), "migrate")
    assert result.returncode == 2 and "retention.call_log_dayz" in result.stderr and result.stderr.count("\n") == 1


def test_bad_bootstrap_password_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = run(env_for(tmp_path, CLINICALL_AUTH__BOOTSTRAP_ADMIN="boss", CLINICALL_AUTH__BOOTSTRAP_PASSWORD="short"),
                 "migrate")
    assert result.returncode == 2 and "BOOTSTRAP" in result.stderr and result.stderr.count("\n") == 1, result.stderr


async def _add_records(url: str, now: dt.datetime, recording: Path) -> None:
    db = Database(url)
    try:
        await auth_service.create_user(db, "keeper", "a-long-password", ["admin"])
        async with db.transaction() as s:
            s.add(Call(direction="outbound", state="ended", created_at=now - dt.timedelta(days=40), ended_at=now,
                       recording_path=str(recording)))
            s.add(Call(direction="outbound", state="ended", created_at=now - dt.timedelta(days=1), ended_at=now))
            s.add(PatientAudit(at=now - dt.timedelta(days=400), patient_id=1, action="view"))
            s.add(PatientAudit(at=now, patient_id=1, action="view"))
            for age, key in ((40, "old"), (1, "new")):
                at = now - dt.timedelta(days=age)
                s.add(CallEvent(key=key, source="ami", kind="Hangup", linkedid="x", at=at, received_at=at, payload="{}"))
    finally:
        await db.dispose()


async def _counts(url: str) -> tuple[int, int, list[str]]:
    db = Database(url)
    try:
        async with db.session() as s:
            calls = await s.scalar(select(func.count()).select_from(Call))
            audit = await s.scalar(select(func.count()).select_from(PatientAudit))
        return calls or 0, audit or 0, [u.username for u in await auth_service.list_users(db)]
    finally:
        await db.dispose()


def _backup_restore_round_trip(tmp_path: Path, url: str) -> None:
    env = env_for(tmp_path, url)
    assert run(env, "migrate").returncode == 0
    recordings = tmp_path / "recordings"
    recordings.mkdir()
    recording = recordings / "c000001.wav"
    recording.write_bytes(b"RIFF-fake-but-real-bytes")
    asyncio.run(_add_records(url, dt.datetime.now(dt.UTC), recording))

    archive = tmp_path / "b.tar.gz"
    made = run(env, "backup", "--output", str(archive))
    assert made.returncode == 0, made.stderr
    assert "1 recordings" in made.stdout

    purge_env = {**env, "CLINICALL_RETENTION__CALL_LOG_DAYS": "30", "CLINICALL_RETENTION__RECORDING_DAYS": "30",
                 "CLINICALL_RETENTION__AUDIT_DAYS": "365"}
    purged = run(purge_env, "purge")
    assert purged.returncode == 0, purged.stderr
    assert "1 calls" in purged.stdout and "1 recordings" in purged.stdout and "1 audit" in purged.stdout
    assert asyncio.run(_counts(url))[:2] == (1, 1) and not recording.exists()
    assert "1 call events" in purged.stdout

    restored = run(env, "restore", str(archive))
    assert restored.returncode == 0, restored.stderr
    assert asyncio.run(_counts(url)) == (2, 2, ["keeper"])
    assert recording.read_bytes() == b"RIFF-fake-but-real-bytes"


def test_backup_purge_restore_sqlite(tmp_path: Path) -> None:
    _backup_restore_round_trip(tmp_path, f"sqlite+aiosqlite:///{tmp_path}/clinic.db")


def test_backup_purge_restore_postgresql(tmp_path: Path, pg_url: str) -> None:
    _backup_restore_round_trip(tmp_path, pg_url)


def test_not_a_backup_is_refused(tmp_path: Path) -> None:
    bogus = tmp_path / "x.tar.gz"
    import tarfile

    with tarfile.open(bogus, "w:gz"):
        pass
    result = run(env_for(tmp_path), "restore", str(bogus))
    assert result.returncode == 2 and "not a clinicall backup" in result.stderr




async def test_serve_purges_by_retention_in_the_background(aiohttp_client: Any, make_settings: Any,
                                                           sqlite_url: str) -> None:
    from clinicall.app import create_app

    now = dt.datetime.now(dt.UTC)
    db = Database(sqlite_url)
    async with db.transaction() as s:
        s.add(PatientAudit(at=now - dt.timedelta(days=40), patient_id=1, action="view"))
        s.add(PatientAudit(at=now - dt.timedelta(days=2), patient_id=1, action="view"))
    await db.dispose()
    await aiohttp_client(create_app(make_settings(sqlite_url, retention={"audit_days": 30})))
    for _ in range(100):
        counts = await _counts(sqlite_url)
        if counts[1] == 1:
            break
        await asyncio.sleep(0.1)
    assert (await _counts(sqlite_url))[1] == 1  # the 40-day-old row went, the recent one stayed

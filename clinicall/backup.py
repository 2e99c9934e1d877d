"""Backups: one .tar.gz with the database (SQLite through its online backup API, PostgreSQL through
pg_dump's custom format), the call recordings, and a manifest. `restore` puts them back."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from pathlib import Path

from sqlalchemy.engine import URL, make_url

from clinicall.errors import CommandError
from clinicall.settings import Settings

MANIFEST = "manifest.json"
SQLITE_MEMBER = "database.sqlite"
PG_MEMBER = "database.pgdump"
RECORDINGS = "recordings"


def pg_tool(settings: Settings, name: str) -> str:
    """pg_dump / pg_restore: from database.pg_bin_dir, else the pgserver wheel's (tests), else PATH."""
    candidates: list[Path] = []
    if bin_dir := settings.database.pg_bin_dir:
        candidates.append(Path(bin_dir) / name)
    try:
        import pgserver  # type: ignore[import-untyped]

        candidates.append(Path(pgserver.__file__).resolve().parent / "pginstall" / "bin" / name)
    except ImportError:
        pass
    for candidate in candidates:
        if candidate.is_file():
            return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise CommandError(f"{name} not found; install postgresql-client (apt install postgresql-client)")
    return found


def libpq(url: str) -> tuple[str, dict[str, str]]:
    """A libpq URI without the password, and an environment that carries it (not on the command line)."""
    parsed: URL = make_url(url)
    env = dict(os.environ)
    if parsed.password:
        env["PGPASSWORD"] = parsed.password
    return parsed.set(drivername="postgresql", password=None).render_as_string(hide_password=False), env


def _run(command: list[str], env: dict[str, str]) -> None:
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise CommandError(f"{Path(command[0]).name} failed: {last}")


def sqlite_file(settings: Settings) -> Path:
    database = make_url(settings.database.url).database
    if not database or database == ":memory:":
        raise CommandError("an in-memory SQLite database cannot be backed up")
    return Path(database)


def _dump_database(settings: Settings, work: Path) -> str:
    if settings.database.url.startswith("sqlite"):
        target = work / SQLITE_MEMBER
        source = sqlite3.connect(sqlite_file(settings))
        destination = sqlite3.connect(target)
        try:
            source.backup(destination)  # consistent even while clinicall writes
        finally:
            destination.close()
            source.close()
        return SQLITE_MEMBER
    uri, env = libpq(settings.database.url)
    _run([pg_tool(settings, "pg_dump"), "--format=custom", "--no-owner", "--no-privileges", f"--file={work / PG_MEMBER}",
          f"--dbname={uri}"], env)
    return PG_MEMBER


def backup(settings: Settings, output: Path) -> dict[str, object]:
    recordings = Path(settings.telephony.recording_dir)
    with tempfile.TemporaryDirectory(prefix="clinicall-backup-") as tmp:
        work = Path(tmp)
        member = _dump_database(settings, work)
        files = sorted(p for p in recordings.rglob("*") if p.is_file()) if recordings.is_dir() else []
        manifest = {"format": 1, "created_at": dt.datetime.now(dt.UTC).isoformat(), "database": member,
                    "recordings": len(files), "clinic": settings.clinic.name}
        output.parent.mkdir(parents=True, exist_ok=True)
        partial = output.with_name(output.name + ".partial")
        with tarfile.open(partial, "w:gz") as tar:
            data = json.dumps(manifest, ensure_ascii=False, indent=1).encode()
            info = tarfile.TarInfo(MANIFEST)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
            tar.add(work / member, arcname=member)
            for file in files:
                tar.add(file, arcname=f"{RECORDINGS}/{file.relative_to(recordings).as_posix()}")
        partial.replace(output)  # a backup that stopped half-way never looks complete
    output.chmod(0o600)
    return manifest


def _read_manifest(tar: tarfile.TarFile) -> dict[str, object]:
    try:
        raw = tar.extractfile(MANIFEST)
    except KeyError:
        raw = None
    if raw is None:
        raise CommandError("this file is not a clinicall backup (no manifest.json)")
    return json.loads(raw.read())  # type: ignore[no-any-return]


def restore(settings: Settings, archive: Path) -> dict[str, object]:
    if not archive.is_file():
        raise CommandError(f"{archive}: no such file")
    with tempfile.TemporaryDirectory(prefix="clinicall-restore-") as tmp, tarfile.open(archive, "r:gz") as tar:
        manifest = _read_manifest(tar)
        tar.extractall(tmp, filter="data")
        work = Path(tmp)
        member = str(manifest["database"])
        is_sqlite = settings.database.url.startswith("sqlite")
        if (member == SQLITE_MEMBER) != is_sqlite:
            raise CommandError(f"the backup holds a {'SQLite' if member == SQLITE_MEMBER else 'PostgreSQL'} database "
                               "but CLINICALL_DATABASE__URL names the other kind")
        if is_sqlite:
            target = sqlite_file(settings)
            target.parent.mkdir(parents=True, exist_ok=True)
            source, destination = sqlite3.connect(work / SQLITE_MEMBER), sqlite3.connect(target)
            try:
                source.backup(destination)
            finally:
                destination.close()
                source.close()
        else:
            uri, env = libpq(settings.database.url)
            _run([pg_tool(settings, "pg_restore"), "--clean", "--if-exists", "--no-owner", "--no-privileges", "--single-transaction",
                  f"--dbname={uri}", str(work / PG_MEMBER)], env)
        _restore_recordings(work / RECORDINGS, Path(settings.telephony.recording_dir))
    return manifest


def _restore_recordings(source: Path, target: Path) -> None:
    if not source.is_dir():
        return
    for file in source.rglob("*"):
        if file.is_file():
            destination = target / file.relative_to(source)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(file, destination)

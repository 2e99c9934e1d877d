"""A real Asterisk 22 for tests and recordings: found beside the repository, started with a private
config (tests/fixtures/asterisk/rig/config) on free loopback ports, stopped at the end.

Where it comes from, first found wins:
  CLINICALL_TEST_ASTERISK_PREFIX   an unpacked prefix (holding sbin/asterisk)
  ../shared/asterisk/*.tar.xz      beside the repository or one of its parent folders (or
                                   CLINICALL_TEST_ASTERISK_TARBALL),
                                   unpacked once into a cache directory
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "tests" / "fixtures" / "asterisk" / "rig" / "config"
CLINICALL_SECRET = "clinicall-rig-secret"
RIG_SECRET = "rig-secret"
PG_ONLY = {"cel_pgsql.conf.in", "cdr_pgsql.conf.in"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tarballs() -> list[Path]:
    if named := os.environ.get("CLINICALL_TEST_ASTERISK_TARBALL"):
        return [Path(named)] if Path(named).is_file() else []
    for folder in REPO.parents:  # ../shared/asterisk beside the repository (or beside a worktree's parent)
        if found := sorted((folder / "shared" / "asterisk").glob("asterisk-*.tar.xz")):
            return found
    return []


def find_prefix(cache: Path | None = None) -> tuple[Path | None, str]:
    """The prefix holding sbin/asterisk, or None and why there is none."""
    if named := os.environ.get("CLINICALL_TEST_ASTERISK_PREFIX"):
        prefix = Path(named)
        if (prefix / "sbin" / "asterisk").is_file():
            return prefix, ""
        return None, f"CLINICALL_TEST_ASTERISK_PREFIX={named} has no sbin/asterisk"
    tarballs = _tarballs()
    if not tarballs:
        return None, ("no real Asterisk: set CLINICALL_TEST_ASTERISK_PREFIX to an unpacked one, or put "
                      f"asterisk-*.tar.xz in shared/asterisk beside {REPO} or one of its parent folders")
    tarball = tarballs[-1]
    cache = cache or Path(tempfile.gettempdir()) / f"clinicall-asterisk-{os.getuid()}"
    target = cache / tarball.name.removesuffix(".tar.xz")
    prefix = target / "asterisk"
    if not (prefix / "sbin" / "asterisk").is_file():
        partial = Path(tempfile.mkdtemp(prefix="unpack-", dir=_mkdir(cache)))
        try:
            with tarfile.open(tarball) as tar:
                tar.extractall(partial, filter="tar")
        except (OSError, tarfile.TarError) as exc:
            shutil.rmtree(partial, ignore_errors=True)
            return None, f"{tarball} could not be unpacked: {exc}"
        try:
            partial.rename(target)
        except OSError:  # another process unpacked it first
            shutil.rmtree(partial, ignore_errors=True)
    if not (prefix / "sbin" / "asterisk").is_file():
        return None, f"{tarball} did not unpack to asterisk/sbin/asterisk"
    return prefix, ""


def runs_here(prefix: Path) -> str:
    """Empty when this machine can run the binary (the build is for Debian 12 x86_64), else why not."""
    lib = str(prefix / "lib")
    env = {**os.environ, "LD_LIBRARY_PATH": f"{lib}:{os.environ.get('LD_LIBRARY_PATH', '')}"}
    try:
        done = subprocess.run([str(prefix / "sbin" / "asterisk"), "-V"], env=env, capture_output=True,
                              text=True, timeout=20, check=False)
    except OSError as exc:
        return f"{prefix}/sbin/asterisk does not run here: {exc}"
    if done.returncode != 0 or not done.stdout.startswith("Asterisk"):
        return f"{prefix}/sbin/asterisk does not run here: {(done.stderr or done.stdout).strip()[:300]}"
    return ""


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass
class PgTarget:
    host: str  # a host name or the directory of the server's socket
    port: int
    dbname: str
    user: str
    password: str = ""


@dataclass
class Asterisk:
    prefix: Path
    run: Path
    ami_port: int = field(default_factory=free_port)
    agi_port: int = field(default_factory=free_port)
    pg: PgTarget | None = None
    cdr_unanswered: bool = True
    dialplan_globals: dict[str, str] = field(default_factory=dict)  # [globals] of extensions.conf to change

    @property
    def etc(self) -> Path:
        return self.run / "etc"

    @property
    def sqlite_path(self) -> Path:
        """Where cel_sqlite3_custom / cdr_sqlite3_custom write (astlogdir/master.db)."""
        return self.run / "var" / "log" / "master.db"

    def _env(self) -> dict[str, str]:
        lib = str(self.prefix / "lib")
        old = os.environ.get("LD_LIBRARY_PATH")
        return {**os.environ, "TZ": "UTC", "LD_LIBRARY_PATH": f"{lib}:{old}" if old else lib}

    def write_config(self) -> None:
        var = self.run / "var"
        for sub in ("cache", "lib", "spool", "run", "log", "log/cdr-csv", "sounds"):
            (var / sub).mkdir(parents=True, exist_ok=True)
        (var / "sounds" / "silence.sln").write_bytes(bytes(1600))  # 100 ms of 8 kHz slin: the only prompt
        self.etc.mkdir(parents=True, exist_ok=True)
        pg = self.pg
        values = {
            "@PREFIX@": str(self.prefix), "@ETC@": str(self.etc), "@VAR@": str(var),
            "@AMI_PORT@": str(self.ami_port), "@AGI_PORT@": str(self.agi_port),
            "@CLINICALL_SECRET@": CLINICALL_SECRET, "@RIG_SECRET@": RIG_SECRET,
            "@CDR_UNANSWERED@": "yes" if self.cdr_unanswered else "no",
            "@PG_HOST@": pg.host if pg else "", "@PG_PORT@": str(pg.port) if pg else "",
            "@PG_DB@": pg.dbname if pg else "", "@PG_USER@": pg.user if pg else "",
            "@PG_PASSWORD@": pg.password if pg else "",
        }
        for source in sorted(CONFIG.iterdir()):
            if source.name in PG_ONLY and pg is None:
                continue
            text = source.read_text()
            for key, value in values.items():
                text = text.replace(key, value)
            if source.name == "extensions.conf.in":
                for name, value in self.dialplan_globals.items():
                    text, found = re.subn(rf"^{name} = \S+", f"{name} = {value}", text, count=1, flags=re.M)
                    assert found, f"extensions.conf has no global {name}"
            (self.etc / source.name.removesuffix(".in")).write_text(text)

    def _command(self, *args: str) -> list[str]:
        return [str(self.prefix / "sbin" / "asterisk"), "-C", str(self.etc / "asterisk.conf"), *args]

    def cli(self, command: str, timeout: float = 10.0) -> str:
        done = subprocess.run(self._command("-rx", command), env=self._env(), capture_output=True,
                              text=True, timeout=timeout, check=False)
        return done.stdout

    def call_file(self, name: str, headers: dict[str, str]) -> None:
        """Start a call through pbx_spool (no AMI involved): write the call file, then move it in."""
        outgoing = self.run / "var" / "spool" / "outgoing"
        outgoing.mkdir(parents=True, exist_ok=True)
        staging = self.run / "var" / f"{name}.call"
        staging.write_text("".join(f"{key}: {value}\n" for key, value in headers.items()))
        staging.rename(outgoing / f"{name}.call")

    def running(self) -> bool:
        if not (self.run / "var" / "run" / "asterisk.ctl").exists():
            return False
        try:
            return "System uptime" in self.cli("core show uptime", timeout=5)
        except subprocess.TimeoutExpired:
            return False

    def start(self, timeout: float = 30.0) -> None:
        """Start the daemon and wait until it is fully booted and AMI accepts."""
        self.write_config()
        subprocess.run(self._command(), env=self._env(), check=True, timeout=timeout)
        self.wait_booted(timeout)

    def wait_booted(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.running() and "Asterisk has fully booted" in self.cli("core waitfullybooted", timeout=timeout):
                if self._ami_accepts():
                    return
            time.sleep(0.1)
        raise RuntimeError(f"Asterisk did not boot; see {self.run / 'var' / 'log' / 'messages.log'}")

    def _ami_accepts(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.ami_port), timeout=1):
                return True
        except OSError:
            return False

    def wait_stopped(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self._ami_accepts() and not self.running():
                return
            time.sleep(0.1)
        raise RuntimeError("Asterisk did not stop")

    def stop(self) -> None:
        if self.running():
            self.cli("core stop now")
            try:
                self.wait_stopped()
            except RuntimeError:
                self._kill()

    def _kill(self) -> None:
        pidfile = self.run / "var" / "run" / "asterisk.pid"
        if pidfile.exists():
            try:
                os.kill(int(pidfile.read_text().strip()), 9)
            except (ValueError, ProcessLookupError):
                pass

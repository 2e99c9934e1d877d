"""The deployment recipe, stood up for real (`make test-deploy`): Debian's nginx with the shipped site
file (deploy/nginx/) and a self-signed certificate, in front of two `clinicall serve` processes started
together on one PostgreSQL and one Redis. A TV's websocket and call-next pass through nginx; one
instance is killed with SIGKILL and the screen carries on through the other."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from clinicall.auth import service as auth_service
from clinicall.db import Database
from telephony.demo_pbx import DemoPbx
from tests.servers import Postgres, RedisServer, free_port, start_postgres, start_redis

DEPLOY = Path(__file__).resolve().parent
REPO = DEPLOY.parent
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
PASSWORD = "deploy-test-password"
AMI_SECRET = "deploy-test-ami"

pytestmark = pytest.mark.skipif(not Path(NGINX).exists(), reason="nginx is not installed (scripts/system-deps.sh deploy)")


def replace_once(text: str, old: str, new: str, count: int = 1) -> str:
    assert text.count(old) == count, f"the shipped nginx site no longer has {old!r} {count}x"
    return text.replace(old, new)


def nginx_site(ports: dict[str, int], work: Path) -> str:
    """deploy/nginx/clinicall.conf with this test's ports and paths, nothing else changed."""
    site = (DEPLOY / "nginx" / "clinicall.conf").read_text()
    site = replace_once(site, "server 127.0.0.1:8081", f"server 127.0.0.1:{ports['one']}", 2)
    site = replace_once(site, "server 127.0.0.1:8082", f"server 127.0.0.1:{ports['two']}", 2)
    site = replace_once(site, "listen 443 ssl http2;", f"listen 127.0.0.1:{ports['https']} ssl http2;")
    site = replace_once(site, "listen 80;", f"listen 127.0.0.1:{ports['http']};")
    site = "\n".join(line for line in site.splitlines() if "listen [::]" not in line)
    site = replace_once(site, "/etc/ssl/clinicall/", f"{work}/", 2)
    return replace_once(site, "/var/log/nginx/clinicall.access.log", f"{work}/access.log")


def self_signed_certificate(work: Path) -> None:
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(work / "privkey.pem"),
                    "-out", str(work / "fullchain.pem")], check=True, capture_output=True, timeout=60)


def nginx_conf(work: Path, site: str) -> Path:
    (work / "temp").mkdir(mode=0o777)
    (work / "temp").chmod(0o777)  # workers run as nobody when the test runs as root
    (work / "site.conf").write_text(site)
    shutil.copy(DEPLOY / "nginx" / "clinicall-log.conf", work / "clinicall-log.conf")
    conf = work / "nginx.conf"
    temp = work / "temp"
    conf.write_text(f"""daemon off;
worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/error.log warn;
events {{ worker_connections 256; }}
http {{
    include /etc/nginx/mime.types;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    include {work}/clinicall-log.conf;
    include {work}/site.conf;
}}
""")
    return conf


@pytest.fixture
def servers() -> Iterator[tuple[Postgres, RedisServer]]:
    postgres, redis = start_postgres(own=True), start_redis(own=True)
    yield postgres, redis
    redis.cleanup()
    postgres.stop()


@pytest.fixture
def work() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="clinicall-deploy-"))
    directory.chmod(0o755)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def instance_env(url: str, redis: str, port: int, https: int, work: Path, ami_port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLINICALL_")}
    env.update({
        "CLINICALL_DATABASE__URL": url, "CLINICALL_BUS__REDIS_URL": redis, "CLINICALL_HTTP__PORT": str(port),
        "CLINICALL_HTTP__PUBLIC_URL": f"https://127.0.0.1:{https}", "CLINICALL_HTTP__TRUSTED_PROXIES": '["127.0.0.1"]',
        "CLINICALL_DATA_DIR": str(work / "data"), "CLINICALL_AUDIO__CACHE_DIR": str(work / "data" / "audio"),
        "CLINICALL_AUDIO__ENGINES": '["espeak"]', "CLINICALL_TELEPHONY__AGI_ENABLED": "false",
        "CLINICALL_LOG_FORMAT": "json", "CLINICALL_AUTH__BOOTSTRAP_ADMIN": "admin",
        "CLINICALL_AUTH__BOOTSTRAP_PASSWORD": PASSWORD,
        # both instances name the same Asterisk (the env files of deploy/); one at a time holds the link
        "CLINICALL_TELEPHONY__AMI_HOST": "127.0.0.1", "CLINICALL_TELEPHONY__AMI_PORT": str(ami_port),
        "CLINICALL_TELEPHONY__AMI_SECRET": AMI_SECRET, "CLINICALL_TELEPHONY__LINK_CHECK_SECONDS": "0.5",
    })
    return env


async def wait_ready(http: aiohttp.ClientSession, url: str, process: subprocess.Popen[bytes], limit: float = 90) -> None:
    deadline = asyncio.get_running_loop().time() + limit
    while asyncio.get_running_loop().time() < deadline:
        assert process.poll() is None, f"{url} exited with {process.returncode}"
        try:
            async with http.get(url) as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.2)
    raise AssertionError(f"{url} never became ready")


class Screen:
    """A TV as feed.js is: one websocket to /ws/display; reconnects when it drops."""

    def __init__(self, http: aiohttp.ClientSession, url: str, origin: str) -> None:
        self.http, self.url, self.origin = http, url, origin
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.connections = 0

    async def connect(self) -> None:
        self.ws = await self.http.ws_connect(self.url, headers={"Origin": self.origin}, heartbeat=5)
        self.connections += 1
        assert (await self.frame())["type"] == "snapshot"

    async def frame(self) -> dict[str, Any]:
        assert self.ws is not None
        message = await self.ws.receive(timeout=20)
        if message.type != aiohttp.WSMsgType.TEXT:
            raise ConnectionError(f"display socket closed ({message.type})")
        return json.loads(message.data)  # type: ignore[no-any-return]

    async def settle(self) -> None:
        """After an instance died: still connected (quiet for 3 s), or reconnect through nginx."""
        try:
            while True:
                await asyncio.wait_for(self.frame(), 3)
        except TimeoutError:
            return
        except (ConnectionError, aiohttp.ClientError):
            await self.connect()

    async def called(self, number: str) -> None:
        while True:
            frame = await self.frame()
            events = frame["events"] if frame["type"] == "batch" else [frame]  # a call-next's events come in one frame
            if any(e["type"] == "ticket.called" and e["data"]["ticket"]["number"] == number for e in events):
                return


def launch(postgres: Postgres, redis: RedisServer, ports: dict[str, int], work: Path,
           logs: dict[str, Any]) -> dict[str, subprocess.Popen[bytes]]:
    self_signed_certificate(work)
    conf = nginx_conf(work, nginx_site(ports, work))
    checked = subprocess.run([NGINX, "-t", "-p", str(work), "-c", str(conf)], capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stderr
    processes = {"nginx": subprocess.Popen([NGINX, "-p", str(work), "-c", str(conf)], stdout=logs["nginx"],
                                           stderr=subprocess.STDOUT)}
    for name in ("one", "two"):  # started together: the start-up lock takes them in turn
        env = instance_env(postgres.url, redis.url, ports[name], ports["https"], work, ports["ami"])
        processes[name] = subprocess.Popen([sys.executable, "-m", "clinicall.cli", "serve"], env=env, cwd=work,
                                           stdout=logs[name], stderr=subprocess.STDOUT)
    return processes


@pytest.fixture
async def deployment(servers: tuple[Postgres, RedisServer], work: Path) -> AsyncIterator[dict[str, Any]]:
    postgres, redis = servers
    pbx = DemoPbx(username="clinicall", secret=AMI_SECRET)  # an Asterisk both instances are told about
    ports = {"one": free_port(), "two": free_port(), "https": free_port(), "http": free_port(), "ami": await pbx.start()}
    logs = {name: (work / f"{name}.log").open("wb") for name in ("nginx", "one", "two")}
    processes = launch(postgres, redis, ports, work, logs)
    tls = ssl.create_default_context(cafile=str(work / "fullchain.pem"))
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=tls),
                                         cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            for name in ("one", "two"):
                await wait_ready(http, f"http://127.0.0.1:{ports[name]}/readyz", processes[name])
            yield {"http": http, "base": f"https://127.0.0.1:{ports['https']}", "ports": ports,
                   "processes": processes, "url": postgres.url, "work": work, "pbx": pbx}
    finally:
        await pbx.close()
        for process in processes.values():
            if process.poll() is None:
                process.terminate()
        for process in processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        for log in logs.values():
            log.close()


async def admin_headers(url: str) -> dict[str, str]:
    db = Database(url)
    try:
        admin = await auth_service.user_by_name(db, "admin")
        assert admin is not None and admin.roles == ["admin"], "the bootstrap admin was made once"
        return {"Authorization": f"Bearer {await auth_service.create_api_token(db, admin.id, 'deploy test')}"}
    finally:
        await db.dispose()


async def display_token(url: str) -> str:
    db = Database(url)
    try:
        return (await auth_service.create_display_token(db, "hall TV"))[1]
    finally:
        await db.dispose()


@pytest.mark.timeout(240)
async def test_two_instances_behind_nginx_survive_a_kill(deployment: dict[str, Any]) -> None:
    http: aiohttp.ClientSession = deployment["http"]
    base = deployment["base"]
    admin = await admin_headers(deployment["url"])

    async def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
        async with http.post(base + path, json=body, headers=admin) as response:
            assert response.status in (200, 201), f"{path}: {response.status} {await response.text()}"
            return await response.json()  # type: ignore[no-any-return]

    async with http.get(f"http://127.0.0.1:{deployment['ports']['http']}/tv", allow_redirects=False) as plain:
        assert plain.status == 301 and plain.headers["Location"].startswith("https://")
    async with http.get(base + "/healthz") as health:
        assert health.status == 200
        assert health.headers["Strict-Transport-Security"].startswith("max-age=")
        assert health.headers["X-Content-Type-Options"] == "nosniff"
        assert (await health.json())["checks"]["bus"]["kind"] == "redis"

    service = (await post("/api/services", {"prefix": "A", "names": {"vi": "Khám tổng quát"}}))["service"]
    room = (await post("/api/rooms", {"kind": "consult", "number": 1, "service_ids": [service["id"]]}))["room"]

    token = await display_token(deployment["url"])
    async with http.get(f"{base}/tv?token={token}", headers={"Accept": "text/html"}, allow_redirects=False) as first:
        assert first.status == 303 and first.headers["Location"] == "/tv"
        assert "Secure" in first.headers["Set-Cookie"] and "HttpOnly" in first.headers["Set-Cookie"]
    async with http.get(base + "/tv", headers={"Accept": "text/html"}, allow_redirects=False) as page:
        assert page.status == 200  # the cookie, through nginx
    screen = Screen(http, base.replace("https://", "wss://") + "/ws/display", base)
    await screen.connect()

    holder, standby = await asterisk_holder(http, deployment)
    for round_ in range(2):
        ticket = (await post("/api/tickets", {"service_id": service["id"]}))["ticket"]
        called = (await post(f"/api/rooms/{room['id']}/call-next", {}))["ticket"]
        assert called["number"] == ticket["number"]
        await screen.called(ticket["number"])
        if round_ == 0:  # now the instance holding the Asterisk link dies without a goodbye
            deployment["processes"][holder].send_signal(signal.SIGKILL)
            deployment["processes"][holder].wait(timeout=10)
            await screen.settle()
    assert await asterisk_holder(http, deployment, alive=(standby,)) == (standby, holder)  # the standby took over
    assert screen.connections in (1, 2)
    print(f"the screen {'reconnected through nginx' if screen.connections == 2 else 'stayed on the live instance'}")
    log = (deployment["work"] / "access.log").read_text()
    assert "/tv " in log and token not in log  # the first visit's token never reaches the access log


async def asterisk_holder(http: aiohttp.ClientSession, deployment: dict[str, Any], alive: tuple[str, ...] = ("one", "two"),
                          limit: float = 60) -> tuple[str, str]:
    """(the instance holding the Asterisk link, the other) once exactly one AMI session is logged in."""
    pbx: DemoPbx = deployment["pbx"]
    deadline = asyncio.get_running_loop().time() + limit
    while True:
        states = {}
        for name in alive:
            async with http.get(f"http://127.0.0.1:{deployment['ports'][name]}/healthz") as health:
                states[name] = (await health.json())["checks"]["asterisk"]["state"]
        holders = [name for name, state in states.items() if state == "ready"]
        logged_in = sum(1 for session in pbx.sessions if session.authenticated)
        if len(holders) == 1 and logged_in == 1 and all(s in ("ready", "standby") for s in states.values()):
            return holders[0], "two" if holders[0] == "one" else "one"
        assert asyncio.get_running_loop().time() < deadline, f"no single holder of the Asterisk link: {states}"
        await asyncio.sleep(0.2)


def test_systemd_units_verify() -> None:
    """The shipped units parse: no unknown directive or section (only the absent /opt binaries are reported)."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    with tempfile.TemporaryDirectory() as scratch:
        units = Path(scratch)
        for unit in (DEPLOY / "systemd").iterdir():
            shutil.copy(unit, units / unit.name.replace("@.service", "@8081.service"))
        checked = subprocess.run([analyze, "verify", "--man=no", *sorted(str(u) for u in units.iterdir())],
                                 capture_output=True, text=True, timeout=60, cwd=units)
    problems = [line for line in (checked.stdout + checked.stderr).splitlines()
                if line.strip() and "is not executable: No such file or directory" not in line]
    assert problems == []

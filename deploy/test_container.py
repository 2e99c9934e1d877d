"""The container recipe for real (`make test-container`; minutes, so not in `make test` or `make test-deploy`):
builds the Dockerfile, starts deploy/docker/compose.yaml (clinicall x2, PostgreSQL, Redis, nginx with a
self-signed certificate) and checks through nginx over HTTPS: the login page, /readyz, a TV's websocket
and call-next; a clinicall process killed -9 is restarted by Docker; a backup runs in the container.
Skips when no Docker daemon answers. CLINICALL_CONTAINER_BASE=debian adds compose.debian.yaml (PostgreSQL,
Redis and nginx from Debian's packages, for a Docker with no image registry: see docs/deploy.md)."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import signal
import ssl
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from test_deploy import Screen, self_signed_certificate

from tests.servers import free_port

DEPLOY = Path(__file__).resolve().parent
DOCKER_DIR = DEPLOY / "docker"
PASSWORD = "container-test-" + secrets.token_hex(6)


def docker_problem() -> str | None:
    if shutil.which("docker") is None:
        return "no docker command"
    info = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True, timeout=30)
    if info.returncode != 0:
        return f"no Docker daemon answers ({(info.stderr.strip().splitlines() or ['?'])[-1]})"
    return None


def compose_command() -> list[str] | None:
    for command in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(command[0]) and subprocess.run([*command, "version"], capture_output=True, timeout=30).returncode == 0:
            return command
    return None


pytestmark = [pytest.mark.skipif(docker_problem() is not None, reason=f"container test: {docker_problem()}"),
              pytest.mark.timeout(1800)]


class Stack:
    def __init__(self, compose: list[str], project: str, env: dict[str, str]) -> None:
        files = ["-f", str(DOCKER_DIR / "compose.yaml")]
        if os.environ.get("CLINICALL_CONTAINER_BASE") == "debian":
            files += ["-f", str(DOCKER_DIR / "compose.debian.yaml")]
        self.command = [*compose, "-p", project, *files]
        self.env = env

    def run(self, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([*self.command, *args], env=self.env, capture_output=True, text=True, timeout=timeout)
        assert not check or done.returncode == 0, f"{' '.join(args)}: {done.returncode}\n{done.stdout}\n{done.stderr}"
        return done

    def container(self, service: str) -> dict[str, Any]:
        cid = self.run("ps", "-q", service).stdout.strip()
        assert cid, f"{service} has no container"
        inspected = subprocess.run(["docker", "inspect", cid], capture_output=True, text=True, timeout=30, check=True)
        return json.loads(inspected.stdout)[0]  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def site_files() -> Iterator[None]:
    """deploy/docker/.env and certs/, as the guide has the operator make them (a site's own are never touched)."""
    env_file, certs = DOCKER_DIR / ".env", DOCKER_DIR / "certs"
    if env_file.exists() or certs.exists():
        pytest.skip("deploy/docker/.env or certs/ exist (a site's settings): the test does not overwrite them")
    certs.mkdir()
    try:
        self_signed_certificate(certs)  # the key stays 0600 root: nginx's master reads it
        yield
    finally:
        env_file.unlink(missing_ok=True)
        shutil.rmtree(certs, ignore_errors=True)


@pytest.fixture(scope="module")
def stack(site_files: None) -> Iterator[tuple[Stack, int, int]]:
    compose = compose_command()
    if compose is None:
        pytest.skip("neither `docker compose` nor docker-compose is installed")
    https, http = free_port(), free_port()
    example = (DOCKER_DIR / ".env.example").read_text()
    settings = (example.replace("POSTGRES_PASSWORD=CHANGE-ME", f"POSTGRES_PASSWORD={secrets.token_hex(12)}")
                .replace("CLINICALL_AUTH__BOOTSTRAP_PASSWORD=CHANGE-ME-too", f"CLINICALL_AUTH__BOOTSTRAP_PASSWORD={PASSWORD}")
                .replace("https://clinic.example.vn", f"https://127.0.0.1:{https}"))
    published = f"PUBLISH_HTTP=127.0.0.1:{http}\nPUBLISH_HTTPS=127.0.0.1:{https}\nPUBLISH_AGI=127.0.0.1:{free_port()}\n"
    (DOCKER_DIR / ".env").write_text(settings + 'CLINICALL_AUDIO__ENGINES=["espeak"]\n' + published)
    stack = Stack(compose, f"clinicall-test-{os.getpid()}", dict(os.environ))
    try:
        stack.run("build", timeout=1500)
        stack.run("up", "-d", timeout=300)
        yield stack, https, http
    finally:
        logs = stack.run("logs", "--no-color", timeout=60, check=False)
        (DEPLOY / "container-test.log").write_text(logs.stdout + logs.stderr)
        stack.run("down", "-v", "--remove-orphans", timeout=180, check=False)


@pytest.fixture
async def web(stack: tuple[Stack, int, int]) -> AsyncIterator[tuple[aiohttp.ClientSession, str]]:
    tls = ssl.create_default_context(cafile=str(DOCKER_DIR / "certs" / "fullchain.pem"))
    base = f"https://127.0.0.1:{stack[1]}"
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=tls),
                                     cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        deadline = asyncio.get_running_loop().time() + 240
        while True:  # first start: PostgreSQL initialises, both instances migrate (in turn)
            try:
                async with http.get(base + "/readyz") as ready:
                    if ready.status == 200:
                        break
            except aiohttp.ClientError:
                pass
            assert asyncio.get_running_loop().time() < deadline, "nginx never answered /readyz with 200"
            await asyncio.sleep(1)
        yield http, base


async def test_compose_stack_serves_through_nginx(stack: tuple[Stack, int, int],
                                                  web: tuple[aiohttp.ClientSession, str]) -> None:
    compose, _https, plain_port = stack
    http, base = web
    origin = {"Origin": base}

    async with http.get(f"http://127.0.0.1:{plain_port}/login", allow_redirects=False) as plain:
        assert plain.status == 301 and plain.headers["Location"].startswith("https://")
    async with http.get(base + "/login") as login_page:
        assert login_page.status == 200 and login_page.content_type == "text/html"
        assert login_page.headers["Strict-Transport-Security"].startswith("max-age=")
    async with http.get(base + "/healthz") as health:
        assert (await health.json())["checks"]["bus"]["kind"] == "redis"
    async with http.post(base + "/api/login", json={"username": "admin", "password": PASSWORD}, headers=origin) as login:
        assert login.status == 200, await login.text()

    async def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
        async with http.post(base + path, json=body, headers=origin) as response:
            assert response.status in (200, 201), f"{path}: {response.status} {await response.text()}"
            return await response.json()  # type: ignore[no-any-return]

    service = (await post("/api/services", {"prefix": "A", "names": {"vi": "Khám tổng quát"}}))["service"]
    room = (await post("/api/rooms", {"kind": "consult", "number": 1, "service_ids": [service["id"]]}))["room"]
    token = (await post("/api/display-tokens", {"name": "hall TV"}))["token"]
    async with http.get(f"{base}/tv?token={token}", headers={"Accept": "text/html"}, allow_redirects=False) as first:
        assert first.status == 303 and "HttpOnly" in first.headers["Set-Cookie"]
    screen = Screen(http, base.replace("https://", "wss://") + "/ws/display", base)
    await screen.connect()

    for round_ in range(2):
        ticket = (await post("/api/tickets", {"service_id": service["id"]}))["ticket"]
        called = (await post(f"/api/rooms/{room['id']}/call-next", {}))["ticket"]
        assert called["number"] == ticket["number"]
        await screen.called(ticket["number"])
        if round_ == 0:  # kill -9 of clinicall1's process: Docker restarts it (restart: unless-stopped)
            before = compose.container("clinicall1")
            os.kill(before["State"]["Pid"], signal.SIGKILL)
            await screen.settle()
            await restarted(compose, before["RestartCount"])

    network = compose.container("clinicall1")["NetworkSettings"]["Networks"]
    assert [n["Gateway"] for n in network.values()] == ["172.28.0.1"]  # the host, as docs/deploy.md says for AMI
    backup = compose.run("exec", "-T", "clinicall1", "clinicall", "backup", timeout=120)
    assert "clinicall-" in backup.stdout + backup.stderr


async def restarted(compose: Stack, count: int, limit: float = 120) -> None:
    deadline = asyncio.get_running_loop().time() + limit
    while True:
        state = compose.container("clinicall1")
        if state["RestartCount"] > count and state["State"]["Running"]:
            return
        assert asyncio.get_running_loop().time() < deadline, f"clinicall1 was not restarted: {state['State']}"
        await asyncio.sleep(0.5)


SETUP = """set -eu
for _ in $(seq 240); do  # until systemd (just started) has booted
  state=$(systemctl is-system-running --wait 2>/dev/null || true)
  case $state in running|degraded) break;; esac
  sleep 0.5
done
systemctl is-active postgresql redis-server
runuser -u postgres -- psql -q -c "CREATE USER clinicall PASSWORD '$DB_PASSWORD'"
runuser -u postgres -- createdb --owner clinicall clinicall
sed -i "s/CHANGE-ME@/$DB_PASSWORD@/; s/CHANGE-ME-too/$ADMIN_PASSWORD/" /etc/clinicall/clinicall.env
echo 'CLINICALL_AUDIO__ENGINES=["espeak"]' >> /etc/clinicall/clinicall.env
systemctl daemon-reload
systemctl start clinicall@8081 clinicall@8082
"""

# Runs inside the container (python3 - PASSWORD STEP): the instances' HTTP API on their own ports, as admin.
API = """import json, sys, time, urllib.error, urllib.request
base = "http://127.0.0.1:8081"
def bus_ok(port):
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).read()
    except urllib.error.HTTPError as error:
        body = error.read()
    except OSError:
        return False
    return json.loads(body)["checks"]["bus"] == {**json.loads(body)["checks"]["bus"], "ok": True, "kind": "redis"}
for port in (8081, 8082):
    for _ in range(300):
        if bus_ok(port):
            break
        time.sleep(0.5)
    else:
        sys.exit(f"{port} never ready with its events on Redis")
login = urllib.request.Request(base + "/api/login", method="POST", data=json.dumps(
    {"username": "admin", "password": sys.argv[1]}).encode(), headers={"Content-Type": "application/json", "Origin": base})
cookie = urllib.request.urlopen(login).headers["Set-Cookie"].split(";")[0]
def post(path, body):
    request = urllib.request.Request(base + path, method="POST", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json", "Origin": base, "Cookie": cookie})
    return json.load(urllib.request.urlopen(request))
if sys.argv[2] == "room":
    service = post("/api/services", {"prefix": "A", "names": {"vi": "Khám tổng quát"}})["service"]
    room = post("/api/rooms", {"kind": "consult", "number": 1, "service_ids": [service["id"]]})["room"]
    print(room["id"], service["id"], post("/api/display-tokens", {"name": "room speaker"})["token"])
else:
    room_id, service_id = sys.argv[3:5]
    post("/api/tickets", {"service_id": int(service_id)})
    print(post(f"/api/rooms/{room_id}/call-next", {})["ticket"]["number"])
"""

SPEAKER = """set -eu
umask 077
printf '%s' "$TOKEN" > /etc/clinicall/speaker.token
printf 'CLINICALL_SPEAKER_ROOM=%s\\nCLINICALL_SPEAKER_SERVER=http://127.0.0.1:8081\\n' "$ROOM" > /etc/clinicall/speaker.env
chmod 0644 /etc/clinicall/speaker.env
systemctl start clinicall-speaker
"""


@pytest.fixture(scope="module")
def systemd_container(stack: tuple[Stack, int, int]) -> Iterator[str]:
    image = stack[0].container("clinicall1")["Config"]["Image"]
    tag = f"clinicall-systemd-test:{os.getpid()}"
    built = subprocess.run(["docker", "build", "-q", "--build-arg", f"CLINICALL_IMAGE={image}", "-t", tag, "-f",
                            str(DOCKER_DIR / "systemd-test.Dockerfile"), str(DEPLOY)],
                           capture_output=True, text=True, timeout=900)
    assert built.returncode == 0, built.stderr
    # systemd as PID 1 needs to mount (SYS_ADMIN, no seccomp filter) and the cgroup tree; not --privileged,
    # which fails where Docker itself runs without every capability.
    started = subprocess.run(["docker", "run", "-d", "--cap-add", "SYS_ADMIN", "--security-opt", "seccomp=unconfined",
                              "--security-opt", "apparmor=unconfined", "--cgroupns=host",
                              "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "--tmpfs", "/run", "--tmpfs", "/run/lock",
                              "--tmpfs", "/tmp", tag], capture_output=True, text=True, timeout=120)
    assert started.returncode == 0, started.stderr
    container = started.stdout.strip()
    try:
        yield container
    finally:
        journal = subprocess.run(["docker", "exec", container, "journalctl", "--no-pager", "-o", "short-iso"],
                                 capture_output=True, text=True, timeout=60)
        (DEPLOY / "systemd-test.log").write_text(journal.stdout + journal.stderr)
        subprocess.run(["docker", "rm", "-f", "-v", container], capture_output=True, timeout=120)
        subprocess.run(["docker", "rmi", tag], capture_output=True, timeout=120)


def in_container(container: str, *command: str, stdin: str | None = None, env: dict[str, str] | None = None,
                 timeout: float = 120) -> str:
    flags = [arg for name, value in (env or {}).items() for arg in ("-e", f"{name}={value}")]
    done = subprocess.run(["docker", "exec", "-i", *flags, container, *command], input=stdin, capture_output=True,
                          text=True, timeout=timeout)
    assert done.returncode == 0, f"{command}: {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def unit(container: str, name: str, prop: str) -> str:
    return in_container(container, "systemctl", "show", "-p", prop, "--value", name).strip()


async def wait_for(check: Any, what: str, limit: float = 120) -> None:
    deadline = asyncio.get_running_loop().time() + limit
    while not check():
        assert asyncio.get_running_loop().time() < deadline, what
        await asyncio.sleep(0.5)


async def test_systemd_units_run_under_systemd(systemd_container: str) -> None:
    """Under systemd as PID 1: the hardened instance units start together, serve, write the speech cache,
    restart after kill -9; the speaker unit reads its token credential, connects and fetches a clip; the
    backup unit runs pg_dump."""
    box = systemd_container
    in_container(box, "bash", "-s", stdin=SETUP, env={"DB_PASSWORD": secrets.token_hex(8), "ADMIN_PASSWORD": PASSWORD},
                 timeout=300)
    room_id, service_id, token = in_container(box, "python3", "-", PASSWORD, "room", stdin=API, timeout=300).split()
    for port in ("8081", "8082"):
        assert unit(box, f"clinicall@{port}", "ActiveState") == "active"
    assert unit(box, "clinicall@8081", "ProtectSystem") == "strict"

    in_container(box, "bash", "-s", stdin=SPEAKER, env={"TOKEN": token, "ROOM": room_id})
    speaker_log = lambda: in_container(box, "journalctl", "--no-pager", "-o", "cat", "-u", "clinicall-speaker")  # noqa: E731
    await wait_for(lambda: "speaker connected" in speaker_log(), "the speaker never connected")
    in_container(box, "python3", "-", PASSWORD, "call", room_id, service_id, stdin=API)
    # the clip was made (espeak-ng, into /var/lib/clinicall/audio) and fetched; the container has no sound card
    await wait_for(lambda: "aplay failed" in speaker_log(), "the speaker never played the announcement")
    assert in_container(box, "find", "/var/lib/clinicall/audio/clips", "-name", "*.wav").strip()
    assert unit(box, "clinicall-speaker", "NRestarts") == "0"

    pid = unit(box, "clinicall@8081", "MainPID")
    in_container(box, "bash", "-c", f"kill -9 {pid}")
    await wait_for(lambda: unit(box, "clinicall@8081", "MainPID") not in ("0", pid)
                   and unit(box, "clinicall@8081", "ActiveState") == "active", "clinicall@8081 not restarted after kill -9")
    assert int(unit(box, "clinicall@8081", "NRestarts")) == 1
    in_container(box, "python3", "-", PASSWORD, "call", room_id, service_id, stdin=API)  # serves again

    in_container(box, "systemctl", "start", "clinicall-backup.service", timeout=180)
    assert unit(box, "clinicall-backup.service", "Result") == "success"
    assert "clinicall-" in in_container(box, "ls", "/var/lib/clinicall/backups")

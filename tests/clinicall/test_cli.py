import os
import re
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

from tests.servers import free_port

CLI = [sys.executable, "-m", "clinicall.cli"]


def env_for(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLINICALL_")}
    env.update({"CLINICALL_DATABASE__URL": f"sqlite+aiosqlite:///{tmp_path}/c.db", "CLINICALL_DATA_DIR": str(tmp_path),
                "CLINICALL_LOG_LEVEL": "WARNING"}, **extra)
    return env


def test_user_add_reads_password_and_refuses_short_ones(tmp_path: Path) -> None:
    env = env_for(tmp_path)
    ok = subprocess.run([*CLI, "user", "add", "boss", "--role", "admin"], input="a-long-password\n", text=True,
                        capture_output=True, env=env, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert "created user boss" in ok.stdout
    short = subprocess.run([*CLI, "user", "add", "bob", "--role", "agent"], input="short\n", text=True,
                           capture_output=True, env=env, timeout=60)
    assert short.returncode == 2 and "at least 10 characters" in short.stderr


def test_bad_setting_stops_startup(tmp_path: Path) -> None:
    result = subprocess.run([*CLI, "migrate"], capture_output=True, text=True, timeout=60,
                            env=env_for(tmp_path, CLINICALL_HTTP__PORT="http"))
    assert result.returncode == 2
    assert "CLINICALL_HTTP__PORT" in result.stderr


def test_serve_answers_healthz_and_stops_cleanly(tmp_path: Path) -> None:
    # port 0: serve binds a free port itself and prints it (a port picked here could be taken by another suite
    # before serve binds it, and the test would then talk to that program)
    env = env_for(tmp_path, CLINICALL_HTTP__PORT="0", CLINICALL_TELEPHONY__AGI_PORT="0")
    process = subprocess.Popen([*CLI, "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert process.stdout is not None
        seen = []
        for line in process.stdout:  # pytest's hang limit bounds a serve that never says it serves
            seen.append(line)
            if "is serving on" in line:
                break
        url = re.search(r"is serving on (http://\S+)", "".join(seen))
        assert url, f"clinicall serve exited early:\n{''.join(seen)}"
        with urllib.request.urlopen(f"{url[1]}/healthz", timeout=60) as response:  # a loaded machine
            assert response.status == 200
    finally:
        if process.poll() is None:
            process.terminate()
        output = process.communicate(timeout=30)[0]
    assert process.returncode == 0, output


def test_a_taken_port_is_a_clear_message(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        env = env_for(tmp_path, CLINICALL_HTTP__PORT=str(taken.getsockname()[1]),
                      CLINICALL_TELEPHONY__AGI_PORT=str(free_port()))
        result = subprocess.run([*CLI, "serve"], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert "could not start" in result.stderr and "CLINICALL_HTTP__PORT" in result.stderr
    assert "Traceback" not in result.stderr

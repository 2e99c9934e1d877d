"""Audio test fixtures: a guard that fails any test whose code tries to reach beyond this machine
(gTTS must never reach Google), and a local "black hole" endpoint that accepts connections and never
answers, standing in for an unreachable Google."""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from clinicall.settings import AudioSettings

LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "", None}


def _is_local_address(address: Any) -> bool:
    if isinstance(address, tuple) and address:
        host = address[0]
        return host in LOCAL_HOSTS or str(host).startswith("127.")
    return True  # unix sockets and socketpairs stay on this machine


@pytest.fixture(autouse=True)
def no_outside_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Refuse and record every attempt to resolve or connect to anything but loopback."""
    attempts: list[str] = []
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def connect(self: socket.socket, address: Any) -> Any:
        if not _is_local_address(address):
            attempts.append(f"connect {address}")
            raise OSError(f"test guard: no connections beyond this machine ({address})")
        return real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> Any:
        if not _is_local_address(address):
            attempts.append(f"connect_ex {address}")
            raise OSError(f"test guard: no connections beyond this machine ({address})")
        return real_connect_ex(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name not in LOCAL_HOSTS and not str(name).startswith("127."):
            attempts.append(f"resolve {name}")
            raise socket.gaierror(f"test guard: no name lookups beyond this machine ({name})")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield attempts
    assert attempts == [], f"something tried to leave the machine: {attempts}"


@dataclass
class BlackHole:
    url: str
    requests: list[bytes] = field(default_factory=list)
    connected: threading.Event = field(default_factory=threading.Event)


@pytest.fixture
def blackhole() -> Iterator[BlackHole]:
    """An HTTP endpoint on 127.0.0.1 that reads the request and never answers."""
    release = threading.Event()
    hole: BlackHole

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            hole.connected.set()
            self.request.settimeout(0.2)
            data = b""
            while not release.is_set():
                try:
                    chunk = self.request.recv(65536)
                except TimeoutError:
                    continue
                except OSError:
                    break
                if not chunk:
                    break
                data += chunk
                if b"\r\n\r\n" in data and data not in hole.requests:
                    hole.requests.append(data)

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    port = server.server_address[1]
    hole = BlackHole(url=f"http://127.0.0.1:{port}/_/TranslateWebserverUi/data/batchexecute")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield hole
    release.set()
    server.shutdown()
    server.server_close()


@pytest.fixture
def audio_settings(tmp_path: Path) -> Callable[..., AudioSettings]:
    def build(**overrides: Any) -> AudioSettings:
        base: dict[str, Any] = {"cache_dir": str(tmp_path / "audio"), "recorded_dir": str(tmp_path / "recorded"),
                                "engines": ["espeak"]}
        return AudioSettings(**{**base, **overrides})

    return build

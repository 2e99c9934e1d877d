"""What `make run` prints before serving: the URLs the service really listens on (CLINICALL_HTTP__HOST,
CLINICALL_HTTP__PORT, CLINICALL_HTTP__PUBLIC_URL or the TOML file) and the demo logins in the data directory."""

from __future__ import annotations

import sys
from pathlib import Path

from clinicall.settings import SettingsError, load_settings


def main() -> int:
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"  settings: {exc}", file=sys.stderr)
        return 1
    http = settings.http
    host = "127.0.0.1" if http.host in ("0.0.0.0", "::", "") else http.host
    local = f"http://{'[' + host + ']' if ':' in host else host}:{http.port}"
    print(f"  clinicall: {local}/   health: {local}/healthz")
    if http.public_url and http.public_url.rstrip("/") != local:
        print(f"  public URL: {http.public_url.rstrip('/')}/")
    if http.host in ("0.0.0.0", "::"):
        print(f"  (listening on every interface, {http.host}:{http.port})")
    logins = Path(settings.data_dir) / "demo-login.txt"
    if logins.is_file():
        for line in logins.read_text(encoding="utf-8").splitlines():
            print(f"  {line}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

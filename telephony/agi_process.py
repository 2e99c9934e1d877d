"""`clinicall-agi identify`: caller identification for sites that run AGI as a process per call
(`AGI(clinicall-agi,identify)` with the script in Asterisk's agi-bin, or a full path).

It speaks AGI through pyst2's `asterisk.agi.AGI` on text-mode stdin/stdout, asks the running
service `GET /api/callers/identify?number=...&uniqueid=...` with a bearer token, and sets the
channel variables the service returns (CALLERID(name), PATIENT_ID, CLINICALL_AGENT_EXT,
CLINICALL_AGENT_DIAL). The service publishes the screen-pop. On any error it sets nothing and
exits 0, so the dialplan goes on.

Configuration, environment first, then a TOML file (`CLINICALL_AGI_CONFIG`, default
/etc/clinicall/agi.toml, keys url / token / timeout_seconds):
  CLINICALL_AGI_URL      the service's base URL (default http://127.0.0.1:8080)
  CLINICALL_AGI_TOKEN    a bearer token of a supervisor (an agent's token sees only its own patients)
  CLINICALL_AGI_TIMEOUT  seconds to wait for the service (default 2)
  CLINICALL_AGI_DEBUG    1: pyst2's protocol log on stderr (Asterisk's console)

Start-up cost: the `clinicall-agi` console script imports the whole `telephony` package (aiohttp,
SQLAlchemy, pydantic: about 1.4 s of CPU here). Running this file directly skips all that (about
0.15 s): `python -P /path/to/telephony/agi_process.py identify` (see docs/telephony-agi.md).
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__":
    # Run as a file (`python -P .../telephony/agi_process.py identify`, the fast path that skips the
    # telephony package's imports): never let telephony/http.py shadow the standard library's http.
    _here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]

import contextlib  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import tomllib  # noqa: E402
import urllib.parse  # noqa: E402
import urllib.request  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, TextIO  # noqa: E402

DEFAULT_CONFIG = "/etc/clinicall/agi.toml"
ALLOWED_VARIABLES = ("CALLERID(name)", "PATIENT_ID", "CLINICALL_AGENT_EXT", "CLINICALL_AGENT_DIAL")
SAFE_VALUE = re.compile(r"^[^\x00-\x1f\x7f\"\\]{1,2000}\Z")


@dataclass(frozen=True)
class AGIConfig:
    url: str = "http://127.0.0.1:8080"
    token: str = ""
    timeout_seconds: float = 2.0
    debug: bool = False


def load_config(environ: dict[str, str] | None = None) -> AGIConfig:
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    path = Path(env.get("CLINICALL_AGI_CONFIG", DEFAULT_CONFIG))
    if path.is_file():
        with path.open("rb") as handle:
            values.update(tomllib.load(handle))
    if "CLINICALL_AGI_URL" in env:
        values["url"] = env["CLINICALL_AGI_URL"]
    if "CLINICALL_AGI_TOKEN" in env:
        values["token"] = env["CLINICALL_AGI_TOKEN"]
    if "CLINICALL_AGI_TIMEOUT" in env:
        values["timeout_seconds"] = env["CLINICALL_AGI_TIMEOUT"]
    return AGIConfig(url=str(values.get("url", AGIConfig.url)).rstrip("/"), token=str(values.get("token", "")),
                     timeout_seconds=float(values.get("timeout_seconds", AGIConfig.timeout_seconds)),
                     debug=env.get("CLINICALL_AGI_DEBUG", "") in ("1", "true", "yes"))


def ask_service(config: AGIConfig, number: str, uniqueid: str) -> dict[str, Any]:
    query = urllib.parse.urlencode({"number": number, "uniqueid": uniqueid} if uniqueid else {"number": number})
    request = urllib.request.Request(f"{config.url}/api/callers/identify?{query}",
                                     headers={"Authorization": f"Bearer {config.token}", "Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=config.timeout_seconds) as response:  # noqa: S310 (configured URL)
        body = json.loads(response.read(65536).decode("utf-8"))
    if not isinstance(body, dict):
        raise ValueError("the service did not answer with a JSON object")
    return body


def safe_variables(body: dict[str, Any]) -> list[tuple[str, str]]:
    """The service's variables, re-checked here: only known names, no quotes, backslashes or
    control characters (nothing with CR/LF reaches Asterisk)."""
    pairs = []
    for item in body.get("variables") or []:
        if not (isinstance(item, list | tuple) and len(item) == 2):
            continue
        name, value = str(item[0]), str(item[1])
        if name in ALLOWED_VARIABLES and SAFE_VALUE.match(value):
            pairs.append((name, value))
    return pairs


def run_identify(stdin: TextIO, stdout: TextIO, stderr: TextIO, config: AGIConfig) -> None:
    from asterisk.agi import AGI

    agi = AGI(stdin=stdin, stdout=stdout, stderr=stderr)
    number = agi.env.get("agi_callerid", "")
    uniqueid = agi.env.get("agi_uniqueid", "")
    try:
        body = ask_service(config, number, uniqueid)
    except Exception as exc:
        _note(f"clinicall-agi: caller lookup failed ({type(exc).__name__}: {exc}); the call goes on\n")
        return
    for name, value in safe_variables(body):
        agi.set_variable(name, value)


def _note(text: str) -> None:
    # Asterisk shows an AGI's stderr on its console: say in one line why nothing was set.
    with contextlib.suppress(Exception):
        sys.stderr.write(text)
        sys.stderr.flush()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    script = args[0] if args else "identify"
    with contextlib.suppress(Exception):
        sys.stdin.reconfigure(encoding="utf-8", errors="replace")  # type: ignore[union-attr]
        sys.stdout.reconfigure(encoding="utf-8", errors="replace")  # type: ignore[union-attr]
    try:
        config = load_config()
    except Exception as exc:
        _note(f"clinicall-agi: bad configuration ({exc}); the call goes on\n")
        return 0
    if script != "identify":
        _note(f"clinicall-agi: unknown script {script[:40]!r}; the only script is 'identify'\n")
        return 0
    quiet: TextIO = sys.stderr if config.debug else io.StringIO()
    try:
        run_identify(sys.stdin, sys.stdout, quiet, config)
    except Exception as exc:  # a hangup, a broken pipe, a protocol surprise: the dialplan goes on
        _note(f"clinicall-agi: {type(exc).__name__}: {exc}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""config/asterisk/ must match what clinicall sends and expects: the settings defaults, the FastAGI
script, the AMI actions the code sends and the events the call log reads (with the privilege
classes Asterisk 22 gave them in the recorded traces)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from clinicall.settings import TelephonySettings
from tests.telephony.agi_peer import FIXTURES, load_trace

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "config" / "asterisk"

# Asterisk 22 manager.c / app_mixmonitor.c: an action is allowed when the user holds ANY of its classes.
# Originate and Hangup are confirmed by cli/manager_show_command_*.txt.
ACTION_CLASSES = {
    "Originate": {"originate"},
    "Hangup": {"system", "call"},
    "CoreShowChannels": {"system", "reporting"},
    "Status": {"system", "call", "reporting"},
    "Getvar": {"call", "reporting"},
    "Setvar": {"call"},
    "Redirect": {"call"},
    "MixMonitor": {"system"},
    "StopMixMonitor": {"system", "call"},
    "Ping": set(),
    "Login": set(),
    "Logoff": set(),
    "Events": set(),
    "Challenge": set(),
}
# The events the call log needs (telephony/calltrack.py and ami.py).
EVENTS_READ = ("Newchannel", "Newstate", "Hangup", "DialBegin", "DialState", "DialEnd", "BridgeEnter",
               "BridgeLeave", "OriginateResponse", "Cdr", "VarSet", "Newexten", "FullyBooted", "Shutdown")


def parse_conf(path: Path) -> list[tuple[str, str, str, str]]:
    """(section, key, operator, value) for each setting line; comments (;) dropped."""
    rows = []
    section = ""
    for raw in path.read_text().splitlines():
        line = re.sub(r"(?<!\\);.*$", "", raw).strip()
        if not line:
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        match = re.match(r"^([^=]+?)\s*(=>|=)\s*(.*)$", line)
        assert match, f"{path.name}: cannot parse {raw!r}"
        rows.append((section, match.group(1).strip(), match.group(2), match.group(3).strip()))
    return rows


def section(rows: list[tuple[str, str, str, str]], name: str) -> dict[str, str]:
    return {key: value for sec, key, _, value in rows if sec == name}


def classes(value: str) -> set[str]:
    return {part.strip() for part in value.split(",") if part.strip()}


def trace_privileges() -> dict[str, set[str]]:
    """Event -> its privilege class, from every recorded AMI trace."""
    found: dict[str, set[str]] = {}
    for path in FIXTURES.glob("*.recv.raw"):
        event = None
        for line in path.read_bytes().decode("utf-8", "replace").replace("\r", "").split("\n"):
            if line.startswith("Event: "):
                event = line[7:].strip()
            elif line.startswith("Privilege: ") and event:
                found.setdefault(event, set()).update(classes(line[11:]) - {"all"})
            elif not line:
                event = None
    return found


def actions_sent_by_code() -> set[str]:
    """Every AMI action the telephony code writes (("Action", "X") pairs or {"Action": "X"} dicts)."""
    sent = set()
    for path in (ROOT / "telephony").glob("*.py"):
        text = path.read_text()
        sent.update(re.findall(r'\(\s*"Action"\s*,\s*"([A-Za-z]+)"\s*\)', text))
        sent.update(re.findall(r'"Action"\s*:\s*"([A-Za-z]+)"', text))
    return sent


def asterisk_pattern_matches(pattern: str, exten: str) -> bool:
    if not pattern.startswith("_"):
        return pattern == exten
    regex = ""
    chars = iter(pattern[1:])
    for ch in chars:
        if ch == "X":
            regex += "[0-9]"
        elif ch == "Z":
            regex += "[1-9]"
        elif ch == "N":
            regex += "[2-9]"
        elif ch == ".":
            regex += ".+"
        elif ch == "!":
            regex += ".*"
        elif ch == "[":
            body = ""
            for inner in chars:
                if inner == "]":
                    break
                body += inner
            regex += f"[{body}]"
        else:
            regex += re.escape(ch)
    return re.fullmatch(regex, exten) is not None


def dialplan(path: Path) -> dict[str, list[tuple[str, str]]]:
    """context -> [(extension, application call)] in order, `same =>` lines included."""
    contexts: dict[str, list[tuple[str, str]]] = {}
    current = ""
    for sec, key, _, value in parse_conf(path):
        if key == "exten":
            current, _, rest = value.partition(",")
            _, _, app = rest.partition(",")
        elif key == "same":
            _, _, app = value.partition(",")
        else:
            continue
        contexts.setdefault(sec, []).append((current, app.strip()))
    return contexts


def test_manager_conf_is_loopback_only_with_the_least_classes() -> None:
    rows = parse_conf(CONFIG / "manager.conf")
    defaults = TelephonySettings()
    general = section(rows, "general")
    assert general["bindaddr"] == "127.0.0.1" and general["port"] == str(defaults.ami_port)
    assert general["webenabled"] == "no"

    user = [(key, value) for sec, key, _, value in rows if sec == defaults.ami_username]
    assert user, "manager.conf has no section for telephony.ami_username"
    values = dict(user)
    assert [v for k, v in user if k == "deny"] == ["0.0.0.0/0.0.0.0"]
    assert [v for k, v in user if k == "permit"] == ["127.0.0.1/255.255.255.255"]
    assert "secret" not in values, "no default secret may ship"
    read, write = classes(values["read"]), classes(values["write"])
    assert "all" not in read | write
    assert not write & {"system", "command", "config", "user", "agi", "aoc", "message", "originate_all"} - {"originate"}

    privileges = trace_privileges()
    for event in EVENTS_READ:
        assert privileges[event] <= read, f"read = {values['read']} misses {event} ({privileges[event]})"
    assert read <= set().union(*(privileges[e] for e in EVENTS_READ)), "read grants classes nobody uses"

    sent = actions_sent_by_code()
    assert "Originate" in sent, f"the telephony code sends no Originate? found {sorted(sent)}"
    for action in sent - {"MixMonitor"}:
        assert action in ACTION_CLASSES, f"unknown AMI action {action}: add its classes here and to manager.conf"
        needed = ACTION_CLASSES[action]
        assert not needed or needed & write, f"write = {values['write']} cannot send {action} ({needed})"

    # Recording sends MixMonitor, which needs "system": the documented alternative line grants it.
    alternative = [line for line in (CONFIG / "manager.conf").read_text().splitlines() if line.startswith(";write =")]
    assert len(alternative) == 1
    assert ACTION_CLASSES["MixMonitor"] <= classes(alternative[0].split("=", 1)[1])
    assert classes(alternative[0].split("=", 1)[1]) - write == {"system"}


def test_cdr_manager_maps_the_patient_id_the_call_log_reads() -> None:
    rows = parse_conf(CONFIG / "cdr_manager.conf")
    assert section(rows, "general")["enabled"] == "yes"
    assert section(rows, "mappings") == {"PATIENT_ID": "PatientID"}
    # The same mapping as the Asterisk that recorded the traces, whose Cdr events carry PatientID.
    recorded = parse_conf(FIXTURES / "asterisk_config" / "cdr_manager.conf")
    assert section(recorded, "mappings") == {"PATIENT_ID": "PatientID"}
    assert b"PatientID: 42" in (FIXTURES / "click_to_call_answered.recv.raw").read_bytes()


def test_extensions_conf_matches_the_settings_and_the_fastagi_server() -> None:
    defaults = TelephonySettings()
    contexts = dialplan(CONFIG / "extensions.conf")
    assert {"agents", "inbound", defaults.outbound_context} <= set(contexts)
    for context in getattr(defaults, "inbound_contexts", ["inbound"]):
        assert context in contexts

    # Outbound: the Originate the service really sends, for the numbers its policy lets through.
    from telephony.policy import dial_target
    from telephony.service import originate_headers

    outbound = contexts[defaults.outbound_context]
    patterns = {exten for exten, _ in outbound}
    for number in ("0912345678", "+84901234567", "028 3812 3456"):
        target = dial_target(number, defaults, "VN")
        sent = originate_headers(defaults, call_id=7, extension="1001", exten=target.exten, patient_id=42,
                                  installation="0a1b2c3d")
        headers = dict(sent)
        assert headers["Context"] in contexts and headers["Priority"] == "1"
        assert any(asterisk_pattern_matches(p, headers["Exten"]) for p in patterns), (number, headers["Exten"])
        variables = {v.split("=", 1)[0] for k, v in sent if k == "Variable"}
        assert variables == {"CLINICALL_CALL_ID", "PATIENT_ID"}
        used = "\n".join(app for _, app in outbound)
        assert all("${" + name + "}" in used for name in variables)
    for pattern in patterns:
        apps = [app for exten, app in outbound if exten == pattern]
        assert any("Set(CDR(PATIENT_ID)=" in app for app in apps), pattern
        assert any(app.startswith("Dial(") for app in apps), pattern

    # Inbound: the FastAGI call on the default host/port with the script the server knows, then the
    # CDR patient id, then the agent's extension, the team, and a fallback.
    inbound = [app for _, app in contexts["inbound"]]
    agi_calls = [app for app in inbound if app.startswith("AGI(")]
    assert agi_calls == [f"AGI(agi://{defaults.agi_host}:{defaults.agi_port}/{script})"
                         for script in ("identify", "queue_position")]
    # The same request Asterisk made in the recorded traces, which test_agi.py replays to the server.
    recorded = load_trace("inbound_call").header.decode()
    assert f"agi_request: {agi_calls[0][4:-1]}\n" in recorded and "agi_network_script: identify\n" in recorded
    position = inbound.index(agi_calls[0])
    after = "\n".join(inbound[position:])
    assert "Set(CDR(PATIENT_ID)=${FILTER(0-9,${PATIENT_ID})})" in after
    technology = defaults.agent_channel.split("/", 1)[0]
    assert f"Dial({technology}/${{FILTER(0-9,${{CLINICALL_AGENT_EXT}})}}" in after
    assert "Dial(${CLINICALL_AGENT_DIAL}" in after
    assert "Dial(${CLINICALL_RING_GROUP}" in after

    # Every variable the dialplan reads from the AGI is one the identify script sets.
    from telephony.agi_process import ALLOWED_VARIABLES

    read_vars = set(re.findall(r"\$\{(CLINICALL_AGENT_[A-Z]+|PATIENT_ID)\}", after))
    assert read_vars <= set(ALLOWED_VARIABLES)
    assert {"CLINICALL_AGENT_EXT", "CLINICALL_AGENT_DIAL", "PATIENT_ID"} <= read_vars


@pytest.mark.parametrize("name", ["manager.conf", "extensions.conf", "cdr_manager.conf", "cel.conf",
                                  "cel_sqlite3_custom.conf", "cel_pgsql.conf", "cdr_sqlite3_custom.conf",
                                  "cdr_pgsql.conf"])
def test_every_snippet_is_commented(name: str) -> None:
    lines = (CONFIG / name).read_text().splitlines()
    assert lines[0].startswith(";"), "each file starts by saying where it goes"
    comments = sum(1 for line in lines if line.strip().startswith(";") or " ; " in line)
    assert comments >= 5


# ---- CEL / CDR into a database clinicall reads back (telephony/cel_source.py) -----------------------

RIG_CONFIG = FIXTURES / "rig" / "config"
# The columns cel_pgsql fills by name (cel_pgsql.c); any other column gets ''.
CEL_PGSQL_COLUMNS = {"eventtime", "eventtype", "userdeftype", "cid_name", "cid_num", "cid_ani", "cid_rdnis",
                     "cid_dnid", "exten", "context", "channame", "appname", "appdata", "accountcode",
                     "peeraccount", "uniqueid", "linkedid", "amaflags", "userfield", "peer", "extra"}
CEL_EVENTS_NEEDED = {"CHAN_START", "ANSWER", "BRIDGE_ENTER", "BRIDGE_EXIT", "HANGUP", "CHAN_END", "LINKEDID_END",
                     "BLINDTRANSFER", "ATTENDEDTRANSFER"}


def sql_columns(path: Path, table: str) -> list[str]:
    body = re.search(rf"CREATE TABLE IF NOT EXISTS {table} \((.*?)\n\);", path.read_text(), re.S)
    assert body, f"{path.name} creates no table {table}"
    return [line.split()[0].strip('"') for line in body.group(1).strip().splitlines() if line.strip()]


def custom_mapping(path: Path) -> tuple[str, list[str], list[str]]:
    master = section(parse_conf(path), "master")
    columns = [c.strip() for c in master["columns"].split(",")]
    values = re.findall(r"'([^']*)'", master["values"])
    return master["table"], columns, values


def test_cel_conf_logs_every_event_the_recovery_reads() -> None:
    rows = parse_conf(CONFIG / "cel.conf")
    general = section(rows, "general")
    assert general["enable"] == "yes"
    events = {e.strip() for e in general["events"].split(",")}
    assert events == {"ALL"} or CEL_EVENTS_NEEDED <= events
    assert "dateformat" not in general, "cel_sqlite3_custom must write eventtime as epoch.usec (cel_source reads it)"
    assert section(rows, "manager")["enabled"] == "yes"
    # CEL over AMI is class "call", which clinicall's user reads.
    read = classes(section(parse_conf(CONFIG / "manager.conf"), TelephonySettings().ami_username)["read"])
    assert b"Event: CEL\r\nPrivilege: call,all\r\n" in (FIXTURES / "rig" / "restart_then_stop.recv.raw").read_bytes()
    assert "call" in read


def test_cel_sqlite3_custom_writes_the_columns_cel_source_reads() -> None:
    from telephony.cel_source import FIELDS

    table, columns, values = custom_mapping(CONFIG / "cel_sqlite3_custom.conf")
    assert table == "cel" and len(columns) == len(values) == len(set(columns))
    assert {column for _, column in FIELDS} <= set(columns)
    assert set(columns) <= CEL_PGSQL_COLUMNS, "the same names as cel_pgsql's, one reader for both"
    assert dict(zip(columns, values, strict=True))["eventtime"] == "${eventtime}"
    # exactly the mapping of the Asterisk that wrote the recorded rows
    assert custom_mapping(RIG_CONFIG / "cel_sqlite3_custom.conf") == (table, columns, values)
    recorded = (FIXTURES / "rig" / "restart_then_stop.cel.sqlite.sql").read_text()
    assert f"CREATE TABLE cel (AcctId INTEGER PRIMARY KEY, {','.join(columns)})" in recorded


def test_cel_pgsql_table_has_the_columns_cel_pgsql_fills_and_cel_source_reads() -> None:
    from telephony.cel_source import FIELDS

    conf = section(parse_conf(CONFIG / "cel_pgsql.conf"), "global")
    assert conf["table"] == "cel" and conf["usegmtime"] == "yes", "cel_source reads eventtime as UTC"
    assert "password" not in conf, "no default secret may ship"
    columns = sql_columns(CONFIG / "cel_pgsql.sql", "cel")
    assert set(columns) == CEL_PGSQL_COLUMNS | {"id"}
    assert {column for _, column in FIELDS} <= set(columns)
    rig = (RIG_CONFIG / "cel_pgsql.conf.in").read_text()
    assert "table = cel" in rig and "usegmtime = yes" in rig


def test_cdr_database_snippets_match_their_tables() -> None:
    table, columns, values = custom_mapping(CONFIG / "cdr_sqlite3_custom.conf")
    assert table == "cdr" and len(columns) == len(values)
    assert custom_mapping(RIG_CONFIG / "cdr_sqlite3_custom.conf") == (table, columns, values)
    assert set(columns) == set(sql_columns(CONFIG / "cdr_pgsql.sql", "cdr"))
    assert "${CDR(PATIENT_ID)}" in values, "the patient id the dialplan sets"
    conf = section(parse_conf(CONFIG / "cdr_pgsql.conf"), "global")
    assert conf["table"] == "cdr" and conf["usegmtime"] == "yes" and "password" not in conf

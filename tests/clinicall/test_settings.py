import pytest

from clinicall.settings import SettingsError, load_settings


def test_embedded_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    for key in list(__import__("os").environ):
        if key.startswith("CLINICALL_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    s = load_settings()
    assert s.data_dir == str(tmp_path / "var")
    assert s.database.url == f"sqlite+aiosqlite:///{tmp_path}/var/clinicall.db"
    assert s.bus.redis_url is None
    assert s.telephony.ami_host is None
    assert (s.clinic.timezone, s.clinic.language) == ("Asia/Ho_Chi_Minh", "vi")
    assert (s.http.host, s.http.port) == ("127.0.0.1", 8080)


def test_environment_nested(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLINICALL_HTTP__PORT", "9090")
    monkeypatch.setenv("CLINICALL_BUS__REDIS_URL", "redis://127.0.0.1:6379/0")
    s = load_settings()
    assert s.http.port == 9090
    assert s.bus.redis_url == "redis://127.0.0.1:6379/0"


def test_toml_file(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[clinic]\ntimezone = "Europe/Paris"\n[telephony]\nami_host = "127.0.0.1"\n', encoding="utf-8")
    monkeypatch.setenv("CLINICALL_CONFIG", str(config))
    s = load_settings()
    assert s.clinic.timezone == "Europe/Paris"
    assert s.telephony.ami_host == "127.0.0.1"


def test_example_config_is_valid(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """Every setting the example documents (commented out) exists and accepts the value shown."""
    import re

    lines, seen, section, count = [], set(), "", 0
    for line in open("config/clinicall.example.toml", encoding="utf-8"):
        header = re.match(r"^(?:# )?(\[[\w.]+\])", line)  # sub-tables are shown commented out
        if header:
            section = header[1]
            lines.append(header[1] + "\n")
            continue
        match = re.match(r"^# (\w+) = (.*?)\s*(#.*)?$", line)
        if match and (section, match[1]) not in seen:
            seen.add((section, match[1]))
            lines.append(f"{match[1]} = {match[2]}\n")
            count += 1
    assert count > 50
    config = tmp_path / "uncommented.toml"
    config.write_text("".join(lines), encoding="utf-8")
    monkeypatch.setenv("CLINICALL_CONFIG", str(config))
    settings = load_settings()
    assert settings.clinic.timezone == "Asia/Ho_Chi_Minh"


@pytest.mark.parametrize(("env", "value", "named"), [
    ("CLINICALL_HTTP__PORT", "99999", "CLINICALL_HTTP__PORT"),
    ("CLINICALL_CLINIC__TIMEZONE", "Mars/Olympus", "IANA time zone"),
    ("CLINICALL_DATABASE__URL", "mysql://x", "sqlite+aiosqlite"),
    ("CLINICALL_NO_SUCH", "1", "CLINICALL_NO_SUCH"),
    ("CLINICALL_QUEUE__KIOSK_PRINTERS", '{"hall": "lpt1"}', "kiosk 'hall'"),
    ("CLINICALL_LOG_FORMAT", "xml", "CLINICALL_LOG_FORMAT"),
])
def test_bad_setting_names_it(monkeypatch: pytest.MonkeyPatch, env: str, value: str, named: str) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert named in str(info.value)


def test_data_dir_places_the_database(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.delenv("CLINICALL_DATABASE__URL", raising=False)
    monkeypatch.setenv("CLINICALL_DATA_DIR", str(tmp_path / "data"))
    s = load_settings()
    assert s.database.url == f"sqlite+aiosqlite:///{tmp_path}/data/clinicall.db"
    assert s.data_path("backups") == tmp_path / "data" / "backups"


@pytest.mark.parametrize(("toml", "named"), [
    ('[http]\nprot = 8080\n', "http.prot"),
    ('[telephony]\nami_hots = "pbx"\n', "telephony.ami_hots"),
    ('[retention]\ncall_days = 30\n', "retention.call_days"),
    ('[nosuch]\nx = 1\n', "nosuch"),
    ('lgo_level = "DEBUG"\n', "lgo_level"),
])
def test_unknown_keys_in_the_toml_file_are_refused(monkeypatch: pytest.MonkeyPatch, tmp_path, toml: str, named: str) -> None:
    config = tmp_path / "c.toml"
    config.write_text(toml, encoding="utf-8")
    monkeypatch.setenv("CLINICALL_CONFIG", str(config))
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert named in str(info.value)


def test_trusted_proxies_must_be_addresses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLINICALL_HTTP__TRUSTED_PROXIES", '["127.0.0.1", "10.0.0.0/8"]')
    assert len(load_settings().http.trusted_proxy_networks()) == 2
    monkeypatch.setenv("CLINICALL_HTTP__TRUSTED_PROXIES", '["nginx"]')
    with pytest.raises(SettingsError, match="CLINICALL_HTTP__TRUSTED_PROXIES"):
        load_settings()

"""Settings: environment (CLINICALL_*, nested with __) and an optional TOML file.

Every field has a default that serves one clinic on one machine with no setup (the embedded
defaults). Each room owns one section; add a room's fields to its own section only.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from clinicall.templates import check_template

CONFIG_FILE_ENV = "CLINICALL_CONFIG"
LANGUAGES = ("vi", "en", "zh")
ANNOUNCEMENT_FIELDS = frozenset({"number", "room"})
ROOM_PHRASE_FIELDS = frozenset({"number", "name"})


class Section(BaseModel):
    """A settings section: an unknown key (a typo in the TOML file) is an error, not ignored."""

    model_config = ConfigDict(extra="forbid")


class HttpSettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535, description="0: any free port, printed when serving starts")
    public_url: str | None = Field(
        None, description="URL people use to reach the service (printed on tickets); default http://host:port"
    )
    cookie_secure: bool = Field(True, description="Send the session cookie only over HTTPS (browsers treat localhost as secure)")
    session_hours: int = Field(12, ge=1, le=24 * 30)
    allowed_origins: list[str] = Field(
        default_factory=list, description="Extra origins allowed for websockets and cookie-authenticated writes"
    )
    trusted_proxies: list[str] = Field(
        default_factory=list, description="Reverse proxies (addresses or networks, e.g. 127.0.0.1) whose X-Forwarded-For "
        "names the client; empty: the peer address is the client")

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or network such as 10.0.0.0/8") from None
        return value

    def trusted_proxy_networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        return [ipaddress.ip_network(item, strict=False) for item in self.trusted_proxies]

    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")


class DatabaseSettings(Section):
    url: str = Field("", description="SQLAlchemy async URL (sqlite+aiosqlite or postgresql+asyncpg); "
                     "empty: SQLite at DATA_DIR/clinicall.db")
    echo: bool = False
    connect_timeout_seconds: float = Field(5.0, gt=0, le=120, description="Longest wait for a new PostgreSQL "
                                           "connection before the request fails (503)")
    pg_bin_dir: str | None = Field(None, description="Where pg_dump and pg_restore are (backup, restore); empty: PATH")

    @field_validator("url")
    @classmethod
    def _supported_driver(cls, value: str) -> str:
        if value and not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("use a sqlite+aiosqlite:///path or postgresql+asyncpg://user:pass@host/db URL")
        return value


class BusSettings(Section):
    redis_url: str | None = Field(None, description="redis:// or unix:// URL; empty means the in-process bus")
    channel: str = "clinicall:events"


class ClinicSettings(Section):
    name: str = "Phòng khám clinicall"
    timezone: str = "Asia/Ho_Chi_Minh"
    language: Literal["vi", "en", "zh"] = "vi"
    phone_region: str = Field("VN", min_length=2, max_length=2)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError("use an IANA time zone such as Asia/Ho_Chi_Minh") from exc
        return value

    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class AuthSettings(Section):
    bootstrap_admin: str | None = Field(None, description="Create this admin at start-up if no admin exists (needs bootstrap_password)")
    bootstrap_password: str | None = Field(None, description="Password for bootstrap_admin (at least 10 characters)")
    login_failures_per_account: int = Field(10, ge=1, le=10_000, description="Failed logins per account in a window before it waits")
    login_failures_per_address: int = Field(30, ge=1, le=100_000, description="Failed logins per client address in a window before it waits")
    login_window_seconds: int = Field(900, ge=10, le=86_400, description="The failed-login window (and the longest wait)")
    metrics_token: str | None = Field(None, description="Bearer token (16+ characters) a Prometheus scraper sends to read /metrics")
    token_cache_seconds: float = Field(5.0, ge=0, le=60, description="How long a valid bearer token is remembered "
                                       "before the database is asked again (0: every request); revoking forgets at once")

    @field_validator("metrics_token")
    @classmethod
    def _long_token(cls, value: str | None) -> str | None:
        if not value:
            return None
        if len(value) < 16:
            raise ValueError("use at least 16 random characters (e.g. python3 -c 'import secrets; print(secrets.token_urlsafe())')")
        return value


class CrmSettings(Section):
    overdue_days: int = Field(3, ge=1, le=365)
    max_file_mb: int = Field(20, ge=1, le=500, description="Largest result or referral file accepted, in MB")
    account_message: str = Field(
        "Chào {fullName}, phòng khám đã tạo tài khoản để anh/chị xem kết quả và lịch tái khám: {link} "
        "Đăng nhập bằng số điện thoại, mật khẩu tạm: {password} (đổi ngay lần đầu).",
        max_length=1000, description="SMS text prepared when a patient's account is made: {fullName} {link} {password}")
    revisit_message: str = Field(
        "Chào {fullName}, phòng khám nhắc lịch tái khám lần {visit} vào ngày {revisitDate}. Xem chi tiết: {link}",
        max_length=1000, description="SMS text prepared the day before a re-visit: {fullName} {visit} {revisitDate} {link}")

    @field_validator("account_message", "revisit_message")
    @classmethod
    def _placeholders(cls, value: str) -> str:
        check_template(value, {"fullName", "link", "password", "visit", "revisitDate"}, set())
        return value


class TelephonySettings(Section):
    ami_host: str | None = Field(None, description="Asterisk AMI host; empty means no Asterisk (make run starts the demo PBX)")
    ami_port: int = Field(5038, ge=1, le=65535)
    ami_username: str = "clinicall"
    ami_secret: str | None = None
    agi_host: str = "127.0.0.1"
    agi_port: int = Field(4573, ge=0, le=65535)
    agi_enabled: bool = True
    agi_allow_remote: bool = Field(False, description="Allow agi_host to be a non-loopback address (FastAGI has no authentication)")
    agi_timeout_seconds: float = Field(5.0, gt=0, le=60, description="FastAGI: longest wait for the agi_* header and for each reply")
    agi_lookup_timeout_seconds: float = Field(2.0, gt=0, le=30, description="Longest patient lookup before the call goes on unidentified")
    agi_workers: int = Field(1, ge=1, le=32, description="FastAGI processes sharing agi_port (SO_REUSEPORT)")
    callerid_ascii: bool = Field(True, description="Fold caller ID names to ASCII (Nguyen Van An); false keeps Vietnamese letters")
    new_caller_name: str = Field("Khach moi", max_length=40, description="Caller ID name shown on agents' phones for an unknown caller")
    demo_pbx: bool = Field(False, description="Start the built-in demo PBX when no ami_host is set")
    agent_channel: str = Field("PJSIP/{ext}", description="Channel template for the agent's own phone")
    outbound_context: str = "outbound"
    caller_id: str = "Clinic <1000>"
    originate_timeout_ms: int = Field(30000, ge=1000, le=120000)
    record_calls: bool = False
    recording_dir: str = "/var/spool/asterisk/monitor/clinicall"
    allowed_number_types: list[Literal["mobile", "fixed_line", "toll_free", "premium_rate", "voip", "shared_cost"]] = Field(
        default_factory=lambda: ["mobile", "fixed_line"]
    )
    allow_international: bool = False
    calls_per_minute_per_agent: int = Field(6, ge=1, le=600)
    inbound_contexts: list[str] = Field(default_factory=lambda: ["inbound"],
                                        description="Dialplan contexts where inbound calls start (logged as inbound)")
    international_prefix: str = Field("00", description="Dialled before the country code for international numbers")
    reconnect_max_seconds: float = Field(30.0, ge=0.1, le=600, description="Longest wait between AMI reconnects")
    link_check_seconds: float = Field(
        2.0, ge=0.1, le=60, description="Instances sharing a database take turns holding the AMI link: how often the "
        "holder checks its lock and a standby tries to take over")
    ended_calls_kept: int = Field(2000, ge=10, le=1_000_000, description="Ended calls kept in memory for late events")
    demo_time_scale: float = Field(1.0, gt=0, le=10, description="Demo PBX: multiplies its ring and talk times")
    cel_database: str = Field("", max_length=2000,
                              description="Asterisk's CEL database, read after every reconnect: a SQLite file "
                                          "(cel_sqlite3_custom) or a postgresql:// URL (cel_pgsql); empty = off")
    cel_retry_seconds: float = Field(30.0, ge=1, le=3600, description="While the CEL database does not answer, "
                                     "how often it is read again (the calls of the outage stay unknown until then)")
    log_internal_calls: bool = Field(False, description="Log agent-to-agent calls (direction internal)")
    trunk_channels: list[str] = Field(default_factory=list, description="Channel name prefixes of the trunk "
                                      "(e.g. PJSIP/trunk-): a call that starts on one is inbound")


class QueueSettings(Section):
    anti_starvation_minutes: int = Field(
        30, ge=1, le=600,
        description="No ticket is called after a non-emergency ticket that entered the line more than this many "
                    "minutes after it (every head start is capped at this)")
    return_hold_minutes: int = Field(
        60, ge=0, le=600,
        description="A patient back from the lab waits this long for their own doctor's room (while it is open) "
                    "before any room of the service may call them")
    no_show_after_recalls: int = Field(3, ge=0, le=20)
    expire_at_day_end: bool = Field(
        True, description="Tickets still waiting, held or set aside when their clinic day ends become 'expired' "
                          "(not seen that day) at midnight, clinic time; off for a clinic open round the clock")
    priority_weights: dict[str, float] = Field(
        default_factory=lambda: {
            "emergency": 100.0,
            "elderly": 20.0,
            "pregnant": 20.0,
            "disabled": 20.0,
            "booked": 10.0,
            "normal": 0.0,
            "returning": 30.0,
        },
        description="Head start in minutes per priority class; 'returning' is for patients back from the lab",
    )
    kiosk_tickets_per_minute: int = Field(
        120, ge=1, le=10000, description="Public kiosk: at most this many tickets per minute from one client address"
    )
    kiosk_printers: dict[str, str] = Field(
        default_factory=dict, description="ESC/POS ticket printer per kiosk (the kiosk page's ?kiosk=NAME): "
        "tcp://HOST:9100 or /dev/usb/lp0; a kiosk without one prints through the browser")
    kiosk_clients: dict[str, list[str]] = Field(
        default_factory=dict, description="Addresses or networks of each kiosk in kiosk_printers (the public kiosk "
        "page prints on a kiosk's printer only from there); a kiosk not named here prints only from the loopback")
    printer_timeout_seconds: float = Field(5.0, gt=0, le=60, description="Longest wait for a ticket printer")

    @field_validator("kiosk_clients")
    @classmethod
    def _kiosk_networks(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for kiosk, items in value.items():
            for item in items:
                try:
                    ipaddress.ip_network(item, strict=False)
                except ValueError:
                    raise ValueError(f"kiosk {kiosk!r}: {item!r} is not an IP address or network such as "
                                     "192.168.1.60") from None
        return value

    def kiosk_may_print(self, kiosk: str, client: str) -> bool:
        """Whether a kiosk request from `client` may print on `kiosk`'s printer: only from its own addresses."""
        try:
            address = ipaddress.ip_address(client.strip("[]"))
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped  # a dual-stack socket names an IPv4 kiosk ::ffff:a.b.c.d
        allowed = self.kiosk_clients.get(kiosk)
        if allowed is None:
            return address.is_loopback
        return any(address in ipaddress.ip_network(item, strict=False) for item in allowed)

    @field_validator("kiosk_printers")
    @classmethod
    def _printer_targets(cls, value: dict[str, str]) -> dict[str, str]:
        for kiosk, target in value.items():
            network = target.startswith("tcp://") and urlsplit(target).hostname and urlsplit(target).path in ("", "/")
            device = target.startswith("/") and not any(ord(c) < 32 for c in target)
            if not (network or device):
                raise ValueError(f"kiosk {kiosk!r}: {target!r} is neither tcp://HOST:9100 nor a device such as /dev/usb/lp0")
        return value


class DisplaySettings(Section):
    name_mask: Literal["none", "initials"] = Field("none", description="none: ticket number only; initials: 'Nguyễn V. A.'")
    heartbeat_seconds: float = Field(15.0, ge=1.0, le=300.0)


class AudioSettings(Section):
    engines: list[Literal["recorded", "gtts", "espeak"]] = Field(default_factory=lambda: ["recorded", "espeak", "gtts"])
    languages: list[Literal["vi", "en", "zh"]] = Field(default_factory=lambda: ["vi", "en", "zh"])
    cache_dir: str = Field("", description="Speech cache and announcement clips; empty: DATA_DIR/audio")
    gtts_timeout_seconds: float = Field(4.0, gt=0, le=60)
    repeat: int = Field(1, ge=1, le=5)
    gap_seconds: float = Field(0.8, ge=0, le=10)
    chime: bool = True
    language_gap_seconds: float = Field(0.4, ge=0, le=5, description="Silence between the languages of one announcement")
    gtts_url: str = Field("https://translate.google.com/_/TranslateWebserverUi/data/batchexecute",
                          description="Where gTTS sends its requests (a proxy or a test endpoint may replace Google's)")
    gtts_retry_after_seconds: float = Field(300.0, ge=1, le=86400, description="After a gTTS failure, skip gTTS this long")
    espeak_voices: dict[str, str] = Field(default_factory=lambda: {"vi": "vi", "en": "en-us", "zh": "cmn-latn-pinyin"})
    espeak_speed: int = Field(150, ge=80, le=400, description="espeak-ng words per minute")
    recorded_dir: str = Field("", description="Recorded clip sets, one folder per language; empty: DATA_DIR/audio-recorded")
    templates: dict[str, str] = Field(default_factory=dict, description="Announcement templates per language, e.g. vi: 'Mời số {number} vào {room}'")
    room_templates: dict[str, dict[str, str]] = Field(default_factory=dict, description="Room phrases per language and room kind, e.g. vi.consult: 'phòng khám số {number}'")
    vi_zero_tens: Literal["linh", "lẻ"] = Field("linh", description="105 is 'một trăm linh năm' or 'một trăm lẻ năm'")
    vi_thousand: Literal["nghìn", "ngàn"] = "nghìn"
    warm_numbers: int = Field(300, ge=1, le=9999, description="clinicall audio warm renders ticket numbers 1..this")
    paging_channel: str | None = Field(None, description="Overhead paging through Asterisk: Originate this channel "
                                       "(e.g. Local/800@paging) with Playback of each announcement; empty: off")
    paging_sound_dir: str = Field("/var/lib/asterisk/sounds/clinicall",
                                  description="Where 8 kHz copies of the clips are written for Asterisk's Playback")
    paging_caller_id: str = "Clinicall <0>"
    clip_keep_hours: float = Field(48.0, ge=1, le=24 * 365, description="Announcement clips unused this long are deleted (they are re-made from the speech cache)")

    @field_validator("paging_channel", "paging_sound_dir", "paging_caller_id")
    @classmethod
    def _no_control_characters(cls, value: str | None) -> str | None:
        if value is not None and any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise ValueError("must not contain line breaks or other control characters (it is sent to Asterisk)")
        return value

    @field_validator("templates")
    @classmethod
    def _valid_templates(cls, value: dict[str, str]) -> dict[str, str]:
        for lang, template in value.items():
            if lang not in LANGUAGES:
                raise ValueError(f"templates: unknown language {lang!r}; use one of {', '.join(LANGUAGES)}")
            check_template(template, ANNOUNCEMENT_FIELDS, ANNOUNCEMENT_FIELDS)
        return value

    @field_validator("room_templates")
    @classmethod
    def _valid_room_templates(cls, value: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        for lang, kinds in value.items():
            if lang not in LANGUAGES:
                raise ValueError(f"room_templates: unknown language {lang!r}; use one of {', '.join(LANGUAGES)}")
            for template in kinds.values():
                check_template(template, ROOM_PHRASE_FIELDS, set())
        return value


def _no_controls(value: str, what: str) -> str:
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError(f"{what} must not contain line breaks or other control characters")
    return value


class MessagingSettings(Section):
    """Text messages (SMS, Zalo ZNS): which gateway sends them (docs/messaging.md)."""

    adapter: Literal["none", "smpp", "http"] = Field(
        "none", description="none: messages are stored and wait (no gateway configured); smpp: an SMSC; "
                            "http: an HTTP gateway (brandname SMS, Zalo ZNS)")
    max_length: int = Field(480, ge=1, le=1600, description="Longest text in characters (a long SMS is sent in parts)")
    timeout_seconds: float = Field(10.0, gt=0, le=120, description="Longest wait for the gateway's answer to one message")
    max_attempts: int = Field(6, ge=1, le=50, description="Tries before a message is marked failed")
    retry_base_seconds: float = Field(5.0, gt=0, le=3600, description="First retry after this; doubled each try")
    retry_max_seconds: float = Field(600.0, gt=0, le=86400, description="Longest wait between two tries")
    concurrency: int = Field(4, ge=1, le=64, description="Messages in flight at once")
    smpp_host: str = Field("", description="SMSC host (adapter smpp)")
    smpp_port: int = Field(2775, ge=1, le=65535)
    smpp_system_id: str = Field("", max_length=15)
    smpp_password: str = Field("", max_length=8)
    smpp_system_type: str = Field("", max_length=12)
    smpp_source_addr: str = Field("", max_length=20, description="Sender: a number or an alphanumeric brandname")
    smpp_enquire_link_seconds: float = Field(30.0, ge=0.1, le=3600, description="Idle time before an enquire_link keeps the link")
    http_url: str = Field("", description="HTTP gateway URL (adapter http): http:// or https://")
    http_method: Literal["POST", "PUT"] = "POST"
    http_content_type: str = "application/json"
    http_headers: dict[str, str] = Field(default_factory=dict, description="Extra headers, e.g. access_token: ...")
    http_basic_user: str = Field("", description="HTTP basic authentication (with http_basic_password)")
    http_basic_password: str = ""
    http_body_template: str = Field(
        '{"to": "{to}", "text": "{text}", "ref": "{ref}"}',
        description="Request body; {to} (84912345678), {to_e164} (+84912345678), {text} and {ref} (our message "
                    "id) are filled in escaped for http_content_type: JSON, a form (percent-encoded) or XML")
    http_success_statuses: list[int] = Field(default_factory=lambda: [200, 201, 202])
    http_success_field: str = Field("", description="Dotted JSON field of the reply that must equal "
                                                    "http_success_value (e.g. error = 0); empty: status only")
    http_success_value: str = ""
    http_message_id_field: str = Field("", description="Dotted JSON field of the reply holding the gateway's "
                                                       "message id (e.g. data.msg_id)")
    http_receipt_token: str = Field("", description="Delivery receipts posted back to /api/messaging/receipts: the "
                                    "shared token (16+ characters) the gateway sends in http_receipt_token_header "
                                    "or ?token=; empty (and no HMAC secret): the endpoint is off")
    http_receipt_token_header: str = "X-Receipt-Token"
    http_receipt_hmac_secret: str = Field("", description="Instead of a token: HMAC-SHA256 of '<timestamp>.<body>' "
                                          "with this secret (16+ characters), hex in http_receipt_signature_header; "
                                          "the timestamp (Unix seconds) in http_receipt_timestamp_header")
    http_receipt_signature_header: str = "X-Signature"
    http_receipt_timestamp_header: str = "X-Timestamp"
    http_receipt_max_age_seconds: int = Field(300, ge=10, le=86400, description="A signed receipt whose timestamp is "
                                              "further than this from our clock is refused (a replay)")
    http_receipt_id_field: str = Field("msg_id", min_length=1,
                                       description="Dotted field of a receipt holding the gateway's message id")
    http_receipt_status_field: str = Field("status", min_length=1, description="Dotted field of a receipt's status")
    http_receipt_statuses: dict[str, Literal["delivered", "failed"]] = Field(
        default_factory=lambda: {"DELIVRD": "delivered", "delivered": "delivered", "UNDELIV": "failed",
                                 "REJECTD": "failed", "EXPIRED": "failed", "failed": "failed"},
        description="The gateway's status values that are final (any other value is ignored: not final yet)")
    http_receipt_items_field: str = Field("", description="Dotted field holding a list of receipts (a batch); empty: "
                                                          "the body is one receipt or a JSON array of them")
    sends_per_minute_per_user: int = Field(10, ge=1, le=10_000, description="Texts one staff user may send in a "
                                           "minute (the card's Send; counted by every instance together with Redis)")
    turn_near_positions: int = Field(3, ge=0, le=100, description="Text a waiting patient who opted in when "
                                     "this many or fewer are ahead of them (0: off)")
    turn_near_minutes: float = Field(10.0, ge=0, le=600, description="... or when the estimated wait falls to "
                                     "this many minutes (0: off)")
    turn_near_per_number_per_day: int = Field(3, ge=1, le=1000, description="Turn-near sign-ups naming one phone "
                                              "number in a clinic day (kiosk, patient's page and reception together)")
    turn_near_public_per_address_per_hour: int = Field(
        60, ge=1, le=100_000, description="Turn-near sign-ups without a login (kiosk, the ticket's own page) from one "
                                          "client address in an hour; a busy kiosk is one address")
    turn_near_public_per_day: int = Field(500, ge=1, le=1_000_000, description="Turn-near sign-ups without a login "
                                          "in a clinic day, for the whole clinic (reception's are not counted)")
    turn_near_text: str = Field("{clinic}: sắp đến lượt số {number} ({service}), còn khoảng {minutes} phút. "
                                "Vui lòng có mặt tại khu chờ.", max_length=480,
                                description="The turn-near text: {clinic} {number} {service} {ahead} {minutes}")

    @field_validator("smpp_host", "smpp_system_id", "smpp_password", "smpp_system_type", "smpp_source_addr",
                     "http_url", "http_content_type", "http_basic_user", "http_basic_password", "http_success_field",
                     "http_success_value", "http_message_id_field", "turn_near_text", "http_receipt_token",
                     "http_receipt_hmac_secret", "http_receipt_id_field", "http_receipt_status_field",
                     "http_receipt_items_field")
    @classmethod
    def _single_line(cls, value: str) -> str:
        return _no_controls(value, "this setting")

    @field_validator("http_receipt_token", "http_receipt_hmac_secret")
    @classmethod
    def _receipt_secret(cls, value: str) -> str:
        if value and len(value) < 16:
            raise ValueError("use at least 16 characters (or leave it empty)")
        return value

    @field_validator("http_receipt_token_header", "http_receipt_signature_header", "http_receipt_timestamp_header")
    @classmethod
    def _header_name(cls, value: str) -> str:
        if not value or not all(c.isalnum() or c in "-_" for c in value):
            raise ValueError(f"{value!r} is not a header name")
        return value

    @field_validator("http_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if value and not (urlsplit(value).scheme in ("http", "https") and urlsplit(value).hostname):
            raise ValueError("use an http:// or https:// URL")
        return value

    @field_validator("http_headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, item in value.items():
            if not name or not all(c.isalnum() or c in "-_" for c in name):
                raise ValueError(f"{name!r} is not a header name")
            _no_controls(item, f"header {name}")
        return value

    @field_validator("turn_near_text")
    @classmethod
    def _turn_near_text(cls, value: str) -> str:
        check_template(value, {"clinic", "number", "service", "ahead", "minutes"}, {"number"})
        return value

    @model_validator(mode="after")
    def _adapter_needs(self) -> MessagingSettings:
        if self.adapter == "smpp" and not self.smpp_host:
            raise ValueError("adapter smpp needs smpp_host")
        if self.adapter == "http" and not self.http_url:
            raise ValueError("adapter http needs http_url")
        return self

CALLING_WINDOW = r"^([01]\d|2[0-3]):[0-5]\d-(([01]\d|2[0-3]):[0-5]\d|24:00)$"


class RemindersSettings(Section):
    enabled: bool = Field(True, description="Run reminder campaigns (they call only while the Asterisk link is up)")
    daily_kinds: list[Literal["appointment", "revisit", "callback"]] = Field(
        default_factory=lambda: ["appointment"],
        description="Campaigns built each clinic day from the worklists: appointment (booked tomorrow), "
                    "revisit (follow-up plans due tomorrow), callback (call-backs due today)")
    build_at: str = Field("07:30", pattern=r"^([01]\d|2[0-3]):[0-5]\d$",
                          description="Clinic time at which the daily campaigns are built (and started)")
    calling_hours: list[str] = Field(default_factory=lambda: ["08:00-11:00", "13:30-17:00"],
                                     description="Clinic-time windows in which reminder calls are placed (HH:MM-HH:MM)")
    max_channels: int = Field(4, ge=1, le=200, description="At most this many reminder calls at once")
    max_attempts: int = Field(3, ge=1, le=10, description="Calls per patient when busy, not answered or no key pressed")
    retry_minutes: float = Field(30.0, ge=0, le=24 * 60, description="Wait between two attempts to one patient")
    dial_channel: str = Field("PJSIP/{number}@clinic-trunk",
                              description="Originate Channel for the patient's phone; {number} is the dialled number")
    context: str = Field("clinicall-reminder", description="Dialplan context the answered call runs (config/asterisk)")
    ring_timeout_ms: int = Field(40000, ge=5000, le=120000, description="How long the patient's phone rings")
    key_timeout_seconds: float = Field(6.0, gt=0, le=30, description="How long to wait for 1 or 2 after the message")
    sound_dir: str = Field("", description="Where the spoken messages are written for Asterisk's playback (8 kHz); "
                                           "empty: DATA_DIR/asterisk-sounds. Asterisk must read it.")
    queue_position: bool = Field(True, description="FastAGI 'queue_position': a caller with a waiting ticket today "
                                                   "hears their number, position and wait before an agent")
    turn_near_calls: bool = Field(True, description="With no SMS gateway (messaging.adapter = none) and Asterisk "
                                                    "configured, 'your turn is near' is a short spoken call")

    @field_validator("calling_hours")
    @classmethod
    def _windows(cls, value: list[str]) -> list[str]:
        import re

        for window in value:
            if not re.match(CALLING_WINDOW, window) or window[:5] >= window[6:]:
                raise ValueError(f"{window!r} is not a calling window such as 08:00-11:00 (start before end)")
        return value

    @field_validator("sound_dir")
    @classmethod
    def _sound_dir(cls, value: str) -> str:
        if any(ord(c) < 33 or ord(c) == 127 or c in "\"'\\" for c in value):
            raise ValueError("must be a folder path without spaces, quotes or control characters (Asterisk plays from it)")
        return value

    @field_validator("dial_channel", "context")
    @classmethod
    def _dial_safe(cls, value: str) -> str:
        if any(ord(c) < 32 or ord(c) == 127 for c in value) or not value.strip():
            raise ValueError("must be one line without control characters (it is sent to Asterisk)")
        return value


class RetentionSettings(Section):
    call_log_days: int = Field(0, ge=0, le=36500, description="Delete call-log rows older than this; 0 keeps them")
    recording_days: int = Field(0, ge=0, le=36500, description="Delete call recordings older than this; 0 keeps them")
    audit_days: int = Field(0, ge=0, le=36500, description="Delete audit rows older than this; 0 keeps them")
    message_days: int = Field(0, ge=0, le=36500, description="Delete text messages (not queued) older than this; 0 keeps them")
    interval_hours: float = Field(24.0, ge=0.01, le=24 * 30, description="How often serve purges in the background")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CLINICALL_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = Field("text", description="json: one object per line (UTC time, request id, user, client)")
    data_dir: str = Field("./var", description="Where local files live; made absolute at start-up")
    http: HttpSettings = Field(default_factory=HttpSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    bus: BusSettings = Field(default_factory=BusSettings)
    clinic: ClinicSettings = Field(default_factory=ClinicSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    crm: CrmSettings = Field(default_factory=CrmSettings)
    telephony: TelephonySettings = Field(default_factory=TelephonySettings)
    queue: QueueSettings = Field(default_factory=QueueSettings)
    display: DisplaySettings = Field(default_factory=DisplaySettings)
    audio: AudioSettings = Field(default_factory=AudioSettings)
    messaging: MessagingSettings = Field(default_factory=MessagingSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    reminders: RemindersSettings = Field(default_factory=RemindersSettings)

    @model_validator(mode="after")
    def _absolute_paths(self) -> Settings:
        self.data_dir = str(Path(self.data_dir).expanduser().resolve())
        if not self.database.url:
            self.database.url = f"sqlite+aiosqlite:///{Path(self.data_dir) / 'clinicall.db'}"
        return self

    def data_path(self, *parts: str) -> Path:
        return Path(self.data_dir, *parts)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get(CONFIG_FILE_ENV)
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(config_file)))
        return tuple(sources)

    @model_validator(mode="after")
    def _audio_files_under_data_dir(self) -> Settings:
        if not self.audio.cache_dir:
            self.audio.cache_dir = str(Path(self.data_dir) / "audio")
        if not self.audio.recorded_dir:
            self.audio.recorded_dir = str(Path(self.data_dir) / "audio-recorded")
        if not self.reminders.sound_dir:
            self.reminders.sound_dir = str(Path(self.data_dir) / "asterisk-sounds")
        return self


class SettingsError(Exception):
    """A setting is wrong; the message names it and says what is allowed."""


def load_settings(**overrides: object) -> Settings:
    config_file = os.environ.get(CONFIG_FILE_ENV)
    if config_file and not Path(config_file).is_file():
        raise SettingsError(f"{CONFIG_FILE_ENV}={config_file}: no such file")
    unknown = unknown_environment()
    if unknown:
        raise SettingsError("Unknown settings in the environment: " + ", ".join(unknown)
                            + ". Check the spelling against config/clinicall.example.toml.")
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise SettingsError(describe_validation_error(exc)) from None


def describe_validation_error(exc: ValidationError) -> str:
    """One line (a service manager's status shows it whole): every wrong setting, its variable, the rule."""
    parts = []
    for error in exc.errors():
        path = [str(part) for part in error["loc"]]
        env_name = "CLINICALL_" + "__".join(part.upper() for part in path)
        parts.append(f"{'.'.join(path)} (env {env_name}): {error['msg']}; got {error.get('input')!r}")
    return "Invalid settings: " + " | ".join(parts)


def unknown_environment() -> list[str]:
    """CLINICALL_* variables that name no setting (a typo would otherwise be ignored silently)."""
    unknown = []
    for name in os.environ:
        if not name.startswith("CLINICALL_") or name == CONFIG_FILE_ENV or name.startswith("CLINICALL_TEST_"):
            continue
        if name == "CLINICALL_DEMO_PASSWORD" or name.startswith(("CLINICALL_AGI_", "CLINICALL_SPEAKER_")):  # clinicall-agi's, clinicall-speaker's
            continue
        section, _, field = name[len("CLINICALL_"):].lower().partition("__")
        model = Settings.model_fields.get(section)
        if model is None:
            unknown.append(name)
        elif field:
            annotation = model.annotation
            fields = getattr(annotation, "model_fields", None)
            if fields is None or field.split("__")[0] not in fields:
                unknown.append(name)
    return unknown

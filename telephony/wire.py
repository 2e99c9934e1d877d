"""AMI wire format: turning actions into bytes (after validating every field) and bytes into messages.

Every byte clinicall sends to Asterisk goes through `encode_action`, the one place that refuses
CR, LF and other control characters in any header name or value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence

from clinicall.problem import Problem

EOL = "\r\n"
GREETING_PREFIX = "Asterisk Call Manager/"
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]")
_HEADER_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}\Z")
MAX_VALUE_LENGTH = 1024

Header = tuple[str, str]


class UnsafeField(Problem):
    """A value that must never reach Asterisk (control characters, bad header name, too long)."""

    def __init__(self, name: str, why: str) -> None:
        super().__init__(400, "Unsafe value for Asterisk",
                         f"The field {name!r} {why}; remove it and try again. Nothing was sent to the phone system.",
                         field=name)


def check_field(name: str, value: str) -> None:
    if not _HEADER_NAME.match(name):
        raise UnsafeField(name[:40], "is not a valid AMI header name")
    if not isinstance(value, str):
        raise UnsafeField(name, "is not text")
    if _CONTROL.search(value):
        raise UnsafeField(name, "contains a line break or another control character")
    if len(value) > MAX_VALUE_LENGTH:
        raise UnsafeField(name, f"is longer than {MAX_VALUE_LENGTH} characters")


def encode_action(headers: Sequence[Header]) -> bytes:
    """`[("Action", "Originate"), ("Channel", ...), ...]` -> the exact bytes, headers in the given order."""
    if not headers or headers[0][0] != "Action":
        raise UnsafeField("Action", "must be the first header")
    for name, value in headers:
        check_field(name, value)
    return ("".join(f"{name}: {value}{EOL}" for name, value in headers) + EOL).encode("utf-8")


def parse_message(block: str) -> dict[str, str] | None:
    """One message (without its terminating blank line) -> headers; repeated headers keep the first value
    under the plain name and every value under `name[]`-less list access via `parse_message_multi`."""
    headers: dict[str, str] = {}
    for line in block.split("\n"):
        line = line.rstrip("\r")
        name, sep, value = line.partition(":")
        if not sep or not name or " " in name:
            continue
        value = value[1:] if value.startswith(" ") else value
        headers.setdefault(name, value)
    if "Event" in headers or "Response" in headers:
        return headers
    return None


def split_stream(data: str) -> Iterator[dict[str, str]]:
    """A whole recorded stream (greeting included) -> its messages in order."""
    if data.startswith(GREETING_PREFIX):
        _, _, data = data.partition(EOL)
    for block in re.split(r"\r?\n\r?\n", data):
        message = parse_message(block)
        if message is not None:
            yield message


class StreamParser:
    """Incremental parser for bytes arriving in arbitrary chunks."""

    def __init__(self, expect_greeting: bool = True) -> None:
        self._buffer = ""
        self._greeting_pending = expect_greeting
        self.greeting: str | None = None

    def feed(self, chunk: bytes) -> list[dict[str, str]]:
        self._buffer += chunk.decode("utf-8", "replace")
        if self._greeting_pending:
            if EOL not in self._buffer:
                return []
            line, _, self._buffer = self._buffer.partition(EOL)
            self.greeting = line
            self._greeting_pending = False
        out: list[dict[str, str]] = []
        while True:
            match = re.search(r"\r?\n\r?\n", self._buffer)
            if match is None:
                return out
            block, self._buffer = self._buffer[:match.start()], self._buffer[match.end():]
            message = parse_message(block)
            if message is not None:
                out.append(message)


def parse_actions(data: bytes) -> list[list[Header]]:
    """What a client sent -> the actions, each a list of headers in order (used by the peers)."""
    text = data.decode("utf-8", "replace")
    actions: list[list[Header]] = []
    for block in re.split(r"\r?\n\r?\n", text):
        headers: list[Header] = []
        for line in block.split("\n"):
            line = line.rstrip("\r")
            name, sep, value = line.partition(":")
            if sep:
                headers.append((name, value[1:] if value.startswith(" ") else value))
        if headers:
            actions.append(headers)
    return actions


def first(headers: Iterable[Header], name: str, default: str | None = None) -> str | None:
    for key, value in headers:
        if key.lower() == name.lower():
            return value
    return default


def all_values(headers: Iterable[Header], name: str) -> list[str]:
    return [value for key, value in headers if key.lower() == name.lower()]

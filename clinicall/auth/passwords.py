"""The password policy: long enough, not one of the commonest passwords, not built on the account's
own name or phone extension. Each refusal is a 422 problem with its own stable code."""

from __future__ import annotations

import functools
import re
from pathlib import Path

from clinicall.problem import Problem

MIN_LENGTH = 10
MAX_LENGTH = 1024
MIN_DISTINCT = 5
COMMON_FILE = Path(__file__).resolve().parent / "common_passwords.txt"
TRAILING_DIGITS = re.compile(r"[\d\W_]+$")


@functools.cache
def common_passwords() -> frozenset[str]:
    lines = COMMON_FILE.read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip().lower() for line in lines if line.strip() and not line.startswith("#"))


def _refuse(code: str, detail: str) -> Problem:
    return Problem(422, "Password not accepted", detail, code=code,
                   errors=[{"field": "password", "code": code, "message": detail}])


def check_password(password: str, username: str = "", extension: str | None = None) -> None:
    """Raises a 422 Problem naming what is wrong with the password; returns when it is acceptable."""
    if len(password) < MIN_LENGTH:
        raise _refuse("password_too_short", f"Choose a password of at least {MIN_LENGTH} characters.")
    if len(password) > MAX_LENGTH:
        raise _refuse("password_too_long", f"A password has at most {MAX_LENGTH} characters.")
    folded = password.strip().lower()
    if len(set(folded)) < MIN_DISTINCT:
        raise _refuse("password_too_simple", f"Use at least {MIN_DISTINCT} different characters; "
                                             "repeated characters or spaces are too easy to guess.")
    squeezed = re.sub(r"[\s._-]+", "", folded)
    if folded in common_passwords() or squeezed in common_passwords() \
            or TRAILING_DIGITS.sub("", squeezed) in common_passwords():
        raise _refuse("password_common", "This is one of the most common passwords; choose one nobody would guess.")
    name = username.strip().lower()
    if len(name) >= 3 and (name in folded or re.sub(r"[._-]", "", name) in squeezed):
        raise _refuse("password_contains_username", "The password must not contain the user name.")
    if extension and len(extension) >= 3 and extension in folded:
        raise _refuse("password_contains_phone", "The password must not contain the user's phone extension.")

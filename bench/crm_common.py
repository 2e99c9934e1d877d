"""Shared helpers of the crm_bridge benches: a throwaway PostgreSQL and synthetic Vietnamese patients."""

from __future__ import annotations

import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from crm_bridge.demo import GIVEN_FEMALE, GIVEN_MALE, MIDDLE_FEMALE, MIDDLE_MALE, MOBILE_PREFIXES  # noqa: E402

SURNAMES = ("Nguyễn", "Nguyễn", "Nguyễn", "Trần", "Trần", "Lê", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ",
            "Đặng", "Bùi", "Đỗ", "Hồ", "Ngô", "Dương", "Lý", "Trịnh", "Đinh", "Lâm", "Mai", "Tô", "Tạ", "Châu")
EXTRA_GIVEN = ("Khoa", "Duy", "Trí", "Nhân", "Lộc", "Thịnh", "Hoàng", "Bảo", "Kiên", "Nhi", "Thư", "Diệp", "Trâm",
               "Loan", "Châu", "Xuân", "Thu", "Hằng", "Ánh", "Tú")


def patient_name(rng: random.Random) -> str:
    if rng.random() < 0.5:
        middle, given = rng.choice(MIDDLE_MALE), rng.choice(GIVEN_MALE + EXTRA_GIVEN[:9])
    else:
        middle, given = rng.choice(MIDDLE_FEMALE), rng.choice(GIVEN_FEMALE + EXTRA_GIVEN[9:])
    if rng.random() < 0.3:  # four-word names are common too
        return f"{rng.choice(SURNAMES)} {middle} {rng.choice(GIVEN_MALE + GIVEN_FEMALE)} {given}"
    return f"{rng.choice(SURNAMES)} {middle} {given}"


PREFIXES = tuple(p for p in MOBILE_PREFIXES if p != "089")  # parts of 089 are unallocated


def mobile(index: int) -> str:
    """A distinct, valid Vietnamese mobile number in national form for each index < 10**7."""
    return f"{PREFIXES[index % len(PREFIXES)]}{(index * 7919) % 10**7:07d}"


def landline(index: int) -> str:
    """A distinct, valid Ho Chi Minh City fixed-line number for each index < 10**7."""
    return f"028{'2356789'[index % 7]}{index % 10**7:07d}"


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def database_url(server_url: str, name: str) -> str:
    """The URL of database `name` on the server of `server_url` (the query may hold a socket path)."""
    base, _, query = server_url.partition("?")
    return base.rsplit("/", 1)[0] + f"/{name}" + (f"?{query}" if query else "")

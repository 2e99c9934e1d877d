"""Numbers read aloud in Vietnamese, English and Chinese (pure functions)."""

from __future__ import annotations

from typing import Literal

ViZeroTens = Literal["linh", "lẻ"]
ViThousand = Literal["nghìn", "ngàn"]

VI_DIGITS = ("không", "một", "hai", "ba", "bốn", "năm", "sáu", "bảy", "tám", "chín")
EN_ONES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
           "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen")
EN_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
ZH_DIGITS = "零一二三四五六七八九"
ZH_UNITS = ("", "十", "百", "千")
MAX_NUMBER = 999_999_999_999


def _check(n: int) -> None:
    if not 0 <= n <= MAX_NUMBER:
        raise ValueError(f"can only read whole numbers from 0 to {MAX_NUMBER:,}; got {n}")


def _vi_triple(value: int, full: bool, zero_tens: str) -> list[str]:
    """One group of three digits; `full` when a higher group came before (so "không trăm" is said)."""
    hundreds, tens, units = value // 100, value // 10 % 10, value % 10
    words: list[str] = []
    if full or hundreds:
        words += [VI_DIGITS[hundreds], "trăm"]
    if tens == 0:
        if units:
            if words:
                words.append(zero_tens)
            words.append(VI_DIGITS[units])
    elif tens == 1:
        words.append("mười")
        if units:
            words.append("lăm" if units == 5 else VI_DIGITS[units])
    else:
        words += [VI_DIGITS[tens], "mươi"]
        if units:
            words.append({1: "mốt", 4: "tư", 5: "lăm"}.get(units, VI_DIGITS[units]))
    return words


def vi_number(n: int, zero_tens: ViZeroTens = "linh", thousand: ViThousand = "nghìn") -> str:
    """21 -> "hai mươi mốt", 105 -> "một trăm linh năm", 1005 -> "một nghìn không trăm linh năm"."""
    _check(n)
    if n == 0:
        return VI_DIGITS[0]
    scales = ("", thousand, "triệu", "tỷ")
    groups: list[int] = []
    while n:
        groups.append(n % 1000)
        n //= 1000
    words: list[str] = []
    for index in range(len(groups) - 1, -1, -1):
        value = groups[index]
        if value == 0:
            continue
        words += _vi_triple(value, full=bool(words), zero_tens=zero_tens)
        if scales[index]:
            words.append(scales[index])
    return " ".join(words)


def en_number(n: int) -> str:
    """15 -> "fifteen", 105 -> "one hundred and five", 1005 -> "one thousand and five"."""
    _check(n)
    if n < 20:
        return EN_ONES[n]
    if n < 100:
        return EN_TENS[n // 10] + (f"-{EN_ONES[n % 10]}" if n % 10 else "")
    if n < 1000:
        rest = n % 100
        return f"{EN_ONES[n // 100]} hundred" + (f" and {en_number(rest)}" if rest else "")
    for size, name in ((10**9, "billion"), (10**6, "million"), (1000, "thousand")):
        if n >= size:
            head, rest = divmod(n, size)
            tail = "" if not rest else (f" and {en_number(rest)}" if rest < 100 else f" {en_number(rest)}")
            return f"{en_number(head)} {name}{tail}"
    raise AssertionError("unreachable")


def _zh_section(value: int) -> str:
    """0 < value < 10000, with 零 for inner zeros."""
    out = ""
    pending_zero = False
    for position in (3, 2, 1, 0):
        digit = value // 10**position % 10
        if digit == 0:
            pending_zero = bool(out)
            continue
        if pending_zero:
            out += ZH_DIGITS[0]
            pending_zero = False
        out += ZH_DIGITS[digit] + ZH_UNITS[position]
    return out


def zh_number(n: int) -> str:
    """15 -> "十五", 105 -> "一百零五", 110 -> "一百一十", 1005 -> "一千零五"."""
    _check(n)
    if n == 0:
        return ZH_DIGITS[0]
    sections: list[int] = []
    while n:
        sections.append(n % 10000)
        n //= 10000
    out = ""
    scales = ("", "万", "亿")
    for index in range(len(sections) - 1, -1, -1):
        value = sections[index]
        if value == 0:
            continue
        if out and value < 1000:
            out += ZH_DIGITS[0]
        out += _zh_section(value) + scales[index]
    if out.startswith("一十"):
        out = out[1:]
    return out

"""Kiosk tickets on ESC/POS thermal printers (Epson TM-T20/T82 and compatibles, 80 mm): the clinic's
header, the number in large print, the service, the estimated wait, a QR code to the patient's status
page (GS ( k), the time, then a cut. Sent raw to a network printer (tcp://host:9100) or a USB device
file (/dev/usb/lp0). Text is folded to ASCII, which every printer's code page can print."""

from __future__ import annotations

import asyncio
import datetime as dt
import unicodedata
from pathlib import Path
from urllib.parse import urlsplit

ESC, GS = b"\x1b", b"\x1d"
INIT = ESC + b"@"
CENTER, LEFT = ESC + b"a\x01", ESC + b"a\x00"
BOLD_ON, BOLD_OFF = ESC + b"E\x01", ESC + b"E\x00"
SIZE_NORMAL, SIZE_DOUBLE, SIZE_HUGE = GS + b"!\x00", GS + b"!\x11", GS + b"!\x44"
CUT = GS + b"V\x42\x03"  # feed 3 lines, then a partial cut
LABELS = {
    "vi": {"number": "SO THU TU", "wait": "Du kien cho", "soon": "sap toi", "minutes": "phut",
           "scan": "Quet ma de theo doi luot cua ban"},
    "en": {"number": "YOUR NUMBER", "wait": "Estimated wait", "soon": "soon", "minutes": "min",
           "scan": "Scan to follow your turn"},
}


def fold(text: str) -> str:
    """Vietnamese (and other accented) text as plain ASCII: 'Phòng khám Đa khoa' -> 'Phong kham Da khoa'."""
    text = text.replace("đ", "d").replace("Đ", "D")
    plain = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    return "".join(c if 32 <= ord(c) < 127 else "?" for c in plain)


def qr_code(data: str, module_size: int = 6) -> bytes:
    """GS ( k: model 2, module size, error correction M, store the data, print it."""
    payload = data.encode("ascii")
    if len(payload) > 7000:
        raise ValueError("QR payload too long")
    length = len(payload) + 3
    return (GS + b"(k\x04\x001A2\x00"                       # fn 165: model 2
            + GS + b"(k\x03\x001C" + bytes([module_size])  # fn 167: module size
            + GS + b"(k\x03\x001E1"                         # fn 169: error correction M
            + GS + b"(k" + bytes([length & 0xFF, length >> 8]) + b"1P0" + payload  # fn 180: store
            + GS + b"(k\x03\x001Q0")                        # fn 181: print


def wait_line(seconds: int | None, labels: dict[str, str]) -> str:
    if seconds is None or seconds < 60:
        return f"{labels['wait']}: {labels['soon']}"
    return f"{labels['wait']}: ~{round(seconds / 60)} {labels['minutes']}"


def ticket_bytes(*, clinic: str, number: str, service: str, wait_seconds: int | None, status_url: str,
                 issued: dt.datetime, language: str = "vi") -> bytes:
    labels = LABELS.get(language, LABELS["en"])
    lines = [
        INIT, CENTER, BOLD_ON, SIZE_DOUBLE, fold(clinic).encode(), b"\n", SIZE_NORMAL, BOLD_OFF, b"\n",
        labels["number"].encode(), b"\n", SIZE_HUGE, BOLD_ON, fold(number).encode(), b"\n", BOLD_OFF, SIZE_NORMAL,
        b"\n", BOLD_ON, fold(service).encode(), b"\n", BOLD_OFF, fold(wait_line(wait_seconds, labels)).encode(), b"\n\n",
        qr_code(status_url), b"\n", labels["scan"].encode(), b"\n", issued.strftime("%d/%m/%Y %H:%M").encode(), b"\n",
        LEFT, CUT,
    ]
    return b"".join(lines)


async def send(target: str, data: bytes, limit_seconds: float = 5.0) -> None:
    """To tcp://HOST[:9100] or a device file (queue.kiosk_printers is checked by the settings); raises
    OSError or TimeoutError when the printer cannot take the ticket."""
    if target.startswith("tcp://"):
        parts = urlsplit(target)
        reader, writer = await asyncio.wait_for(asyncio.open_connection(parts.hostname, parts.port or 9100), limit_seconds)
        try:
            writer.write(data)
            await asyncio.wait_for(writer.drain(), limit_seconds)
        finally:
            writer.close()
            await asyncio.wait_for(writer.wait_closed(), limit_seconds)
        return
    await asyncio.wait_for(asyncio.to_thread(_write_device, Path(target), data), limit_seconds)


def _write_device(path: Path, data: bytes) -> None:
    with path.open("ab", buffering=0) as device:  # append: a plain file stands in for the device in tests
        device.write(data)

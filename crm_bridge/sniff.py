"""Upload checks (pure): the file's type from its first bytes (never from its name or the browser's
Content-Type), its name without any path, its size. Each refusal is a Problem with a stable code."""

from __future__ import annotations

import re
import unicodedata

from clinicall.problem import Problem

# content type -> (the extensions a name may carry for it, the extension given when there is none)
TYPES = {
    "application/pdf": ((".pdf",), ".pdf"),
    "image/jpeg": ((".jpg", ".jpeg"), ".jpg"),
    "image/png": ((".png",), ".png"),
    "application/dicom": ((".dcm", ".dicom"), ".dcm"),
}
MAX_NAME = 120
SAFE = re.compile(r"[^\w.\- ()]+")


def sniff(data: bytes) -> str | None:
    """The content type the bytes are (PDF, JPEG, PNG, DICOM Part 10), or None."""
    if data.startswith(b"%PDF-"):
        return "application/pdf"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if len(data) >= 132 and data[128:132] == b"DICM":
        return "application/dicom"
    return None


def refuse(status: int, title: str, detail: str, code: str, name: str) -> Problem:
    return Problem(status, title, detail, code=code, errors=[{"field": "files", "code": code, "message": f"{name}: {detail}"}])


def clean_filename(raw: str) -> str:
    """The name as it is shown and served: NFC, no control characters, only word characters, dots, dashes,
    spaces and brackets; a name that names a directory (a slash, a backslash, "..") is refused."""
    name = unicodedata.normalize("NFC", raw or "").strip()
    if "/" in name or "\\" in name or name.startswith(".") or ".." in name or "\x00" in name:
        raise refuse(422, "File name with a path", "The file name names a folder; send the file under its own name "
                     "only, e.g. ketqua.pdf.", "file_name_has_path", name[:60])
    name = SAFE.sub("_", "".join(ch for ch in name if unicodedata.category(ch)[0] != "C"))
    return name[-MAX_NAME:] if name.strip("._ ") else "file"


def checked_file(raw_name: str, data: bytes, max_bytes: int) -> tuple[str, str]:
    """(clean file name, content type) of an acceptable upload; else a Problem."""
    name = clean_filename(raw_name)
    if not data:
        raise refuse(422, "Empty file", "The file is empty.", "file_empty", name)
    if len(data) > max_bytes:
        raise refuse(413, "File too large", f"A file may have at most {max_bytes // (1024 * 1024)} MB.",
                     "file_too_large", name)
    kind = sniff(data)
    if kind is None:
        raise refuse(415, "File type not accepted", "Only PDF, JPEG, PNG and DICOM files are accepted; this file is "
                     "none of them.", "file_type_not_allowed", name)
    extensions, default = TYPES[kind]
    stem, dot, ext = name.rpartition(".")
    if dot and f".{ext.lower()}" not in extensions:
        if f".{ext.lower()}" in {e for exts, _ in TYPES.values() for e in exts}:
            raise refuse(415, "File type does not match its name", f"The name says .{ext} but the content is "
                         f"{kind}; send the file as it is.", "file_type_mismatch", name)
        name = f"{name}{default}"
    elif not dot:
        name = f"{name}{default}"
    return name, kind

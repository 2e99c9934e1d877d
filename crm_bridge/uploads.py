"""Reading multipart uploads (result and referral files, the HIS import) with every count and size bounded
while the body streams in: aiohttp's own limit on a body (client_max_size) does not apply to a multipart reader."""

from __future__ import annotations

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from clinicall.problem import Problem
from crm_bridge import results
from crm_bridge.sniff import checked_file

MAX_FILES = 10
MAX_FIELD = 10_000
# Text fields of one upload: a referral or a result form has under ten; without a cap a referrer could stream
# any number of distinct fields of MAX_FIELD bytes each into memory.
MAX_FIELDS = 50
READ_ERRORS = (ValueError, AssertionError, RuntimeError, UnicodeDecodeError, LookupError, HttpProcessingError)


async def read_multipart(request: web.Request, limit: int) -> tuple[dict[str, str], list[results.Upload]]:
    """Form fields and the files (each checked by content, name and size) of a multipart upload. Every file
    is checked before anything is stored: one bad file refuses the whole upload."""
    if request.content_type != "multipart/form-data":
        raise Problem(415, "Upload as a form", "Send the files as multipart/form-data (form field 'files').",
                      code="upload_not_multipart")
    fields: dict[str, str] = {}
    raw: list[tuple[str, bytes]] = []
    parts = 0
    try:
        reader = await request.multipart()
        async for part in reader:
            if not isinstance(part, BodyPartReader):
                raise Problem(400, "Malformed form", "Nested multipart bodies are not accepted.", code="malformed_form")
            if part.filename is not None:
                if len(raw) >= MAX_FILES:
                    raise Problem(422, "Too many files", f"Send at most {MAX_FILES} files at once.", code="too_many_files")
                raw.append((part.filename, await read_part(part, limit, part.filename)))
                continue
            parts += 1
            if parts > MAX_FIELDS:
                raise Problem(413, "Too many form fields", f"A form may have at most {MAX_FIELDS} fields besides its "
                              "files.", code="too_many_fields")
            if part.name:
                fields[part.name] = (await read_part(part, MAX_FIELD, part.name)).decode("utf-8", "replace")
    except READ_ERRORS as exc:
        raise Problem(400, "Malformed form", f"The upload cannot be read ({type(exc).__name__}).",
                      code="malformed_form") from None
    return fields, [results.Upload(*checked_file(name, data, limit), data) for name, data in raw]


async def read_part(part: BodyPartReader, limit: int, name: str) -> bytes:
    """One part's bytes, refused (413 `file_too_large`) as soon as they pass `limit`."""
    data = bytearray()
    while chunk := await part.read_chunk(65536):
        data += chunk
        if len(data) > limit:
            raise Problem(413, "File too large", f"{name[:60]}: a file may have at most {limit // (1024 * 1024)} MB.",
                          code="file_too_large",
                          errors=[{"field": "files", "code": "file_too_large", "message": name[:60]}])
    return bytes(data)

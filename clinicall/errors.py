"""CommandError: a command-line operation that cannot go on; `clinicall` prints its message and exits 2."""

from __future__ import annotations


class CommandError(Exception):
    pass

"""Checking `{placeholder}` templates (str.format syntax) against the placeholders allowed."""

from __future__ import annotations

import string


def placeholders(template: str) -> set[str]:
    try:
        return {field for _literal, field, _spec, _conv in string.Formatter().parse(template) if field is not None}
    except ValueError as exc:
        raise ValueError(f"{template!r} is not a valid template: {exc}") from None


def check_template(template: str, allowed: set[str], required: set[str]) -> None:
    """Raises ValueError naming the unknown or missing placeholder."""
    fields = placeholders(template)
    unknown = fields - allowed
    if unknown:
        raise ValueError(f"{template!r} uses unknown placeholder(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
    missing = required - fields
    if missing:
        raise ValueError(f"{template!r} lacks the placeholder(s) {sorted(missing)}")

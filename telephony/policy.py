"""Which numbers an agent may dial, and what to dial (the Exten sent to Asterisk)."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import phonenumbers
from phonenumbers import PhoneNumberType

from clinicall.problem import Problem
from clinicall.settings import TelephonySettings

TYPE_NAMES = {
    PhoneNumberType.MOBILE: "mobile",
    PhoneNumberType.FIXED_LINE: "fixed_line",
    PhoneNumberType.TOLL_FREE: "toll_free",
    PhoneNumberType.PREMIUM_RATE: "premium_rate",
    PhoneNumberType.VOIP: "voip",
    PhoneNumberType.SHARED_COST: "shared_cost",
}
TYPE_LABELS = {"toll_free": "toll-free", "premium_rate": "premium-rate", "voip": "VoIP", "shared_cost": "shared-cost",
               "mobile": "mobile", "fixed_line": "fixed-line"}


@dataclass(frozen=True)
class DialTarget:
    e164: str
    exten: str
    kind: str
    international: bool


def refused(detail: str) -> Problem:
    return Problem(400, "Number not allowed", detail, code="number_not_allowed")


def dial_target(number: str, settings: TelephonySettings, region: str) -> DialTarget:
    """Parse with phonenumbers and apply the policy; raises a 400 Problem the agent can act on."""
    return _dial_target(number, region, tuple(settings.allowed_number_types), settings.allow_international,
                        settings.international_prefix)


@functools.lru_cache(maxsize=4096)  # pure; the same patients are called again and again (refusals are not kept)
def _dial_target(number: str, region: str, allowed_types: tuple[str, ...], allow_international: bool,
                 international_prefix: str) -> DialTarget:
    try:
        parsed = phonenumbers.parse(number, region)
    except phonenumbers.NumberParseException:
        raise refused(f"{number!r} is not a phone number; correct it on the patient's card.") from None
    if not phonenumbers.is_valid_number(parsed):
        raise refused(f"{number!r} is not a valid phone number; correct it on the patient's card.")
    number_type = phonenumbers.number_type(parsed)
    if number_type == PhoneNumberType.FIXED_LINE_OR_MOBILE:
        kinds = {"mobile", "fixed_line"}
    else:
        kinds = {TYPE_NAMES.get(number_type, "unknown")}
    allowed = set(allowed_types)
    if not kinds & allowed:
        label = " or ".join(sorted(TYPE_LABELS.get(k, k) for k in kinds))
        raise refused(f"Calls to {label} numbers are not allowed here; ask an admin if this patient must be called.")
    number_region = phonenumbers.region_code_for_number(parsed)
    international = number_region != region
    if international and not allow_international:
        raise refused(f"International calls ({number_region or 'unknown country'}) are not allowed; "
                      "ask an admin to enable them.")
    e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    if international:
        exten = international_prefix + e164[1:]
    else:
        exten = "".join(ch for ch in phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)
                        if ch.isdigit())
    kind = sorted(kinds & allowed)[0]
    return DialTarget(e164=e164, exten=exten, kind=kind, international=international)

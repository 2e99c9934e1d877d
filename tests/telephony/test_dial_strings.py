"""Which Dial goes out through a trunk: a phone number in the dial string that is not the destination's own
extension; a registered phone's contact URI, parameters and all, is no phone number."""

from __future__ import annotations

import pytest

from telephony.calltrack import _outside


@pytest.mark.parametrize(("dial_string", "ext", "outside"), [
    ("0901234567@vnpt", "1001", True),
    ("vnpt/0901234567", "1001", True),
    ("vnpt/sip:+84901234567@203.0.113.5", "1001", True),
    ("1001", "1001", False),
    ("1001/sip:1001@10.0.0.5:5060", "1001", False),
    ("1001/sip:1001@10.0.0.5:5060;rinstance=4d5c61234567ab", "1001", False),  # Zoiper's random rinstance
    ("0987000001", None, False),
])
def test_a_dial_goes_out_only_for_a_phone_number(dial_string: str, ext: str | None, outside: bool) -> None:
    assert _outside(dial_string, ext) is outside

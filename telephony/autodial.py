"""Automated calls (reminder campaigns): the patient's phone is dialled first and, once answered, runs
a dialplan context (FastAGI plays the message and reads the key). Same number policy, same call log,
same own writer as click-to-call; nothing here waits for the call (Async Originate)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from clinicall.db import Database, utcnow
from clinicall.settings import Settings
from telephony.ami import AmiLink
from telephony.calllog import CallLog
from telephony.events import CALL_UPDATED, call_updated
from telephony.models import Call
from telephony.policy import DialTarget, dial_target
from telephony.service import call_tag
from telephony.wire import Header, encode_action


class LinkDown(Exception):
    """The AMI link is not up: nothing was written (and no call row is left behind)."""


@dataclass(frozen=True)
class AutoCall:
    origin: str  # the call log's origin, e.g. "reminder"
    channel: str  # Originate Channel template, {number} = the dialled number
    context: str
    timeout_ms: int
    variables: Sequence[tuple[str, str]] = ()
    exten: str = "s"


def autodial_target(number: str, settings: Settings) -> DialTarget:
    """The click-to-call number policy (raises the same 400 `number_not_allowed` Problem)."""
    return dial_target(number, settings.telephony, settings.clinic.phone_region)


def autodial_headers(spec: AutoCall, settings: Settings, *, call_id: int, target: DialTarget,
                     patient_id: int | None, installation: str) -> list[Header]:
    tag = call_tag(call_id, installation)
    return [
        ("Action", "Originate"),
        ("Channel", spec.channel.replace("{number}", target.exten)),
        ("Context", spec.context),
        ("Exten", spec.exten),
        ("Priority", "1"),
        ("Timeout", str(spec.timeout_ms)),
        ("CallerID", settings.telephony.caller_id),
        ("Async", "true"),
        ("ChannelId", tag),
        ("OtherChannelId", f"{tag}-2"),
        ("ActionID", tag),
        ("Variable", f"CLINICALL_CALL_ID={call_id}"),
        ("Variable", f"PATIENT_ID={patient_id if patient_id is not None else ''}"),
        *(("Variable", f"{name}={value}") for name, value in spec.variables),
    ]


async def start_autodial(db: Database, bus: Any, settings: Settings, link: AmiLink | None, calllog: CallLog,
                         spec: AutoCall, *, patient_id: int | None, phone_id: int | None, target: DialTarget,
                         before_send: Callable[[int], Awaitable[None]] | None = None,
                         not_sent: Callable[[int], Awaitable[None]] | None = None) -> int:
    """Write the call row, let the caller record it (`before_send(call_id)`, before Asterisk can answer),
    then write the Originate; returns the call id. Raises LinkDown, having written nothing, when the link
    is not up; a link found closed when the Originate is to be written leaves the call `interrupted` (the
    call log settles it; `not_sent(call_id)` tells the caller that nothing reached Asterisk), and its id
    is returned all the same."""
    installation = await calllog.installation()
    encode_action(autodial_headers(spec, settings, call_id=1, target=target, patient_id=patient_id,
                                   installation=installation))
    if link is None or not link.ready:
        raise LinkDown("the Asterisk link is not up")
    async with db.transaction() as s:
        call = Call(direction="outbound", origin=spec.origin, state="dialing", patient_id=patient_id, phone_id=phone_id,
                    number=target.e164, dialed=target.exten, dial_string=spec.channel.replace("{number}", target.exten),
                    created_at=utcnow())
        s.add(call)
        await s.flush()
        call.action_id = call.channel_id = call_tag(call.id, installation)
        await s.flush()
        call_id, payload, row = call.id, call_updated(call), call
    calllog.register(row)
    if before_send is not None:
        await before_send(call_id)
    try:
        link.send_own(autodial_headers(spec, settings, call_id=call_id, target=target, patient_id=patient_id,
                                       installation=installation), call_id=call_id)
    except ConnectionError:
        await calllog.originate_not_confirmed(call_id)
        if not_sent is not None:
            await not_sent(call_id)
        return call_id
    await bus.publish(CALL_UPDATED, payload)
    return call_id


async def call_results(db: Database, call_ids: Sequence[int]) -> dict[int, tuple[str, str | None]]:
    """(state, disposition) of each call (ended calls carry their disposition)."""
    ids = sorted({int(i) for i in call_ids})
    found: dict[int, tuple[str, str | None]] = {}
    async with db.session() as s:
        for start in range(0, len(ids), 500):
            rows = (await s.execute(select(Call.id, Call.state, Call.disposition)
                                    .where(Call.id.in_(ids[start:start + 500])))).all()
            found.update({cid: (state, disposition) for cid, state, disposition in rows})
    return found

"""Projection of an automated call (a reminder): the Originate's own channel is the patient's phone;
it is answered when Asterisk reports the Originate answered (or the channel went up), and whatever
runs after that is dialplan (playback, key reading), not a person."""

from __future__ import annotations

from telephony.calltrack import CAUSE_DISPOSITION, REASON_CAUSE, REASON_DISPOSITION, Projection
from telephony.projection import View, finish, hangup_cause, legs_json, real_end, ring_seconds, state_of


def own_side(view: View) -> set[str]:
    spec, orig = view.spec, view.orig
    uids = {u for u in (spec.channel_id, spec.other_channel_id) if u}
    if orig is not None and orig.response == "Success" and orig.uniqueid:
        uids.add(orig.uniqueid)
    return view.twins(uids)


def _disposition(view: View, answered: bool, code: int | None) -> str:
    orig = view.orig
    if answered:
        return "answered"
    if orig is not None and orig.response != "Success":
        if orig.reason in ("0", "1", "") and view.spec.hangup_requested:
            return "cancelled"
        return REASON_DISPOSITION.get(orig.reason, "failed")
    return CAUSE_DISPOSITION.get(code, "failed") if code is not None else "failed"


def project_auto(view: View) -> Projection:
    side = own_side(view)
    chans = [view.chans[u] for u in side if u in view.chans]
    orig = view.orig
    failed = orig is not None and orig.response != "Success"
    answers = [c.up_at for c in chans if c.up_at is not None]
    if orig is not None and orig.response == "Success":
        answers.append(orig.at)
    answered_at = None if failed or not answers else min(answers)
    ringing = [c.ringing_at for c in chans if c.ringing_at is not None]
    ringing_at = min(ringing) if ringing else None
    ended = real_end(view)
    code, cause = hangup_cause(view, side)
    disposition = None
    if ended is not None:
        disposition = _disposition(view, answered_at is not None, code)
        if failed and orig is not None and (code is None or code == 0):
            code, cause = REASON_CAUSE.get(orig.reason, (0, "Originate failed"))
    done = finish(view, answered_at=answered_at, ended_at=ended, disposition=disposition, patient=side,
                  cause=(code, cause))
    return Projection(
        state=state_of(done["ended_at"], answered_at, ringing_at), disposition=done["disposition"],
        ringing_at=ringing_at, answered_at=answered_at, ended_at=done["ended_at"], duration=done["duration"],
        billsec=done["billsec"], hangup_code=done["hangup_code"], hangup_cause=done["hangup_cause"],
        originate_reason=orig.reason if orig else None, patient_id=done["patient_id"], agent_extension=None,
        number=None, caller_name=None, linkedid=view.linkedids[0] if view.linkedids else None, agent_channel=None,
        direction="outbound", origin=view.spec.origin, talk_seconds=done["talk_seconds"],
        ring_seconds=ring_seconds(ringing_at, answered_at, done["ended_at"]), legs=legs_json(view, side, done["spans"]))

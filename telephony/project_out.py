"""Projection of a click-to-call: the agent's phone rings first (its answer is not the patient's),
then the patient leg (a Dial to the patient, or dialplan run on the agent's channel)."""

from __future__ import annotations

from telephony.calltrack import CAUSE_DISPOSITION, REASON_CAUSE, REASON_DISPOSITION, Dial, Projection
from telephony.projection import (
    View,
    cdr_disposition,
    dial_disposition,
    finish,
    hangup_cause,
    legs_json,
    real_end,
    ring_seconds,
    state_of,
)


def agent_uids(view: View) -> set[str]:
    spec, orig = view.spec, view.orig
    own = {u for u in (spec.channel_id, spec.other_channel_id, orig.uniqueid if orig else None) if u}
    return view.twins(own)


def patient_dials(view: View, agent_side: set[str]) -> list[Dial]:
    """Dials to the patient: from the call's channels, not to the agent's own phone (an agent phone
    reached through a Dial answers for the agent, never for the patient)."""
    other = view.spec.other_channel_id
    return [d for d in view.dials if d.caller_uid is not None and d.caller_uid in view.chans
            and d.dest_uid not in agent_side and not view.ext(d.dest_uid) and d.caller_uid != other]


def _ringing(view: View, dials: list[Dial], agent_side: set[str]) -> float | None:
    times = [c.ringing_at for c in view.chans.values() if c.ringing_at is not None]
    times += [t for d in dials if (t := d.ringing_at or d.begin_at) is not None]
    times += [d.ringing_at for d in view.dials if d.dest_uid in agent_side and d.ringing_at is not None]
    return min(times) if times else None


def _answered(view: View, dials: list[Dial], first_talk: float | None) -> float | None:
    times = [d.end_at for d in dials if d.status == "ANSWER" and d.end_at is not None]
    times += [view.tracker.group_answer_apps[lid] for lid in view.linkedids if lid in view.tracker.group_answer_apps]
    if first_talk is not None:
        times.append(first_talk)
    return min(times) if times else None


def _disposition(view: View, dials: list[Dial], code: int | None) -> str:
    spec, orig = view.spec, view.orig
    if orig is not None and orig.response != "Success":
        if orig.reason in ("0", "1", "") and spec.hangup_requested:
            return "cancelled"
        return REASON_DISPOSITION.get(orig.reason, "failed")
    statuses = [d.status for d in dials if d.status]
    if statuses:
        return dial_disposition(statuses, "failed", code)
    if spec.hangup_requested:
        return "cancelled"
    if code is not None and code in CAUSE_DISPOSITION:
        return CAUSE_DISPOSITION[code]
    return cdr_disposition(view.cdrs) or "failed"


def _agent_channel(view: View, agent_side: set[str]) -> str | None:
    for chan in view.chans.values():
        if chan.uniqueid in agent_side and chan.name and chan.hangup_at is None:
            return chan.name
    orig = view.orig
    return orig.channel if orig is not None and orig.response == "Success" and orig.channel else None


def project_click_to_call(view: View) -> Projection:
    agents = agent_uids(view)
    dials = patient_dials(view, agents)
    patient = view.twins({d.dest_uid for d in dials})
    from telephony.projection import talk_spans

    ended = real_end(view)
    spans = talk_spans(view, patient, ended) if patient else []
    answered_at = _answered(view, dials, spans[0][0] if spans else None)
    failed = view.orig is not None and view.orig.response != "Success"
    if failed:
        answered_at = None
    code, cause = hangup_cause(view, patient)
    disposition = None
    if ended is not None:
        disposition = "answered" if answered_at is not None else _disposition(view, dials, code)
        if failed and view.orig is not None and (code is None or code == 0):
            code, cause = REASON_CAUSE.get(view.orig.reason, (0, "Originate failed"))
    done = finish(view, answered_at=answered_at, ended_at=ended, disposition=disposition, patient=patient,
                  cause=(code, cause))
    ringing_at = _ringing(view, dials, agents)
    patient_ring = min((t for d in dials if (t := d.ringing_at or d.begin_at) is not None), default=ringing_at)
    return Projection(
        state=state_of(done["ended_at"], answered_at, ringing_at), disposition=done["disposition"],
        ringing_at=ringing_at, answered_at=answered_at, ended_at=done["ended_at"], duration=done["duration"],
        billsec=done["billsec"], hangup_code=done["hangup_code"], hangup_cause=done["hangup_cause"],
        originate_reason=view.orig.reason if view.orig else None, patient_id=done["patient_id"],
        agent_extension=None, number=None, caller_name=None,
        linkedid=view.linkedids[0] if view.linkedids else None, agent_channel=_agent_channel(view, agents),
        direction="outbound", origin="click_to_call", talk_seconds=done["talk_seconds"],
        ring_seconds=ring_seconds(patient_ring, answered_at, done["ended_at"]),
        legs=legs_json(view, patient, done["spans"]))

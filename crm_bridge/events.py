"""Events crm_bridge publishes on the bus.

- `patient.merged` {"from_id": int, "into_id": int}: after a merge the record from_id is a
  tombstone; rooms that keep patient ids (telephony's calls, the queue's tickets) re-point
  from_id to into_id. crm_bridge's own service functions already follow the merge.
- `worklists.changed` {"patient_id": int, "reason": "referral" | "assigned" | "transfer"}: a patient entered,
  left or moved between agents' lists; the agent consoles (telephony's /ws/agent) read their worklists again.
  No patient data travels with it."""

from __future__ import annotations

PATIENT_MERGED = "patient.merged"
WORKLISTS_CHANGED = "worklists.changed"

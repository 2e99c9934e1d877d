"""Events crm_bridge publishes on the bus.

- `patient.merged` {"from_id": int, "into_id": int}: after a merge the record from_id is a
  tombstone; rooms that keep patient ids (telephony's calls, the queue's tickets) re-point
  from_id to into_id. crm_bridge's own service functions already follow the merge."""

from __future__ import annotations

PATIENT_MERGED = "patient.merged"

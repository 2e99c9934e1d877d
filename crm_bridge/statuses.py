"""The clinic's two-level customer-status list (customer status -> detail statuses), admin-edited."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from clinicall.db import Database
from clinicall.problem import Problem
from crm_bridge.models import CustomerStatus
from crm_bridge.text import clean_text


async def status_tree(db: Database, include_inactive: bool = False) -> list[dict[str, Any]]:
    async with db.session() as s:
        rows = (await s.scalars(select(CustomerStatus).order_by(CustomerStatus.position, CustomerStatus.id))).all()
    visible = [r for r in rows if include_inactive or r.active]
    tree = []
    for parent in (r for r in visible if r.parent_id is None):
        tree.append({**status_json(parent),
                     "details": [status_json(c) for c in visible if c.parent_id == parent.id]})
    return tree


def status_json(r: CustomerStatus) -> dict[str, Any]:
    return {"id": r.id, "parent_id": r.parent_id, "label": r.label, "position": r.position, "active": r.active,
            "not_reached": r.not_reached, "callback_required": r.callback_required}


async def create_status(db: Database, label: str, parent_id: int | None, not_reached: bool | None,
                        position: int | None, *, callback_required: bool = False) -> dict[str, Any]:
    label = clean_text(label, "label", 120)
    if not label:
        raise Problem(422, "Label needed", "Give the status a label.")
    async with db.transaction() as s:
        parent = None
        if parent_id is not None:
            parent = await s.get(CustomerStatus, parent_id)
            if parent is None or parent.parent_id is not None:
                raise Problem(422, "Unknown parent status",
                              "parent_id must be a top-level customer status (the list has two levels).")
        clash = await s.scalar(select(CustomerStatus.id).where(
            CustomerStatus.label == label,
            CustomerStatus.parent_id == parent_id if parent_id is not None else CustomerStatus.parent_id.is_(None)))
        if clash is not None:
            raise Problem(409, "Status exists", f"{label!r} is already in this level of the list.")
        if position is None:
            position = (await s.scalar(select(func.max(CustomerStatus.position)).where(
                CustomerStatus.parent_id == parent_id if parent_id is not None
                else CustomerStatus.parent_id.is_(None))) or 0) + 1
        row = CustomerStatus(label=label, parent_id=parent_id, position=position, active=True,
                             callback_required=callback_required,
                             not_reached=bool(not_reached if not_reached is not None else
                                              (parent.not_reached if parent else False)))
        s.add(row)
        await s.flush()
        return status_json(row)


async def update_status(db: Database, status_id: int, changes: dict[str, Any]) -> dict[str, Any]:
    async with db.transaction() as s:
        row = await s.get(CustomerStatus, status_id)
        if row is None:
            raise Problem(404, "Status not found", "No customer status with that id exists.")
        if "label" in changes:
            label = clean_text(changes["label"] or "", "label", 120)
            if not label:
                raise Problem(422, "Label needed", "Give the status a label.")
            clash = await s.scalar(select(CustomerStatus.id).where(
                CustomerStatus.label == label, CustomerStatus.id != row.id,
                CustomerStatus.parent_id == row.parent_id if row.parent_id is not None
                else CustomerStatus.parent_id.is_(None)))
            if clash is not None:
                raise Problem(409, "Status exists", f"{label!r} is already in this level of the list.")
            row.label = label
        for field in ("active", "not_reached", "position", "callback_required"):
            if field in changes:
                if changes[field] is None:
                    raise Problem(422, "Invalid input", f"{field} cannot be empty.")
                setattr(row, field, changes[field])
        return status_json(row)

"""`clinicall import patients FILE.csv [--mapping JSON | --map COLUMN=FIELD ...]`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from clinicall.settings import Settings


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    imp = subparsers.add_parser("import", help="import data from other systems")
    imp_sub = imp.add_subparsers(dest="import_command", required=True)
    patients = imp_sub.add_parser(
        "patients", help="import patients from a HIS CSV export (UTF-8, with or without BOM); idempotent on his_id",
        description="Columns are matched by name (his_id, full_name, date_of_birth, gender, phone, phone2, address, "
                    "referring_doctor, service_of_interest, notes, or Vietnamese headers such as 'Mã BN', 'Họ tên', "
                    "'Ngày sinh', 'Số điện thoại') unless a mapping is given.")
    patients.add_argument("file", type=Path)
    patients.add_argument("--mapping", help='JSON object CSV column -> field, e.g. \'{"Mã BN": "his_id"}\'')
    patients.add_argument("--map", action="append", default=[], metavar="COLUMN=FIELD",
                          help="one column mapping (repeatable)")
    patients.add_argument("--user", help="record the import in the audit trail as this user")
    patients.add_argument("--quiet", action="store_true", help="no progress bar")
    patients.set_defaults(func=cmd_import_patients)


async def cmd_import_patients(args: argparse.Namespace, settings: Settings) -> int:
    from tqdm import tqdm

    from clinicall.auth.service import list_users
    from clinicall.db import Database
    from clinicall.migrate import migrate
    from clinicall.problem import Problem
    from crm_bridge.importer import import_csv, parse_mapping

    if not args.file.is_file():
        print(f"error: {args.file}: no such file", file=sys.stderr)
        return 2
    db = Database(settings.database.url)
    bar = tqdm(unit="row", desc="importing patients", disable=args.quiet, file=sys.stderr)
    try:
        await migrate(db)
        user_id = None
        if args.user:
            user_id = next((u.id for u in await list_users(db) if u.username == args.user), None)
            if user_id is None:
                print(f"error: no user named {args.user!r}", file=sys.stderr)
                return 2

        def set_total(n: int) -> None:
            bar.total = n
            bar.refresh()

        summary = await import_csv(db, args.file.read_bytes(), mapping=parse_mapping(args.mapping, args.map),
                                   user_id=user_id, region=settings.clinic.phone_region, progress=bar.update,
                                   total=set_total)
    except Problem as problem:
        bar.close()
        print(f"error: {problem.detail}", file=sys.stderr)
        return 2
    finally:
        await db.dispose()
    bar.close()
    for error in summary.errors:
        print(f"line {error['line']}: {error['reason']}", file=sys.stderr)
    print(f"{summary.rows} rows: {summary.created} created, {summary.updated} updated, "
          f"{summary.unchanged} unchanged, {len(summary.errors)} bad rows")
    return 1 if summary.errors else 0

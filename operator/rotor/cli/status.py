"""``rotor status``: a table of ManagedSecrets: ready, reason, expiry, next rotation, last sync."""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Sequence

from rotor.cli.output import (
    add_connection_flags,
    age,
    connect,
    json_bool,
    list_managed_secrets,
    namespace_of,
    relative,
    render_json,
    render_table,
    render_yaml,
    run_command,
    timestamp,
)
from rotor.inventory import StatusRow, status_row

HEADERS = (
    "NAMESPACE",
    "NAME",
    "READY",
    "REASON",
    "ROTATION",
    "SECRET",
    "EXPIRES",
    "NEXT-ROTATION",
    "LAST-SYNC",
    "AGE",
)
WIDE_HEADERS = (*HEADERS, "STORE", "RENEWAL", "ROTATION-PHASE", "MESSAGE", "ROTATION-MESSAGE")
OUTPUTS = ("table", "wide", "json", "yaml")


def _cells(row: StatusRow, now: dt.datetime, wide: bool) -> list[str]:
    cells = [
        row.namespace,
        row.name,
        row.ready,
        row.reason,
        row.rotation,
        row.secret,
        relative(row.not_after, now),
        relative(row.next_rotation, now),
        relative(row.last_sync, now),
        age(row.created, now),
    ]
    if wide:
        cells += [
            row.store,
            relative(row.renewal_time, now),
            row.rotation_phase,
            row.message,
            row.rotation_message if row.rotation == "Failed" else "",
        ]
    return cells


def _item(row: StatusRow) -> dict[str, object]:
    return {
        "namespace": row.namespace,
        "name": row.name,
        "ready": json_bool(row.ready),
        "reason": row.reason or None,
        "message": row.message or None,
        "rotation": row.rotation or None,
        "rotationMessage": row.rotation_message or None,
        "secretName": row.secret,
        "store": row.store,
        "notAfter": timestamp(row.not_after),
        "renewalTime": timestamp(row.renewal_time),
        "nextRotationTime": timestamp(row.next_rotation),
        "rotationPhase": row.rotation_phase or None,
        "lastSyncTime": timestamp(row.last_sync),
        "creationTimestamp": timestamp(row.created),
    }


def render_status(rows: Sequence[StatusRow], output: str, now: dt.datetime) -> str:
    if output in ("json", "yaml"):
        document = {"generatedAt": timestamp(now), "items": [_item(r) for r in rows]}
        return render_json(document) if output == "json" else render_yaml(document)
    if not rows:
        return "no ManagedSecrets found\n"
    wide = output == "wide"
    return render_table(WIDE_HEADERS if wide else HEADERS, [_cells(r, now, wide) for r in rows])


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "status",
        help="table of ManagedSecrets: ready, reason, expiry, next rotation",
        description="Times are relative to now: 'in 29d' is ahead, '3h ago' is past.",
    )
    add_connection_flags(p, all_namespaces=True)
    p.add_argument(
        "-o",
        "--output",
        choices=OUTPUTS,
        default="table",
        help="wide adds store, renewal time, rotation phase and the Ready and Rotating messages; "
        "json and yaml print absolute times",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    async def command() -> int:
        async with connect(args) as gateway:
            namespace = None if args.all_namespaces else namespace_of(args)
            managed = await list_managed_secrets(gateway, namespace)
        rows = sorted((status_row(ms) for ms in managed), key=lambda r: (r.namespace, r.name))
        print(render_status(rows, args.output, dt.datetime.now(dt.UTC)), end="")
        return 0

    return run_command(command)

"""``rotor report``: the audit and expiry report for security reviews (table, JSON or CSV).

One row per ManagedSecret: where its data comes from, which keys it writes (names only), the
source versions, when it was last synced and rotated, under which policy, when it expires, and a
``risk`` word to sort by. Values are never read.
"""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from rotor.cli.output import (
    MISSING,
    add_connection_flags,
    connect,
    json_bool,
    list_managed_secrets,
    namespace_of,
    render_csv,
    render_json,
    render_table,
    render_yaml,
    run_command,
    timestamp,
)
from rotor.inventory import ReportRow, index_objects, report_rows
from rotor.kube.gateway import KubeError, KubeGateway

FORMATS = ("table", "wide", "json", "yaml", "csv")
REFERENCED_KINDS = ("SecretStore", "ClusterSecretStore", "RotationPolicy", "ClusterRotationPolicy")


def _time(value: dt.datetime | None) -> str | None:
    return timestamp(value)


def _cell(value: dt.datetime | None) -> str:
    return timestamp(value) or ""


def _day(value: dt.datetime | None) -> str:
    """The narrow table's dates: the UTC day (the wide table, JSON and CSV keep the second)."""
    return (timestamp(value) or "")[:10]


def _versions(row: ReportRow) -> str:
    return ";".join(f"{k}={v}" for k, v in row.source_versions.items())


#: (JSON key, table/CSV header, JSON value, text cell). JSON keys are stable: scripts rely on them.
Column = tuple[str, str, Callable[[ReportRow], Any], Callable[[ReportRow], str]]
COLUMNS: tuple[Column, ...] = (
    ("namespace", "NAMESPACE", lambda r: r.namespace, lambda r: r.namespace),
    ("name", "NAME", lambda r: r.name, lambda r: r.name),
    ("store", "STORE", lambda r: r.store, lambda r: r.store),
    ("provider", "PROVIDER", lambda r: r.provider or None, lambda r: r.provider),
    ("keys", "KEYS", lambda r: list(r.keys), lambda r: ";".join(r.keys)),
    ("sourceVersions", "SOURCE-VERSIONS", lambda r: dict(r.source_versions), _versions),
    ("lastSyncTime", "LAST-SYNC", lambda r: _time(r.last_sync), lambda r: _cell(r.last_sync)),
    ("lastRotationTime", "LAST-ROTATION", lambda r: _time(r.last_rotation), lambda r: _cell(r.last_rotation)),
    ("rotationPolicy", "ROTATION-POLICY", lambda r: r.rotation_policy or None, lambda r: r.rotation_policy),
    ("strategy", "STRATEGY", lambda r: r.strategy or None, lambda r: r.strategy),
    ("notAfter", "NOT-AFTER", lambda r: _time(r.not_after), lambda r: _cell(r.not_after)),
    ("renewalTime", "RENEWAL", lambda r: _time(r.renewal_time), lambda r: _cell(r.renewal_time)),
    ("nextRotationTime", "NEXT-ROTATION", lambda r: _time(r.next_rotation), lambda r: _cell(r.next_rotation)),
    ("ready", "READY", lambda r: json_bool(r.ready), lambda r: r.ready),
    ("reason", "REASON", lambda r: r.reason or None, lambda r: r.reason),
    ("rotation", "ROTATION", lambda r: r.rotation or None, lambda r: r.rotation),
    ("risk", "RISK", lambda r: r.risk, lambda r: r.risk),
)

#: The default table, to read in 120 columns: who, how it stands, when it was last rotated and when
#: it expires (days). ``-o wide`` (and JSON, YAML, CSV) carry every column.
NARROW: tuple[tuple[str, Callable[[ReportRow], str]], ...] = (
    ("NAMESPACE", lambda r: r.namespace),
    ("NAME", lambda r: r.name),
    ("STORE", lambda r: r.store),
    ("READY", lambda r: r.ready),
    ("REASON", lambda r: r.reason),
    ("ROTATION", lambda r: r.rotation),
    ("LAST-ROTATION", lambda r: _day(r.last_rotation)),
    ("NOT-AFTER", lambda r: _day(r.not_after)),
    ("RISK", lambda r: r.risk),
)


def render_report(rows: Sequence[ReportRow], fmt: str, generated_at: dt.datetime) -> str:
    """The report in ``fmt``: ``table`` (for people, the main columns), ``wide`` (every column),
    ``json`` or ``yaml`` ({"generatedAt", "items"}) or ``csv`` (a header row, then one row per
    ManagedSecret; empty cells for missing values)."""
    if fmt in ("json", "yaml"):
        items = [{key: value(row) for key, _, value, _ in COLUMNS} for row in rows]
        document = {"generatedAt": timestamp(generated_at), "items": items}
        return render_json(document) if fmt == "json" else render_yaml(document)
    if fmt == "table":
        headers = [header for header, _ in NARROW]
        cells = [[text(row) for _, text in NARROW] for row in rows]
    else:
        headers = [header for _, header, _, _ in COLUMNS]
        cells = [[text(row) for _, _, _, text in COLUMNS] for row in rows]
    if fmt == "csv":
        return render_csv(headers, cells)
    if not rows:
        return "no ManagedSecrets found\n"
    return render_table(headers, [[cell or MISSING for cell in line] for line in cells])


# --------------------------------------------------------------------------- gathering


async def _list(gateway: KubeGateway, kind: str, namespace: str | None) -> list[dict[str, Any]]:
    """Referenced stores and policies are context: if they cannot be listed (RBAC), the report
    still goes out, with their columns empty."""
    try:
        return await gateway.list_objects(kind, namespace)
    except KubeError as err:
        if err.status in (401, 403, 404):
            return []
        raise


async def gather(
    gateway: KubeGateway, namespace: str | None
) -> tuple[list[dict[str, Any]], Mapping[tuple[str, str, str], Mapping[str, Any]]]:
    """ManagedSecrets in ``namespace`` (None: every namespace), and the stores and policies."""
    managed = await list_managed_secrets(gateway, namespace)
    objects: dict[tuple[str, str, str], Mapping[str, Any]] = {}
    for kind in REFERENCED_KINDS:
        scope = None if kind.startswith("Cluster") else namespace
        objects.update(index_objects(kind, await _list(gateway, kind, scope)))
    return managed, objects


# --------------------------------------------------------------------------- command


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "report",
        help="audit and expiry report of ManagedSecrets for security reviews",
        description="One row per ManagedSecret: store, provider, Secret keys (names only), source "
        "versions, last sync and rotation, rotation policy and strategy, expiry, readiness and a risk "
        "word (expired, expiring, not-ready, rotation-failed, no-rotation, ok). Never shows a value.",
    )
    add_connection_flags(p, all_namespaces=True)
    p.add_argument(
        "--format",
        "-o",
        "--output",
        dest="format",
        choices=FORMATS,
        default="table",
        help="table (the main columns, fits 120 columns), wide (every column), json, yaml or csv",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    async def command() -> int:
        async with connect(args) as gateway:
            namespace = None if args.all_namespaces else namespace_of(args)
            managed, objects = await gather(gateway, namespace)
        now = dt.datetime.now(dt.UTC)
        print(render_report(report_rows(managed, objects, now), args.format, now), end="")
        return 0

    return run_command(command)

"""What the commands for people share: connection flags, the Kubernetes connection, errors, and
rendering (tables, JSON, CSV, relative times). Nothing here ever sees a secret value."""

from __future__ import annotations

import argparse
import asyncio
import csv
import datetime as dt
import io
import json
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import yaml

from rotor.kube.gateway import KubeError, KubeGateway

MISSING = "-"


class CliError(Exception):
    """A failure to report to the user in one line, with the command's exit code."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


# --------------------------------------------------------------------------- flags and connection


def add_connection_flags(parser: argparse.ArgumentParser, *, all_namespaces: bool) -> None:
    parser.add_argument(
        "--kubeconfig", default=None, help="kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)"
    )
    parser.add_argument("--context", default=None, help="kubeconfig context (default: the current context)")
    parser.add_argument(
        "-n", "--namespace", default=None, help="namespace (default: the context's namespace, else 'default')"
    )
    if all_namespaces:
        parser.add_argument(
            "-A", "--all-namespaces", action="store_true", help="every namespace (overrides -n)"
        )


def namespace_of(args: argparse.Namespace) -> str:
    """The namespace the command works in: -n, else the kubeconfig context's, else ``default``."""
    if args.namespace:
        return str(args.namespace)
    return KubeGateway.default_namespace(args.kubeconfig, args.context)


KUBECONFIG_FIX = "point KUBECONFIG at your cluster's kubeconfig, or pass --kubeconfig PATH"


def check_kubeconfig(path: str | None, environ: Mapping[str, str] = os.environ) -> None:
    """Say in one line, with the fix, that there is no kubeconfig to use (before the client library
    says it in its own words). In a pod without a kubeconfig, the in-cluster credentials are used."""
    if path:
        if not os.path.exists(path):
            raise CliError(f"kubeconfig {path} (--kubeconfig) does not exist; {KUBECONFIG_FIX}")
        return
    listed = [p for p in environ.get("KUBECONFIG", "").split(os.pathsep) if p]
    if listed:
        if not any(os.path.exists(p) for p in listed):
            raise CliError(f"KUBECONFIG={environ['KUBECONFIG']}: no such file; {KUBECONFIG_FIX}")
        return
    default = os.path.join(os.path.expanduser("~"), ".kube", "config")
    if not os.path.exists(default) and not environ.get("KUBERNETES_SERVICE_HOST"):
        raise CliError(f"no kubeconfig: {default} does not exist and KUBECONFIG is not set; {KUBECONFIG_FIX}")


def one_line(text: str) -> str:
    """A message as one line: backends (Vault's "1 error occurred:\n\t* ...") and libraries
    write several; the lines are joined with "; " and runs of blanks squeezed."""
    parts = [" ".join(line.split()) for line in str(text).splitlines()]
    return "; ".join(part for part in parts if part)


@asynccontextmanager
async def connect(args: argparse.Namespace) -> AsyncIterator[KubeGateway]:
    """The gateway for the command (a CLI process runs one command: a short blocking file check
    here is fine)."""
    check_kubeconfig(args.kubeconfig)
    try:
        gateway = await KubeGateway.connect_context(args.kubeconfig, args.context)
    except Exception as exc:  # kubeconfig problems come in many types; report them in one line
        raise CliError(f"cannot load the Kubernetes configuration: {exc}") from None
    try:
        yield gateway
    finally:
        await gateway.close()


async def list_managed_secrets(gateway: KubeGateway, namespace: str | None) -> list[dict[str, Any]]:
    """ManagedSecrets in ``namespace`` (None: every namespace)."""
    try:
        items = await gateway.list_objects("ManagedSecret", namespace)
    except KubeError as err:
        if err.status == 404:
            raise CliError("ManagedSecrets cannot be listed: the rotor.dev CRDs are not installed") from None
        raise
    if not items and namespace is not None and await namespace_missing(gateway, namespace):
        raise CliError(f"namespace {namespace} does not exist")
    return items


async def namespace_missing(gateway: KubeGateway, namespace: str) -> bool:
    """Whether ``namespace`` does not exist (False when the credentials may not tell)."""
    try:
        return await gateway.namespace_labels(namespace) is None
    except KubeError:
        return False


async def not_found(gateway: KubeGateway, kind: str, namespace: str, name: str) -> CliError:
    """The error for an object that is not there, naming a missing namespace as such."""
    if await namespace_missing(gateway, namespace):
        return CliError(f"namespace {namespace} does not exist (looking for {kind} {name})")
    return CliError(f"{kind} {namespace}/{name} not found")


def run_command(command: Callable[[], Awaitable[int]]) -> int:
    """Run an async command; print its failures as one line on stderr (no traceback)."""
    try:
        return asyncio.run(_guarded(command))
    except CliError as err:
        print(f"error: {one_line(err.message)}", file=sys.stderr)
        return err.exit_code


async def _guarded(command: Callable[[], Awaitable[int]]) -> int:
    try:
        return await command()
    except KubeError as err:
        raise CliError(f"{err}") from None
    except (OSError, aiohttp.ClientError) as err:  # TimeoutError and aiohttp's connection errors
        raise CliError(f"cannot reach the Kubernetes API: {err}") from None


# --------------------------------------------------------------------------- times


def short_duration(seconds: float) -> str:
    """``45s``, ``12m``, ``5h``, ``29d``: one unit, rounded down, like ``kubectl get`` ages."""
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 2 * 3600:
        return f"{seconds // 60}m"
    if seconds < 48 * 3600:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def relative(when: dt.datetime | None, now: dt.datetime) -> str:
    """``in 29d``, ``3h ago``, ``now``; ``-`` when there is no time."""
    if when is None:
        return MISSING
    delta = (when - now).total_seconds()
    if abs(delta) < 1:
        return "now"
    return f"in {short_duration(delta)}" if delta > 0 else f"{short_duration(-delta)} ago"


def age(when: dt.datetime | None, now: dt.datetime) -> str:
    return MISSING if when is None else short_duration((now - when).total_seconds())


def timestamp(when: dt.datetime | None) -> str | None:
    """RFC 3339 in UTC, whole seconds (what Kubernetes writes); None stays None."""
    if when is None:
        return None
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------- formats


def render_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Columns aligned like ``kubectl get``: left-aligned, three spaces apart, no trailing blanks."""
    cells = [list(headers), *([one_line(cell) or MISSING for cell in row] for row in rows)]
    widths = [max(len(line[i]) for line in cells) for i in range(len(headers))]
    lines = [
        "   ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in cells
    ]
    return "\n".join(lines) + "\n"


def render_json(document: Any) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def render_yaml(document: Any) -> str:
    """The same document as ``render_json``, as YAML (kubectl's ``-o yaml``)."""
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True, default_flow_style=False)


def json_bool(condition_status: str) -> bool | None:
    """A condition status as a JSON boolean: True/False, and null for Unknown."""
    return {"True": True, "False": False}.get(condition_status)


def render_csv(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(headers)
    writer.writerows(rows)
    return buffer.getvalue()

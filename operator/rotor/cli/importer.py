"""``rotor import``: migrate a Kubernetes Secret or a ``.env`` file into a store, and print (or
apply) the ManagedSecret that replaces it.

Steps, in order: read the source; read what the remote key holds now; write a backup file (mode
0600: the source data, and the remote's previous value if there was one); refuse to overwrite an
existing remote value unless ``--force``; write every key as one secret; read it back and compare;
print the ManagedSecret, or create it with ``--apply``.

Values are handled, never shown: progress goes to stderr, the manifest to stdout, and neither
ever contains a value. The store is reached exactly as the operator reaches it (the store object
in the cluster says where and how).
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import hmac
import json
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rotor.api.managedsecret import ManagedSecretSpec
from rotor.api.names import API_VERSION, MANAGED_BY_LABEL
from rotor.cli.output import (
    CliError,
    add_connection_flags,
    connect,
    namespace_missing,
    namespace_of,
    not_found,
    run_command,
    timestamp,
)
from rotor.clock import Clock
from rotor.kube.gateway import KubeError, KubeGateway, decode_data
from rotor.providers.base import KeyNotFound, PathReader, ProviderError, RemoteRef
from rotor.services.backend import Backend
from rotor.services.stores import StoreHandle, StoreProblem, StoreService
from rotor.values.properties import encode_property, secret_key_is_valid

DEFAULT_BACKUP_DIR = "rotor-import-backups"

# --------------------------------------------------------------------------- .env files (pure)


class EnvFileError(ValueError):
    """A malformed ``.env`` file. The message names the line (and the key where there is one),
    never a value."""


_EXPORT = re.compile(r"export[ \t]+")
_KEY = re.compile(r"[^=#\s]+")
_QUOTED_KEY = re.compile(r"'([^'\r\n]+)'")
_EQUALS = re.compile(r"[ \t]*=[ \t]*")
_SINGLE = re.compile(r"'((?:\\'|[^'])*)'")
_DOUBLE = re.compile(r'"((?:\\"|[^"])*)"')
_UNQUOTED = re.compile(r"[^\r\n]*")
_END = re.compile(r"[ \t]*(?:#[^\r\n]*)?(?:\r\n|\n|\r|$)")
_BLANK = re.compile(r"\s*")
_COMMENT = re.compile(r"#[^\r\n]*")
_DOUBLE_ESCAPES = {
    "\\": "\\",
    "'": "'",
    '"': '"',
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
}


def parse_env(text: str) -> dict[str, str]:
    """``KEY=VALUE`` lines as python-dotenv reads them: blank lines and ``#`` comments skipped, an
    optional ``export`` prefix, single quotes literal (``\\'`` and ``\\\\`` aside), double quotes with
    escapes (``\\n``, ``\\t``, ``\\"``...), quoted values spanning lines, unquoted values cut at
    `` #`` and trimmed; a later duplicate wins. Unlike python-dotenv, ``${VAR}`` is not expanded:
    values are imported exactly as written. Keys must be valid Secret keys."""
    values: dict[str, str] = {}
    pos = _BLANK.match(text, 0).end()  # type: ignore[union-attr]
    while pos < len(text):
        line = text.count("\n", 0, pos) + 1
        comment = _COMMENT.match(text, pos)
        if comment:
            pos = _BLANK.match(text, comment.end()).end()  # type: ignore[union-attr]
            continue
        export = _EXPORT.match(text, pos)
        if export:
            pos = export.end()
        key_match = _QUOTED_KEY.match(text, pos) or _KEY.match(text, pos)
        equals = _EQUALS.match(text, key_match.end()) if key_match else None
        if key_match is None or equals is None:
            raise EnvFileError(f"line {line}: expected KEY=VALUE")
        key = key_match.group(1) if key_match.re is _QUOTED_KEY else key_match.group(0)
        if not secret_key_is_valid(key):
            raise EnvFileError(
                f"line {line}: {key!r} is not a valid key: use letters, digits, '-', '_' and '.' "
                "(at most 253 characters)"
            )
        pos = equals.end()
        value, pos = _value(text, pos, line, key)
        end = _END.match(text, pos)
        if end is None:
            raise EnvFileError(f"line {line}: unexpected text after the quoted value of {key!r}")
        values[key] = value
        pos = _BLANK.match(text, end.end()).end()  # type: ignore[union-attr]
    return values


def _value(text: str, pos: int, line: int, key: str) -> tuple[str, int]:
    quote = text[pos : pos + 1]
    if quote in ("'", '"'):
        match = (_SINGLE if quote == "'" else _DOUBLE).match(text, pos)
        if match is None:
            raise EnvFileError(f"line {line}: the quoted value of {key!r} is never closed")
        if quote == "'":
            return re.sub(r"\\[\\']", lambda m: m.group(0)[-1], match.group(1)), match.end()
        unescaped = re.sub(r"\\([\\'\"abfnrtv])", lambda m: _DOUBLE_ESCAPES[m.group(1)], match.group(1))
        return unescaped, match.end()
    match = _UNQUOTED.match(text, pos)
    assert match is not None  # matches the empty string at worst
    return re.sub(r"\s+#.*", "", match.group(0)).rstrip(), match.end()


# --------------------------------------------------------------------------- the source


@dataclass
class Source:
    description: str  # for messages: "Secret ns/name" or ".env file path"
    data: dict[str, str]
    backup_info: dict[str, Any]
    secret_type: str = "Opaque"


async def read_secret_source(gateway: KubeGateway, namespace: str, name: str) -> Source:
    secret = await gateway.get_secret(namespace, name)
    if secret is None:
        raise await not_found(gateway, "Secret", namespace, name)
    data: dict[str, str] = {}
    for key, raw in decode_data(secret.get("data")).items():
        try:
            data[key] = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise CliError(
                f"Secret {namespace}/{name}: key {key!r} holds binary data (not UTF-8); Vault KV and "
                "JSON secrets hold text. Store it base64-encoded by hand and use decode: Base64"
            ) from None
    secret_type = str(secret.get("type") or "Opaque")
    info = {"type": "Secret", "namespace": namespace, "name": name, "secretType": secret_type}
    return Source(f"Secret {namespace}/{name}", data, info, secret_type)


def read_env_source(path: str) -> Source:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        why = getattr(err, "strerror", None) or type(err).__name__
        raise CliError(f"cannot read {path}: {why}") from None
    try:
        data = parse_env(text)
    except EnvFileError as err:
        raise CliError(f"{path}: {err}") from None
    return Source(f".env file {path}", data, {"type": "EnvFile", "path": str(Path(path).resolve())})


# --------------------------------------------------------------------------- the remote, per provider


@dataclass
class Remote:
    """What a remote key holds: a map of text values, or one raw value that is not a map."""

    version: str | None
    data: dict[str, bytes] = field(default_factory=dict)
    raw: bytes | None = None


@dataclass
class Destination:
    backend: Backend
    key: str

    @property
    def provider(self) -> str:
        return self.backend.provider.name

    @property
    def by_parameter(self) -> bool:
        """A provider that reads whole paths (SSM Parameter Store) keeps one parameter per key
        under ``KEY/``; the others keep one map at ``KEY``."""
        return isinstance(self.backend.provider, PathReader)

    @property
    def prefix(self) -> str:
        return self.key.rstrip("/") + "/"

    def label(self) -> str:
        return f"{self.provider} '{self.prefix if self.by_parameter else self.key}'"

    def remote_names(self, keys: list[str]) -> list[str]:
        return [self.prefix + k for k in keys] if self.by_parameter else [self.key]

    async def read(self) -> Remote | None:
        p = self.backend.provider
        if self.by_parameter:
            found = await self.backend.read_path(self.prefix)
            return Remote(None, dict(found)) if found else None
        try:
            secret = await self.backend.call("read", p.read, RemoteRef(self.key))
        except KeyNotFound:
            return None
        if secret.data is not None:
            return Remote(secret.version, {str(k): encode_property(v) for k, v in secret.data.items()})
        return Remote(secret.version, raw=secret.raw or b"")

    async def write(self, data: dict[str, str], previous: Remote | None) -> str:
        """Write every key; returns how to describe what was written ("version 3")."""
        p = self.backend.provider
        if self.by_parameter:
            empty = sorted(k for k, v in data.items() if not v)
            if empty:
                names = ", ".join(empty)
                raise CliError(f"SSM parameters cannot be empty, and {names} are; nothing was written")
            for key, value in data.items():
                await self.backend.call("write", p.write, self.prefix + key, value, None)
            return f"{len(data)} parameters"
        cas = previous.version if previous is not None else None
        result = await self.backend.call("write", p.write, self.key, dict(data), cas)
        return f"version {result.version}" if result.version else "written"

    def manifest_source(self) -> dict[str, Any]:
        if self.by_parameter:
            return {"find": {"path": self.prefix}}
        return {"extract": {"key": self.key}}


def differing_keys(expected: Mapping[str, str], got: Mapping[str, bytes]) -> list[str]:
    """Keys whose read-back value is not what was written (constant-time per value)."""
    bad = [k for k, v in expected.items() if k not in got or not hmac.compare_digest(v.encode(), got[k])]
    return sorted(bad)


# --------------------------------------------------------------------------- the backup file


def _b64(data: Mapping[str, bytes]) -> dict[str, str]:
    return {k: base64.b64encode(v).decode() for k, v in data.items()}


def write_backup(
    directory: Path,
    name: str,
    now: dt.datetime,
    source: Source,
    destination: dict[str, Any],
    previous: Remote | None,
) -> Path:
    """A JSON file only its owner can read (0600, in a 0700 directory when this creates it)."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    document: dict[str, Any] = {
        "kind": "RotorImportBackup",
        "createdAt": timestamp(now),
        "source": source.backup_info,
        "destination": destination,
        "encoding": "base64",
        "data": _b64({k: v.encode() for k, v in source.data.items()}),
        "previous": None,
    }
    if previous is not None:
        document["previous"] = {"version": previous.version, "data": _b64(previous.data)}
        if previous.raw is not None:
            document["previous"]["raw"] = base64.b64encode(previous.raw).decode()
    stem = f"{now.astimezone(dt.UTC):%Y%m%dT%H%M%SZ}-{name}"
    for attempt in range(100):
        path = directory / (f"{stem}.json" if attempt == 0 else f"{stem}-{attempt}.json")
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            os.fchmod(fh.fileno(), 0o600)
            json.dump(document, fh, indent=2)
            fh.write("\n")
        return path.resolve()
    raise CliError(f"cannot create a backup file in {directory}: too many with the name {stem}")


# --------------------------------------------------------------------------- the ManagedSecret


def managed_secret(
    name: str,
    namespace: str,
    store_kind: str,
    store_name: str,
    source_ref: dict[str, Any],
    *,
    secret_type: str,
    adopt: bool,
) -> dict[str, Any]:
    target: dict[str, Any] = {"name": name, "creationPolicy": "Merge" if adopt else "Owner"}
    if secret_type != "Opaque":
        target["type"] = secret_type
    spec = {"storeRef": {"name": store_name, "kind": store_kind}, "target": target, "dataFrom": [source_ref]}
    ManagedSecretSpec.model_validate(spec)  # what the CRD would refuse, refused here first
    metadata = {"name": name, "namespace": namespace}
    return {"apiVersion": API_VERSION, "kind": "ManagedSecret", "metadata": metadata, "spec": spec}


def default_name(args: argparse.Namespace) -> str:
    if args.name:
        return str(args.name)
    if args.from_secret:
        return str(args.from_secret)
    last = [part for part in args.key.split("/") if part]
    guess = re.sub(r"[^a-z0-9.-]+", "-", (last[-1] if last else "").lower()).strip("-.")
    if not guess:
        raise CliError("cannot derive a name from --key; pass --name")
    return guess


# --------------------------------------------------------------------------- the command


def _count(data: Mapping[str, Any]) -> str:
    return f"{len(data)} key" if len(data) == 1 else f"{len(data)} keys"


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


async def _preflight(gateway: KubeGateway, args: argparse.Namespace, namespace: str, name: str) -> bool:
    """Refuse before anything is written. Returns whether the target Secret exists unmanaged."""
    existing = await gateway.get_secret(namespace, name)
    unmanaged = existing is not None and not ((existing.get("metadata") or {}).get("labels") or {}).get(
        MANAGED_BY_LABEL
    )
    if args.adopt and existing is None:
        raise CliError(f"--adopt merges into an existing Secret, and {namespace}/{name} does not exist")
    if args.apply:
        if await gateway.get_object("ManagedSecret", name, namespace) is not None:
            raise CliError(f"ManagedSecret {namespace}/{name} already exists; nothing was written")
        if unmanaged and not args.adopt:
            raise CliError(
                f"Secret {namespace}/{name} exists and Rotor does not manage it, so the applied "
                "ManagedSecret could not write it: pass --adopt (creationPolicy: Merge), or run without "
                "--apply and delete the Secret before applying the printed ManagedSecret; nothing was written"
            )
    return unmanaged


async def _resolve(
    gateway: KubeGateway, args: argparse.Namespace, namespace: str
) -> tuple[StoreService, StoreHandle]:
    stores = StoreService(gateway, Clock())
    try:
        handle = await stores.resolve(namespace, args.store_kind, args.store)
    except StoreProblem as err:
        raise CliError(f"{err.reason}: {err.message}") from None
    return stores, handle


async def run_import(gateway: KubeGateway, args: argparse.Namespace) -> int:
    namespace = namespace_of(args)
    name = default_name(args)
    if await namespace_missing(gateway, namespace):
        raise CliError(f"namespace {namespace} does not exist; nothing was read or written")
    unmanaged = await _preflight(gateway, args, namespace, name)
    if args.from_secret:
        source = await read_secret_source(gateway, namespace, args.from_secret)
    else:
        source = read_env_source(args.from_env_file)
    if not source.data:
        raise CliError(f"{source.description} has no keys; nothing to import")
    _say(f"read {_count(source.data)} from {source.description}")
    stores, handle = await _resolve(gateway, args, namespace)
    try:
        assert handle.backend is not None  # resolve() returns ready handles only
        dest = Destination(handle.backend, args.key)
        keys = sorted(source.data)
        try:
            stores.check_keys(handle, namespace, dest.remote_names(keys))
        except StoreProblem as err:
            raise CliError(f"{err.reason}: {err.message}") from None
        try:
            return await _transfer(args, namespace, name, source, handle, dest, unmanaged, gateway)
        except ProviderError as err:
            raise CliError(f"{dest.label()}: {err.reason}: {err.message}") from None
    finally:
        await stores.forget(handle.key)


async def _transfer(
    args: argparse.Namespace,
    namespace: str,
    name: str,
    source: Source,
    handle: StoreHandle,
    dest: Destination,
    unmanaged: bool,
    gateway: KubeGateway,
) -> int:
    previous = await dest.read()
    if previous is not None and not args.force:
        # refused before the backup: no copy of any value is left on disk for nothing
        held = f" (version {previous.version})" if previous.version else ""
        _say(
            f"✘ refusing to overwrite: {dest.label()} already holds a value{held}; nothing was written "
            "(no backup either). Pass --force to replace it: the backup then keeps both"
        )
        return 1
    where = {"store": handle.id, "provider": dest.provider, "key": dest.key}
    backup = write_backup(Path(args.backup_dir), name, dt.datetime.now(dt.UTC), source, where, previous)
    _say(f"backup written to {backup} (mode 0600)")
    written = await dest.write(source.data, previous)
    _say(f"wrote {_count(source.data)} to {dest.label()} ({written})")
    got = await dest.read()
    bad = differing_keys(source.data, got.data if got is not None else {})
    if bad:
        _say(
            f"✘ verification failed: {len(bad)} of {len(source.data)} keys do not read back as written "
            f"({', '.join(bad)}); the source data is in {backup}"
        )
        return 1
    _say(f"verified: read back {_count(source.data)}, all equal")
    extra = sorted(set(got.data) - set(source.data)) if got is not None else []
    if extra:
        _say(f"note: {dest.label()} also holds {', '.join(extra)}, which the ManagedSecret will write too")
    kind, _, store_name = handle.key
    manifest = managed_secret(
        name,
        namespace,
        kind,
        store_name,
        dest.manifest_source(),
        secret_type=source.secret_type,
        adopt=args.adopt,
    )
    if args.apply:
        try:
            await gateway.create_object("ManagedSecret", namespace, manifest)
        except KubeError as err:
            raise CliError(f"creating ManagedSecret {namespace}/{name} failed: {err}") from None
        print(f"managedsecret {namespace}/{name} created; follow it with: rotor status -n {namespace}")
        return 0
    print(yaml.safe_dump(manifest, sort_keys=False), end="")
    if unmanaged and not args.adopt:
        _say(
            f"next: Rotor will not overwrite Secret {namespace}/{name}, which it does not manage. Delete it "
            "(its data is in the backup) and apply the ManagedSecret above, or re-run with --adopt to merge "
            "into it (creationPolicy: Merge)"
        )
    return 0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "import",
        help="migrate a Kubernetes Secret or a .env file into a store, and print its ManagedSecret",
        description="Reads the source, writes a backup file (0600) first, refuses to overwrite a remote "
        "value unless --force, writes every key as one secret (SSM Parameter Store: one parameter per key "
        "under KEY/), verifies it by reading it back, then prints the ManagedSecret that replaces the source "
        "(or creates it with --apply). Progress goes to stderr, the manifest to stdout; values are never "
        "shown.",
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--from-secret", metavar="NAME", help="a Secret in the namespace (-n)")
    source.add_argument("--from-env-file", metavar="PATH", help="a .env file: KEY=VALUE lines")
    p.add_argument("--store", required=True, help="the SecretStore or ClusterSecretStore to write to")
    p.add_argument("--store-kind", choices=("SecretStore", "ClusterSecretStore"), default="SecretStore")
    p.add_argument(
        "--key",
        required=True,
        help="remote key: a Vault KV path (apps/db), an AWS secret name or an SSM path (/apps/db)",
    )
    p.add_argument(
        "--name",
        default=None,
        help="ManagedSecret and target Secret name (default: the source Secret's name, "
        "else the last segment of --key)",
    )
    p.add_argument("--force", action="store_true", help="replace a value the remote key already holds")
    p.add_argument(
        "--backup-dir",
        default=DEFAULT_BACKUP_DIR,
        help=f"where to write the backup (default: ./{DEFAULT_BACKUP_DIR})",
    )
    p.add_argument(
        "--adopt",
        action="store_true",
        help="the ManagedSecret merges into the existing Secret (creationPolicy: Merge) "
        "instead of owning a new one",
    )
    p.add_argument("--apply", action="store_true", help="create the ManagedSecret instead of printing it")
    add_connection_flags(p, all_namespaces=False)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    async def command() -> int:
        async with connect(args) as gateway:
            return await run_import(gateway, args)

    return run_command(command)

"""Parameter Store reads: GetParameter (by version or label), GetParameters 10 per call,
paths (find, read_path) and history (describe). SecureStrings are always decrypted."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from rotor.providers.aws.client import AwsClient
from rotor.providers.aws.errors import error_from_code
from rotor.providers.aws.payload import json_object
from rotor.providers.base import KeyNotFound, ProviderError, RemoteRef, RemoteSecret, SecretMetadata
from rotor.providers.find import compile_name_regexp

BATCH_SIZE = 10  # GetParameters' Names maximum
DESCRIBE_PAGE = 50  # DescribeParameters' MaxResults maximum
PATH_PAGE = 10  # GetParametersByPath's MaxResults maximum


def selector_name(ref: RemoteRef) -> str:
    """``name``, ``name:3`` (a version) or ``name:label``."""
    return ref.key if ref.version is None else f"{ref.key}:{ref.version}"


def to_remote_secret(key: str, parameter: dict[str, Any], selector: str | None = None) -> RemoteSecret:
    text = str(parameter.get("Value") or "")
    metadata: dict[str, Any] = {"type": parameter.get("Type")}
    if selector is not None and not selector.isdigit():
        metadata["labels"] = [selector]
    return RemoteSecret(
        key=key,
        version=str(parameter["Version"]) if parameter.get("Version") is not None else None,
        raw=text.encode("utf-8"),
        data=json_object(text),
        created=parameter.get("LastModifiedDate"),
        metadata=metadata,
    )


def read_parameter(client: AwsClient, ref: RemoteRef) -> RemoteSecret:
    response = client.call("GetParameter", ref.key, Name=selector_name(ref), WithDecryption=True)
    return to_remote_secret(ref.key, response["Parameter"], ref.version)


def read_version(client: AwsClient, key: str, version: str) -> RemoteSecret:
    """Exactly version number ``version`` of the parameter (``VersionReader``), never a label.
    AWS keeps the last 100 versions; an older or unknown one is KeyNotFound."""
    if not version.isdigit():
        raise KeyNotFound(f"AWS SSM Parameter Store '{key}': {version!r} is not a version number")
    secret = read_parameter(client, RemoteRef(key, version))
    if secret.version != version:
        raise KeyNotFound(
            f"AWS SSM Parameter Store '{key}': version {version} was asked for, {secret.version} answered"
        )
    return secret


def read_many(client: AwsClient, refs: list[RemoteRef]) -> dict[RemoteRef, RemoteSecret | ProviderError]:
    """Latest values 10 per GetParameters call; versions and labels one GetParameter each
    (GetParameters does not say reliably which selector an answer is for)."""
    results: dict[RemoteRef, RemoteSecret | ProviderError] = {}
    unique = list(dict.fromkeys(refs))
    latest = list(dict.fromkeys(r.key for r in unique if r.version is None))
    by_key: dict[str, RemoteSecret | ProviderError] = {}
    for start in range(0, len(latest), BATCH_SIZE):
        group = latest[start : start + BATCH_SIZE]
        try:
            response = client.call("GetParameters", None, Names=group, WithDecryption=True)
        except ProviderError as error:
            by_key.update(dict.fromkeys(group, error))
            continue
        for parameter in response.get("Parameters") or []:
            name = parameter.get("Name")
            key = name if name in group else parameter.get("ARN")
            if key in group:
                by_key[str(key)] = to_remote_secret(str(key), parameter)
        for name in response.get("InvalidParameters") or []:
            if name in group:
                by_key[name] = error_from_code(client.label, "GetParameters", name, "ParameterNotFound")
    for ref in unique:
        if ref.version is None and ref.key in by_key:
            results[ref] = by_key[ref.key]
            continue
        try:
            results[ref] = read_parameter(client, ref)
        except ProviderError as error:
            results[ref] = error
    return results


def _path_prefix(path: str) -> str:
    return path.rstrip("/") + "/"


def describe_parameters(client: AwsClient, filters: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """DescribeParameters entries: metadata only, no values."""
    return client.pages(
        "DescribeParameters", None, result="Parameters", ParameterFilters=filters, MaxResults=DESCRIBE_PAGE
    )


def find(client: AwsClient, path: str, name_regexp: str | None) -> list[str]:
    """Parameter names starting with ``path`` (so ``/apps/`` is recursive) that ``re.search``
    matches.

    Uses DescribeParameters with a ``Name BeginsWith`` filter: 50 names per call, and no values
    on the wire (GetParametersByPath would return up to 10 values per call).
    """
    pattern = compile_name_regexp(name_regexp)
    filters = [{"Key": "Name", "Option": "BeginsWith", "Values": [path]}] if path.strip("/") else []
    names = [str(p.get("Name") or "") for p in describe_parameters(client, filters)]
    return sorted(n for n in names if n.startswith(path) and (pattern is None or pattern.search(n)))


def read_path(client: AwsClient, path: str) -> dict[str, bytes]:
    """Every parameter under ``path`` (recursively, decrypted), keyed by the name after ``path``:
    ``/apps/db/`` gives ``{"user": ..., "tls/key": ...}``."""
    prefix = _path_prefix(path)
    values: dict[str, bytes] = {}
    for parameter in client.pages(
        "GetParametersByPath",
        path,
        result="Parameters",
        Path=prefix.rstrip("/") or "/",
        Recursive=True,
        WithDecryption=True,
        MaxResults=PATH_PAGE,
    ):
        name = str(parameter.get("Name") or "")
        if name.startswith(prefix):
            values[name[len(prefix) :]] = str(parameter.get("Value") or "").encode("utf-8")
    return values


def history(client: AwsClient, key: str, *, decrypt: bool) -> list[dict[str, Any]]:
    """GetParameterHistory, oldest first (AWS keeps the last 100 versions)."""
    entries = list(
        client.pages("GetParameterHistory", key, result="Parameters", Name=key, WithDecryption=decrypt)
    )
    return sorted(entries, key=lambda p: int(p.get("Version") or 0))


def describe(client: AwsClient, key: str) -> SecretMetadata:
    entries = history(client, key, decrypt=False)
    if not entries:
        raise error_from_code(client.label, "GetParameterHistory", key, "ParameterNotFound")
    latest = entries[-1]
    return SecretMetadata(
        key=key,
        current_version=str(latest.get("Version")),
        created=entries[0].get("LastModifiedDate"),
        updated=latest.get("LastModifiedDate"),
        versions={str(p.get("Version")): list(p.get("Labels") or []) for p in entries},
    )

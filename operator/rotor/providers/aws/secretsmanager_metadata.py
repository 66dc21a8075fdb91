"""Secrets Manager metadata without values: ListSecrets (find, change detection) and DescribeSecret."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from rotor.providers.aws.client import AwsClient
from rotor.providers.aws.secretsmanager_read import CURRENT
from rotor.providers.base import SecretMetadata
from rotor.providers.find import compile_name_regexp, has_tags

PAGE_SIZE = 100  # ListSecrets' MaxResults maximum
NAME_FILTER_MAX = 10  # values per ListSecrets filter


def list_secrets(client: AwsClient, names: Iterable[str] = ()) -> Iterator[dict[str, Any]]:
    """ListSecrets entries (no values), optionally narrowed by name prefixes."""
    params: dict[str, Any] = {"MaxResults": PAGE_SIZE, "IncludePlannedDeletion": False}
    prefixes = list(names)
    if prefixes:
        params["Filters"] = [{"Key": "name", "Values": prefixes}]
    return client.pages("ListSecrets", None, result="SecretList", **params)


def find(
    client: AwsClient, path: str, name_regexp: str | None, tags: dict[str, str] | None = None
) -> list[str]:
    """Names starting with ``path`` (ListSecrets' name filter is a prefix match) that
    ``re.search`` matches and that carry every one of ``tags`` (ListSecrets returns each secret's
    tags: no extra call)."""
    pattern = compile_name_regexp(name_regexp)
    names = []
    for entry in list_secrets(client, [path] if path else []):
        name = str(entry.get("Name") or "")
        carried = {str(t.get("Key")): str(t.get("Value") or "") for t in entry.get("Tags") or []}
        if name.startswith(path) and (pattern is None or pattern.search(name)) and has_tags(carried, tags):
            names.append(name)
    return sorted(names)


def current_version(versions: dict[str, list[str]]) -> str | None:
    return next((version for version, stages in versions.items() if CURRENT in stages), None)


def describe(client: AwsClient, key: str) -> SecretMetadata:
    response = client.call("DescribeSecret", key, SecretId=key)
    versions = {v: list(stages) for v, stages in (response.get("VersionIdsToStages") or {}).items()}
    return SecretMetadata(
        key=key,
        current_version=current_version(versions),
        created=response.get("CreatedDate"),
        updated=response.get("LastChangedDate"),
        last_rotated=response.get("LastRotatedDate"),
        next_rotation=response.get("NextRotationDate"),
        versions=versions,
        rotation_enabled=response.get("RotationEnabled"),
    )


def list_changes(client: AwsClient, keys: Iterable[str]) -> dict[str, str]:
    """The AWSCURRENT version id of each key, without reading any value.

    ListSecrets returns 100 secrets per call with their version stages, so a refresh compares
    these ids with the ones it synced and fetches only what changed. Up to 10 plain names are
    asked for by name filter; more (or ARNs) list the whole account. Keys that do not exist (or
    are scheduled for deletion) are absent from the result.
    """
    wanted = set(keys)
    if not wanted:
        return {}
    by_name = len(wanted) <= NAME_FILTER_MAX and not any(k.startswith("arn:") for k in wanted)
    found: dict[str, str] = {}
    for entry in list_secrets(client, sorted(wanted) if by_name else []):
        stages = entry.get("SecretVersionsToStages") or {}
        version = current_version({v: list(s) for v, s in stages.items()})
        if version is None:
            continue
        for key in (entry.get("Name"), entry.get("ARN")):
            if key in wanted:
                found[str(key)] = version
    return found

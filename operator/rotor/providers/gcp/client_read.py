"""Reads: one version (``latest``, a number or an alias), ``find`` by id prefix and name, and
metadata (versions and their states, timestamps, expiry) without values."""

from __future__ import annotations

from google.cloud.secretmanager_v1 import SecretVersion

from rotor.providers.base import KeyNotFound, ProviderError, RemoteRef, RemoteSecret, SecretMetadata
from rotor.providers.find import compile_name_regexp, has_tags
from rotor.providers.gcp.client import GcpClient
from rotor.providers.gcp.names import secret_path, version_number, version_segment
from rotor.providers.gcp.payload import json_object

#: ``SecretMetadata.versions`` flags: the state of versions that cannot be read
DISABLED, DESTROYED = "Disabled", "Destroyed"


def read(client: GcpClient, ref: RemoteRef) -> RemoteSecret:
    name = f"{secret_path(client.config.project_id, ref.key)}/versions/{version_segment(ref.version)}"
    response = client.call(
        "AccessSecretVersion", ref.key, lambda: client.api.access_secret_version(name=name, **client.options)
    )
    data = bytes(response.payload.data)
    return RemoteSecret(key=ref.key, version=version_number(response.name), raw=data, data=json_object(data))


def read_many(client: GcpClient, refs: list[RemoteRef]) -> dict[RemoteRef, RemoteSecret | ProviderError]:
    """Secret Manager has no batch read: one AccessSecretVersion per ref, errors returned per ref."""
    out: dict[RemoteRef, RemoteSecret | ProviderError] = {}
    for ref in refs:
        try:
            out[ref] = read(client, ref)
        except ProviderError as err:
            out[ref] = err
    return out


def find(
    client: GcpClient, path: str, name_regexp: str | None, labels: dict[str, str] | None = None
) -> list[str]:
    """Secret ids of the project that start with ``path``, match ``name_regexp`` and carry every
    one of ``labels`` (the listing holds each secret's labels: no extra call)."""
    pattern = compile_name_regexp(name_regexp)
    parent = client.parent()

    def ids() -> list[str]:
        pages = client.api.list_secrets(request={"parent": parent, "page_size": 250}, **client.options)
        return [s.name.rsplit("/", 1)[-1] for s in pages if has_tags(dict(s.labels), labels)]

    found = client.call("ListSecrets", path or None, ids)
    return sorted(i for i in found if i.startswith(path) and (pattern is None or pattern.search(i)))


def versions(client: GcpClient, key: str) -> list[SecretVersion]:
    """Every version, oldest first."""
    parent = secret_path(client.config.project_id, key)
    listed = client.call(
        "ListSecretVersions",
        key,
        lambda: list(
            client.api.list_secret_versions(request={"parent": parent, "page_size": 250}, **client.options)
        ),
    )
    return sorted(listed, key=lambda v: int(version_number(v.name)))


def _flags(version: SecretVersion) -> list[str]:
    state = SecretVersion.State(version.state)
    if state == SecretVersion.State.DISABLED:
        return [DISABLED]
    if state == SecretVersion.State.DESTROYED:
        return [DESTROYED]
    return []


def describe(client: GcpClient, key: str) -> SecretMetadata:
    """``latest`` is the newest version, whatever its state (as the service resolves it)."""
    name = secret_path(client.config.project_id, key)
    secret = client.call("GetSecret", key, lambda: client.api.get_secret(name=name, **client.options))
    listed = versions(client, key)
    if not listed:
        raise KeyNotFound(f"GCP Secret Manager '{key}': the secret has no versions")
    latest = listed[-1]
    rotation = secret.rotation if "rotation" in secret else None
    return SecretMetadata(
        key=key,
        current_version=version_number(latest.name),
        created=secret.create_time,
        updated=latest.create_time,
        next_rotation=rotation.next_rotation_time
        if rotation is not None and "next_rotation_time" in rotation
        else None,
        versions={version_number(v.name): _flags(v) for v in listed},
    )


def latest_version(client: GcpClient, key: str) -> SecretVersion | None:
    """The ``latest`` version's metadata (GetSecretVersion, no value); None when the secret or
    its versions do not exist."""
    name = f"{secret_path(client.config.project_id, key)}/versions/latest"
    try:
        return client.call(
            "GetSecretVersion", key, lambda: client.api.get_secret_version(name=name, **client.options)
        )
    except KeyNotFound:
        return None

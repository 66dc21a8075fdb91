"""Reads: one version (``latest``, a number or an alias), ``find`` by id prefix and name, and
metadata (versions and their states, timestamps, expiry) without values."""

from __future__ import annotations

import logging
import time
from datetime import datetime

from google.cloud.secretmanager_v1 import Secret, SecretVersion

from rotor.providers.base import (
    AccessDenied,
    KeyNotFound,
    ProviderError,
    RemoteRef,
    RemoteSecret,
    SecretMetadata,
)
from rotor.providers.find import compile_name_regexp, has_tags
from rotor.providers.gcp.client import GcpClient
from rotor.providers.gcp.names import secret_path, version_number, version_segment
from rotor.providers.gcp.payload import json_object

log = logging.getLogger("rotor.providers.gcp")

#: ``SecretMetadata.versions`` flags: the state of versions that cannot be read
DISABLED, DESTROYED = "Disabled", "Destroyed"


def read(client: GcpClient, ref: RemoteRef) -> RemoteSecret:
    name = f"{secret_path(client.config.project_id, ref.key)}/versions/{version_segment(ref.version)}"
    response = client.call(
        "AccessSecretVersion", ref.key, lambda: client.api.access_secret_version(name=name, **client.options)
    )
    data = bytes(response.payload.data)
    return RemoteSecret(
        key=ref.key,
        version=version_number(response.name),
        raw=data,
        data=json_object(data),
        expires=secret_expiry(client, ref.key),
    )


def secret_expiry(client: GcpClient, key: str) -> datetime | None:
    """The secret's ``expireTime`` (when Secret Manager deletes the whole secret), or None when it
    has none or it cannot be known. One GetSecret per secret per ``expiry_window`` (the backend's
    share window), whatever the number of reads and versions. It never fails a read: a denied
    GetSecret (a role without ``secretmanager.secrets.get``) leaves the expiry unknown for
    ``expiry_denied_retry``; another failure keeps the last known expiry."""
    name = secret_path(client.config.project_id, key)
    with client.expiry_lock(name):
        known = client.expiries.get(name)
        if known is not None and time.monotonic() < known[0]:
            return known[1]
        try:
            secret = client.call("GetSecret", key, lambda: client.api.get_secret(name=name, **client.options))
        except AccessDenied:
            log.info(
                "GCP Secret Manager '%s': reading its expireTime was denied; status.expiry cannot use it "
                "(grant roles/secretmanager.viewer to know it)",
                key,
                extra={"store": client.config.store_id},
            )
            client.expiries[name] = (time.monotonic() + client.config.expiry_denied_retry, None)
            return None
        except KeyNotFound:
            client.expiries.pop(name, None)
            return None
        except ProviderError:
            return known[1] if known is not None else None
        return remember_expiry(client, name, secret)


def remember_expiry(client: GcpClient, name: str, secret: Secret) -> datetime | None:
    expires = secret.expire_time if "expire_time" in secret else None
    client.expiries[name] = (time.monotonic() + client.config.expiry_window, expires)
    return expires


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
    remember_expiry(client, name, secret)
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

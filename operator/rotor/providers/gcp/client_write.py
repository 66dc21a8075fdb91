"""Writes: a new version (AddSecretVersion; CreateSecret first when the secret is new), with a
check-and-set on the version that was read, and ``rotor rollback`` (the previous version's value
added again as the newest version).

AddSecretVersion takes no etag, so the check-and-set is Rotor's own: the ``latest`` version is
looked up (metadata only) just before writing, and the write is refused if it moved. A writer that
lands between the two is not detected (its version stays, one behind Rotor's).
"""

from __future__ import annotations

from google.cloud.secretmanager_v1 import Replication, Secret, SecretPayload, SecretVersion

from rotor.providers.base import KeyNotFound, RolledBack, WriteConflict, WriteResult
from rotor.providers.gcp.client import GcpClient
from rotor.providers.gcp.client_read import latest_version, versions
from rotor.providers.gcp.names import secret_path, version_number
from rotor.providers.gcp.payload import Value, to_bytes


def _create(client: GcpClient, key: str) -> None:
    secret_id = secret_path(client.config.project_id, key).rsplit("/", 1)[-1]
    parent = secret_path(client.config.project_id, key).rsplit("/secrets/", 1)[0]
    secret = Secret(replication=Replication(automatic=Replication.Automatic()))
    client.call(
        "CreateSecret",
        key,
        lambda: client.api.create_secret(parent=parent, secret_id=secret_id, secret=secret, **client.options),
        write=True,
    )


def add_version(client: GcpClient, key: str, data: bytes) -> str:
    parent = secret_path(client.config.project_id, key)
    payload = SecretPayload(data=data)
    try:
        added = client.call(
            "AddSecretVersion",
            key,
            lambda: client.api.add_secret_version(parent=parent, payload=payload, **client.options),
            write=True,
        )
    except KeyNotFound:
        _create(client, key)
        added = client.call(
            "AddSecretVersion",
            key,
            lambda: client.api.add_secret_version(parent=parent, payload=payload, **client.options),
            write=True,
        )
    return version_number(added.name)


def write(client: GcpClient, key: str, value: Value, cas: str | None) -> WriteResult:
    if cas is not None:
        latest = latest_version(client, key)
        now = version_number(latest.name) if latest is not None else None
        if now != cas:
            raise WriteConflict(
                f"GCP Secret Manager '{key}': the latest version changed since it was read "
                f"(read {cas}, now {now or 'none'})"
            )
    return WriteResult(key=key, version=add_version(client, key, to_bytes(value)))


def rollback(client: GcpClient, key: str) -> RolledBack:
    """The newest version before ``latest`` that is not destroyed is enabled if it was disabled,
    and its value added again as a new version."""
    listed = versions(client, key)
    if not listed:
        raise KeyNotFound(f"GCP Secret Manager '{key}': no such secret to roll back")
    current = version_number(listed[-1].name)
    older = [v for v in listed[:-1] if SecretVersion.State(v.state) != SecretVersion.State.DESTROYED]
    if not older:
        raise KeyNotFound(f"GCP Secret Manager '{key}': no earlier version that is not destroyed")
    previous = older[-1]
    if SecretVersion.State(previous.state) == SecretVersion.State.DISABLED:
        client.call(
            "EnableSecretVersion",
            key,
            lambda: client.api.enable_secret_version(
                request={"name": previous.name, "etag": previous.etag}, **client.options
            ),
            write=True,
        )
    old = client.call(
        "AccessSecretVersion",
        key,
        lambda: client.api.access_secret_version(name=previous.name, **client.options),
    )
    version = add_version(client, key, bytes(old.payload.data))
    return RolledBack(key=key, version=version, before=current, restored=version_number(previous.name))

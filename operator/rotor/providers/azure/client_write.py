"""Writes: a new version (SetSecret), with a check-and-set on the version that was read, and
``rotor rollback`` (the previous version's value set again as a new current version).

Key Vault has no conditional write, so the check-and-set is Rotor's own: it reads the current
version id just before writing and refuses if it moved. A writer that lands between that read
and the write is not detected (Key Vault keeps its version, one behind Rotor's).

After a rotation's grace period, the version it replaced is disabled (``retire_version``: its
attributes PATCHed to ``enabled: false``); a rollback enables it again.

Each version Rotor writes is tagged with the version it replaced (``rotor-previous-version``),
so that a rollback finds the previous value exactly even when versions share a creation second
(Key Vault's timestamps are whole seconds and its version ids are random).
"""

from __future__ import annotations

from rotor.providers.azure.client import AzureClient
from rotor.providers.azure.client_read import current, versions
from rotor.providers.azure.names import secret_name, version_id
from rotor.providers.azure.payload import Value, to_text
from rotor.providers.base import KeyNotFound, RolledBack, WriteConflict, WriteResult

PREVIOUS_TAG = "rotor-previous-version"


def write(client: AzureClient, key: str, value: Value, cas: str | None) -> WriteResult:
    name = secret_name(key)
    text, content_type = to_text(value, key)
    base = current(client, key)
    base_version = base.properties.version if base is not None else None
    if cas is not None and base_version != cas:
        raise WriteConflict(
            f"Azure Key Vault '{key}': the current version changed since it was read "
            f"(read {cas}, now {base_version or 'none'})"
        )
    tags = {PREVIOUS_TAG: base_version} if base_version else None
    written = client.call(
        "SetSecret",
        key,
        lambda: client.secrets.set_secret(name, text, content_type=content_type, tags=tags),
        write=True,
    )
    return WriteResult(key=key, version=written.properties.version)


def rollback(client: AzureClient, key: str) -> RolledBack:
    """The previous version (the one Rotor's tag names, else the newest older one) is enabled if
    it was disabled, and its value set again as a new current version."""
    name = secret_name(key)
    now = current(client, key)
    if now is None:
        raise KeyNotFound(f"Azure Key Vault '{key}': no such secret to roll back")
    cur = str(now.properties.version)
    previous = (now.properties.tags or {}).get(PREVIOUS_TAG)
    listed = versions(client, key)
    by_id = {str(p.version): p for p in listed}
    if previous not in by_id:
        created = by_id[cur].created_on if cur in by_id else None
        older = [
            p
            for p in listed
            if str(p.version) != cur and (created is None or p.created_on is None or p.created_on <= created)
        ]
        if not older:
            raise KeyNotFound(f"Azure Key Vault '{key}': no previous version to roll back to")
        previous = str(older[-1].version)
    if by_id[previous].enabled is False:
        client.call(
            "UpdateSecretProperties",
            key,
            lambda: client.secrets.update_secret_properties(name, previous, enabled=True),
            write=True,
        )
    old = client.call("GetSecret", key, lambda: client.secrets.get_secret(name, previous))
    restored = client.call(
        "SetSecret",
        key,
        lambda: client.secrets.set_secret(
            name, old.value or "", content_type=old.properties.content_type, tags={PREVIOUS_TAG: cur}
        ),
        write=True,
    )
    return RolledBack(key=key, version=restored.properties.version, before=cur, restored=previous)


def retire_version(client: AzureClient, key: str, version: str) -> bool:
    """Disable ``version`` of ``key`` (the one a rotation replaced), unless it is the current one.
    Idempotent: a version already disabled is disabled again, a version or secret gone is done."""
    name, vid = secret_name(key), version_id(version)
    if vid is None:
        return False
    now = current(client, key)
    if now is None:
        return True
    if str(now.properties.version).lower() == vid:
        return False
    try:
        client.call(
            "UpdateSecretProperties",
            key,
            lambda: client.secrets.update_secret_properties(name, vid, enabled=False),
            write=True,
        )
    except KeyNotFound:
        return True
    return True

"""What a ManagedSecret reads (pure): the remote references behind data and dataFrom."""

from __future__ import annotations

from dataclasses import dataclass

from rotor.api.managedsecret import ManagedSecretSpec
from rotor.providers.base import RemoteRef


@dataclass(frozen=True)
class Sources:
    refs: tuple[RemoteRef, ...]  # every (key, version) read by data and dataFrom.extract
    #: (index in dataFrom, path, name regexp, tags as sorted (key, value) pairs; empty: no tag filter)
    finds: tuple[tuple[int, str, str | None, tuple[tuple[str, str], ...]], ...]
    databases: tuple[tuple[str, str], ...]  # (mount, role)

    @property
    def keys(self) -> list[str]:
        return sorted({ref.key for ref in self.refs})


def sources_of(spec: ManagedSecretSpec) -> Sources:
    refs: dict[RemoteRef, None] = {}
    finds: list[tuple[int, str, str | None, tuple[tuple[str, str], ...]]] = []
    databases: list[tuple[str, str]] = []
    for item in spec.data:
        refs[RemoteRef(item.remote_ref.key, item.remote_ref.version)] = None
    for index, source in enumerate(spec.data_from):
        if source.extract is not None:
            refs[RemoteRef(source.extract.key, source.extract.version)] = None
        elif source.find is not None:
            find = source.find
            tags = tuple(sorted((find.tags or {}).items()))
            finds.append((index, find.path, find.name.regexp if find.name else None, tags))
        elif source.vault_database is not None:
            databases.append((source.vault_database.mount, source.vault_database.role))
    return Sources(tuple(refs), tuple(finds), tuple(databases))


@dataclass(frozen=True)
class KeySource:
    """Where one Secret key's value comes from at the source."""

    secret_key: str
    remote_key: str
    property: str | None  # None: the whole remote value (spec.data without a property)
    version: str | None  # a pinned version, or None for the current one
    via: str  # "data" or "dataFrom.extract"


def source_of_key(spec: ManagedSecretSpec, secret_key: str) -> KeySource | None:
    """The one rule from a Secret key to its remote key: its ``spec.data`` item if there is one,
    else the property of that name of the first ``dataFrom.extract``; None when neither makes it."""
    item = next((d for d in spec.data if d.secret_key == secret_key), None)
    if item is not None:
        ref = item.remote_ref
        return KeySource(secret_key, ref.key, ref.property, ref.version, "data")
    extract = next((s.extract for s in spec.data_from if s.extract is not None), None)
    if extract is not None:
        return KeySource(secret_key, extract.key, secret_key, extract.version, "dataFrom.extract")
    return None


def declared_keys(spec: ManagedSecretSpec) -> set[str]:
    """The Secret keys the spec names itself (data items, templates, rotated keys); dataFrom adds
    keys only known from what the source holds. Under ``template.mergePolicy: Replace`` the
    Secret holds the rendered keys only (the rotated keys are among them: the schema says so)."""
    if spec.template is not None and spec.template.replaces:
        return spec.template.rendered_keys
    keys = {item.secret_key for item in spec.data}
    if spec.template is not None:
        keys |= spec.template.rendered_keys
    if spec.rotation is not None:
        keys |= set(spec.rotation.keys)
    return keys

"""What a ManagedSecret reads (pure): the remote references behind data and dataFrom."""

from __future__ import annotations

from dataclasses import dataclass

from rotor.api.managedsecret import ManagedSecretSpec
from rotor.providers.base import RemoteRef


@dataclass(frozen=True)
class Sources:
    refs: tuple[RemoteRef, ...]  # every (key, version) read by data and dataFrom.extract
    finds: tuple[tuple[str, str | None], ...]  # (path, name regexp)
    databases: tuple[tuple[str, str], ...]  # (mount, role)

    @property
    def keys(self) -> list[str]:
        return sorted({ref.key for ref in self.refs})


def sources_of(spec: ManagedSecretSpec) -> Sources:
    refs: dict[RemoteRef, None] = {}
    finds: list[tuple[str, str | None]] = []
    databases: list[tuple[str, str]] = []
    for item in spec.data:
        refs[RemoteRef(item.remote_ref.key, item.remote_ref.version)] = None
    for source in spec.data_from:
        if source.extract is not None:
            refs[RemoteRef(source.extract.key, source.extract.version)] = None
        elif source.find is not None:
            finds.append((source.find.path, source.find.name.regexp if source.find.name else None))
        elif source.vault_database is not None:
            databases.append((source.vault_database.mount, source.vault_database.role))
    return Sources(tuple(refs), tuple(finds), tuple(databases))

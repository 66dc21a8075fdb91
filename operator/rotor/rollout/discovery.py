"""Which workloads consume a Secret, and which of its keys.

A workload consumes a Secret through its pod template, in containers and init containers:
``env[].valueFrom.secretKeyRef`` (one key), ``envFrom[].secretRef`` (every key), ``volumes[].secret``
and projected ``volumes[].projected.sources[].secret`` (the listed ``items``, or every key).
References marked ``optional`` count as well: the workload reads the key whenever it exists.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet")


@dataclass(frozen=True)
class Consumer:
    """A workload that reads the Secret. ``keys`` None means every key (envFrom, a whole volume)."""

    kind: str
    name: str
    keys: frozenset[str] | None

    @property
    def ref(self) -> str:
        return f"{self.kind}/{self.name}"


class Target(Protocol):
    """An Explicit rollout target (``spec.rollout.targets[]``)."""

    @property
    def kind(self) -> str: ...

    @property
    def name(self) -> str: ...


class Ref(NamedTuple):
    """A workload by kind and name; satisfies ``Target``."""

    kind: str
    name: str


class _Keys:
    """Accumulates the keys read; ``every`` wins over any list."""

    def __init__(self) -> None:
        self.used = False
        self.every = False
        self.keys: set[str] = set()

    def add(self, key: str | None) -> None:
        self.used = True
        if key is None:
            self.every = True
        else:
            self.keys.add(key)

    def add_items(self, items: Iterable[Mapping[str, Any]] | None) -> None:
        listed = [str(i["key"]) for i in items or [] if i.get("key")]
        if not listed:
            self.add(None)
        for key in listed:
            self.add(key)

    def result(self) -> frozenset[str] | None:
        return None if self.every else frozenset(self.keys)


def consumer_of(workload: Mapping[str, Any], secret_name: str) -> Consumer | None:
    """The workload as a consumer of ``secret_name``, with the keys its pod template reads; None
    when it does not read the Secret (or is not a workload kind Rotor restarts)."""
    meta = workload.get("metadata") or {}
    if workload.get("kind") not in WORKLOAD_KINDS:
        return None
    pod = ((workload.get("spec") or {}).get("template") or {}).get("spec") or {}
    found = _Keys()
    for container in [*(pod.get("initContainers") or []), *(pod.get("containers") or [])]:
        for env in container.get("env") or []:
            ref = (env.get("valueFrom") or {}).get("secretKeyRef") or {}
            if ref.get("name") == secret_name and ref.get("key"):
                found.add(str(ref["key"]))
        for source in container.get("envFrom") or []:
            if (source.get("secretRef") or {}).get("name") == secret_name:
                found.add(None)
    for volume in pod.get("volumes") or []:
        secret = volume.get("secret") or {}
        if secret.get("secretName") == secret_name:
            found.add_items(secret.get("items"))
        for source in (volume.get("projected") or {}).get("sources") or []:
            projected = (source or {}).get("secret") or {}
            if projected.get("name") == secret_name:
                found.add_items(projected.get("items"))
    if not found.used:
        return None
    return Consumer(str(workload["kind"]), str(meta.get("name")), found.result())


def consumers(workloads: Iterable[Mapping[str, Any]], secret_name: str) -> list[Consumer]:
    """The Auto strategy: every Deployment, StatefulSet and DaemonSet that reads ``secret_name``,
    in a stable order (kind, then name). Workloads being deleted are left out."""
    out = []
    for workload in workloads:
        if (workload.get("metadata") or {}).get("deletionTimestamp"):
            continue
        consumer = consumer_of(workload, secret_name)
        if consumer is not None:
            out.append(consumer)
    return sorted(out, key=lambda c: (WORKLOAD_KINDS.index(c.kind), c.name))


def explicit(targets: Iterable[Target], workloads: Iterable[Mapping[str, Any]]) -> list[Consumer]:
    """The Explicit strategy: the listed targets that exist, in the order listed. A listed workload
    counts as reading every key: the person who listed it knows it uses the Secret, perhaps in a way
    the pod template does not show (the API, a sidecar, a CSI driver)."""
    present = _present(workloads)
    return [Consumer(t.kind, t.name, None) for t in targets if (t.kind, t.name) in present]


def missing(targets: Iterable[Target], workloads: Iterable[Mapping[str, Any]]) -> list[str]:
    """Explicit targets that do not exist, as ``Kind/name``."""
    present = _present(workloads)
    return [f"{t.kind}/{t.name}" for t in targets if (t.kind, t.name) not in present]


def _present(workloads: Iterable[Mapping[str, Any]]) -> set[tuple[str, str]]:
    return {
        (str(w.get("kind")), str((w.get("metadata") or {}).get("name")))
        for w in workloads
        if not (w.get("metadata") or {}).get("deletionTimestamp")
    }

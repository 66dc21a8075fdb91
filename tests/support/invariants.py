"""The promises of DESIGN §2 when something besides Rotor touches a Secret or its source, as checks
over every version of the Secret that was observed (a watch records them all):

- no managed key is ever empty (a Secret that does not exist is no empty key);
- ``<key>_previous`` is only ever the value the rotation replaced: beside the value of rotation i,
  exactly the source's value before rotation i;
- once the conflict clears, the Secret equals the source's current value;
- the source has exactly one new version per rotation request.

Messages name keys, positions and resourceVersions, never a value. Used by
tests/integration/test_conflicting_writers.py and bench/soak.py.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kubernetes_asyncio import client, watch
from kubernetes_asyncio.client.exceptions import ApiException

SUFFIX = "_previous"
MANAGED_BY = "rotor.dev/managed-by"
MERGE = "application/merge-patch+json"


@dataclass(frozen=True)
class SecretVersion:
    event: str  # ADDED, MODIFIED, DELETED
    resource_version: str
    type: str
    data: dict[str, bytes]


def decode(data: Mapping[str, str] | None) -> dict[str, bytes]:
    return {k: base64.b64decode(v) for k, v in (data or {}).items()}


def version_violations(
    seen: SecretVersion,
    *,
    managed: Iterable[str],
    rotated: str,
    chain: Sequence[bytes],
    suffix: str = SUFFIX,
) -> list[str]:
    """What is wrong with one observed version of a Secret. ``chain`` is the rotated key's values
    at the source, oldest first: the value before the first rotation, then one per rotation."""
    if seen.event == "DELETED":
        return []
    where = f"Secret version {seen.resource_version}"
    out = [f"{where}: key '{k}' is missing or empty" for k in managed if not seen.data.get(k)]
    value, previous = seen.data.get(rotated), seen.data.get(f"{rotated}{suffix}")
    position = chain.index(value) if value in chain else None
    if previous is not None:
        if position is None or position == 0:
            out.append(f"{where}: '{rotated}{suffix}' is set beside a '{rotated}' no rotation wrote")
        elif previous != chain[position - 1]:
            which = chain.index(previous) if previous in chain else "none"
            out.append(
                f"{where}: '{rotated}{suffix}' is not the value rotation {position} replaced "
                f"(source position {which} instead of {position - 1})"
            )
    return out


def history_violations(
    history: Iterable[SecretVersion],
    *,
    managed: Iterable[str],
    rotated: str,
    chain: Sequence[bytes],
    ignore: Iterable[str] = (),
    suffix: str = SUFFIX,
) -> list[str]:
    """``version_violations`` over every observed version but those the test wrote itself
    (``ignore``: their resourceVersions)."""
    skip = set(ignore)
    keys = list(managed)
    out: list[str] = []
    for seen in history:
        if seen.resource_version not in skip:
            out += version_violations(seen, managed=keys, rotated=rotated, chain=chain, suffix=suffix)
    return out


def timeline(
    history: Iterable[SecretVersion], *, rotated: str, chain: Sequence[bytes], suffix: str = SUFFIX
) -> list[str]:
    """Each observed version as positions in ``chain`` (never a value): resourceVersion, event,
    type, the rotated key's position and its previous key's, for reading a violation's context."""

    def pos(value: bytes | None) -> str:
        if value is None:
            return "-"
        return str(chain.index(value)) if value in chain else "?"

    return [
        f"{seen.resource_version} {seen.event} {seen.type or '-'} {rotated}={pos(seen.data.get(rotated))} "
        f"{rotated}{suffix}={pos(seen.data.get(f'{rotated}{suffix}'))}"
        for seen in history
    ]


def final_violations(
    data: Mapping[str, bytes] | None,
    *,
    expected: Mapping[str, bytes],
    rotated: str,
    chain: Sequence[bytes],
    requests: int,
    in_grace: bool = True,
    suffix: str = SUFFIX,
) -> list[str]:
    """The settled state: the Secret holds the source's current values (``expected``), the source
    got exactly ``requests`` new versions (``chain`` has one more entry), and during the grace
    period ``<rotated><suffix>`` is the value the last rotation replaced."""
    out: list[str] = []
    if len(chain) != requests + 1:
        out.append(f"the source has {len(chain) - 1} new versions for {requests} rotation requests")
    if data is None:
        return [*out, "the Secret does not exist"]
    out += [f"key '{k}' differs from the source" for k, v in expected.items() if data.get(k) != v]
    if requests and in_grace and len(chain) >= 2 and data.get(f"{rotated}{suffix}") != chain[-2]:
        out.append(f"'{rotated}{suffix}' is not the value the last rotation replaced")
    return out


@dataclass
class SecretHistory:
    """Every version of the Secrets ``names`` in ``namespace`` from a watch (started before the
    scenario, stopped after)."""

    api: client.ApiClient
    namespace: str
    names: Sequence[str] | None = None  # None: every Secret of the namespace
    seen: dict[str, list[SecretVersion]] = field(default_factory=dict)

    async def _watch(self, stop: asyncio.Event) -> None:
        core = client.CoreV1Api(self.api)
        version = ""
        while not stop.is_set():
            w = watch.Watch()
            try:
                async for event in w.stream(
                    core.list_namespaced_secret,
                    self.namespace,
                    resource_version=version or None,
                    timeout_seconds=10,
                ):
                    obj = event["raw_object"]
                    meta = obj.get("metadata") or {}
                    version = meta.get("resourceVersion") or version
                    if self.names is None or meta.get("name") in self.names:
                        self.seen.setdefault(meta["name"], []).append(
                            SecretVersion(
                                event["type"], version, obj.get("type") or "", decode(obj.get("data"))
                            )
                        )
                    if stop.is_set():
                        break
            except ApiException as exc:
                if exc.status == 410:  # the version is gone: list again from now
                    version = ""
                    continue
                raise
            finally:
                await w.close()

    @contextlib.asynccontextmanager
    async def recording(self) -> AsyncIterator[SecretHistory]:
        stop = asyncio.Event()
        task = asyncio.create_task(self._watch(stop))
        await asyncio.sleep(0.5)  # the watch is open before the scenario starts
        try:
            yield self
        finally:
            await asyncio.sleep(1.0)  # the last versions arrive
            stop.set()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def of(self, name: str) -> list[SecretVersion]:
        return list(self.seen.get(name, []))


def kv2_chain(vault: Any, path: str, first: int, mount: str = "secret", key: str = "password") -> list[bytes]:
    """``key`` at each version of a Vault KV v2 path from ``first`` to the current one."""
    meta = vault.secrets.kv.v2.read_secret_metadata(path=path, mount_point=mount)
    current = int(meta["data"]["current_version"])
    out = []
    for number in range(first, current + 1):
        resp = vault.secrets.kv.v2.read_secret_version(
            path=path, version=number, mount_point=mount, raise_on_deleted_version=True
        )
        out.append(str(resp["data"]["data"].get(key, "")).encode())
    return out


def _rv(obj: Any) -> str:
    meta = obj.metadata if hasattr(obj, "metadata") else None
    return str(meta.resource_version if meta is not None else obj["metadata"]["resourceVersion"])


async def touch_secret(api: client.ApiClient, ns: str, name: str, kind: str, attempts: int = 5) -> list[str]:
    """What a person does to a managed Secret: ``label`` removes Rotor's label, ``edit`` changes
    the rotated value and its previous one, ``delete``, ``retype`` (re-created with another type).
    Returns the resourceVersions written (to leave out of the checks)."""
    core = client.CoreV1Api(api)
    if kind == "label":
        obj = await core.patch_namespaced_secret(
            name, ns, {"metadata": {"labels": {MANAGED_BY: None}}}, _content_type=MERGE
        )
        return [_rv(obj)]
    if kind == "edit":
        edited = {
            "password": "aGFuZC1lZGl0ZWQtdmFsdWU=",  # "hand-edited-value"
            "password_previous": "aGFuZC1lZGl0ZWQtcHJldmlvdXM=",  # "hand-edited-previous"
        }
        obj = await core.patch_namespaced_secret(name, ns, {"data": edited}, _content_type=MERGE)
        return [_rv(obj)]
    if kind == "delete":
        await core.delete_namespaced_secret(name, ns)
        return []
    if kind == "retype":
        # as `kubectl get secret -o yaml | sed s/type:.../ | kubectl replace --force` does: the
        # same metadata and data, another type (a Secret's type cannot be changed in place)
        old = api.sanitize_for_serialization(await core.read_namespaced_secret(name, ns))
        await core.delete_namespaced_secret(name, ns)
        meta = old["metadata"]
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": name,
                "labels": meta.get("labels") or {},
                "annotations": meta.get("annotations") or {},
                "ownerReferences": meta.get("ownerReferences") or [],
            },
            "type": "rotor.dev/retyped",
            "data": old.get("data") or {},
        }
        try:
            return [_rv(await core.create_namespaced_secret(ns, body))]
        except ApiException as exc:
            if exc.status != 409 or attempts <= 1:
                raise
        # Rotor re-created it in between: re-type that one
        return await touch_secret(api, ns, name, kind, attempts - 1)
    raise ValueError(kind)


async def restore_label(api: client.ApiClient, ns: str, name: str, value: str | None = None) -> list[str]:
    """Put Rotor's label back (its value is the ManagedSecret's name)."""
    obj = await client.CoreV1Api(api).patch_namespaced_secret(
        name, ns, {"metadata": {"labels": {MANAGED_BY: value or name}}}, _content_type=MERGE
    )
    return [_rv(obj)]

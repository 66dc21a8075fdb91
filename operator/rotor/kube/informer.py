"""A lean informer: list, then watch, one kind of object, and hand each event to a callback.

Rotor watches ManagedSecrets and the Secrets it writes itself instead of through kopf. kopf's
per-event machinery (a worker per object, a deep copy and a diff of every body) cost about 4 ms
per watch event, which at 5,000 objects was most of a cold start (see docs/performance.md).
This does the minimum client-go's reflector does:

- a paginated list, then a watch from the list's resourceVersion, with bookmarks;
- on 410 Gone (the resourceVersion is too old), list again, and report the objects that vanished
  meanwhile as DELETED;
- on any other failure, retry with jittered exponential back-off (1 s to 30 s);
- bodies are stored without ``managedFields`` (most of an object's bytes, and never read).

Namespaces follow kopf's patterns (``--namespace``): plain names get one watch each (so a
namespaced Role is enough); globs and exclusions watch the cluster and filter here.
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import logging
import random
from collections.abc import Callable
from typing import Any

from rotor.api.names import API_VERSION
from rotor.kube.gateway import KubeError, KubeGateway

log = logging.getLogger("rotor.informer")

ObjKey = tuple[str, str]
EventCallback = Callable[[dict[str, Any], "str | None"], None]
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
#: kinds of the core API group (``v1``) an informer can watch
CORE_KINDS = frozenset({"Secret", "ConfigMap", "Namespace"})


class _Gone(Exception):
    """The watch's resourceVersion has been compacted away: list again."""


def match_namespace(name: str, pattern: str) -> bool:
    """kopf's namespace pattern, exactly: comma-separated globs; ``!glob`` excludes; a leading
    exclusion implies a catch-all first; a later inclusion only re-admits a name the first glob
    matched and an exclusion then removed."""
    globs = [g.strip() for g in pattern.split(",")]
    if not globs or globs[0].startswith("!"):
        globs.insert(0, "*")
    matches = first = fnmatch.fnmatch(name, globs[0])
    for glob in globs[1:]:
        if glob.startswith("!"):
            matches = matches and not fnmatch.fnmatch(name, glob.lstrip("!"))
        else:
            matches = matches or (first and fnmatch.fnmatch(name, glob))
    return matches


def plain_namespaces(patterns: list[str]) -> list[str] | None:
    """The namespaces to watch one by one (every pattern is one plain name), or None when a
    watch over the cluster, filtered here, is needed."""
    if not patterns:
        return None
    names = [p.strip() for p in patterns]
    if any(c in name for name in names for c in "*?![],"):
        return None
    return sorted(set(names))


def slim(body: dict[str, Any]) -> dict[str, Any]:
    meta = body.get("metadata") or {}
    meta.pop("managedFields", None)
    annotations = meta.get("annotations")
    if annotations and LAST_APPLIED in annotations and body.get("kind") != "Secret":
        del annotations[LAST_APPLIED]  # a copy of the spec, kept by kubectl apply
    return body


class Informer:
    def __init__(
        self,
        gateway: KubeGateway,
        kind: str,
        on_event: Callable[[dict[str, Any], str | None], None],
        *,
        namespaces: list[str] | None = None,
        label_selector: str | None = None,
        page_size: int = 500,
        watch_timeout: tuple[int, int] = (240, 360),
    ) -> None:
        self.gateway = gateway
        self.kind = kind
        self.on_event = on_event
        self.patterns = list(namespaces or [])
        self.label_selector = label_selector
        self.page_size = page_size
        self.watch_timeout = watch_timeout
        self.synced = asyncio.Event()
        self._pending: set[str | None] = set()
        #: events delivered, by type (for tests and benchmarks)
        self.delivered: dict[str, int] = {}
        self.relists = 0
        self.sleep = asyncio.sleep  # replaceable in tests
        self.api_version = "v1" if kind in CORE_KINDS else API_VERSION

    def accepts(self, namespace: str) -> bool:
        return not self.patterns or any(match_namespace(namespace, p) for p in self.patterns)

    async def run(self) -> None:
        plain = plain_namespaces(self.patterns)
        streams: list[str | None] = list(plain) if plain else [None]
        self._pending = set(streams)
        await asyncio.gather(*(self._stream(ns) for ns in streams))

    # ------------------------------------------------------------------ one stream
    async def _stream(self, namespace: str | None) -> None:
        known: dict[ObjKey, dict[str, Any]] = {}  # key -> last metadata (for relist deletions)
        backoff = 1.0
        where = namespace or "all namespaces"
        while True:
            try:
                version = await self._relist(namespace, known)
                self._pending.discard(namespace)
                if not self._pending:
                    self.synced.set()
                backoff = 1.0
                while True:
                    version = await self._watch(namespace, version, known)
            except _Gone:
                log.info("%s watch in %s expired; listing again", self.kind, where)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # an unreachable or refusing apiserver: retry, never give up
                delay = backoff * (0.5 + random.random())
                log.warning(
                    "%s watch in %s failed (%s); retrying in %.1fs",
                    self.kind,
                    where,
                    exc if isinstance(exc, KubeError) else type(exc).__name__,
                    delay,
                )
                await self.sleep(delay)
                backoff = min(backoff * 2, 30.0)

    async def _relist(self, namespace: str | None, known: dict[ObjKey, dict[str, Any]]) -> str:
        self.relists += 1
        seen: set[ObjKey] = set()
        token: str | None = None
        version = ""
        while True:
            page = await self.gateway.list_page(
                self.kind,
                namespace,
                label_selector=self.label_selector,
                limit=self.page_size,
                continue_=token,
            )
            meta = page.get("metadata") or {}
            version = str(meta.get("resourceVersion") or version)
            for item in page.get("items") or []:  # list items carry no kind or apiVersion
                item.setdefault("kind", self.kind)
                item.setdefault("apiVersion", self.api_version)
                key = self._key(item)
                if key is None:
                    continue
                seen.add(key)
                known[key] = item["metadata"]
                self._deliver(slim(item), None)
            token = meta.get("continue") or None
            if not token:
                break
            await asyncio.sleep(0)  # let workers run between pages
        for key in [k for k in known if k not in seen]:
            self._deliver({"kind": self.kind, "metadata": known.pop(key)}, "DELETED")
        return version

    async def _watch(self, namespace: str | None, version: str, known: dict[ObjKey, dict[str, Any]]) -> str:
        try:
            resp = await self.gateway.open_watch(
                self.kind,
                namespace,
                resource_version=version,
                label_selector=self.label_selector,
                server_timeout=random.randint(*self.watch_timeout),
            )
        except KubeError as err:
            if err.status == 410:
                raise _Gone() from None
            raise
        buffer = bytearray()
        try:
            async for chunk in resp.content.iter_any():
                buffer.extend(chunk)
                start = 0
                while (end := buffer.find(b"\n", start)) >= 0:
                    line = bytes(buffer[start:end])
                    start = end + 1
                    if line.strip():
                        version = self._handle(json.loads(line), version, known)
                del buffer[:start]
        finally:
            resp.release()
        return version

    def _handle(self, event: dict[str, Any], version: str, known: dict[ObjKey, dict[str, Any]]) -> str:
        kind = event.get("type")
        obj = event.get("object") or {}
        if kind == "ERROR":
            code = int(obj.get("code") or 0)
            if code == 410:
                raise _Gone()
            raise KubeError(code, str(obj.get("message") or obj.get("reason") or "watch error")[:300])
        meta = obj.get("metadata") or {}
        version = str(meta.get("resourceVersion") or version)
        if kind == "BOOKMARK":
            return version
        obj.setdefault("kind", self.kind)
        key = self._key(obj)
        if key is None:
            return version
        if kind == "DELETED":
            known.pop(key, None)
        else:
            known[key] = meta
        self._deliver(slim(obj), kind)
        return version

    def _key(self, obj: dict[str, Any]) -> ObjKey | None:
        meta = obj.get("metadata") or {}
        namespace, name = meta.get("namespace") or "", meta.get("name") or ""
        if not name or not self.accepts(namespace):
            return None
        return (namespace, name)

    def _deliver(self, body: dict[str, Any], event_type: str | None) -> None:
        self.delivered[event_type or "LISTED"] = self.delivered.get(event_type or "LISTED", 0) + 1
        try:
            self.on_event(body, event_type)
        except Exception:  # one bad object must not stop the stream
            log.exception("handling a %s event failed", self.kind)

"""The ClusterManagedSecret controller: informers on ClusterManagedSecrets and Namespaces, the
generated ManagedSecrets' events (from the controller's own ManagedSecret informer), and one
worker that reconciles each dirty ClusterManagedSecret, coalescing bursts of events.

Only the leader reconciles; every replica keeps the informers warm.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from rotor.api.names import CLUSTER_MANAGED_BY_LABEL
from rotor.clock import Clock
from rotor.kube.gateway import KubeError, KubeGateway, NotLeader
from rotor.kube.informer import Informer
from rotor.observability.metrics import FANOUT_PASSES
from rotor.services.fanout import FanoutService
from rotor.services.ports import ObjectIndex
from rotor.sync.fanout import NamespaceView

log = logging.getLogger("rotor.fanout")

#: events arriving within this long of each other are one reconcile
COALESCE = 0.5


class FanoutController:
    def __init__(
        self,
        gateway: KubeGateway,
        clock: Clock,
        index: ObjectIndex,
        *,
        serves: Callable[[str], bool],
        leading: Callable[[], bool],
    ) -> None:
        self.service = FanoutService(gateway, clock, index)
        self.serves = serves  # the operator's --namespace patterns
        self.leading = leading
        self.cms: dict[str, dict[str, Any]] = {}
        self.namespaces: dict[str, NamespaceView] = {}
        self.cms_informer = Informer(gateway, "ClusterManagedSecret", self.observe_cms)
        self.namespace_informer = Informer(gateway, "Namespace", self.observe_namespace)
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()
        self._background: set[asyncio.Task[None]] = set()
        #: reconciles done (for tests and benchmarks)
        self.passes = 0

    @property
    def informers(self) -> list[Informer]:
        return [self.cms_informer, self.namespace_informer]

    # ------------------------------------------------------------------ events
    def mark(self, name: str) -> None:
        if name in self.cms:
            self._dirty.add(name)
            self._wake.set()

    def mark_all(self) -> None:
        for name in self.cms:
            self._dirty.add(name)
        if self._dirty:
            self._wake.set()

    def observe_cms(self, body: dict[str, Any], event_type: str | None) -> None:
        name = body["metadata"]["name"]
        if event_type == "DELETED":
            gone = self.cms.pop(name, None) or body
            self._dirty.discard(name)
            if self.leading():
                self._spawn(self._cleanup(gone))
            return
        known = self.cms.get(name)
        self.cms[name] = body
        generation = body["metadata"].get("generation")
        spec_changed = known is None or known["metadata"].get("generation") != generation
        if spec_changed or (body.get("status") or {}).get("observedGeneration") != generation:
            self.mark(name)

    def observe_namespace(self, body: dict[str, Any], event_type: str | None) -> None:
        meta = body["metadata"]
        name = meta["name"]
        if not self.serves(name):
            return
        known = self.namespaces.get(name)
        if event_type == "DELETED":
            self.namespaces.pop(name, None)
        else:
            view = NamespaceView(
                name=name,
                labels=dict(meta.get("labels") or {}),
                terminating=bool(meta.get("deletionTimestamp"))
                or (body.get("status") or {}).get("phase") == "Terminating",
            )
            if view == known:
                return
            self.namespaces[name] = view
        self.mark_all()

    def observe_managed(self, body: dict[str, Any], event_type: str | None) -> None:
        """Every ManagedSecret event: a generated one's status moves its CMS's counts; a deleted
        one may free a name a CMS wants (NameConflict)."""
        meta = body.get("metadata") or {}
        owner = (meta.get("labels") or {}).get(CLUSTER_MANAGED_BY_LABEL)
        if event_type == "DELETED":
            self.service.forget((meta.get("namespace") or "", meta.get("name") or ""))
            for name, cms in self.cms.items():
                if ((cms.get("spec") or {}).get("managedSecretName") or name) == meta.get("name"):
                    self.mark(name)
        if owner:
            self.mark(owner)

    # ------------------------------------------------------------------ running
    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _cleanup(self, cms: dict[str, Any]) -> None:
        try:
            await self.service.cleanup(cms)
        except NotLeader:
            return
        except Exception:
            log.exception(
                "removing the ManagedSecrets of ClusterManagedSecret %s failed", cms["metadata"]["name"]
            )

    def _retry(self, name: str, delay: float) -> None:
        asyncio.get_running_loop().call_later(delay, self.mark, name)

    async def run(self, listed: asyncio.Event) -> None:
        """The informers, then the worker once everything it compares against has been listed
        (``listed``: the ManagedSecret informer; before it, every copy would look missing)."""
        streams = [asyncio.create_task(i.run()) for i in self.informers]
        try:
            await asyncio.gather(listed.wait(), *(i.synced.wait() for i in self.informers))
            self.mark_all()
            while True:
                await self._wake.wait()
                await asyncio.sleep(COALESCE)
                self._wake.clear()
                if not self.leading():
                    self._dirty.clear()
                    continue
                batch, self._dirty = self._dirty, set()
                for name in sorted(batch):
                    await self._reconcile(name)
        finally:
            for task in streams:
                task.cancel()
            await asyncio.gather(*streams, return_exceptions=True)

    async def _reconcile(self, name: str) -> None:
        cms = self.cms.get(name)
        if cms is None:
            return
        try:
            outcome = await self.service.reconcile(cms, self.namespaces)
        except NotLeader:
            return
        except asyncio.CancelledError:
            raise
        except KubeError as exc:
            log.warning("reconciling ClusterManagedSecret %s failed (%s); retrying in 10s", name, exc)
            self._retry(name, 10.0)
            return
        except Exception:
            log.exception("reconciling ClusterManagedSecret %s failed; retrying in 30s", name)
            self._retry(name, 30.0)
            return
        self.passes += 1
        FANOUT_PASSES.labels(
            clustermanagedsecret=name, result="wrote" if outcome.writes else "unchanged"
        ).inc()
        if outcome.retry_after is not None:
            self._retry(name, outcome.retry_after)

"""The PushSecret controller: its own informers (PushSecrets, and the Secrets they push from), its
own small work queue and workers, beside the ManagedSecret controller, sharing its store service
and its leadership.

The Secret informer watches every Secret (a source Secret carries no Rotor label) but keeps only
the Secrets some PushSecret names; a change of one requeues its PushSecrets at once. A Secret
not kept yet (named by a PushSecret that arrived after it) is read once from the apiserver.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, cast

from rotor.clock import Clock
from rotor.controller.index import older
from rotor.controller.queue import WorkQueue
from rotor.kube.gateway import KubeGateway, NotLeader
from rotor.kube.informer import Informer
from rotor.services.push import PushService
from rotor.services.stores import StoreService

log = logging.getLogger("rotor.controller.push")

ObjKey = tuple[str, str]
#: a reconcile that failed unexpectedly (a bug, or the apiserver away) is tried again this much later
UNEXPECTED_RETRY = 30.0


def source_of(body: dict[str, Any]) -> ObjKey | None:
    """The (namespace, name) of the Secret a PushSecret pushes from."""
    meta = body.get("metadata") or {}
    name = (((body.get("spec") or {}).get("selector") or {}).get("secret") or {}).get("name")
    if not name or not meta.get("namespace"):
        return None
    return (meta["namespace"], str(name))


class PushController:
    def __init__(
        self,
        gateway: KubeGateway,
        clock: Clock,
        stores: StoreService,
        *,
        hash_key: bytes,
        namespaces: list[str],
        leading: Callable[[], bool],
        concurrency: int = 2,
    ) -> None:
        self.gateway = gateway
        self.clock = clock
        self.leading = leading
        self.concurrency = concurrency
        self.queue = WorkQueue()
        self.bodies: dict[ObjKey, dict[str, Any]] = {}
        #: source Secret -> the PushSecrets that name it
        self.users: dict[ObjKey, set[ObjKey]] = {}
        #: the source Secrets, as last seen (only those some PushSecret names)
        self.secrets: dict[ObjKey, dict[str, Any]] = {}
        self.service = PushService(gateway, stores, clock, hash_key=hash_key, secret=self.secret)
        self.informer = Informer(gateway, "PushSecret", self.observe, namespaces=namespaces)
        # Source Secrets carry no Rotor label, so this watch lists every Secret it may see. It
        # starts with the first PushSecret: a cluster without one pays nothing for it (until it
        # has listed, a push reads its Secret with a GET).
        self.secret_informer = Informer(gateway, "Secret", self.observe_secret, namespaces=namespaces)
        self._secrets_wanted = asyncio.Event()
        self._lead = asyncio.Event()
        if leading():
            self._lead.set()

    @property
    def informers(self) -> list[Informer]:
        """The watches readiness waits for: the Secret watch only once it has listed (it starts
        late, with the first PushSecret, and is not needed to serve one)."""
        if self.secret_informer.synced.is_set():
            return [self.secret_informer, self.informer]
        return [self.informer]

    @property
    def watching_secrets(self) -> bool:
        return self._secrets_wanted.is_set()

    async def _run_secret_watch(self) -> None:
        await self._secrets_wanted.wait()
        await self.secret_informer.run()

    # ------------------------------------------------------------------ events
    def observe(self, body: dict[str, Any], event_type: str | None) -> None:
        meta = body["metadata"]
        key: ObjKey = (meta["namespace"], meta["name"])
        previous = self.bodies.get(key)
        if previous is not None:
            old_source = source_of(previous)
            if old_source is not None:
                self.users.get(old_source, set()).discard(key)
        if event_type == "DELETED":
            self.bodies.pop(key, None)
            self.queue.forget(key)
            return
        if previous is not None and older(body, previous):
            return
        self.bodies[key] = body
        source = source_of(body)
        if source is not None:
            self.users.setdefault(source, set()).add(key)
            self._secrets_wanted.set()
        if self.leading() and self._wanted(body, previous):
            self.queue.add(key, urgent=True)

    @staticmethod
    def _wanted(body: dict[str, Any], previous: dict[str, Any] | None) -> bool:
        """New to this replica, a spec change, or a deletion: reconcile now. A status echo (or
        metadata noise) is not."""
        meta = body["metadata"]
        if previous is None or meta.get("deletionTimestamp"):
            return True
        return (body.get("status") or {}).get("observedGeneration") != meta.get("generation")

    def observe_secret(self, body: dict[str, Any], event_type: str | None) -> None:
        meta = body["metadata"]
        key: ObjKey = (meta["namespace"], meta["name"])
        users = self.users.get(key)
        if not users:
            self.secrets.pop(key, None)
            return
        if event_type == "DELETED":
            self.secrets.pop(key, None)
        else:
            known = self.secrets.get(key)
            if known is not None and (known.get("metadata") or {}).get("resourceVersion") == meta.get(
                "resourceVersion"
            ):
                return
            self.secrets[key] = body
        if self.leading():
            for user in list(users):
                self.queue.add(user, urgent=True)

    async def secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        known = self.secrets.get((namespace, name))
        if known is not None:
            return known
        found = await self.gateway.get_secret(namespace, name)
        if found is not None and self.users.get((namespace, name)):
            self.secrets[(namespace, name)] = found
        return found

    # ------------------------------------------------------------------ leadership
    def set_leading(self, leading: bool) -> None:
        self.queue.clear()
        if not leading:
            self._lead.clear()
            return
        for key in list(self.bodies):
            self.queue.add(key, urgent=True)
        self._lead.set()

    # ------------------------------------------------------------------ running
    def start(self) -> list[asyncio.Task[None]]:
        tasks = [
            asyncio.create_task(self.queue.run_timer(self.clock.timestamp)),
            asyncio.create_task(self._run_secret_watch()),
            asyncio.create_task(self.informer.run()),
        ]
        tasks.extend(asyncio.create_task(self._worker()) for _ in range(self.concurrency))
        return tasks

    async def _worker(self) -> None:
        while True:
            await self._lead.wait()
            key = cast(ObjKey, await self.queue.get())
            try:
                body = self.bodies.get(key)
                if body is None or not self.leading():
                    continue
                try:
                    when = await self.service.reconcile(body)
                except asyncio.CancelledError:
                    raise
                except NotLeader:
                    continue
                except Exception:
                    log.exception("unexpected error pushing %s", "/".join(key))
                    when = self.clock.timestamp() + UNEXPECTED_RETRY
                if key in self.bodies:
                    self.queue.schedule(key, when)
            finally:
                self.queue.done(key)

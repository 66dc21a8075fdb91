"""SecretStore and ClusterSecretStore: build one cached backend per store, validate it by really
authenticating, re-validate periodically, report status, and enforce tenancy."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from rotor.api.names import REVALIDATE_ANNOTATION
from rotor.api.registry import describe_errors
from rotor.api.secretstore import ClusterSecretStoreSpec, SecretStoreSpec
from rotor.clock import Clock, format_time
from rotor.conditions import readiness_conditions
from rotor.kube.gateway import KubeError, KubeGateway
from rotor.observability.metrics import StoreSample
from rotor.providers.base import Capabilities, InvalidConfig, ProviderError, StoreAccess
from rotor.providers.registry import builder
from rotor.services.backend import Backend
from rotor.tenancy import key_allowed, key_problem, namespace_allowed

log = logging.getLogger("rotor.stores")

StoreKey = tuple[str, str, str]  # (kind, namespace or "", name)


class StoreProblem(Exception):
    """Why a ManagedSecret cannot use a store: a Ready reason and a message for people."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass
class StoreHandle:
    key: StoreKey
    generation: int
    fingerprint: str
    spec: SecretStoreSpec | ClusterSecretStoreSpec
    backend: Backend | None = None
    ready: bool = False
    reason: str = "Pending"
    message: str = ""
    capabilities: Capabilities | None = None
    validated_at: float = 0.0
    #: validated at least once, by this handle or the one it replaced
    seen: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def id(self) -> str:
        kind, ns, name = self.key
        return f"{kind}/{ns}/{name}" if ns else f"{kind}/{name}"

    @property
    def provider_kind(self) -> str:
        return self.spec.provider.kind


class StoreService:
    def __init__(self, gateway: KubeGateway, clock: Clock, *, revalidate_every: float = 300.0) -> None:
        self.gateway = gateway
        self.clock = clock
        self.revalidate_every = revalidate_every
        #: a store that failed validation is tried again this soon when a ManagedSecret needs it
        self.retry_not_ready = 5.0
        self.bodies: dict[StoreKey, dict[str, Any]] = {}
        self.handles: dict[StoreKey, StoreHandle] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self.on_ready_change: list[Any] = []  # callbacks(key) when readiness changes
        #: the rotor.dev/revalidate value last seen per store, and stores asked to validate now
        self._revalidate_seen: dict[StoreKey, str | None] = {}
        self._revalidate_pending: set[StoreKey] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ index
    def observe(self, kind: str, body: dict[str, Any]) -> StoreKey:
        """Index a store's latest body. A new value of the ``rotor.dev/revalidate`` annotation asks
        for validation now: it is started here when this process already serves the store (it
        has a handle), else the next ``ensure`` validates anyway."""
        meta = body["metadata"]
        key = (kind, meta.get("namespace") or "", meta["name"])
        self.bodies[key] = body
        requested = (meta.get("annotations") or {}).get(REVALIDATE_ANNOTATION)
        first = key not in self._revalidate_seen
        seen = self._revalidate_seen.get(key)
        self._revalidate_seen[key] = requested
        if requested and not first and requested != seen:
            self._revalidate_pending.add(key)
            if key in self.handles:
                self._start_revalidation(key)
        return key

    def _start_revalidation(self, key: StoreKey) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop (a CLI): the next ensure() revalidates
        task = loop.create_task(self._revalidate_requested(key))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _revalidate_requested(self, key: StoreKey) -> None:
        try:
            await self.ensure(key)
        except StoreProblem:
            pass
        except Exception:  # reported like revalidate_all: one store must not stop the others
            log.exception("re-validating store %s on request failed", key)

    async def forget(self, key: StoreKey) -> None:
        self.bodies.pop(key, None)
        self._revalidate_seen.pop(key, None)
        self._revalidate_pending.discard(key)
        handle = self.handles.pop(key, None)
        if handle and handle.backend:
            await handle.backend.close()

    def samples(self) -> Iterable[StoreSample]:
        for (kind, ns, name), handle in list(self.handles.items()):
            yield StoreSample(ns, name, kind, handle.ready)

    # ------------------------------------------------------------------ building
    async def _secret_value(self, namespace: str, name: str, key: str) -> str:
        try:
            secret = await self.gateway.get_secret(namespace, name)
        except KubeError as exc:
            raise InvalidConfig(f"cannot read Secret {namespace}/{name}: {exc}") from None
        if secret is None:
            raise InvalidConfig(f"Secret {namespace}/{name} referenced by the store does not exist")
        raw = (secret.get("data") or {}).get(key)
        if raw is None:
            raise InvalidConfig(f"Secret {namespace}/{name} has no key '{key}'")
        return base64.b64decode(raw).decode().strip()

    def _access(self, handle: StoreHandle, digest: Any) -> StoreAccess:
        """The port a provider builds its config through: Secret keys (each value read is added
        to the credentials' fingerprint) and ServiceAccount tokens."""
        loop = asyncio.get_running_loop()

        async def secret_value(namespace: str, name: str, key: str) -> str:
            got = await self._secret_value(namespace, name, key)
            digest.update(got.encode())
            return got

        def service_account_token(namespace: str, name: str, audiences: list[str]) -> str:
            """Blocking: called from a backend worker thread, never on the event loop."""
            fut = asyncio.run_coroutine_threadsafe(
                self.gateway.service_account_token(namespace, name, audiences), loop
            )
            try:
                return fut.result(timeout=20)[0]
            except KubeError as exc:
                raise ProviderError(
                    f"cannot request a token for ServiceAccount {namespace}/{name}: {exc}"
                ) from None

        return StoreAccess(
            store_id=handle.id,
            namespace=handle.key[1] or None,
            secret_value=secret_value,
            service_account_token=service_account_token,
        )

    async def _config(self, handle: StoreHandle) -> tuple[str, Any, str]:
        """(provider kind, the provider's config built from its spec section, fingerprint of the
        spec generation and the credentials read)."""
        digest = hashlib.sha256(str(handle.generation).encode())
        provider = handle.spec.provider
        config = await builder(provider.kind).configure(provider.section, self._access(handle, digest))
        return provider.kind, config, digest.hexdigest()

    def _parse(self, key: StoreKey, body: dict[str, Any]) -> SecretStoreSpec | ClusterSecretStoreSpec:
        model = ClusterSecretStoreSpec if key[0] == "ClusterSecretStore" else SecretStoreSpec
        return model.model_validate(body.get("spec") or {})

    async def ensure(self, key: StoreKey, *, revalidate: bool = False) -> StoreHandle:
        """The validated handle for a store, (re)built when its spec or credentials changed."""
        body = self.bodies.get(key)
        if body is None:
            kind, ns, name = key
            body = await self.gateway.get_object(kind, name, ns or None)
            if body is None:
                raise StoreProblem("StoreNotFound", f"{kind} '{name}' does not exist")
            self.bodies[key] = body
        generation = int(body["metadata"].get("generation") or 0)
        handle = self.handles.get(key)
        if handle is None or handle.generation != generation:
            try:
                spec = self._parse(key, body)
            except ValidationError as exc:
                handle = StoreHandle(key, generation, "", spec=None)  # type: ignore[arg-type]
                handle.reason, handle.message = "InvalidConfig", describe_errors(exc)
                await self._replace(key, handle)
                await self._report(key, body, handle)
                return handle
            previous = self.handles.get(key)
            handle = StoreHandle(key, generation, "", spec)
            # a new generation starts from the old readiness, so that breaking a store is a change
            handle.ready = bool(previous and previous.ready)
            handle.seen = bool(previous and previous.seen)
            await self._replace(key, handle)
        async with handle.lock:
            stale = self.clock.timestamp() - handle.validated_at >= self.revalidate_every
            requested = key in self._revalidate_pending
            self._revalidate_pending.discard(key)
            if handle.backend is None or revalidate or stale or requested:
                await self._validate(handle)
                await self._report(key, body, handle)
        return handle

    async def _replace(self, key: StoreKey, handle: StoreHandle) -> None:
        old = self.handles.get(key)
        self.handles[key] = handle
        if old is not None and old.backend is not None and old is not handle:
            await old.backend.close()

    async def _validate(self, handle: StoreHandle) -> None:
        was_ready = handle.ready
        handle.validated_at = self.clock.timestamp()
        try:
            kind, config, fingerprint = await self._config(handle)
        except ProviderError as err:
            handle.ready, handle.reason, handle.message = False, err.reason, err.message
            self._ready_changed(handle, was_ready)
            return
        if handle.backend is None or fingerprint != handle.fingerprint:
            if handle.backend is not None:
                await handle.backend.close()
            try:
                provider = builder(kind).create(config)
            except ProviderError as err:
                handle.backend = None
                handle.ready, handle.reason, handle.message = False, err.reason, err.message
                self._ready_changed(handle, was_ready)
                return
            rl = handle.spec.rate_limit
            handle.backend = Backend(provider, store=handle.id, qps=rl.qps, burst=rl.burst)
            handle.fingerprint = fingerprint
        try:
            handle.capabilities = await handle.backend.validate()
        except ProviderError as err:
            reason = (
                err.reason
                if err.reason in ("AuthFailed", "Unreachable", "Forbidden", "InvalidConfig")
                else ("Unreachable" if err.retryable else "InvalidConfig")
            )
            handle.ready, handle.reason, handle.message = False, reason, err.message
        else:
            handle.ready, handle.reason = True, "Valid"
            if handle.capabilities == Capabilities.PER_PATH:
                handle.message = (
                    f"authenticated to {handle.provider_kind}; write access is checked for each path "
                    "a rotation writes, when it writes it"
                )
            else:
                handle.message = (
                    f"authenticated to {handle.provider_kind}; credentials are {handle.capabilities.value}"
                )
        self._ready_changed(handle, was_ready)

    def _ready_changed(self, handle: StoreHandle, was_ready: bool) -> None:
        first = not handle.seen
        handle.seen = True
        if first and handle.ready:
            return  # first validation (e.g. after a restart): users keep their own schedule
        if handle.ready != was_ready:
            for callback in self.on_ready_change:
                callback(handle.key)

    async def _report(self, key: StoreKey, body: dict[str, Any], handle: StoreHandle) -> None:
        status = dict(body.get("status") or {})
        conditions = list(status.get("conditions") or [])
        generation = int(body["metadata"].get("generation") or 0)
        now = self.clock.now()
        # Ready plus kstatus' Reconciling/Stalled: bad credentials, Forbidden and InvalidConfig
        # need a person (Stalled); Unreachable is retried (Reconciling)
        new_conditions = readiness_conditions(
            conditions,
            ready=handle.ready,
            reason=handle.reason,
            message=handle.message,
            generation=generation,
            now=now,
        )
        new_status: dict[str, Any] = {
            "conditions": new_conditions,
            "observedGeneration": generation,
            "capabilities": handle.capabilities.value if handle.capabilities else None,
        }
        if any(status.get(k) != v for k, v in new_status.items()):
            kind, ns, name = key
            await self.gateway.patch_status(kind, name, ns or None, new_status)
            body["status"] = {**status, **new_status}
            log.info(
                "store %s: Ready=%s reason=%s",
                handle.id,
                handle.ready,
                handle.reason,
                extra={"store": handle.id, "reason": handle.reason},
            )

    # ------------------------------------------------------------------ use by a ManagedSecret
    async def resolve(self, namespace: str, ref_kind: str, ref_name: str) -> StoreHandle:
        key: StoreKey = (ref_kind, "" if ref_kind == "ClusterSecretStore" else namespace, ref_name)
        if ref_kind == "ClusterSecretStore":
            body = self.bodies.get(key) or await self.gateway.get_object(ref_kind, ref_name, None)
            if body is None:
                raise StoreProblem("StoreNotFound", f"ClusterSecretStore '{ref_name}' does not exist")
            self.bodies[key] = body
            conditions = [c for c in (body.get("spec") or {}).get("conditions") or []]
            labels = await self.gateway.namespace_labels(namespace)
            if not namespace_allowed(conditions, namespace, labels):
                raise StoreProblem(
                    "Forbidden",
                    f"ClusterSecretStore '{ref_name}' does not allow namespace '{namespace}' "
                    "(see its spec.conditions)",
                )
        handle = await self.ensure(key)
        if not handle.ready and self.clock.timestamp() - handle.validated_at >= self.retry_not_ready:
            handle = await self.ensure(key, revalidate=True)  # it may have come back
        if not handle.ready or handle.backend is None:
            raise StoreProblem(
                "StoreNotReady", f"{key[0]} '{ref_name}' is not ready ({handle.reason}): {handle.message}"
            )
        return handle

    def check_keys(
        self, handle: StoreHandle, namespace: str, keys: Iterable[str], *, verb: str = "read"
    ) -> None:
        allowed = handle.spec.allowed_keys if isinstance(handle.spec, ClusterSecretStoreSpec) else None
        for remote_key in keys:
            problem = key_problem(remote_key)
            if problem is not None:
                raise StoreProblem(
                    "Forbidden",
                    f"remote key '{remote_key}' has {problem}: Rotor uses only keys in canonical form, "
                    "so that the key spec.allowedKeys and the store's scope are checked against is "
                    "the key the backend reads",
                )
            if not key_allowed(allowed, remote_key, namespace):
                raise StoreProblem(
                    "Forbidden",
                    f"remote key '{remote_key}' is outside what {handle.key[0]} '{handle.key[2]}' allows "
                    f"namespace '{namespace}' to {verb} (spec.allowedKeys)",
                )

    def check_find_path(self, handle: StoreHandle, namespace: str, path: str) -> None:
        """A find under a ClusterSecretStore must search inside an allowed prefix, checked before
        anything is listed, so the refusal never names another tenant's keys."""
        problem = key_problem(path.strip("/") or "x")
        if problem is not None:
            raise StoreProblem("Forbidden", f"dataFrom.find path '{path}' has {problem}; use a plain prefix")
        allowed = handle.spec.allowed_keys if isinstance(handle.spec, ClusterSecretStoreSpec) else None
        if allowed is None:
            return
        probe = path.strip("/") + "/rotor-find-probe"
        if not key_allowed(allowed, probe, namespace):
            raise StoreProblem(
                "Forbidden",
                f"dataFrom.find path '{path}' is outside what {handle.key[0]} '{handle.key[2]}' allows "
                f"namespace '{namespace}' to read (spec.allowedKeys)",
            )

    def allowed_only(self, handle: StoreHandle, namespace: str, keys: list[str]) -> list[str]:
        allowed = handle.spec.allowed_keys if isinstance(handle.spec, ClusterSecretStoreSpec) else None
        return [k for k in keys if key_allowed(allowed, k, namespace)]

    async def revalidate_all(self) -> None:
        for key in list(self.bodies):
            try:
                await self.ensure(key, revalidate=True)
            except StoreProblem:
                continue
            except Exception:  # a bug in one store must not stop the others
                log.exception("re-validating store %s failed", key)


__all__ = ["StoreHandle", "StoreProblem", "StoreService", "format_time"]

"""Sync one ManagedSecret: gather inputs (store, backend reads, the current Secret), run the pure
pipeline, apply the plan, and report status, Events and metrics. Failures keep the last good
Secret and become a documented condition reason."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from pydantic import ValidationError

from rotor.api.duration import parse_duration
from rotor.api.managedsecret import ManagedSecretSpec
from rotor.api.names import (
    API_VERSION,
    FINALIZER,
    FORCE_SYNC_ANNOTATION,
    MANAGED_BY_LABEL,
    ROTATE_ANNOTATION,
)
from rotor.api.registry import describe_errors
from rotor.clock import Clock
from rotor.conditions import get_condition
from rotor.kube.gateway import KubeError, KubeGateway
from rotor.observability.logging import audit
from rotor.observability.metrics import SYNC_DURATION, SYNC_TOTAL
from rotor.providers.base import KeyNotFound, ProviderError, RemoteRef
from rotor.services.cpu import INLINE, CpuPool
from rotor.services.leases import DynamicCredentials, Gathered, LeaseBlocked
from rotor.services.ports import ConfigMapCache, ObjectIndex, SecretLedger
from rotor.services.rollout import RolloutService
from rotor.services.rotation import RotationClaimLost, RotationContext, RotationService
from rotor.services.state import Fetched, absorb, object_id
from rotor.services.stores import StoreHandle, StoreKey, StoreProblem, StoreService
from rotor.services.templates import TemplateReader
from rotor.sync.assemble import assemble_values, finish, replaces
from rotor.sync.cleanup import needs_finalizer
from rotor.sync.decide import Failed, StatusPlan, Synced, decide_failed, decide_synced, request_waits
from rotor.sync.plan import Desired, merge_release, plan, refused_message
from rotor.sync.refresh import next_refresh
from rotor.sync.sources import Sources, declared_keys, sources_of
from rotor.sync.template_from import template_sources
from rotor.values.errors import ValueFailure
from rotor.values.hashing import data_hash

log = logging.getLogger("rotor.sync")


class SyncFailure(Exception):
    def __init__(self, reason: str, message: str, *, retry: bool = True) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.retry = retry


@dataclass
class SyncOutcome:
    """What the controller needs after a sync: when to come back."""

    next_at: dt.datetime | None
    ready: bool
    reason: str


ms_id = object_id


class SyncService:
    """The reconcile of one ManagedSecret. Holds the gateway, the store service, the clock, the
    index (and its ledger of Rotor's own Secret writes), the hash key, the CPU pool, and the
    rotation and rollout services when enabled."""

    def __init__(
        self,
        gateway: KubeGateway,
        stores: StoreService,
        clock: Clock,
        index: ObjectIndex,
        ledger: SecretLedger,
        *,
        hash_key: bytes,
        rotation: RotationService | None = None,
        rollout: RolloutService | None = None,
        cpu: CpuPool = INLINE,
        config_maps: ConfigMapCache | None = None,
    ) -> None:
        self.gateway = gateway
        self.stores = stores
        self.clock = clock
        self.index = index
        self.ledger = ledger
        self.hash_key = hash_key
        self.rotation = rotation
        self.rollout = rollout
        self.cpu = cpu
        self.templates = TemplateReader(gateway, config_maps)
        self.failures: dict[str, int] = {}
        self.dynamic = DynamicCredentials(hash_key=hash_key)
        #: what each ManagedSecret read at its last sync: (store, refs); a refresh wave prefetches
        #: these in batches before the workers sync
        self.reads: dict[tuple[str, str], tuple[StoreKey, tuple[RemoteRef, ...]]] = {}

    # ------------------------------------------------------------------ entry point
    async def sync(self, body: dict[str, Any]) -> SyncOutcome:
        started = time.perf_counter()
        meta = body["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        if meta.get("deletionTimestamp"):
            await self.finalize(body)
            return SyncOutcome(None, False, "Deleted")
        now = self.clock.now()
        status = dict(body.get("status") or {})
        generation = int(meta.get("generation") or 0)
        annotations = meta.get("annotations") or {}
        force = annotations.get(FORCE_SYNC_ANNOTATION)
        try:
            spec = ManagedSecretSpec.model_validate(body.get("spec") or {})
        except ValidationError as exc:
            return await self._fail(
                body, SyncFailure("InvalidSpec", describe_errors(exc), retry=False), started
            )
        rotating: RotationContext | None = None
        try:
            await self._finalizer(body, spec, after_write=False)
            handle = await self._store(spec, namespace)
            sources = sources_of(spec)
            self.stores.check_keys(handle, namespace, sources.keys)
            self.reads[(namespace, name)] = (handle.key, sources.refs)
            if force and force != status.get("lastForceSync"):
                assert handle.backend is not None
                handle.backend.forget(list(sources.refs))
            rotation = self.rotation if spec.rotation is not None else None
            creatable: Callable[[], Awaitable[frozenset[str]]] | None = None
            if rotation is not None:

                async def creatable() -> frozenset[str]:
                    # asked only when a read finds nothing (createIfMissing)
                    return await rotation.creatable(spec, namespace)

            fetched = await self._fetch(body, spec, handle, sources, namespace, creatable)
            if spec.vault_dynamic is not None:
                fetched.lease = await self._lease(body, spec, handle, status, now)
            if self.rotation is not None and spec.rotation is not None:

                async def secret_blocked() -> str | None:
                    return await self._blocked(body, spec, fetched)

                rotating, fetched = await self.rotation.before_sync(
                    body, spec, handle, fetched, now, secret_blocked=secret_blocked
                )
            if fetched.missing:
                raise self._not_created(body, fetched, rotating)
            try:
                leased = fetched.lease.values if fetched.lease is not None else None
                data = assemble_values(
                    spec, fetched.refs, fetched.found, fetched.databases, now=now, leased=leased
                )
                shared = await self.templates.shared_template(spec, namespace)
                templates = template_sources(spec, shared)
                # rendering is CPU-bound (up to its time budget): off the event loop
                rendered = await self.cpu.render(templates, data) if templates else {}
                data = finish(data, rendered, replace=replaces(spec))
                if fetched.lease is not None and fetched.lease.previous:
                    # the replaced credentials, until their lease ends (under Replace, only those
                    # of keys the Secret holds)
                    previous = fetched.lease.previous
                    if replaces(spec):
                        suffix = spec.vault_dynamic.previous_key_suffix if spec.vault_dynamic else ""
                        previous = {k: v for k, v in previous.items() if k.removesuffix(suffix) in data}
                    data = finish({**data, **previous}, {})
            except ValueFailure as err:
                raise SyncFailure(err.reason, err.message, retry=True) from None
            except KeyError as err:
                raise SyncFailure("KeyNotFound", f"remote secret {err} was not read") from None
            if self.rotation is not None and rotating is not None:
                data = await self.rotation.with_grace_keys(body, spec, data, rotating, now, handle, fetched)
            desired = self._desired(body, spec, data)
            written, restored = await self._apply(body, desired, spec)
            self.dynamic.written(ms_id(body))
            await self._finalizer(body, spec, after_write=True)
            if self.rotation is not None and rotating is not None:
                try:
                    await self.rotation.record_synced(body, rotating, now)
                except RotationClaimLost as lost:
                    return await self._claim_lost(body, spec, desired, written, lost)
        except RotationClaimLost as lost:
            # another writer advanced the rotation: nothing more here; look again from what is stored
            return SyncOutcome(lost.retry_at, False, "ClaimLost")
        except StoreProblem as err:
            # retried with back-off: a store, its credentials or a namespace label can be fixed later
            return await self._fail(body, SyncFailure(err.reason, err.message), started, rotating)
        except SyncFailure as err:
            return await self._fail(body, err, started, rotating)
        except LeaseBlocked as err:
            return await self._fail(body, SyncFailure("SecretConflict", err.message), started, rotating)
        except ProviderError as err:
            reason = {
                "KeyNotFound": "KeyNotFound",
                "Forbidden": "Forbidden",
                "InvalidSpec": "InvalidSpec",
            }.get(err.reason, "ProviderError")
            return await self._fail(body, SyncFailure(reason, err.message), started, rotating)
        except KubeError as err:
            return await self._fail(
                body, SyncFailure("ProviderError", f"writing the Secret failed: {err}"), started, rotating
            )

        # ---- success: decide the status (pure), then apply it
        self.failures.pop(ms_id(body), None)
        rotation_seen = None
        if self.rotation is not None and rotating is not None and spec.rotation is not None:
            rotation_seen = await self.rotation.gathered(body, spec, data, rotating, now, fetched, handle)
        synced = Synced(
            now=now,
            generation=generation,
            status=status,
            force=force,
            secret_name=desired.name,
            data=data,
            data_hash=desired.data_hash,
            source_versions=self._source_versions(spec, fetched),
            written=written,
            restored=restored,
            next_refresh=self._next_refresh(spec, body, handle, sources, now),
            rotation=rotation_seen,
            has_rotation_spec=spec.rotation is not None,
            lease=fetched.lease.report if fetched.lease is not None else None,
            provider_expiry=fetched.provider_expiry(),
        )
        decision = decide_synced(synced)
        if (
            decision.rotation is not None
            and decision.rotation.released
            and self.rotation is not None
            and rotating is not None
            and rotation_seen is not None
            and not await self.rotation.retire_replaced(
                body, spec, handle, rotating, decision.rotation.released
            )
        ):
            # not retired: the status keeps what to retire, for the next sync
            done, seen = rotation_seen
            decision = decide_synced(replace(synced, rotation=(replace(done, retire_failed=True), seen)))
        if (
            decision.status is not None
            and decision.rotation is not None
            and decision.rotation.completed is not None
            and self.rotation is not None
        ):
            # the completion is this process's claim too (claimedBy/claimedAt)
            self.rotation.stamp(decision.status["rotation"], now)
        if self.rotation is not None and rotating is not None:
            try:  # conditional: never over a rotation another writer advanced meanwhile
                await self._apply_status(body, decision, claim=now)
            except RotationClaimLost as lost:
                return await self._claim_lost(body, spec, desired, written, lost)
        else:
            await self._apply_status(body, decision)
        if decision.rotation is not None and self.rotation is not None:
            self.rotation.counted(body, decision.rotation)
        if written and self.rollout is not None:
            await self.rollout.after_write(body, spec, desired)
        SYNC_TOTAL.labels("success" if decision.status is not None else "unchanged").inc()
        SYNC_DURATION.observe(time.perf_counter() - started)
        return SyncOutcome(decision.next_at, decision.ready, decision.reason)

    async def _apply_status(
        self, body: dict[str, Any], decision: StatusPlan, *, claim: dt.datetime | None = None
    ) -> None:
        """Write the decided status (when there is one), then post the decided Events. With
        ``claim`` (a ManagedSecret that rotates), the write is conditional like every phase claim
        (``RotationClaimLost`` when another writer advanced the rotation meanwhile)."""
        meta = body["metadata"]
        if decision.status is not None and claim is not None and self.rotation is not None:
            await self.rotation.write_status(body, decision.status, claim)
        elif decision.status is not None:
            absorb(
                body,
                await self.gateway.patch_status(
                    "ManagedSecret", meta["name"], meta["namespace"], decision.status
                ),
                decision.status,
            )
        for event in decision.events:
            await self.gateway.post_event(
                body, type_=event.type, reason=event.reason, note=event.note, action=event.action
            )

    async def _claim_lost(
        self,
        body: dict[str, Any],
        spec: ManagedSecretSpec,
        desired: Desired,
        written: bool,
        lost: RotationClaimLost,
    ) -> SyncOutcome:
        """Another writer advanced the rotation after this sync wrote the Secret: no status from
        here (it would be older than what is stored), but the Secret write still counts for the
        consumers. Looked at again from what is stored."""
        if written:
            note = f"Secret {desired.name} written ({len(desired.data)} keys)"
            await self.gateway.post_event(body, type_="Normal", reason="Synced", note=note, action="Sync")
            if self.rollout is not None:
                await self.rollout.after_write(body, spec, desired)
        return SyncOutcome(lost.retry_at, False, "ClaimLost")

    # ------------------------------------------------------------------ steps
    def _desired(
        self, body: Mapping[str, Any], spec: ManagedSecretSpec, data: Mapping[str, bytes]
    ) -> Desired:
        meta = body["metadata"]
        return Desired(
            namespace=meta["namespace"],
            name=spec.target.name or meta["name"],
            type=spec.target.type,
            data=data,
            data_hash=data_hash(data, key=self.hash_key, secret_type=spec.target.type),
            labels=spec.target.labels,
            annotations=spec.target.annotations,
            creation_policy=spec.target.creation_policy,
            owner={
                "apiVersion": API_VERSION,
                "kind": "ManagedSecret",
                "name": meta["name"],
                "uid": meta.get("uid"),
            },
            managed_by=meta["name"],
        )

    async def _finalizer(self, body: dict[str, Any], spec: ManagedSecretSpec, *, after_write: bool) -> None:
        """Rotor's finalizer only where deleting the ManagedSecret needs Rotor (sync/cleanup.py):
        added before the Secret is written, removed after a sync that left it unneeded (a spec
        change). Removed only when the Secret's state is known (indexed or just written)."""
        meta = body["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        finalizers = list(meta.get("finalizers") or [])
        held = FINALIZER in finalizers
        if held != after_write:
            return
        actual = self._actual(namespace, spec.target.name or name)
        if after_write and actual is None:
            return
        target = spec.target
        dynamic = spec.vault_dynamic
        needed = needs_finalizer(
            target.creation_policy,
            target.deletion_policy,
            actual,
            name=name,
            uid=meta.get("uid"),
            revoke_on_delete=dynamic is not None and dynamic.revoke_on_delete,
        )
        if needed == held:
            return
        finalizers = [*finalizers, FINALIZER] if needed else [f for f in finalizers if f != FINALIZER]
        await self.gateway.patch_object(
            "ManagedSecret", name, namespace, {"metadata": {"finalizers": finalizers}}
        )
        meta["finalizers"] = finalizers

    async def _blocked(
        self, body: Mapping[str, Any], spec: ManagedSecretSpec, fetched: Fetched | None = None
    ) -> str | None:
        """Why the Secret cannot be written (someone else's Secret, Rotor's label removed, a Merge
        target missing or a key another Merge writer owns, a forbidden type), from the same plan
        the write uses, over the keys the sync will write; None when it can. Asked before a
        rotation acts on the source, so it reads the Secret when not indexed."""
        keys = declared_keys(spec)
        if fetched is not None and not replaces(spec):
            # keys dataFrom brings; a failure here is the sync's to report
            with contextlib.suppress(ValueFailure, KeyError):
                keys |= set(
                    assemble_values(
                        spec, fetched.refs, fetched.found, fetched.databases, now=self.clock.now()
                    )
                )
        desired = self._desired(body, spec, dict.fromkeys(keys, b""))
        actual = self._actual(desired.namespace, desired.name)
        if actual is None:
            actual = await self.gateway.get_secret(desired.namespace, desired.name)
        decision = plan(desired, actual)
        return decision.message if decision.action == "conflict" else None

    @staticmethod
    def _not_created(
        body: Mapping[str, Any], fetched: Fetched, rotating: RotationContext | None
    ) -> SyncFailure:
        """A missing remote key that createIfMissing did not create in this reconcile: Forbidden
        when the credentials cannot write it (the message says what to grant), else KeyNotFound
        with why (waiting for a retry, another operator creating it, the store cannot create)."""
        keys = ", ".join(f"'{k}'" for k in sorted({ref.key for ref in fetched.missing}))
        why = rotating.error if rotating is not None else None
        ready = get_condition((body.get("status") or {}).get("conditions"), "Ready") or {}
        if rotating is not None and rotating.forbidden and why:
            return SyncFailure(
                "Forbidden", f"remote key {keys} does not exist and createIfMissing cannot create it: {why}"
            )
        if why is None and ready.get("status") == "False" and ready.get("reason") == "Forbidden":
            # waiting out the back-off of a create that was denied: still Forbidden, same message
            return SyncFailure("Forbidden", str(ready.get("message") or ""))
        detail = f": {why}" if why else "; createIfMissing creates it (retried with back-off)"
        return SyncFailure("KeyNotFound", f"remote key {keys} does not exist and was not created yet{detail}")

    async def _store(self, spec: ManagedSecretSpec, namespace: str) -> StoreHandle:
        return await self.stores.resolve(namespace, spec.store_ref.kind, spec.store_ref.name)

    async def _fetch(
        self,
        body: dict[str, Any],
        spec: ManagedSecretSpec,
        handle: StoreHandle,
        sources: Sources,
        namespace: str,
        creatable: Callable[[], Awaitable[frozenset[str]]] | None = None,
    ) -> Fetched:
        """Read every source. A current value that does not exist at a key ``creatable()`` names
        (createIfMissing; asked once, only when a read finds nothing) is noted in
        ``fetched.missing`` for the rotation step to create."""
        backend = handle.backend
        assert backend is not None
        who = ms_id(body)
        fetched = Fetched()
        asked: list[frozenset[str]] = []

        async def may_create() -> frozenset[str]:
            if creatable is None:
                return frozenset()
            if not asked:
                asked.append(await creatable())
            return asked[0]

        async def one(ref: RemoteRef) -> None:
            try:
                secret = await backend.read(ref)
            except ProviderError as err:
                audit(
                    "read",
                    managed_secret=who,
                    store=handle.id,
                    key=ref.key,
                    version=ref.version,
                    result=err.reason,
                )
                if isinstance(err, KeyNotFound) and ref.version is None and ref.key in await may_create():
                    fetched.missing.add(ref)
                    return
                raise
            audit("read", managed_secret=who, store=handle.id, key=ref.key, version=secret.version)
            fetched.refs[ref] = secret

        await asyncio.gather(*(one(ref) for ref in sources.refs))
        for index, path, regexp, tags in sources.finds:
            self.stores.check_find_path(handle, namespace, path)
            found = await backend.find(path, regexp, dict(tags) or None)
            keys = self.stores.allowed_only(handle, namespace, found)
            results = await asyncio.gather(*(backend.read(RemoteRef(k)) for k in keys))
            for key, secret in zip(keys, results, strict=True):
                audit("read", managed_secret=who, store=handle.id, key=key, version=secret.version)
                rel = key[len(path) :].lstrip("/") if key.startswith(path) else key
                fetched.found.setdefault(index, {})[rel or key] = secret
        for mount, role in sources.databases:
            self.stores.check_keys(handle, namespace, [f"{mount}/static-creds/{role}"])
            creds = await backend.database_credentials(mount, role)
            audit(
                "read",
                managed_secret=who,
                store=handle.id,
                key=f"{mount}/static-creds/{role}",
                version=creds.version,
            )
            fetched.databases[(mount, role)] = creds
        return fetched

    async def _lease(
        self,
        body: dict[str, Any],
        spec: ManagedSecretSpec,
        handle: StoreHandle,
        status: Mapping[str, Any],
        now: dt.datetime,
    ) -> Gathered:
        """The dynamic source: the credentials the Secret holds under the recorded lease, renewed
        when due, or new ones (never issued when the Secret could not take them)."""
        assert handle.backend is not None
        target = spec.target.name or body["metadata"]["name"]
        actual = self._actual(body["metadata"]["namespace"], target)
        if actual is None and status.get("lease"):
            actual = await self.gateway.get_secret(body["metadata"]["namespace"], target)

        async def blocked() -> str | None:
            return await self._blocked(body, spec)

        return await self.dynamic.gather(
            ms_id(body),
            spec,
            handle.backend,
            handle.id,
            status,
            self.dynamic.trusted_data(spec, status, actual),
            now,
            blocked,
        )

    def _actual(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        return self.index.secret(namespace, name)

    async def _apply(
        self, body: dict[str, Any], desired: Desired, spec: ManagedSecretSpec
    ) -> tuple[bool, bool]:
        """Write the Secret if it must change. Returns (written, restored-after-tampering)."""
        who = ms_id(body)
        actual = self._actual(desired.namespace, desired.name)
        never_written = not (body.get("status") or {}).get("secretName")
        if actual is None and not (never_written and desired.creation_policy != "Merge"):
            actual = await self.gateway.get_secret(desired.namespace, desired.name)
        # a first write is tried as a create; a Secret already there (409) is then read and judged
        for attempt in (1, 2):
            decision = plan(desired, actual)
            if decision.action == "noop":
                return False, False
            if decision.action == "conflict":
                raise SyncFailure("SecretConflict", decision.message, retry=True)
            try:
                if decision.action == "create":
                    result = await self.gateway.create_secret(desired.namespace, decision.body)
                elif decision.action == "recreate":
                    result = await self._recreate(desired, decision.body, actual)
                else:
                    result = await self.gateway.patch_secret(desired.namespace, desired.name, decision.body)
                break
            except KubeError as err:
                if err.status == 409 and decision.action == "create":  # created meanwhile: judged next pass
                    raise SyncFailure(
                        "SecretConflict", f"Secret '{desired.name}' appeared while creating it"
                    ) from None
                if err.status == 409 and attempt == 1:
                    # a conditional (Merge) patch: another writer came first; judge what it wrote
                    actual = await self.gateway.get_secret(desired.namespace, desired.name)
                    continue
                if err.status == 409:
                    raise SyncFailure(
                        "ProviderError",
                        f"Secret '{desired.name}' keeps changing while it is written; retrying",
                    ) from None
                if err.status == 422:  # data the Secret's type does not accept: the spec must change
                    raise SyncFailure("InvalidSpec", refused_message(desired, str(err))) from None
                raise
        store_id = spec.store_ref.name
        self.ledger.wrote_secret(result)
        audit(
            "write-secret",
            managed_secret=who,
            store=store_id,
            key=None,
            version=desired.data_hash[-12:],
            target=f"{desired.namespace}/{desired.name}",
        )
        return True, decision.restored

    async def _recreate(
        self, desired: Desired, body: dict[str, Any], actual: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        """A Secret's type is immutable: delete and create. If the create is refused (data the new
        type does not accept), the previous Secret is put back, so nothing is lost."""
        await self.gateway.delete_secret(desired.namespace, desired.name)
        try:
            return await self.gateway.create_secret(desired.namespace, body)
        except KubeError:
            if actual is not None:
                previous = {k: v for k, v in actual.items() if k in ("apiVersion", "kind", "type", "data")}
                meta = actual.get("metadata") or {}
                previous["metadata"] = {
                    k: meta[k] for k in ("name", "labels", "annotations", "ownerReferences") if k in meta
                }
                await self.gateway.create_secret(desired.namespace, previous)
            raise

    def _source_versions(self, spec: ManagedSecretSpec, fetched: Fetched) -> dict[str, str]:
        versions: dict[str, str] = {}
        for item in spec.data:
            secret = fetched.refs.get(RemoteRef(item.remote_ref.key, item.remote_ref.version))
            if secret is not None and secret.version is not None:
                versions[item.secret_key] = str(secret.version)
        for ref, secret in fetched.refs.items():
            if (
                secret.version is not None
                and ref.key not in versions
                and not any(i.remote_ref.key == ref.key for i in spec.data)
            ):
                versions[ref.key] = str(secret.version)
        for (mount, role), creds in fetched.databases.items():
            if creds.version:
                versions[f"{mount}/{role}"] = str(creds.version)
        return versions

    def refresh_seed(
        self, body: Mapping[str, Any], handle: StoreHandle | None, sources: Sources | None
    ) -> str:
        """Objects that read the same source from the same store share a refresh slot (and so a
        read); AWS Secrets Manager objects of one store share one slot per store (batched reads)."""
        if handle is not None and handle.provider_kind == "aws":
            return handle.id
        if handle is not None and sources is not None and sources.refs:
            return handle.id + "|" + "|".join(sorted(f"{r.key}@{r.version}" for r in sources.refs))
        return ms_id(body)

    def _next_refresh(
        self,
        spec: ManagedSecretSpec,
        body: Mapping[str, Any],
        handle: StoreHandle,
        sources: Sources,
        now: dt.datetime,
    ) -> dt.datetime | None:
        if spec.refresh.policy != "Periodic":
            return None
        interval = parse_duration(spec.refresh.interval)
        return next_refresh(self.refresh_seed(body, handle, sources), interval, now)

    # ------------------------------------------------------------------ failure
    async def _fail(
        self,
        body: dict[str, Any],
        err: SyncFailure,
        started: float,
        rotating: RotationContext | None = None,
    ) -> SyncOutcome:
        meta = body["metadata"]
        status = body.get("status") or {}
        key = ms_id(body)
        attempts = self.failures.get(key, 0) + 1
        self.failures[key] = attempts
        await self.dynamic.discard_unwritten(key)
        spec = body.get("spec") or {}
        decision = decide_failed(
            Failed(
                now=self.clock.now(),
                generation=int(meta.get("generation") or 0),
                status=status,
                force=(meta.get("annotations") or {}).get(FORCE_SYNC_ANNOTATION),
                reason=err.reason,
                message=err.message,
                retry=err.retry,
                attempts=attempts,
                seed=key,
                rotation_blocked=(
                    rotating.error if rotating is not None and rotating.blocked is not None else None
                ),
                request_waits=request_waits(
                    reason=err.reason,
                    has_rotation_spec=bool(spec.get("rotation")),
                    rotate_annotation=(meta.get("annotations") or {}).get(ROTATE_ANNOTATION),
                    rotation=rotating.rotation if rotating is not None else status.get("rotation") or {},
                    advanced=rotating is not None and rotating.advanced,
                    blocked=rotating is not None and rotating.blocked is not None,
                ),
            )
        )
        await self._apply_status(body, decision)
        if decision.transition:
            log.warning(
                "sync of %s failed: %s: %s",
                key,
                err.reason,
                err.message,
                extra={"managedSecret": key, "reason": err.reason},
            )
        SYNC_TOTAL.labels("error").inc()
        SYNC_DURATION.observe(time.perf_counter() - started)
        return SyncOutcome(decision.next_at, False, err.reason)

    # ------------------------------------------------------------------ deletion
    async def finalize(self, body: dict[str, Any]) -> None:
        meta = body["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        finalizers = list(meta.get("finalizers") or [])
        if FINALIZER not in finalizers:
            return
        try:
            spec = ManagedSecretSpec.model_validate(body.get("spec") or {})
            target = spec.target.name or name
            policy, creation = spec.target.deletion_policy, spec.target.creation_policy
        except ValidationError:
            target, policy, creation = name, "Retain", "Owner"
        else:
            dynamic = spec.vault_dynamic
            if dynamic is not None and dynamic.revoke_on_delete:
                await self._revoke_leases(body, spec)
        actual = await self.gateway.get_secret(namespace, target)
        if actual is not None:
            a_meta = actual.get("metadata") or {}
            ours = (a_meta.get("labels") or {}).get(MANAGED_BY_LABEL) == name
            if creation == "Merge":
                release = merge_release(actual, name, delete_keys=policy == "Delete")
                await self.gateway.patch_secret(namespace, target, release)
            elif ours and policy == "Delete":
                await self.gateway.delete_secret(namespace, target)
                audit(
                    "delete-secret",
                    managed_secret=f"{namespace}/{name}",
                    store=None,
                    key=None,
                    target=f"{namespace}/{target}",
                )
            elif ours:
                refs = [r for r in a_meta.get("ownerReferences") or [] if r.get("uid") != meta.get("uid")]
                await self.gateway.patch_secret(
                    namespace,
                    target,
                    {"metadata": {"labels": {MANAGED_BY_LABEL: None}, "ownerReferences": refs or None}},
                )
        self.ledger.released_secret(namespace, target)
        finalizers.remove(FINALIZER)
        await self.gateway.patch_object(
            "ManagedSecret", name, namespace, {"metadata": {"finalizers": finalizers}}
        )

    async def _revoke_leases(self, body: dict[str, Any], spec: ManagedSecretSpec) -> None:
        """revokeOnDelete: end the recorded leases now. A store that cannot be reached is reported
        (a RevokeFailed Event) and does not hold up the deletion: the credentials then end with
        their lease."""
        who = ms_id(body)
        try:
            handle = await self._store(spec, body["metadata"]["namespace"])
            assert handle.backend is not None
            await self.dynamic.revoke(who, handle.backend, body.get("status") or {})
        except (StoreProblem, ProviderError) as err:
            note = f"the lease of {who} could not be revoked ({err.reason}: {err.message}); it ends at its expiry"
            log.warning(note, extra={"managedSecret": who, "reason": err.reason})
            await self.gateway.post_event(
                body, type_="Warning", reason="RevokeFailed", note=note, action="Delete"
            )


__all__ = ["Fetched", "SyncFailure", "SyncOutcome", "SyncService", "absorb"]

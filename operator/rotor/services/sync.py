"""Sync one ManagedSecret: gather inputs (store, backend reads, the current Secret), run the pure
pipeline, apply the plan, and report status, Events and metrics. Failures keep the last good
Secret and become a documented condition reason."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from rotor.api.duration import parse_duration
from rotor.api.managedsecret import ManagedSecretSpec
from rotor.api.names import (
    API_VERSION,
    DATA_HASH_ANNOTATION,
    FINALIZER,
    FORCE_SYNC_ANNOTATION,
    MANAGED_BY_LABEL,
    MANAGED_KEYS_ANNOTATION,
    ROTATE_ANNOTATION,
)
from rotor.api.registry import describe_errors
from rotor.api.status import Reason
from rotor.clock import Clock, format_time, parse_time
from rotor.conditions import STALLED_REASONS, get_condition, readiness_conditions, set_condition
from rotor.kube.gateway import KubeError, KubeGateway
from rotor.observability.logging import audit
from rotor.observability.metrics import SYNC_DURATION, SYNC_TOTAL
from rotor.providers.base import ProviderError, RemoteRef
from rotor.rotation.backoff import retry_delay
from rotor.rotation.checks import expiring_condition
from rotor.rotation.expiry import compute_expiry
from rotor.rotation.phases import in_progress
from rotor.services.cpu import INLINE, CpuPool
from rotor.services.ports import ObjectIndex, SecretLedger
from rotor.services.rollout import RolloutService
from rotor.services.rotation import RotationContext, RotationService
from rotor.services.state import Fetched, absorb, object_id
from rotor.services.stores import StoreHandle, StoreKey, StoreProblem, StoreService
from rotor.sync.assemble import assemble_values, finish, template_sources
from rotor.sync.plan import Desired, plan
from rotor.sync.refresh import next_refresh
from rotor.sync.sources import Sources, sources_of
from rotor.values.errors import ValueFailure
from rotor.values.hashing import data_hash

log = logging.getLogger("rotor.sync")

#: back-off of a failed sync: from about 2 s, doubling, at most 2 minutes
SYNC_RETRY_BASE = dt.timedelta(seconds=2)
SYNC_RETRY_CAP = dt.timedelta(seconds=120)


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
        self.failures: dict[str, int] = {}
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
            if FINALIZER not in (meta.get("finalizers") or []):
                await self.gateway.patch_object(
                    "ManagedSecret",
                    name,
                    namespace,
                    {"metadata": {"finalizers": [*meta.get("finalizers", []), FINALIZER]}},
                )
                meta.setdefault("finalizers", []).append(FINALIZER)
            handle = await self._store(spec, namespace)
            sources = sources_of(spec)
            self.stores.check_keys(handle, namespace, sources.keys)
            self.reads[(namespace, name)] = (handle.key, sources.refs)
            if force and force != status.get("lastForceSync"):
                assert handle.backend is not None
                handle.backend.forget(list(sources.refs))
            fetched = await self._fetch(body, spec, handle, sources, namespace)
            if self.rotation is not None and spec.rotation is not None:

                async def secret_blocked() -> str | None:
                    return await self._blocked(body, spec)

                rotating, fetched = await self.rotation.before_sync(
                    body, spec, handle, fetched, now, secret_blocked=secret_blocked
                )
            try:
                data = assemble_values(spec, fetched.refs, fetched.found, fetched.databases, now=now)
                templates = template_sources(spec)
                # rendering is CPU-bound (up to its time budget): off the event loop
                data = finish(data, await self.cpu.render(templates, data) if templates else {})
            except ValueFailure as err:
                raise SyncFailure(err.reason, err.message, retry=True) from None
            except KeyError as err:
                raise SyncFailure("KeyNotFound", f"remote secret {err} was not read") from None
            if self.rotation is not None and rotating is not None:
                data = await self.rotation.with_grace_keys(body, spec, data, rotating, now, handle, fetched)
            desired = self._desired(body, spec, data)
            written, restored = await self._apply(body, desired, spec)
            if self.rotation is not None and rotating is not None:
                await self.rotation.record_synced(body, rotating, now)
        except StoreProblem as err:
            # retried with back-off: a store, its credentials or a namespace label can be fixed later
            return await self._fail(body, SyncFailure(err.reason, err.message), started, rotating)
        except SyncFailure as err:
            return await self._fail(body, err, started, rotating)
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

        # ---- success
        self.failures.pop(ms_id(body), None)
        versions = self._source_versions(spec, fetched)
        next_at = self._next_refresh(spec, body, handle, sources, now)
        new_status: dict[str, Any] = {
            "observedGeneration": generation,
            "secretName": desired.name,
            "sourceVersions": versions,
            "dataHash": desired.data_hash,
        }
        if force:
            new_status["lastForceSync"] = force
        changed_data = written or status.get("dataHash") != desired.data_hash
        if changed_data or not status.get("lastSyncTime"):
            new_status["lastSyncTime"] = format_time(now)
        new_status["nextRefreshTime"] = format_time(next_at) if next_at else None
        events: list[tuple[str, str, str]] = []
        conditions = readiness_conditions(
            status.get("conditions") or [],
            ready=True,
            reason=Reason.SYNCED,
            message=f"Secret {desired.name} matches the source",
            generation=generation,
            now=now,
        )
        if self.rotation is not None and rotating is not None:
            extra, rotation_next = await self.rotation.after_sync(
                body, spec, data, rotating, now, written, conditions, fetched, handle
            )
            conditions = extra.pop("conditions")
            new_status.update(extra)
            if rotation_next is not None and (next_at is None or rotation_next < next_at):
                next_at = rotation_next
        elif spec.rotation is None:
            conditions, cert_next = self._certificate_expiry(body, data, conditions, new_status, now, events)
            if cert_next is not None and (next_at is None or cert_next < next_at):
                next_at = cert_next
        conditions = self._expired_certificate(new_status, conditions, generation, now, desired.name)
        new_status["conditions"] = conditions
        was_ready = (get_condition(status.get("conditions"), "Ready") or {}).get("status") == "True"
        # only what a user needs: unchanged refreshes write nothing
        if (
            not written
            and was_ready
            and _same(status, new_status, ignore=("nextRefreshTime", "lastSyncTime"))
        ):
            SYNC_TOTAL.labels("unchanged").inc()
            SYNC_DURATION.observe(time.perf_counter() - started)
            return SyncOutcome(next_at, True, "Synced")
        absorb(
            body, await self.gateway.patch_status("ManagedSecret", name, namespace, new_status), new_status
        )
        if written:
            note = (
                f"Secret {desired.name} restored: it had been changed outside Rotor"
                if restored
                else f"Secret {desired.name} written ({len(data)} keys)"
            )
            await self.gateway.post_event(body, type_="Normal", reason="Synced", note=note, action="Sync")
        elif not was_ready:
            await self.gateway.post_event(
                body,
                type_="Normal",
                reason="Synced",
                note=f"Secret {desired.name} matches the source",
                action="Sync",
            )
        for type_, reason, note in events:
            await self.gateway.post_event(body, type_=type_, reason=reason, note=note, action="Observe")
        if written and self.rollout is not None:
            await self.rollout.after_write(body, spec, desired)
        SYNC_TOTAL.labels("success").inc()
        SYNC_DURATION.observe(time.perf_counter() - started)
        return SyncOutcome(next_at, True, "Synced")

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

    async def _blocked(self, body: Mapping[str, Any], spec: ManagedSecretSpec) -> str | None:
        """Why the Secret cannot be written (someone else's Secret, Rotor's label removed, a Merge
        target missing, a forbidden type), from the same plan the write uses; None when it can.
        Asked before a rotation acts on the source, so it reads the Secret when not indexed."""
        desired = self._desired(body, spec, {})
        actual = self._actual(desired.namespace, desired.name)
        if actual is None:
            actual = await self.gateway.get_secret(desired.namespace, desired.name)
        decision = plan(desired, actual)
        return decision.message if decision.action == "conflict" else None

    async def _store(self, spec: ManagedSecretSpec, namespace: str) -> StoreHandle:
        return await self.stores.resolve(namespace, spec.store_ref.kind, spec.store_ref.name)

    async def _fetch(
        self,
        body: dict[str, Any],
        spec: ManagedSecretSpec,
        handle: StoreHandle,
        sources: Sources,
        namespace: str,
    ) -> Fetched:
        backend = handle.backend
        assert backend is not None
        who = ms_id(body)
        fetched = Fetched()

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
                raise
            audit("read", managed_secret=who, store=handle.id, key=ref.key, version=secret.version)
            fetched.refs[ref] = secret

        await asyncio.gather(*(one(ref) for ref in sources.refs))
        for path, regexp in sources.finds:
            self.stores.check_find_path(handle, namespace, path)
            keys = self.stores.allowed_only(handle, namespace, await backend.find(path, regexp))
            results = await asyncio.gather(*(backend.read(RemoteRef(k)) for k in keys))
            for key, secret in zip(keys, results, strict=True):
                audit("read", managed_secret=who, store=handle.id, key=key, version=secret.version)
                rel = key[len(path) :].lstrip("/") if key.startswith(path) else key
                fetched.found[rel or key] = secret
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
        decision = plan(desired, actual)
        if decision.action == "noop":
            return False, False
        if decision.action == "conflict":
            raise SyncFailure("SecretConflict", decision.message, retry=True)
        store_id = spec.store_ref.name
        if decision.action == "create":
            try:
                result = await self.gateway.create_secret(desired.namespace, decision.body)
            except KubeError as err:
                if err.status == 409:  # created meanwhile: judge it on the next pass
                    raise SyncFailure(
                        "SecretConflict", f"Secret '{desired.name}' appeared while creating it"
                    ) from None
                raise
        elif decision.action == "recreate":
            result = await self._recreate(desired, decision.body, actual)
        else:
            result = await self.gateway.patch_secret(desired.namespace, desired.name, decision.body)
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

    def _certificate_expiry(
        self,
        body: dict[str, Any],
        data: Mapping[str, bytes],
        conditions: list[dict[str, Any]],
        new_status: dict[str, Any],
        now: dt.datetime,
        events: list[tuple[str, str, str]],
    ) -> tuple[list[dict[str, Any]], dt.datetime | None]:
        """Without a rotation policy, expiry still comes from certificates found in the data."""
        expiry = compute_expiry(
            data=data,
            last_rotation=None,
            source_created=None,
            max_age=None,
            rotate_before=None,
            provider_expiry=None,
        )
        if expiry is None:
            new_status["expiry"] = None
            return [c for c in conditions if c.get("type") != "Expiring"], None
        new_status["expiry"] = {
            "notAfter": format_time(expiry.not_after),
            "source": expiry.source,
            "renewalTime": format_time(expiry.renewal_time),
        }
        expiring, reason, message = expiring_condition(strategy="Sync", expiry=expiry, now=now, observed=None)
        generation = int(body["metadata"].get("generation") or 0)
        old = get_condition((body.get("status") or {}).get("conditions"), "Expiring") or {}
        conditions = set_condition(conditions, "Expiring", expiring, reason, message, generation, now)
        if expiring and (old.get("status") != "True" or old.get("reason") != reason):
            events.append(("Warning", "Expiring", message))
        wake = expiry.renewal_time if expiry.renewal_time > now else expiry.not_after
        return conditions, wake if wake > now else None

    def _expired_certificate(
        self,
        new_status: Mapping[str, Any],
        conditions: list[dict[str, Any]],
        generation: int,
        now: dt.datetime,
        target: str,
    ) -> list[dict[str, Any]]:
        """A certificate past its notAfter is not usable: Ready=False, reason Expired (the Secret
        still holds what the source holds)."""
        expiry = new_status.get("expiry") or {}
        not_after = parse_time(expiry.get("notAfter"))
        if expiry.get("source") == "Certificate" and not_after is not None and not_after <= now:
            return readiness_conditions(
                conditions,
                ready=False,
                reason=Reason.EXPIRED,
                message=f"the certificate in Secret {target} expired at {format_time(not_after)}; "
                "renew it at the source",
                generation=generation,
                now=now,
            )
        return conditions

    # ------------------------------------------------------------------ failure
    async def _fail(
        self,
        body: dict[str, Any],
        err: SyncFailure,
        started: float,
        rotating: RotationContext | None = None,
    ) -> SyncOutcome:
        meta = body["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        status = dict(body.get("status") or {})
        generation = int(meta.get("generation") or 0)
        now = self.clock.now()
        key = ms_id(body)
        attempts = self.failures.get(key, 0) + 1
        self.failures[key] = attempts
        conditions = readiness_conditions(
            status.get("conditions") or [],
            ready=False,
            reason=err.reason,
            message=err.message,
            generation=generation,
            now=now,
        )
        refused = rotating is not None and rotating.blocked is not None and rotating.error is not None
        old_rotating = get_condition(status.get("conditions"), "Rotating") or {}
        if rotating is not None and rotating.blocked is not None and rotating.error is not None:
            # a rotation that would have written the source waits for the Secret to be writable
            conditions = set_condition(
                conditions, "Rotating", False, Reason.SECRET_CONFLICT, rotating.error, generation, now
            )
        waiting = _request_cannot_proceed(body, rotating, err.reason)
        if waiting:
            # a rotate request that cannot proceed is told so now (Rotating=False with the sync's
            # reason), not left silent until the cause is fixed; it stays pending (kubectl annotate
            # and `rotor rotate --no-wait` are fire-and-forget), and `rotor rotate` withdraws it
            conditions = set_condition(
                conditions,
                "Rotating",
                False,
                err.reason,
                f"the rotate request waits: the ManagedSecret cannot sync ({err.reason}: {err.message}). "
                "Nothing was written to the source; it rotates once the sync succeeds (remove the "
                "rotor.dev/rotate annotation to cancel it)",
                generation,
                now,
            )
        new_status: dict[str, Any] = {"observedGeneration": generation, "conditions": conditions}
        force = (meta.get("annotations") or {}).get(FORCE_SYNC_ANNOTATION)
        if force:
            new_status["lastForceSync"] = force
        old_ready = get_condition(status.get("conditions"), "Ready") or {}
        transition = old_ready.get("status") != "False" or old_ready.get("reason") != err.reason
        if not _same(status, new_status):
            absorb(
                body,
                await self.gateway.patch_status("ManagedSecret", name, namespace, new_status),
                new_status,
            )
        if refused and old_rotating.get("reason") != Reason.SECRET_CONFLICT and rotating is not None:
            await self.gateway.post_event(
                body, type_="Warning", reason="RotationFailed", note=str(rotating.error), action="Rotate"
            )
        if waiting and old_rotating.get("reason") != err.reason:
            await self.gateway.post_event(
                body,
                type_="Warning",
                reason="RotationWaiting",
                note=f"the rotate request waits: {err.reason}: {err.message}",
                action="Rotate",
            )
        if transition:
            await self.gateway.post_event(
                body, type_="Warning", reason="SyncFailed", note=f"{err.reason}: {err.message}", action="Sync"
            )
            log.warning(
                "sync of %s failed: %s: %s",
                key,
                err.reason,
                err.message,
                extra={"managedSecret": key, "reason": err.reason},
            )
        SYNC_TOTAL.labels("error").inc()
        SYNC_DURATION.observe(time.perf_counter() - started)
        if not err.retry:
            return SyncOutcome(None, False, err.reason)
        delay = retry_delay(attempts, base=SYNC_RETRY_BASE, cap=SYNC_RETRY_CAP, seed=key)
        return SyncOutcome(now + delay, False, err.reason)

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
        actual = await self.gateway.get_secret(namespace, target)
        if actual is not None:
            a_meta = actual.get("metadata") or {}
            ours = (a_meta.get("labels") or {}).get(MANAGED_BY_LABEL) == name
            if creation == "Merge":
                annotations = a_meta.get("annotations") or {}
                keys = [k for k in (annotations.get(MANAGED_KEYS_ANNOTATION) or "").split(",") if k]
                patch: dict[str, Any] = {
                    "metadata": {"annotations": {MANAGED_KEYS_ANNOTATION: None, DATA_HASH_ANNOTATION: None}}
                }
                if policy == "Delete" and keys:
                    patch["data"] = dict.fromkeys(keys)
                await self.gateway.patch_secret(namespace, target, patch)
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


def _same(old: Mapping[str, Any], new: Mapping[str, Any], ignore: tuple[str, ...] = ()) -> bool:
    for key, value in new.items():
        if key in ignore:
            continue
        if key == "conditions":
            if _strip_times(old.get("conditions")) != _strip_times(value):
                return False
        elif old.get(key) != value:
            return False
    return True


def _strip_times(conditions: Any) -> list[dict[str, Any]]:
    return [{k: v for k, v in c.items() if k != "lastTransitionTime"} for c in conditions or []]


__all__ = ["Fetched", "SyncFailure", "SyncOutcome", "SyncService", "absorb"]


#: sync failures that a rotate request cannot wait out: the store is missing or not Ready, or the
#: failure needs a person (conditions.STALLED_REASONS). A transient backend failure (Unreachable,
#: ProviderError, a key not there yet) keeps the request: the rotation runs when the source answers.
REFUSING_REASONS = frozenset({Reason.STORE_NOT_READY, Reason.STORE_NOT_FOUND}) | STALLED_REASONS


def _request_cannot_proceed(body: Mapping[str, Any], rotating: RotationContext | None, reason: str) -> bool:
    """Whether a new rotate request is held up by a sync failure it cannot wait out quickly
    (``REFUSING_REASONS``), before the rotation acted: not a transient failure, not a rotation in
    progress (it resumes), not one that waits for its Secret (SecretConflict, said by the rotation)."""
    if reason not in REFUSING_REASONS or not ((body.get("spec") or {}).get("rotation")):
        return False
    annotation = ((body.get("metadata") or {}).get("annotations") or {}).get(ROTATE_ANNOTATION)
    rot = (
        rotating.rotation if rotating is not None else dict((body.get("status") or {}).get("rotation") or {})
    )
    if not annotation or annotation == rot.get("lastRotateRequest") or in_progress(rot.get("phase")):
        return False
    return not (rotating is not None and (rotating.advanced or rotating.blocked is not None))

"""PushSecret: push keys of a Kubernetes Secret to a store, when their data changes (DESIGN §11).

One reconcile: parse the spec, resolve the store (tenancy: a ClusterSecretStore's conditions and
``allowedKeys``, canonical keys, all before any backend call), read the Secret, read each remote
key as it is now, decide per key (``rotor.sync.push``), write (check-and-set on the version read;
create-only where the key does not exist), and report status and Events. Failures keep the last
good ``pushed``/``dataHash``/``lastPushTime``; nothing is written when any key conflicts.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from pydantic import ValidationError

from rotor.api.duration import parse_duration
from rotor.api.names import FINALIZER
from rotor.api.pushsecret import PushSecretSpec
from rotor.api.registry import describe_errors
from rotor.clock import Clock, format_time
from rotor.conditions import readiness_conditions
from rotor.kube.gateway import KubeGateway
from rotor.observability.logging import audit
from rotor.providers.base import Capabilities, KeyNotFound, ProviderError, RemoteRef, WriteConflict
from rotor.rotation.backoff import retry_delay
from rotor.services.backend import Backend
from rotor.services.stores import StoreHandle, StoreProblem, StoreService
from rotor.sync.push import (
    PushProblem,
    decide,
    desired_value,
    holds,
    missing_keys,
    push_hash,
    remaining_after_delete,
    targets,
)

log = logging.getLogger("rotor.push")

KIND = "PushSecret"
#: the first retry after a transient failure; doubling up to the refresh interval
RETRY_BASE = dt.timedelta(seconds=5)

Remote = tuple[Mapping[str, Any] | None, bytes | None]
SecretLookup = Callable[[str, str], Awaitable[dict[str, Any] | None]]


def push_id(body: Mapping[str, Any]) -> str:
    meta = body["metadata"]
    return f"{meta['namespace']}/{meta['name']}"


class PushService:
    def __init__(
        self,
        gateway: KubeGateway,
        stores: StoreService,
        clock: Clock,
        *,
        hash_key: bytes,
        secret: SecretLookup,
    ) -> None:
        self.gateway = gateway
        self.stores = stores
        self.clock = clock
        self.hash_key = hash_key or b"rotor"
        self.secret = secret
        self._failures: dict[str, int] = {}

    # ------------------------------------------------------------------ one reconcile
    async def reconcile(self, body: dict[str, Any]) -> float | None:
        """Reconcile one PushSecret; returns when to look again (a timestamp), None for never."""
        meta = body["metadata"]
        if meta.get("deletionTimestamp"):
            await self.finalize(body)
            return None
        who = push_id(body)
        try:
            spec = PushSecretSpec.model_validate(body.get("spec") or {})
        except ValidationError as exc:
            await self._report(body, False, "InvalidSpec", describe_errors(exc), {})
            return None
        interval = parse_duration(spec.refresh.interval).total_seconds()
        try:
            await self._finalizer(body, spec)
            ready_message, fields = await self._push(body, spec)
        except (StoreProblem, PushProblem, ProviderError) as err:
            reason = err.reason
            message = err.message
            if isinstance(err, WriteConflict):
                reason = "RemoteConflict"
                message = f"{message}; the push is tried again"
            await self._report(body, False, reason, message, {})
            failed = self._failures[who] = self._failures.get(who, 0) + 1
            delay = retry_delay(failed, base=RETRY_BASE, cap=dt.timedelta(seconds=max(interval, 5)), seed=who)
            return self.clock.timestamp() + delay.total_seconds()
        self._failures.pop(who, None)
        await self._report(body, True, "Pushed", ready_message, fields)
        return self.clock.timestamp() + interval

    async def _store(self, spec: PushSecretSpec, namespace: str) -> tuple[StoreHandle, Backend]:
        handle = await self.stores.resolve(namespace, spec.store_ref.kind, spec.store_ref.name)
        assert handle.backend is not None
        return handle, handle.backend

    async def _push(self, body: dict[str, Any], spec: PushSecretSpec) -> tuple[str, dict[str, Any]]:
        meta = body["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        who = f"{namespace}/{name}"
        status = body.get("status") or {}
        handle, backend = await self._store(spec, namespace)
        remote_keys = list(dict.fromkeys(item.remote_ref.key for item in spec.data))
        # tenancy first: nothing is read from or written to the store for a refused key
        self.stores.check_keys(handle, namespace, remote_keys, verb="push to")
        if handle.capabilities == Capabilities.READ_ONLY:
            raise StoreProblem(
                "Forbidden",
                f"{handle.key[0]} '{handle.key[2]}' was validated read-only: its credentials cannot write; "
                "grant write access to push",
            )
        data = await self._secret_data(namespace, spec)
        by_key = targets(spec, maps_only=backend.maps_only)
        digest = push_hash(by_key, data, key=self.hash_key)
        recorded = {p.get("remoteKey"): p for p in status.get("pushed") or [] if isinstance(p, Mapping)}
        current: dict[str, tuple[str | None, Remote] | None] = {}
        for remote_key in by_key:
            current[remote_key] = await self._read(backend, remote_key, who, handle.id)
        unchanged = (
            digest == status.get("dataHash")
            and status.get("observedGeneration") == meta.get("generation")
            and all(
                current[k] is not None and (recorded.get(k) or {}).get("version") == current[k][0]  # type: ignore[index]
                for k in by_key
            )
        )
        now = self.clock.now()
        if unchanged:
            return _ready_message(len(spec.data), len(by_key), wrote=0), {}
        decisions = {}
        for remote_key, group in by_key.items():
            read = current[remote_key]
            decisions[remote_key] = decide(
                remote_key,
                spec.update_policy,
                exists=read is not None,
                current_version=read[0] if read else None,
                recorded_version=(recorded.get(remote_key) or {}).get("version"),
                in_sync=holds(group, data, read[1] if read else None),
            )
        log.debug(
            "pushsecret %s: decisions %s (hash %s, recorded %s)",
            who,
            {k: (d.action, d.cas) for k, d in decisions.items()},
            digest[-8:],
            str(status.get("dataHash"))[-8:],
        )
        conflicts = [d.message for d in decisions.values() if d.action == "conflict"]
        if conflicts:
            raise PushProblem("RemoteConflict", "; ".join(conflicts) + ". Nothing was pushed.")
        writes = [k for k, d in decisions.items() if d.action == "write"]
        if writes and backend.checks_writes:
            await backend.check_write(writes)
        pushed: dict[str, dict[str, Any]] = {}
        for remote_key, group in by_key.items():
            decision = decisions[remote_key]
            read = current[remote_key]
            entry = dict(recorded.get(remote_key) or {"remoteKey": remote_key})
            if decision.action == "none":
                assert read is not None
                entry["version"] = read[0]
                pushed[remote_key] = entry
                continue
            value = desired_value(group, data, read[1] if read else None)
            cas = ("0" if backend.maps_only else None) if decision.create else decision.cas
            try:
                result = await backend.write(remote_key, value, cas)
            except ProviderError as err:
                audit("push", managed_secret=who, store=handle.id, key=remote_key, result=err.reason)
                if decision.create and isinstance(err, WriteConflict):
                    raise PushProblem(
                        "RemoteConflict",
                        f"remote key '{remote_key}' was created by someone else while Rotor pushed it; "
                        "nothing was overwritten",
                    ) from None
                raise
            audit("push", managed_secret=who, store=handle.id, key=remote_key, version=result.version)
            entry.update({"remoteKey": remote_key, "version": result.version, "time": format_time(now)})
            pushed[remote_key] = entry
            if decision.overwrites is not None:
                await self._event(
                    body,
                    "Warning",
                    "RemoteOverwritten",
                    f"remote key '{remote_key}' had been changed by someone else (version "
                    f"{decision.overwrites}, Rotor pushed {(recorded.get(remote_key) or {}).get('version')}); "
                    f"updatePolicy Replace wrote the Secret's value again as version {result.version}",
                )
        fields: dict[str, Any] = {"pushed": [pushed[k] for k in by_key], "dataHash": digest}
        if writes:
            fields["lastPushTime"] = format_time(now)
            await self._event(
                body,
                "Normal",
                "Pushed",
                f"pushed {len(spec.data)} key(s) to {', '.join(writes)} in {handle.id}",
            )
        return _ready_message(len(spec.data), len(by_key), wrote=len(writes)), fields

    async def _secret_data(self, namespace: str, spec: PushSecretSpec) -> dict[str, bytes]:
        name = spec.selector.secret.name
        secret = await self.secret(namespace, name)
        if secret is None:
            raise PushProblem(
                "SecretMissing",
                f"Secret '{name}' (spec.selector.secret.name) does not exist in namespace '{namespace}'; "
                "nothing was pushed",
            )
        data = {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}
        missing = missing_keys(spec, data)
        if missing:
            raise PushProblem(
                "KeyMissing",
                f"Secret '{name}' has no key {', '.join(repr(k) for k in missing)} (spec.data[].secretKey); "
                "nothing was pushed",
            )
        return data

    async def _read(
        self, backend: Backend, remote_key: str, who: str, store: str
    ) -> tuple[str | None, Remote] | None:
        try:
            remote = await backend.read_fresh(RemoteRef(remote_key))
        except KeyNotFound:
            audit("push-read", managed_secret=who, store=store, key=remote_key, result="KeyNotFound")
            return None
        except ProviderError as err:
            audit("push-read", managed_secret=who, store=store, key=remote_key, result=err.reason)
            raise
        audit("push-read", managed_secret=who, store=store, key=remote_key, version=remote.version)
        return remote.version, (remote.data, remote.raw)

    # ------------------------------------------------------------------ finalizer and deletion
    async def _finalizer(self, body: dict[str, Any], spec: PushSecretSpec) -> None:
        meta = body["metadata"]
        finalizers = list(meta.get("finalizers") or [])
        needed = spec.deletion_policy == "Delete"
        if needed == (FINALIZER in finalizers):
            return
        finalizers = [*finalizers, FINALIZER] if needed else [f for f in finalizers if f != FINALIZER]
        await self.gateway.patch_object(
            KIND, meta["name"], meta["namespace"], {"metadata": {"finalizers": finalizers}}
        )
        meta["finalizers"] = finalizers

    async def finalize(self, body: dict[str, Any]) -> None:
        """deletionPolicy Delete: remove what was pushed, where the remote value is still the
        version Rotor pushed; then let the PushSecret go. A store that no longer exists or no
        longer admits the namespace is reported (an Event) and does not hold up the deletion;
        an unreachable one is retried (the exception propagates)."""
        meta = body["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        finalizers = list(meta.get("finalizers") or [])
        if FINALIZER not in finalizers:
            return
        try:
            spec: PushSecretSpec | None = PushSecretSpec.model_validate(body.get("spec") or {})
        except ValidationError:
            spec = None
        if spec is not None and spec.deletion_policy == "Delete":
            try:
                await self._delete_pushed(body, spec)
            except StoreProblem as problem:
                if problem.reason == "StoreNotReady":
                    raise
                await self._event(
                    body, "Warning", "DeleteSkipped", f"{problem.message}; the remote values were left"
                )
        finalizers.remove(FINALIZER)
        await self.gateway.patch_object(KIND, name, namespace, {"metadata": {"finalizers": finalizers}})

    async def _delete_pushed(self, body: dict[str, Any], spec: PushSecretSpec) -> None:
        meta = body["metadata"]
        namespace = meta["namespace"]
        who = push_id(body)
        handle, backend = await self._store(spec, namespace)
        by_key = targets(spec, maps_only=backend.maps_only)
        self.stores.check_keys(handle, namespace, list(by_key), verb="push to")
        recorded = {
            p.get("remoteKey"): p.get("version")
            for p in (body.get("status") or {}).get("pushed") or []
            if isinstance(p, Mapping)
        }
        for remote_key, group in by_key.items():
            if remote_key not in recorded:
                continue  # never pushed (or pushed by nobody): not Rotor's to remove
            read = await self._read(backend, remote_key, who, handle.id)
            if read is None:
                continue
            version, remote = read
            if version != recorded[remote_key]:
                await self._event(
                    body,
                    "Warning",
                    "RemoteConflict",
                    f"remote key '{remote_key}' is at version {version}, not the version {recorded[remote_key]} "
                    "Rotor pushed: someone else wrote it since, so it was left as it is",
                )
                continue
            rest = remaining_after_delete(group, remote)
            if rest is None:
                await backend.delete_secret(remote_key)
            else:
                await backend.write(remote_key, rest, version)
            audit("push-delete", managed_secret=who, store=handle.id, key=remote_key, version=version)
        await self._event(body, "Normal", "Deleted", f"removed what was pushed to {handle.id}")

    # ------------------------------------------------------------------ status and events
    async def _report(
        self, body: dict[str, Any], ready: bool, reason: str, message: str, fields: dict[str, Any]
    ) -> None:
        meta = body["metadata"]
        status = dict(body.get("status") or {})
        generation = int(meta.get("generation") or 0)
        conditions = readiness_conditions(
            status.get("conditions") or [],
            ready=ready,
            reason=reason,
            message=message,
            generation=generation,
            now=self.clock.now(),
        )
        new = {**status, **fields, "observedGeneration": generation, "conditions": conditions}
        if new == status:
            return  # nothing new: no write, so no echo
        was: dict[str, Any] = next(
            (c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {}
        )
        if not ready and (was.get("reason") != reason or was.get("status") != "False"):
            await self._event(body, "Warning", reason, message)
            log.warning("pushsecret %s: %s (%s)", push_id(body), reason, message, extra={"reason": reason})
        stored = await self.gateway.patch_status(KIND, meta["name"], meta["namespace"], new)
        body["status"] = new
        if stored is not None:
            meta["resourceVersion"] = (stored.get("metadata") or {}).get("resourceVersion")

    async def _event(self, body: Mapping[str, Any], type_: str, reason: str, note: str) -> None:
        await self.gateway.post_event(body, type_=type_, reason=reason, note=note, action="Push")


def _ready_message(keys: int, remote_keys: int, *, wrote: int) -> str:
    """The same words whether or not this pass wrote (so a pass that writes nothing writes no
    status either); the Pushed Event says what was written."""
    del wrote
    return f"the {remote_keys} remote key(s) hold the Secret's {keys} pushed key(s)"

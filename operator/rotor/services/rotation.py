"""Rotation: decide (pure checks in rotor.rotation), then drive the crash-safe phases, each
recorded in status before the next step runs. The new value is written to the source first;
Kubernetes gets it by the normal sync. Observe never writes.

Phases (status.rotation.phase):
- Vault KV / Parameter Store / Vault database:  Pending -> Written -> Synced -> Completed
- AWS Secrets Manager:  Pending -> Staged -> Verified -> Promoted -> Synced -> Completed

The previous value for the grace period is never stored anywhere new: it is the value the
Kubernetes Secret held when the new one arrived, and it stays in that Secret as
``<key><previousKeySuffix>`` until ``previousRetainedUntil``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from rotor.api.managedsecret import ManagedSecretSpec
from rotor.api.rotationpolicy import RotationPolicySpec
from rotor.clock import format_time, parse_time
from rotor.conditions import get_condition, set_condition
from rotor.observability.logging import audit
from rotor.observability.metrics import ROTATION_DURATION, ROTATION_TOTAL
from rotor.providers.base import Capabilities, ProviderError, RemoteRef, RemoteSecret
from rotor.rotation.checks import ObservedState, RotationInputs, expiring_condition, rotation_due
from rotor.rotation.errors import RotationError
from rotor.rotation.expiry import Expiry, compute_expiry
from rotor.rotation.generators import generate
from rotor.rotation.phases import COMPLETED, retained_until
from rotor.rotation.presets import EffectivePolicy, effective_policy
from rotor.rotation.schedule import next_rotation
from rotor.services.stores import StoreHandle

if TYPE_CHECKING:
    from rotor.controller.core import Controller
    from rotor.services.sync import Fetched

log = logging.getLogger("rotor.rotation")

ROTATE = "rotor.dev/rotate"
FAILED = "Failed"


class RotationFailure(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass
class Target:
    """Where one rotated Secret key lives at the source."""

    secret_key: str
    remote_key: str
    property: str | None  # None: the whole remote value


def _expiry_from_status(status: Mapping[str, Any]) -> Expiry | None:
    exp = status.get("expiry") or {}
    not_after, renewal = parse_time(exp.get("notAfter")), parse_time(exp.get("renewalTime"))
    if not_after is None or renewal is None:
        return None
    return Expiry(not_after, exp.get("source") or "Policy", renewal)


class RotationService:
    def __init__(self, controller: Controller) -> None:
        self.controller = controller
        self.gateway = controller.gateway
        self.clock = controller.clock
        self.policies: dict[tuple[str, str, str], dict[str, Any]] = {}

    # ------------------------------------------------------------------ policies
    def observe_policy(self, kind: str, body: dict[str, Any], event_type: str | None) -> None:
        meta = body["metadata"]
        key = (kind, meta.get("namespace") or "", meta["name"])
        if event_type == "DELETED":
            self.policies.pop(key, None)
        else:
            self.policies[key] = body
        # ManagedSecrets bound to this policy re-evaluate
        for ms_key, ms in list(self.controller.index.items()):
            ref = (((ms.get("spec") or {}).get("rotation") or {}).get("policyRef") or {})
            if ref.get("name") == meta["name"] and (ref.get("kind") or "RotationPolicy") == kind:
                if kind == "ClusterRotationPolicy" or ms_key[0] == meta.get("namespace"):
                    self.controller.queue.add(ms_key, urgent=False)

    async def _policy(self, spec: ManagedSecretSpec, namespace: str) -> tuple[EffectivePolicy, str]:
        assert spec.rotation is not None
        ref = spec.rotation.policy_ref
        cluster = ref.kind == "ClusterRotationPolicy"
        key = (ref.kind, "" if cluster else namespace, ref.name)
        body = self.policies.get(key) or await self.gateway.get_object(ref.kind, ref.name, None if cluster else namespace)
        if body is None:
            raise RotationFailure(f"{ref.kind} '{ref.name}' does not exist")
        raw = body.get("spec") or {}
        try:
            RotationPolicySpec.model_validate(raw)
            return effective_policy(raw), f"{ref.kind}/{ref.name}"
        except ValidationError as exc:
            first = exc.errors()[0]
            raise RotationFailure(
                f"{ref.kind} '{ref.name}' is invalid: spec.{'.'.join(map(str, first['loc']))}: {first['msg']}"
            ) from None
        except RotationError as err:
            raise RotationFailure(f"{ref.kind} '{ref.name}': {err.message}") from None

    # ------------------------------------------------------------------ before the sync
    async def before_sync(
        self, body: dict[str, Any], spec: ManagedSecretSpec, handle: StoreHandle, fetched: Fetched, now: dt.datetime
    ) -> tuple[dict[str, bytes], dict[str, Any], Fetched]:
        """Start or resume a rotation when due. Returns (values to add, rotation context, fetched)."""
        meta = body["metadata"]
        status = body.get("status") or {}
        rot = dict(status.get("rotation") or {})
        ctx: dict[str, Any] = {"rotation": rot, "error": None, "policy": None}
        try:
            policy, policy_id = await self._policy(spec, meta["namespace"])
        except RotationFailure as err:
            ctx["error"] = err.message
            annotation = (meta.get("annotations") or {}).get(ROTATE)
            if annotation and annotation != rot.get("lastRotateRequest"):
                rot["lastRotateRequest"] = annotation
                rot["phase"] = FAILED
            return {}, ctx, fetched
        ctx["policy"], ctx["policy_id"] = policy, policy_id
        created = parse_time(meta.get("creationTimestamp")) or now
        inputs = RotationInputs(
            policy=policy,
            now=now,
            last_rotation=parse_time(rot.get("lastRotationTime")),
            created=created,
            expiry=_expiry_from_status(status),
            rotate_annotation=(meta.get("annotations") or {}).get(ROTATE),
            last_rotate_request=rot.get("lastRotateRequest"),
            phase=rot.get("phase") if rot.get("phase") != FAILED else None,
            due_at_in_progress=parse_time(rot.get("dueAt")),
            failed_attempts=int(rot.get("failedAttempts") or 0),
            last_failure_time=parse_time(rot.get("lastFailureTime")),
            backoff_seed=f"{meta['namespace']}/{meta['name']}",
        )
        try:
            decision = rotation_due(inputs)
        except RotationError as err:
            ctx["error"] = err.message
            return {}, ctx, fetched
        ctx["defer_until"] = decision.defer_until
        annotation = inputs.rotate_annotation
        if policy.strategy == "Observe":
            if annotation and annotation != rot.get("lastRotateRequest"):
                rot["lastRotateRequest"] = annotation
                ctx["error"] = "the policy's strategy is Observe: Rotor never writes to the source"
                rot["phase"] = FAILED
            return {}, ctx, fetched
        if not decision.act_now:
            return {}, ctx, fetched
        if not decision.resume:
            if handle.capabilities == Capabilities.READ_ONLY:
                ctx["error"] = (
                    f"the store {handle.id} has read-only credentials; rotation needs write access to the "
                    "source (grant create/update on the path)"
                )
                if annotation and annotation != rot.get("lastRotateRequest"):
                    rot["lastRotateRequest"] = annotation
                    rot["phase"] = FAILED
                return {}, ctx, fetched
            rot.update({
                "phase": "Pending",
                "trigger": decision.trigger,
                "dueAt": format_time(decision.due_at or now),
                "startedAt": format_time(now),
                "token": str(uuid.uuid4()),
                "baseVersions": self._base_versions(spec, fetched),
            })
            if decision.trigger == "Manual" and annotation:
                rot["lastRotateRequest"] = annotation
            log.info(
                "rotation of %s/%s starts (%s, due %s)", meta["namespace"], meta["name"], decision.trigger,
                rot["dueAt"], extra={"managedSecret": f"{meta['namespace']}/{meta['name']}",
                                     "trigger": decision.trigger, "strategy": policy.strategy},
            )
            await self._record(body, rot, policy, now, rotating=(True, decision.trigger or "Scheduled"))
        try:
            fetched = await self._advance(body, spec, handle, fetched, policy, rot, now)
        except (RotationFailure, ProviderError, RotationError) as err:
            message = getattr(err, "message", str(err))
            ctx["error"] = message
            rot["failedAttempts"] = int(rot.get("failedAttempts") or 0) + 1
            rot["lastFailureTime"] = format_time(now)
            if rot.get("phase") == "Pending" and not isinstance(err, ProviderError | RotationError):
                rot["phase"] = FAILED
            elif rot.get("phase") == "Pending" and getattr(err, "retryable", True) is False:
                rot["phase"] = FAILED
            ROTATION_TOTAL.labels(policy.strategy, "error").inc()
            log.warning("rotation of %s/%s failed: %s", meta["namespace"], meta["name"], message,
                        extra={"managedSecret": f"{meta['namespace']}/{meta['name']}"})
        return {}, ctx, fetched

    def _targets(self, spec: ManagedSecretSpec) -> list[Target]:
        assert spec.rotation is not None
        keys = list(spec.rotation.keys)
        out: list[Target] = []
        for key in keys:
            item = next((d for d in spec.data if d.secret_key == key), None)
            if item is not None:
                out.append(Target(key, item.remote_ref.key, item.remote_ref.property))
                continue
            extract = next((s.extract for s in spec.data_from if s.extract is not None), None)
            if extract is not None:
                out.append(Target(key, extract.key, key))
                continue
            raise RotationFailure(f"rotation key '{key}' is not produced by spec.data or a dataFrom.extract")
        return out

    def _base_versions(self, spec: ManagedSecretSpec, fetched: Fetched) -> dict[str, str]:
        out: dict[str, str] = {}
        for ref, secret in fetched.refs.items():
            if secret.version is not None:
                out[ref.key] = str(secret.version)
        for (mount, role), creds in fetched.databases.items():
            out[f"{mount}/{role}"] = str(creds.version or "")
        return out

    async def _record(
        self, body: dict[str, Any], rot: dict[str, Any], policy: EffectivePolicy, now: dt.datetime,
        rotating: tuple[bool, str] | None = None,
    ) -> None:
        """Write the phase to status before acting on it (crash safety)."""
        meta = body["metadata"]
        status = body.get("status") or {}
        patch: dict[str, Any] = {"rotation": rot}
        if rotating is not None:
            patch["conditions"] = set_condition(
                status.get("conditions") or [], "Rotating", rotating[0], rotating[1],
                f"rotation in progress (phase {rot.get('phase')})", int(meta.get("generation") or 0), now,
            )
        from rotor.services.sync import absorb

        absorb(body, await self.gateway.patch_status("ManagedSecret", meta["name"], meta["namespace"], patch), patch)

    # ------------------------------------------------------------------ the phases
    async def _advance(
        self, body: dict[str, Any], spec: ManagedSecretSpec, handle: StoreHandle, fetched: Fetched,
        policy: EffectivePolicy, rot: dict[str, Any], now: dt.datetime,
    ) -> Fetched:
        backend = handle.backend
        assert backend is not None
        who = f"{body['metadata']['namespace']}/{body['metadata']['name']}"
        if policy.strategy == "Provider":
            return await self._advance_provider(body, spec, handle, fetched, policy, rot, now)
        targets = self._targets(spec)
        provider_name = backend.provider.name
        if rot.get("phase") == "Pending":
            assert policy.generator_kind is not None
            new_values: dict[str, bytes] = {}
            for target in targets:
                if policy.generator_kind == "vaultPKI":
                    new_values.update(await self._issue_pki(handle, policy, target.secret_key))
                else:
                    new_values.update(generate(policy.generator_kind, policy.generator_params,
                                               key=target.secret_key, now=now))
            by_path: dict[str, list[Target]] = {}
            for target in targets:
                by_path.setdefault(target.remote_key, []).append(target)
            versions: dict[str, str] = {}
            for path, path_targets in by_path.items():
                current = await backend.read(RemoteRef(path))
                base = (rot.get("baseVersions") or {}).get(path)
                if base is not None and current.version is not None and str(current.version) != base:
                    # the source moved since Pending was recorded: our own write before a crash
                    versions[path] = str(current.version)
                    continue
                value = self._merged_value(current, path_targets, new_values)
                if provider_name == "aws-secretsmanager":
                    token = rot["token"]
                    version = await backend.call("stage", backend.provider.stage, path, value, token)  # type: ignore[attr-defined]
                    rot["phase"], rot["pendingVersion"] = "Staged", version
                    await self._record(body, rot, policy, now)
                    staged = await backend.call("read", backend.provider.read, RemoteRef(path, version))
                    rot["phase"] = "Verified"
                    await self._record(body, rot, policy, now)
                    audit("write-source", managed_secret=who, store=handle.id, key=path, version=version)
                    del staged
                    versions[path] = version
                else:
                    result = await backend.call("write", backend.provider.write, path, value, current.version)
                    audit("write-source", managed_secret=who, store=handle.id, key=path, version=result.version)
                    versions[path] = str(result.version or "")
            if provider_name != "aws-secretsmanager":
                rot["phase"], rot["pendingVersion"] = "Written", ",".join(versions.values())
                await self._record(body, rot, policy, now)
        if rot.get("phase") == "Staged":
            rot["phase"] = "Verified"
            await self._record(body, rot, policy, now)
        if rot.get("phase") == "Verified":
            for target in {t.remote_key for t in targets}:
                await backend.call("promote", backend.provider.promote, target, rot.get("pendingVersion"))  # type: ignore[attr-defined]
            rot["phase"] = "Promoted"
            await self._record(body, rot, policy, now)
        # the new value is now current at the source: read it fresh for this sync
        refs = list(fetched.refs)
        backend.forget(refs)
        fresh: dict[RemoteRef, RemoteSecret] = {}
        for ref in refs:
            fresh[ref] = await backend.read(ref)
        fetched.refs = fresh
        return fetched

    def _merged_value(
        self, current: RemoteSecret, targets: list[Target], new_values: Mapping[str, bytes]
    ) -> dict[str, Any] | str | bytes:
        whole = [t for t in targets if t.property is None]
        if whole:
            return new_values[whole[0].secret_key]
        base: dict[str, Any] = dict(current.data or {})
        if not base and current.raw:
            try:
                parsed = json.loads(current.raw)
                base = parsed if isinstance(parsed, dict) else {}
            except ValueError:
                base = {}
        for target in targets:
            assert target.property is not None
            for out_key, out_value in new_values.items():
                if out_key == target.secret_key:
                    base[target.property] = out_value.decode()
                elif out_key.startswith(target.secret_key) or out_key.endswith(".key"):
                    # companions (<key>.pub, tls.key) are stored beside the property
                    suffix = out_key[len(target.secret_key):] if out_key.startswith(target.secret_key) else ""
                    base[f"{target.property}{suffix}" if suffix else out_key] = out_value.decode()
        return base

    async def _issue_pki(self, handle: StoreHandle, policy: EffectivePolicy, key: str) -> dict[str, bytes]:
        from rotor.rotation.generators import certificate_key_name

        params = policy.generator_params
        assert handle.backend is not None
        issued = await handle.backend.extra(
            "issue", "issue_certificate", params.get("mount", "pki"), params["role"], params["commonName"],
            list(params.get("altNames") or []), params.get("ttl"),
        )
        return {key: issued["certificate"].encode(), certificate_key_name(key): issued["private_key"].encode()}

    async def _advance_provider(
        self, body: dict[str, Any], spec: ManagedSecretSpec, handle: StoreHandle, fetched: Fetched,
        policy: EffectivePolicy, rot: dict[str, Any], now: dt.datetime,
    ) -> Fetched:
        backend = handle.backend
        assert backend is not None
        who = f"{body['metadata']['namespace']}/{body['metadata']['name']}"
        if policy.provider_kind == "vaultDatabaseStaticRole":
            db = next((s.vault_database for s in spec.data_from if s.vault_database is not None), None)
            if db is None:
                raise RotationFailure("vaultDatabaseStaticRole needs a dataFrom.vaultDatabase in the ManagedSecret")
            if rot.get("phase") == "Pending":
                current = await backend.extra("read", "read_database_credentials", db.mount, db.role)
                base = (rot.get("baseVersions") or {}).get(f"{db.mount}/{db.role}")
                if base is None or str(current.version or "") == base:
                    await backend.extra("rotate", "rotate_database_role", db.mount, db.role)
                    audit("rotate-source", managed_secret=who, store=handle.id, key=f"{db.mount}/rotate-role/{db.role}")
                rot["phase"] = "Written"
                await self._record(body, rot, policy, now)
            creds = await backend.extra("read", "read_database_credentials", db.mount, db.role)
            fetched.databases[(db.mount, db.role)] = creds
            return fetched
        if policy.provider_kind == "awsRotateSecret":
            targets = {t.remote_key for t in self._targets(spec)} if spec.rotation and spec.rotation.keys else {
                r.key for r in fetched.refs
            }
            if rot.get("phase") == "Pending":
                for key in sorted(targets):
                    await backend.call("rotate", backend.provider.rotate, key, rot["token"])  # type: ignore[attr-defined]
                    audit("rotate-source", managed_secret=who, store=handle.id, key=key, version=rot["token"])
                rot["phase"], rot["pendingVersion"] = "Written", rot["token"]
                await self._record(body, rot, policy, now)
            refs = list(fetched.refs)
            backend.forget(refs)
            fetched.refs = {ref: await backend.read(ref) for ref in refs}
            return fetched
        raise RotationFailure(f"unknown provider rotation {policy.provider_kind!r}")

    # ------------------------------------------------------------------ grace keys
    async def with_grace_keys(
        self, body: dict[str, Any], spec: ManagedSecretSpec, data: dict[str, bytes], ctx: dict[str, Any],
        now: dt.datetime,
    ) -> dict[str, bytes]:
        policy: EffectivePolicy | None = ctx.get("policy")
        if policy is None or spec.rotation is None:
            return data
        rot = ctx["rotation"]
        suffix = policy.previous_key_suffix
        target = spec.target.name or body["metadata"]["name"]
        actual = self.controller.secret_cache.get((body["metadata"]["namespace"], target))
        if actual is None:
            actual = await self.gateway.get_secret(body["metadata"]["namespace"], target)
        from rotor.kube.gateway import decode_data

        current = decode_data((actual or {}).get("data"))
        rotated = self._rotated_keys(spec, data)
        out = dict(data)
        retain = parse_time(rot.get("previousRetainedUntil"))
        arriving = rot.get("phase") not in (None, COMPLETED, FAILED)
        if arriving and policy.grace_period > dt.timedelta(0):
            retain = now + policy.grace_period
            ctx["retain_until"] = retain
        if retain is None or now >= retain:
            return out
        for key in rotated:
            new = data.get(key)
            old = current.get(key)
            if old is not None and new is not None and old != new:
                out[f"{key}{suffix}"] = old  # the value the Secret held when the new one arrived
            elif f"{key}{suffix}" in current:
                out[f"{key}{suffix}"] = current[f"{key}{suffix}"]  # kept through the grace period
        return out

    def _rotated_keys(self, spec: ManagedSecretSpec, data: Mapping[str, bytes]) -> list[str]:
        assert spec.rotation is not None
        keys = list(spec.rotation.keys) or [k for k in data]
        extra = [k for base in keys for k in data if k != base and (k == f"{base}.pub" or k == f"{base}.key")]
        return keys + extra

    # ------------------------------------------------------------------ after the sync
    async def after_sync(
        self,
        body: dict[str, Any],
        spec: ManagedSecretSpec,
        data: Mapping[str, bytes],
        ctx: dict[str, Any],
        now: dt.datetime,
        written: bool,
        conditions: list[dict[str, Any]],
        fetched: Fetched | None = None,
        handle: StoreHandle | None = None,
    ) -> tuple[dict[str, Any], dt.datetime | None]:
        meta = body["metadata"]
        generation = int(meta.get("generation") or 0)
        status = body.get("status") or {}
        extra: dict[str, Any] = {}
        if spec.rotation is None:
            return {"conditions": conditions}, None
        rot = dict(ctx.get("rotation") or {})
        policy: EffectivePolicy | None = ctx.get("policy")
        error: str | None = ctx.get("error")
        old_rotating = get_condition(status.get("conditions"), "Rotating") or {}
        wake: list[dt.datetime] = []
        if rot.get("phase") not in (None, COMPLETED, FAILED) and error is None and policy is not None:
            # the Secret now holds what the source holds: the rotation is complete
            rot["phase"] = COMPLETED
            rot["lastRotationTime"] = format_time(now)
            rot["failedAttempts"] = 0
            rot.pop("lastFailureTime", None)
            until = ctx.get("retain_until") or retained_until(now, policy.grace_period)
            rot["previousRetainedUntil"] = format_time(until) if until else None
            started = parse_time(rot.get("startedAt"))
            ROTATION_TOTAL.labels(policy.strategy, "success").inc()
            if started is not None:
                ROTATION_DURATION.observe(max(0.0, (now - started).total_seconds()))
            conditions = set_condition(conditions, "Rotating", False, "Succeeded",
                                       f"rotated ({rot.get('trigger')}); the Secret holds the new value",
                                       generation, now)
            await self.gateway.post_event(body, type_="Normal", reason="Rotated",
                                          note=f"rotation ({rot.get('trigger')}) completed", action="Rotate")
        elif error is not None:
            conditions = set_condition(conditions, "Rotating", False, "Failed", error, generation, now)
            if old_rotating.get("reason") != "Failed" or old_rotating.get("message") != error:
                await self.gateway.post_event(body, type_="Warning", reason="RotationFailed", note=error,
                                              action="Rotate")
        elif not old_rotating:
            conditions = set_condition(conditions, "Rotating", False, "Succeeded" if rot.get("lastRotationTime")
                                       else "Scheduled", "no rotation in progress", generation, now)
        if policy is not None:
            last = parse_time(rot.get("lastRotationTime"))
            created = parse_time(meta.get("creationTimestamp")) or now
            source_created = None
            if fetched is not None:
                times = [s.created for s in fetched.refs.values() if s.created is not None]
                times += [s.created for s in fetched.databases.values() if s.created is not None]
                source_created = max(times) if times else None
            observed = await self._observed(spec, handle, fetched) if policy.strategy == "Observe" else None
            expiry = compute_expiry(
                data=data,
                last_rotation=last if policy.strategy != "Observe" else None,
                source_created=source_created or (observed.last_changed if observed else None) or created,
                max_age=policy.max_age,
                rotate_before=policy.rotate_before,
                provider_expiry=observed.next_rotation if observed and policy.strategy != "Observe" else None,
            )
            if expiry is not None:
                extra["expiry"] = {
                    "notAfter": format_time(expiry.not_after),
                    "source": expiry.source,
                    "renewalTime": format_time(expiry.renewal_time),
                }
                if expiry.renewal_time > now:
                    wake.append(expiry.renewal_time)
                elif expiry.not_after > now:
                    wake.append(expiry.not_after)
            expiring, reason, message = expiring_condition(
                strategy=policy.strategy, expiry=expiry, now=now, observed=observed, max_age=policy.max_age
            )
            old_expiring = get_condition(status.get("conditions"), "Expiring") or {}
            conditions = set_condition(conditions, "Expiring", expiring, reason, message, generation, now)
            if expiring and (old_expiring.get("status") != "True" or old_expiring.get("reason") != reason):
                await self.gateway.post_event(body, type_="Warning", reason="Expiring", note=message, action="Observe")
            try:
                nxt = next_rotation(policy, last_rotation=last, created=created, now=now)
            except RotationError:
                nxt = None
            if policy.strategy in ("Generate", "Provider") and expiry is not None:
                nxt = min(filter(None, [nxt, expiry.renewal_time]))  # type: ignore[type-var]
            if policy.strategy == "Observe":
                nxt = None
            rot["nextRotationTime"] = format_time(nxt) if nxt else None
            if nxt is not None:
                wake.append(max(nxt, now + dt.timedelta(seconds=1)))
            retain = parse_time(rot.get("previousRetainedUntil"))
            if retain is not None:
                if retain > now:
                    wake.append(retain)
                elif any(k.endswith(policy.previous_key_suffix) for k in data):
                    wake.append(now + dt.timedelta(seconds=1))
            if ctx.get("defer_until"):
                wake.append(ctx["defer_until"])
            if error is not None and rot.get("phase") not in (None, COMPLETED, FAILED):
                wake.append(now + dt.timedelta(seconds=min(300, 5 * 2 ** min(int(rot.get("failedAttempts") or 1), 6))))
        rot.pop("baseVersions", None) if rot.get("phase") in (COMPLETED, FAILED) else None
        rot = {k: v for k, v in rot.items() if v is not None}
        extra["rotation"] = rot
        extra["conditions"] = conditions
        future = [w for w in wake if w > now - dt.timedelta(seconds=1)]
        return extra, min(future) if future else None

    async def _observed(
        self, spec: ManagedSecretSpec, handle: StoreHandle | None, fetched: Fetched | None
    ) -> ObservedState | None:
        if handle is None or handle.backend is None or fetched is None or not fetched.refs:
            return None
        ref = next(iter(fetched.refs))
        try:
            meta = await handle.backend.describe(ref.key)
        except ProviderError:
            return None
        stages = {k: tuple(v) for k, v in (meta.versions or {}).items()} if handle.provider_kind == "aws" else {}
        return ObservedState(
            created_time=meta.created,
            updated_time=meta.updated,
            last_rotated=meta.last_rotated,
            rotation_enabled=bool(meta.rotation_enabled),
            next_rotation=meta.next_rotation,
            version_stages=stages,
        )


__all__ = ["RotationService", "time"]

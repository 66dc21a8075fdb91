"""Rotation: decide (pure checks in rotor.rotation), then drive the crash-safe phases, each
recorded in status before the next step runs. The new value is written to the source first;
Kubernetes gets it by the normal sync. Observe never writes.

Phases (status.rotation.phase, the one state machine of ``rotor.rotation.phases``):
- written in place (Vault KV, Parameter Store, Vault database, AWS RotateSecret):
  Pending -> Written -> Synced -> Completed
- AWS Secrets Manager (Generate):  Pending -> Staged -> Verified -> Promoted -> Synced -> Completed

The sync of the Secret happens after the last source phase, in the same reconcile; ``Synced`` is
recorded right after the Secret write, ``Completed`` together with the sync's status.

Before any source action, the Secret plan is asked whether the Secret write that follows can
happen (``secret_blocked``). If it cannot (someone else's Secret, Rotor's label removed, a Merge
target missing), nothing is written to the source: Rotating=False with reason SecretConflict and
an Event, and the rotation (started or not) waits, resumable, until the Secret can be written.

Crash safety. Before anything is written to the source, status records the source versions the
rotation starts from (``baseVersions``) and a keyed digest of the new rotated properties
(``pendingVersion: hmac:...``). A restarted operator reads the source again: if the path holds
the recorded digest, the write happened and is not repeated; otherwise it writes again. Vault KV
v2 writes use check-and-set on the version read, so a concurrent writer makes the write fail
(and the rotation retry from the new version) instead of being overwritten. AWS stages are keyed
by the rotation's ClientRequestToken, so a resumed stage never creates a second version.

The previous value for the grace period (``<key><previousKeySuffix>`` until
``previousRetainedUntil``) is the value the rotation replaced, never what the Secret happens to
hold (someone may have edited it): what the source held before this reconcile's write, or, after a
restart or if the Secret was deleted, the source version the rotation recorded as replaced
(``baseVersions``, kept through the grace period: Vault KV v2 version n-1, the AWS version that was
AWSCURRENT). Only a source without versions (KV v1, database roles) falls back to the Secret: its
value when the new one arrived, then the grace key already written.

createIfMissing (trigger ``Missing``). A remote key the policy generates that does not exist at
the source (the sync's read found KeyNotFound) starts a rotation like any other, claimed the same
way, with the same phases written in place for every backend (``Pending -> Written -> Synced ->
Completed``: a created value is current at once, there is nothing to stage or promote). In
Pending, what is about to be created is recorded (its digest) before the create, and the create
never overwrites (``Creator``: Vault KV v2 check-and-set 0, AWS CreateSecret with the rotation's
token, SSM PutParameter without Overwrite). Whatever exists at the key when it is looked at or
created (our own earlier create after a restart, or someone else's value) is adopted, never
replaced. There is no previous value and no grace period.

Test-only fault hooks, inert unless their variable is set (the crash-safety tests use them):
- ``ROTOR_FAULT_EXIT_AFTER_PHASE=<point>``: the process exits (``os._exit(137)``, as if killed)
  right after that phase is recorded in status. Besides the phases, two points lie inside
  Pending: ``BeforeWrite`` (the new value's digest is recorded, nothing written yet) and
  ``AfterWrite`` (written or staged at the source, the next phase not yet recorded).
- ``ROTOR_FAULT_HOLD_AFTER_PHASE=<point>`` with ``ROTOR_FAULT_HOLD_FILE=<path>``: at that point,
  wait (at most 120 s) until the file exists, so a test can act in between.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from rotor.api.managedsecret import ManagedSecretSpec
from rotor.api.names import ROTATE_ANNOTATION
from rotor.api.rotationpolicy import RotationPolicySpec
from rotor.api.status import FailureCause, RotationPhase
from rotor.clock import Clock, format_time, parse_time
from rotor.conditions import set_condition
from rotor.kube.gateway import KubeError, KubeGateway, decode_data
from rotor.observability.logging import audit
from rotor.observability.metrics import ROTATION_CLAIMS_LOST, ROTATION_DURATION, ROTATION_TOTAL
from rotor.providers.base import (
    AccessDenied,
    Capabilities,
    KeyNotFound,
    ProviderError,
    RemoteRef,
    RemoteSecret,
    SelfRotating,
    WriteConflict,
    WriteDenied,
)
from rotor.rotation.backoff import retry_delay
from rotor.rotation.checks import MISSING, PENDING_STALLED_AFTER, ObservedState
from rotor.rotation.decide import Action, RotationObserved, decide
from rotor.rotation.errors import RotationError
from rotor.rotation.expiry import Expiry
from rotor.rotation.generators import certificate_key_name
from rotor.rotation.phases import grace_keys, in_progress, retained_until
from rotor.rotation.presets import EffectivePolicy, effective_policy
from rotor.rotation.report import (
    FAILED,
    RotationDone,
    RotationReport,
    RotationSeen,
)
from rotor.rotation.writeback import (
    DIGEST_PREFIX,
    MAX_PATHS,
    Target,
    decode_digests,
    digest,
    digest_length,
    encode_digests,
    merged_value,
    rotated_keys,
    rotated_view,
    same_digest,
    value_view,
    written_properties,
)
from rotor.services.backend import Backend
from rotor.services.cpu import INLINE, CpuPool
from rotor.services.ports import ObjectIndex, policy_key_of
from rotor.services.state import Fetched, absorb
from rotor.services.stores import StoreHandle
from rotor.sync.assemble import assemble_values
from rotor.sync.sources import source_of_key
from rotor.values.errors import ValueFailure

log = logging.getLogger("rotor.rotation")

CURRENT, PENDING_STAGE = "AWSCURRENT", "AWSPENDING"
#: how often a rotation the backend runs itself (AWS RotateSecret) is looked at while it runs
PROVIDER_POLL = dt.timedelta(seconds=10)

#: a pending write recorded by another operator is left to it this long after its claim (it may be
#: writing right now); after that, the rotation is taken over (the writer is presumed gone)
CLAIM_TTL = dt.timedelta(seconds=30)
#: a claim lost to another writer: look again this soon (the other writer is probably finishing)
CLAIM_LOST_RECHECK = dt.timedelta(seconds=5)
#: conditional status writes retried when only something besides status.rotation changed
CLAIM_ATTEMPTS = 3

FAULT_EXIT = "ROTOR_FAULT_EXIT_AFTER_PHASE"
FAULT_HOLD = "ROTOR_FAULT_HOLD_AFTER_PHASE"
FAULT_HOLD_FILE = "ROTOR_FAULT_HOLD_FILE"


@dataclass
class RotationContext:
    """What one reconcile's rotation step decided and did, handed from before the Secret write
    to after it."""

    #: status.rotation as it will be written (camelCase keys; None removes a key)
    rotation: dict[str, Any]
    policy: EffectivePolicy | None = None
    policy_id: str = ""
    #: why the rotation failed or waits, for the Rotating condition (never a value)
    error: str | None = None
    cause: FailureCause | None = None
    #: the source actions of this reconcile ran (the source holds the new value)
    advanced: bool = False
    defer_until: dt.datetime | None = None
    retain_until: dt.datetime | None = None
    #: the Secret cannot be written (its plan is a conflict): the source was not touched
    blocked: str | None = None
    #: what the source held before this reconcile's source actions
    before: Fetched | None = None
    #: the credentials cannot write what the rotation writes (read-only store, a denied path)
    forbidden: bool = False


class RotationFailure(Exception):
    """A rotation step failed; ``final`` means retrying the same rotation cannot help."""

    def __init__(self, message: str, *, final: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.final = final


class RotationClaimLost(Exception):
    """A conditional status write found status.rotation changed since this reconcile read it
    (another operator, or this one's newer write not yet seen): nothing more is done in this
    reconcile, the source is not touched, and the object is looked at again at ``retry_at``
    (None: it is gone)."""

    def __init__(self, retry_at: dt.datetime | None) -> None:
        super().__init__("the rotation was advanced by another writer")
        self.retry_at = retry_at


class RotationWaiting(Exception):
    """The backend is still rotating (AWS RotateSecret): look again at ``until``."""

    def __init__(self, until: dt.datetime) -> None:
        super().__init__("rotation in progress at the backend")
        self.until = until


def _expiry_from_status(status: Mapping[str, Any]) -> Expiry | None:
    exp = status.get("expiry") or {}
    not_after, renewal = parse_time(exp.get("notAfter")), parse_time(exp.get("renewalTime"))
    if not_after is None or renewal is None:
        return None
    return Expiry(not_after, exp.get("source") or "Policy", renewal)


async def _fault_hooks(phase: str | None) -> None:
    """Test-only: see the module docstring. Inert unless the variables are set."""
    if not phase:
        return
    if os.environ.get(FAULT_EXIT) == phase:
        log.warning("test fault hook: exiting after recording phase %s", phase)
        logging.shutdown()
        os._exit(137)
    hold_file = os.environ.get(FAULT_HOLD_FILE)
    if os.environ.get(FAULT_HOLD) == phase and hold_file:
        log.warning("test fault hook: holding after phase %s until %s exists", phase, hold_file)
        for _ in range(1200):
            if await asyncio.to_thread(Path(hold_file).exists):
                return
            await asyncio.sleep(0.1)


class RotationService:
    """Starts and drives rotations. Holds only what it uses: the gateway (status and Events), the
    clock, the index (policies and the current Secret), the hash key and the CPU pool."""

    def __init__(
        self,
        gateway: KubeGateway,
        clock: Clock,
        index: ObjectIndex,
        *,
        hash_key: bytes,
        cpu: CpuPool = INLINE,
        writer: str | None = None,
    ) -> None:
        self.gateway = gateway
        self.clock = clock
        self.index = index
        self.hash_key = hash_key
        self.cpu = cpu
        #: who claims the phases this process records (status.rotation.claimedBy)
        self.writer = writer or default_writer()

    async def _policy(self, spec: ManagedSecretSpec, namespace: str) -> tuple[EffectivePolicy, str]:
        assert spec.rotation is not None
        ref = spec.rotation.policy_ref
        cluster = ref.kind == "ClusterRotationPolicy"
        key = policy_key_of(namespace, ref.kind, ref.name)
        body = self.index.policy(key) or await self.gateway.get_object(
            ref.kind, ref.name, None if cluster else namespace
        )
        if body is None:
            where = "" if cluster else f" in namespace {namespace}"
            raise RotationFailure(f"{ref.kind} '{ref.name}' does not exist{where}", final=True)
        raw = body.get("spec") or {}
        try:
            RotationPolicySpec.model_validate(raw)
            return effective_policy(raw), f"{ref.kind}/{ref.name}"
        except ValidationError as exc:
            first = exc.errors()[0]
            raise RotationFailure(
                f"{ref.kind} '{ref.name}' is invalid: spec.{'.'.join(map(str, first['loc']))}: {first['msg']}",
                final=True,
            ) from None
        except RotationError as err:
            raise RotationFailure(f"{ref.kind} '{ref.name}': {err.message}", final=True) from None

    async def creatable(self, spec: ManagedSecretSpec, namespace: str) -> frozenset[str]:
        """The remote keys a missing value of which the sync leaves to this service to create
        (createIfMissing with strategy Generate): the keys the rotation writes. Empty when the
        policy does not create, or cannot be used (the rotation step then says why)."""
        if spec.rotation is None:
            return frozenset()
        try:
            policy, _ = await self._policy(spec, namespace)
            if not policy.create_if_missing or policy.strategy != "Generate":
                return frozenset()
            return frozenset(t.remote_key for t in self._targets(spec, policy))
        except RotationFailure:
            return frozenset()

    # ------------------------------------------------------------------ before the sync
    async def before_sync(
        self,
        body: dict[str, Any],
        spec: ManagedSecretSpec,
        handle: StoreHandle,
        fetched: Fetched,
        now: dt.datetime,
        *,
        secret_blocked: Callable[[], Awaitable[str | None]] | None = None,
    ) -> tuple[RotationContext, Fetched]:
        """Start or resume a rotation when due. Before any source action, ``secret_blocked`` asks
        the Secret plan whether the Secret write that follows can happen (None) or not (why): if
        not, nothing is done at the source and the rotation waits, resumable. Returns the rotation
        context and what to sync."""
        meta = body["metadata"]
        status = body.get("status") or {}
        rot = dict(status.get("rotation") or {})
        annotation = (meta.get("annotations") or {}).get(ROTATE_ANNOTATION)
        ctx = RotationContext(rotation=rot)
        seed = f"{meta['namespace']}/{meta['name']}"

        try:
            policy, policy_id = await self._policy(spec, meta["namespace"])
            problem = None
        except RotationFailure as err:
            policy, problem = None, err.message
            ref = spec.rotation.policy_ref if spec.rotation is not None else None
            policy_id = f"{ref.kind}/{ref.name}" if ref is not None else "the policy"
        ctx.policy, ctx.policy_id = policy, policy_id
        targets_problem = None
        if policy is not None and policy.strategy == "Generate":
            try:
                self._targets(spec, policy)
            except RotationFailure as err:
                targets_problem = err.message
        observed = RotationObserved(
            now=now,
            policy=policy,
            policy_problem=problem,
            policy_id=policy_id,
            phase=rot.get("phase"),
            last_rotation=parse_time(rot.get("lastRotationTime")),
            last_rotate_request=rot.get("lastRotateRequest"),
            rotate_annotation=annotation,
            due_at_in_progress=parse_time(rot.get("dueAt")),
            failed_attempts=int(rot.get("failedAttempts") or 0),
            last_failure_time=parse_time(rot.get("lastFailureTime")),
            created=_value_created(meta, fetched, now),
            expiry=_expiry_from_status(status),
            seed=seed,
            store_id=handle.id,
            read_only_store=handle.capabilities == Capabilities.READ_ONLY,
            targets_problem=targets_problem,
            secret_blocked=None,
            missing=tuple(sorted({ref.key for ref in fetched.missing})),
            create_problem=(
                None
                if not fetched.missing or (handle.backend is not None and handle.backend.creates)
                else f"createIfMissing: the store {handle.id} cannot create a missing key without the risk "
                "of overwriting one (its provider has no create-only write)"
            ),
        )
        plan = decide(observed)
        if plan.action == Action.START and policy is not None and policy.strategy == "Generate":
            # about to write the source: the credentials must be able to write exactly these paths
            denied = await self._write_denied(spec, policy, handle, creating=plan.trigger == MISSING)
            if denied is not None:
                plan = decide(replace(observed, write_denied=denied))
        if plan.action in (Action.START, Action.RESUME) and secret_blocked is not None:
            # about to act on the source: the Secret write that follows must be possible
            blocked = await secret_blocked()
            if blocked is not None:
                plan = decide(replace(observed, secret_blocked=blocked))
                ctx.blocked = blocked
        ctx.defer_until = plan.defer_until
        ctx.forbidden = plan.cause == FailureCause.READ_ONLY_STORE
        if plan.action == Action.NOTHING:
            return ctx, await self._not_behind(spec, policy, handle, rot, fetched)
        if plan.action in (Action.REFUSE, Action.WAIT_FOR_SECRET):
            # nothing can start, or it waits for its Secret: say why
            ctx.error, ctx.cause = plan.message, plan.cause
            if plan.action == Action.WAIT_FOR_SECRET:
                return ctx, fetched
            assert plan.cause is not None
            rot["failureCause"] = plan.cause.value
            if plan.answers_request:
                rot["lastRotateRequest"] = annotation
            if plan.counts_as_failure:
                # a pending manual request is answered as Failed; a due rotation that cannot start
                # counts as a failed attempt and backs off
                failed = int(rot.get("failedAttempts") or 0) + 1
                rot.update({"phase": FAILED, "failedAttempts": failed, "lastFailureTime": format_time(now)})
                self.stamp(rot, now)
                ctx.defer_until = now + retry_delay(failed, seed=seed)
            if fetched.missing and plan.counts_as_failure:
                # the sync fails (the key is missing): its status does not carry status.rotation,
                # so the refused create is recorded here, with its back-off
                await self._record_failed(body, rot, now, plan.message or "createIfMissing refused")
            return ctx, fetched
        if plan.action == Action.START:
            rot.update(
                {
                    "phase": RotationPhase.PENDING.value,
                    "trigger": plan.trigger,
                    "dueAt": format_time(plan.due_at or now),
                    "startedAt": format_time(now),
                    "token": rotation_token(meta, rot, plan.trigger, annotation, plan.due_at or now),
                    "baseVersions": self._base_versions(fetched),
                    "pendingVersion": None,
                }
            )
            if plan.answers_request:
                rot["lastRotateRequest"] = annotation
            log.info(
                "rotation of %s/%s starts (%s, due %s)",
                meta["namespace"],
                meta["name"],
                plan.trigger,
                rot["dueAt"],
                extra={
                    "managedSecret": f"{meta['namespace']}/{meta['name']}",
                    "trigger": plan.trigger,
                    "strategy": policy.strategy if policy else None,
                },
            )
            await self._record(body, rot, now, rotating=(True, plan.trigger or "Scheduled"))
        elif plan.answers_request:
            rot["lastRotateRequest"] = annotation
        assert policy is not None
        # what the source held before this reconcile's source actions: the values being replaced
        ctx.before = Fetched(dict(fetched.refs), dict(fetched.found), dict(fetched.databases))
        try:
            fetched = await self._advance(body, spec, handle, fetched, policy, rot, now)
            ctx.advanced = True
        except RotationWaiting as waiting:
            ctx.defer_until = waiting.until
        except (RotationFailure, ProviderError, RotationError) as err:
            message = self._failure_message(err, handle)
            ctx.error, ctx.cause = message, FailureCause.SOURCE
            ctx.forbidden = isinstance(err, AccessDenied)
            rot["failedAttempts"] = int(rot.get("failedAttempts") or 0) + 1
            rot["lastFailureTime"] = format_time(now)
            rot["failureCause"] = FailureCause.SOURCE.value
            pending = rot.get("phase") == RotationPhase.PENDING
            final = (
                getattr(err, "final", False)
                or (isinstance(err, ProviderError) and not err.retryable and pending)
                or isinstance(err, RotationError)
            )
            if final and pending:
                rot["phase"] = FAILED  # nothing was written: the next due date starts afresh
            ROTATION_TOTAL.labels(policy.strategy, "error").inc()
            log.warning(
                "rotation of %s/%s failed: %s",
                meta["namespace"],
                meta["name"],
                message,
                extra={"managedSecret": f"{meta['namespace']}/{meta['name']}"},
            )
            if fetched.missing:
                await self._record_failed(body, rot, now, message)
        return ctx, fetched

    async def record_synced(self, body: dict[str, Any], ctx: RotationContext, now: dt.datetime) -> None:
        """The Secret now holds the rotated value: record ``Synced`` before completing."""
        rot = ctx.rotation
        running = ctx.advanced and ctx.error is None and in_progress(rot.get("phase"))
        if running and rot.get("phase") != RotationPhase.SYNCED:
            rot["phase"] = RotationPhase.SYNCED.value
            await self._record(body, rot, now)

    async def _write_denied(
        self, spec: ManagedSecretSpec, policy: EffectivePolicy, handle: StoreHandle, *, creating: bool = False
    ) -> str | None:
        """Where the store judges write access per path (Vault's sys/capabilities-self): which of
        the paths this rotation writes its credentials cannot write, named with the capability
        each lacks. None when every path can be written, or the store cannot tell in advance."""
        backend = handle.backend
        if backend is None or not backend.checks_writes:
            return None
        paths = sorted({t.remote_key for t in self._targets(spec, policy)})
        try:
            await backend.check_write(paths, creating=creating)
        except WriteDenied as err:
            return err.message
        return None

    @staticmethod
    def _failure_message(err: Exception, handle: StoreHandle) -> str:
        message = str(getattr(err, "message", None) or err)
        if isinstance(err, AccessDenied):
            return (
                f"{message}. Rotation needs write access to the source: the credentials of {handle.id} "
                "must allow writing the path"
            )
        return message

    def _targets(self, spec: ManagedSecretSpec, policy: EffectivePolicy | None = None) -> list[Target]:
        assert spec.rotation is not None
        keys = list(spec.rotation.keys)
        out: list[Target] = []
        for key in keys:
            source = source_of_key(spec, key)
            if source is None:
                raise RotationFailure(
                    f"rotation key '{key}' is not produced by spec.data or a dataFrom.extract", final=True
                )
            if source.via == "data" and source.version:
                raise RotationFailure(
                    f"rotation key '{key}' reads a pinned version ({source.version}) of "
                    f"'{source.remote_key}': a rotated key must follow the current version",
                    final=True,
                )
            out.append(Target(key, source.remote_key, source.property))
        if len({t.remote_key for t in out}) > MAX_PATHS:
            raise RotationFailure(
                f"one rotation writes to at most {MAX_PATHS} remote keys; split the ManagedSecret", final=True
            )
        if policy is not None and policy.strategy == "Generate":
            for target in out:
                try:
                    written_properties(policy.generator_kind, target)
                except RotationError as err:
                    raise RotationFailure(err.message, final=True) from None
        return out

    def _base_versions(self, fetched: Fetched) -> dict[str, str]:
        out: dict[str, str] = {}
        for ref, secret in fetched.refs.items():
            if secret.version is not None:
                out[ref.key] = str(secret.version)
        for (mount, role), creds in fetched.databases.items():
            out[f"{mount}/{role}"] = str(creds.version or "")
        return out

    def stamp(self, rot: dict[str, Any], now: dt.datetime) -> None:
        """This process records the phase: the claim a conditional write makes."""
        rot["claimedBy"], rot["claimedAt"] = self.writer, format_time(now)

    def _held_elsewhere(self, rot: Mapping[str, Any], now: dt.datetime) -> dt.datetime | None:
        """Until when another writer's recent claim of this rotation is left to it (None: it is
        this process's own, or old enough to be taken over)."""
        holder, at = rot.get("claimedBy"), parse_time(rot.get("claimedAt"))
        if not holder or holder == self.writer or at is None:
            return None
        until = at + CLAIM_TTL
        return until if now < until and at < now + CLAIM_TTL else None

    async def _record(
        self,
        body: dict[str, Any],
        rot: dict[str, Any],
        now: dt.datetime,
        rotating: tuple[bool, str] | None = None,
    ) -> None:
        """Claim the phase in status before acting on it (crash safety, and a second operator
        loses the claim instead of acting too)."""
        meta = body["metadata"]
        status = body.get("status") or {}
        self.stamp(rot, now)
        patch: dict[str, Any] = {"rotation": rot}
        if rotating is not None:
            patch["conditions"] = set_condition(
                status.get("conditions") or [],
                "Rotating",
                rotating[0],
                rotating[1],
                f"rotation in progress (phase {rot.get('phase')})",
                int(meta.get("generation") or 0),
                now,
            )
        await self._claim(body, patch, now, str(rot.get("phase")))
        await _fault_hooks(rot.get("phase"))

    async def _record_failed(
        self, body: dict[str, Any], rot: dict[str, Any], now: dt.datetime, message: str
    ) -> None:
        """A create (createIfMissing) that failed or was refused: the rotation's state, counted
        for the back-off, and Rotating=False Failed, claimed like a phase (the sync that follows
        fails, and a failed sync writes no status.rotation)."""
        meta = body["metadata"]
        self.stamp(rot, now)
        conditions = set_condition(
            (body.get("status") or {}).get("conditions") or [],
            "Rotating",
            False,
            "Failed",
            message,
            int(meta.get("generation") or 0),
            now,
        )
        await self._claim(body, {"rotation": rot, "conditions": conditions}, now, str(rot.get("phase")))

    async def write_status(self, body: dict[str, Any], status: dict[str, Any], now: dt.datetime) -> None:
        """The sync's status write of a ManagedSecret that rotates: conditional like every phase
        claim, so it never overwrites a rotation another writer advanced meanwhile."""
        phase = (status.get("rotation") or {}).get("phase")
        await self._claim(body, status, now, str(phase or "none"))

    async def _claim(self, body: dict[str, Any], patch: dict[str, Any], now: dt.datetime, phase: str) -> None:
        """Write ``patch`` to status on condition that the object is still at the resourceVersion
        this reconcile knows (optimistic concurrency). On a conflict it is read again: if only
        something besides status.rotation changed (the spec, an annotation, another condition), the
        write is retried on the new version; if status.rotation changed, the claim is lost
        (``RotationClaimLost``): ``body`` becomes the stored object, and when another writer made
        the change, a Warning Event and rotor_rotation_claims_lost_total say so."""
        meta = body["metadata"]
        name, namespace = meta["name"], meta["namespace"]
        base = (body.get("status") or {}).get("rotation") or {}
        for _ in range(CLAIM_ATTEMPTS):
            try:
                stored = await self.gateway.patch_status(
                    "ManagedSecret", name, namespace, patch, resource_version=meta.get("resourceVersion")
                )
            except KubeError as err:
                if err.status != 409:
                    raise
            else:
                if stored is None:
                    raise RotationClaimLost(None)  # deleted
                absorb(body, stored, patch)
                return
            fresh = await self.gateway.get_object("ManagedSecret", name, namespace)
            if fresh is None:
                raise RotationClaimLost(None)
            rotation = (fresh.get("status") or {}).get("rotation") or {}
            if rotation != base:
                body.clear()
                body.update(fresh)
                holder = rotation.get("claimedBy")
                if holder and holder != self.writer:
                    await self._report_lost(body, holder, rotation, phase)
                raise RotationClaimLost(now + CLAIM_LOST_RECHECK)
            meta["resourceVersion"] = fresh["metadata"].get("resourceVersion")
        # the object keeps changing under us: look again shortly, from what is stored
        raise RotationClaimLost(now + CLAIM_LOST_RECHECK)

    async def _report_lost(
        self, body: dict[str, Any], holder: str, rotation: Mapping[str, Any], phase: str
    ) -> None:
        ROTATION_CLAIMS_LOST.labels(phase).inc()
        note = (
            f"another operator ({holder}) advanced this rotation (phase {rotation.get('phase')}) while "
            f"this one ({self.writer}) was recording phase {phase}; this one backed off without writing "
            "the source. Two operators serve this ManagedSecret: run one leader per shard (leader "
            "election on one --lease-name, no --no-leader-elect replicas next to it)"
        )
        log.warning("rotation of %s: %s", _who(body), note, extra={"managedSecret": _who(body)})
        await self.gateway.post_event(
            body, type_="Warning", reason="RotationClaimLost", note=note, action="Rotate"
        )

    # ------------------------------------------------------------------ the phases
    async def _advance(
        self,
        body: dict[str, Any],
        spec: ManagedSecretSpec,
        handle: StoreHandle,
        fetched: Fetched,
        policy: EffectivePolicy,
        rot: dict[str, Any],
        now: dt.datetime,
    ) -> Fetched:
        backend = handle.backend
        assert backend is not None
        if policy.strategy == "Provider":
            return await self._advance_provider(body, spec, handle, fetched, policy, rot, now)
        targets = self._targets(spec, policy)
        by_path: dict[str, list[Target]] = {}
        for target in targets:
            by_path.setdefault(target.remote_key, []).append(target)
        if rot.get("trigger") == MISSING:
            # createIfMissing: created in place on every backend (current at once), never overwriting
            if rot.get("phase") == "Pending":
                versions = await self._create_pending(body, handle, policy, rot, by_path, now)
                rot["phase"] = "Written"
                rot["pendingVersion"] = ",".join(versions[p] for p in sorted(versions))[:256]
                await self._record(body, rot, now)
            return await self._fresh(handle, fetched)
        staged = backend.stages_writes
        if rot.get("phase") == "Pending":
            versions = await self._write_pending(body, handle, policy, rot, by_path, now)
            if staged:
                rot["phase"] = "Staged"
            else:
                rot["phase"], rot["pendingVersion"] = (
                    "Written",
                    ",".join(versions[p] for p in sorted(versions))[:256],
                )
            await self._record(body, rot, now)
        if rot.get("phase") == "Staged":
            await self._verify_staged(handle, policy, rot, by_path)
            rot["phase"] = "Verified"
            await self._record(body, rot, now)
        if rot.get("phase") == "Verified":
            for path in sorted(by_path):
                await backend.promote(path, rot["token"])
            rot["phase"], rot["pendingVersion"] = "Promoted", rot["token"]
            await self._record(body, rot, now)
        return await self._fresh(handle, fetched)

    async def _not_behind(
        self,
        spec: ManagedSecretSpec,
        policy: EffectivePolicy | None,
        handle: StoreHandle,
        rot: Mapping[str, Any],
        fetched: Fetched,
    ) -> Fetched:
        """A read shared from before the recorded rotation wrote (another operator rotated within
        the share window, so this one's recent read of the path is older than the status) would
        put the replaced value back into the Secret: when the source's current version is not the
        one the recorded rotation wrote, the rotated paths are read again. (After a write outside
        Rotor the versions differ too; that costs one read per sync until the next rotation.)"""
        if policy is None or handle.backend is None:
            return fetched
        written = self._written(spec, policy, rot)
        stale = [
            ref
            for ref, secret in fetched.refs.items()
            if ref.version is None
            and ref.key in written
            and secret.version is not None
            and str(secret.version) != written[ref.key]
        ]
        if not stale:
            return fetched
        handle.backend.forget(stale)
        for ref in stale:
            fetched.refs[ref] = await handle.backend.read(ref)
        return fetched

    async def _fresh(self, handle: StoreHandle, fetched: Fetched) -> Fetched:
        """The new value is current at the source: read it fresh for this sync."""
        backend = handle.backend
        assert backend is not None
        refs = [*fetched.refs, *sorted(fetched.missing, key=lambda r: r.key)]
        backend.forget(refs)
        fetched.refs = {ref: await backend.read(ref) for ref in refs}
        fetched.missing = set()
        return fetched

    async def _generate(
        self, handle: StoreHandle, policy: EffectivePolicy, key: str, now: dt.datetime
    ) -> dict[str, bytes]:
        assert policy.generator_kind is not None
        if policy.generator_kind == "vaultPKI":
            return await self._issue_pki(handle, policy, key)
        return await self.cpu.generate(policy.generator_kind, policy.generator_params, key=key, now=now)

    async def _write_pending(
        self,
        body: dict[str, Any],
        handle: StoreHandle,
        policy: EffectivePolicy,
        rot: dict[str, Any],
        by_path: Mapping[str, list[Target]],
        now: dt.datetime,
    ) -> dict[str, str]:
        """Write (or stage) the new values, once: paths already holding the value recorded in
        status are left alone. Returns path -> the version now holding the new value."""
        backend = handle.backend
        assert backend is not None
        staged = backend.stages_writes
        kind = policy.generator_kind
        paths = sorted(by_path)
        length = digest_length(len(paths))
        recorded = decode_digests(paths, rot.get("pendingVersion"))
        token = rot.setdefault("token", str(uuid.uuid4()))  # set at the start; older status may lack it
        done: dict[str, str] = {}
        todo: list[tuple[str, RemoteSecret | None]] = []
        for path in paths:
            targets = by_path[path]
            if staged:
                meta = await backend.describe(path)
                if token in (meta.versions or {}):
                    mine = await backend.call("read", backend.provider.read, RemoteRef(path, token))
                    view = rotated_view(kind, targets, mine.data, mine.raw)
                    if not same_digest(digest(self.hash_key, view, length=length), recorded.get(path, "")):
                        rot["token"], rot["pendingVersion"] = next_token(token), None
                        raise RotationFailure(
                            f"AWS Secrets Manager '{path}': version {token} does not hold the value this rotation "
                            "staged; starting the rotation again with a new version"
                        )
                    done[path] = token
                    continue
            backend.forget([RemoteRef(path)])
            try:
                current: RemoteSecret | None = await backend.read(RemoteRef(path))
            except KeyNotFound:
                current = None
            if current is not None and not staged and path in recorded:
                view = rotated_view(kind, targets, current.data, current.raw)
                if same_digest(digest(self.hash_key, view, length=length), recorded[path]):
                    done[path] = str(current.version or "")  # written before a restart
                    continue
            todo.append((path, current))
        if not todo:
            return done
        held = self._held_elsewhere(rot, now) if recorded else None
        if held is not None:
            # another operator recorded what it is about to write and may be writing it right now:
            # a second value would make two new versions for one rotation. Left to it for a while
            log.info(
                "rotation of %s: the pending write was recorded by %s; left to it until %s",
                _who(body),
                rot.get("claimedBy"),
                format_time(held),
                extra={"managedSecret": _who(body)},
            )
            raise RotationWaiting(held)
        generated: dict[str, bytes] = {}
        for path, _ in todo:
            for target in by_path[path]:
                generated.update(await self._generate(handle, policy, target.secret_key, now))
        values: dict[str, Any] = {}
        digests = dict(recorded)
        bases = dict(rot.get("baseVersions") or {})
        for path, current in todo:
            values[path] = merged_value(
                kind,
                by_path[path],
                generated,
                current.data if current else None,
                current.raw if current else None,
            )
            digests[path] = digest(
                self.hash_key, value_view(kind, by_path[path], values[path]), length=length
            )
            if current is not None and current.version is not None:
                bases[path] = str(current.version)
        del generated
        rot["baseVersions"], rot["pendingVersion"] = bases, encode_digests(paths, digests)
        await self._record(body, rot, now)  # what is about to be written, before it is
        await _fault_hooks("BeforeWrite")
        who = _who(body)
        for path, current in todo:
            if staged:
                version = await backend.stage(path, values[path], token)
                audit("write-source", managed_secret=who, store=handle.id, key=path, version=version)
            else:
                cas = str(current.version) if current is not None and current.version is not None else None
                result = await backend.call("write", backend.provider.write, path, values[path], cas)
                version = str(result.version or "")
                audit("write-source", managed_secret=who, store=handle.id, key=path, version=version)
            done[path] = version
        await _fault_hooks("AfterWrite")
        return done

    async def _create_pending(
        self,
        body: dict[str, Any],
        handle: StoreHandle,
        policy: EffectivePolicy,
        rot: dict[str, Any],
        by_path: Mapping[str, list[Target]],
        now: dt.datetime,
    ) -> dict[str, str]:
        """createIfMissing: create the missing paths, once, never overwriting. A path that holds
        the value recorded in status was created before a restart; a path that holds anything else
        (someone created it meanwhile) is adopted as it is. Returns path -> its current version."""
        backend = handle.backend
        assert backend is not None
        kind = policy.generator_kind
        paths = sorted(by_path)
        length = digest_length(len(paths))
        recorded = decode_digests(paths, rot.get("pendingVersion"))
        token = rot.setdefault("token", str(uuid.uuid4()))
        who = _who(body)
        done: dict[str, str] = {}
        todo: list[str] = []
        for path in paths:
            existing = await self._existing(backend, path)
            if existing is None:
                todo.append(path)
                continue
            view = rotated_view(kind, by_path[path], existing.data, existing.raw)
            ours = path in recorded and same_digest(
                digest(self.hash_key, view, length=length), recorded[path]
            )
            if not ours:
                self._adopted(body, path, existing)
            done[path] = str(existing.version or "")
        if not todo:
            return done
        held = self._held_elsewhere(rot, now) if recorded else None
        if held is not None:
            # another operator recorded what it is about to create and may be creating it now
            raise RotationWaiting(held)
        generated: dict[str, bytes] = {}
        for path in todo:
            for target in by_path[path]:
                generated.update(await self._generate(handle, policy, target.secret_key, now))
        values: dict[str, Any] = {}
        digests = dict(recorded)
        for path in todo:
            values[path] = merged_value(kind, by_path[path], generated, None, None)
            digests[path] = digest(
                self.hash_key, value_view(kind, by_path[path], values[path]), length=length
            )
        del generated
        rot["pendingVersion"] = encode_digests(paths, digests)
        await self._record(body, rot, now)  # what is about to be created, before it is
        await _fault_hooks("BeforeWrite")
        for path in todo:
            try:
                result = await backend.create(path, values[path], token)
            except WriteConflict:
                # created by someone else between the read and the create: theirs is kept
                existing = await self._existing(backend, path)
                if existing is None:
                    raise RotationFailure(
                        f"createIfMissing: '{path}' exists at the source but has no readable current value "
                        "(deleted versions?); it is not overwritten. Restore or destroy it at the source"
                    ) from None
                self._adopted(body, path, existing)
                done[path] = str(existing.version or "")
                continue
            audit(
                "write-source",
                managed_secret=who,
                store=handle.id,
                key=path,
                version=result.version,
                result="created",
            )
            done[path] = str(result.version or "")
        await _fault_hooks("AfterWrite")
        return done

    @staticmethod
    async def _existing(backend: Backend, path: str) -> RemoteSecret | None:
        """The current value at ``path``, read fresh; None when nothing is there."""
        backend.forget([RemoteRef(path)])
        try:
            secret: RemoteSecret = await backend.read(RemoteRef(path))
        except KeyNotFound:
            return None
        return secret

    @staticmethod
    def _adopted(body: Mapping[str, Any], path: str, existing: RemoteSecret) -> None:
        log.info(
            "createIfMissing on %s: '%s' exists at the source (version %s, not created by this rotation); "
            "it is kept, not overwritten",
            _who(body),
            path,
            existing.version,
            extra={"managedSecret": _who(body)},
        )

    async def _verify_staged(
        self,
        handle: StoreHandle,
        policy: EffectivePolicy,
        rot: dict[str, Any],
        by_path: Mapping[str, list[Target]],
    ) -> None:
        """The staged versions hold what was recorded, and AWSCURRENT has not moved since they
        were made from it (a concurrent writer's change would otherwise be lost)."""
        backend = handle.backend
        assert backend is not None
        paths = sorted(by_path)
        token = rot["token"]
        recorded = decode_digests(paths, rot.get("pendingVersion"))
        length = digest_length(len(paths))
        for path in paths:
            staged = await backend.call("read", backend.provider.read, RemoteRef(path, token))
            view = rotated_view(policy.generator_kind, by_path[path], staged.data, staged.raw)
            if not all(view.values()) or not same_digest(
                digest(self.hash_key, view, length=length), recorded.get(path, "")
            ):
                self._restart(rot)
                raise RotationFailure(
                    f"AWS Secrets Manager '{path}': the staged version {token} does not read back as written; "
                    "it is left unpromoted and the rotation starts again"
                )
            meta = await backend.describe(path)
            current = next((v for v, s in (meta.versions or {}).items() if CURRENT in s), None)
            base = (rot.get("baseVersions") or {}).get(path)
            if current not in (base, token) and base is not None:
                self._restart(rot)
                raise RotationFailure(
                    f"AWS Secrets Manager '{path}': AWSCURRENT moved to another version while the rotation was "
                    "staged; the staged version is left unpromoted and the rotation starts again from the new value"
                )

    @staticmethod
    def _restart(rot: dict[str, Any]) -> None:
        rot["phase"], rot["token"], rot["pendingVersion"] = "Pending", next_token(rot.get("token")), None

    async def _issue_pki(self, handle: StoreHandle, policy: EffectivePolicy, key: str) -> dict[str, bytes]:
        params = policy.generator_params
        assert handle.backend is not None
        issued = await handle.backend.issue_certificate(
            params.get("mount", "pki"),
            params["role"],
            params["commonName"],
            list(params.get("altNames") or []),
            params.get("ttl"),
        )
        return {
            key: issued["certificate"].encode(),
            certificate_key_name(key): issued["private_key"].encode(),
        }

    async def _advance_provider(
        self,
        body: dict[str, Any],
        spec: ManagedSecretSpec,
        handle: StoreHandle,
        fetched: Fetched,
        policy: EffectivePolicy,
        rot: dict[str, Any],
        now: dt.datetime,
    ) -> Fetched:
        backend = handle.backend
        assert backend is not None
        who = _who(body)
        if policy.provider_kind == "vaultDatabaseStaticRole":
            db = next((s.vault_database for s in spec.data_from if s.vault_database is not None), None)
            if db is None:
                raise RotationFailure(
                    "vaultDatabaseStaticRole needs a dataFrom.vaultDatabase in the ManagedSecret", final=True
                )
            if rot.get("phase") == "Pending":
                current = await backend.database_credentials(db.mount, db.role)
                base = (rot.get("baseVersions") or {}).get(f"{db.mount}/{db.role}")
                if base is None or str(current.version or "") == base:
                    await backend.rotate_database_role(db.mount, db.role)
                    audit(
                        "rotate-source",
                        managed_secret=who,
                        store=handle.id,
                        key=f"{db.mount}/rotate-role/{db.role}",
                    )
                rot["phase"] = "Written"
                await self._record(body, rot, now)
            creds = await backend.database_credentials(db.mount, db.role)
            fetched.databases[(db.mount, db.role)] = creds
            return fetched
        if policy.provider_kind == "awsRotateSecret":
            if not isinstance(backend.provider, SelfRotating):
                raise RotationFailure("awsRotateSecret needs an AWS Secrets Manager store", final=True)
            keys = sorted(
                {t.remote_key for t in self._targets(spec)}
                if spec.rotation and spec.rotation.keys
                else {r.key for r in fetched.refs}
            )
            token = rot["token"]
            if rot.get("phase") == "Pending":
                for key in keys:
                    meta = await backend.describe(key)
                    if token not in (meta.versions or {}):
                        await backend.rotate(key, token)
                        audit("rotate-source", managed_secret=who, store=handle.id, key=key, version=token)
                rot["phase"], rot["pendingVersion"] = "Written", token
                await self._record(body, rot, now)
            started = parse_time(rot.get("startedAt")) or now
            for key in keys:
                await self._rotated_by_aws(key, token, rot, handle, started, now)
            try:
                return await self._fresh(handle, fetched)
            except ProviderError as err:
                raise RotationFailure(
                    f"after RotateSecret, the current value of the AWS secret cannot be read ({err.message}); "
                    "the rotation function configured in AWS did not produce a value. The Secret keeps its "
                    "last good value"
                ) from None
        raise RotationFailure(f"unknown provider rotation {policy.provider_kind!r}", final=True)

    async def _rotated_by_aws(
        self,
        key: str,
        token: str,
        rot: Mapping[str, Any],
        handle: StoreHandle,
        started: dt.datetime,
        now: dt.datetime,
    ) -> None:
        """Done when the new version is AWSCURRENT (or AWSCURRENT moved past the base anyway);
        waiting while it is only AWSPENDING; stalled after an hour of that."""
        assert handle.backend is not None
        stages = {v: list(s) for v, s in ((await handle.backend.describe(key)).versions or {}).items()}
        current = next((v for v, s in stages.items() if CURRENT in s), None)
        base = (rot.get("baseVersions") or {}).get(key)
        if current == token or (current is not None and base is not None and current != base):
            return
        if PENDING_STAGE in stages.get(token, []):
            if now - started >= PENDING_STALLED_AFTER:
                raise RotationFailure(
                    f"AWS Secrets Manager '{key}': version {token} has been AWSPENDING since {format_time(started)}; "
                    "the rotation function is stalled (see its logs in CloudWatch)"
                )
            raise RotationWaiting(now + PROVIDER_POLL)
        raise RotationFailure(
            f"AWS Secrets Manager '{key}': RotateSecret did not produce version {token}; check the secret's "
            "rotation function"
        )

    # ------------------------------------------------------------------ grace keys
    async def with_grace_keys(
        self,
        body: dict[str, Any],
        spec: ManagedSecretSpec,
        data: dict[str, bytes],
        ctx: RotationContext,
        now: dt.datetime,
        handle: StoreHandle | None = None,
        fetched: Fetched | None = None,
    ) -> dict[str, bytes]:
        """``data`` with ``<key><suffix>`` = the value the rotation replaced, during the grace
        period. That value comes from the source (what it held before this reconcile's write, or
        the version the rotation recorded as replaced), never from what the Secret holds now,
        which anyone may have edited."""
        policy = ctx.policy
        if policy is None or spec.rotation is None:
            return data
        rot = ctx.rotation
        suffix = policy.previous_key_suffix
        rotated = self._rotated_keys(spec, policy, data)
        arriving = ctx.advanced and in_progress(rot.get("phase"))
        if not arriving and fetched is not None:
            rot = await self._describing(body, spec, policy, rot, fetched)
        retain = parse_time(rot.get("previousRetainedUntil"))
        if arriving:
            # a created value (createIfMissing) replaced nothing: no previous value, no grace period
            retain = None if rot.get("trigger") == MISSING else retained_until(now, policy.grace_period)
            ctx.retain_until = retain
        if retain is None or now >= retain:
            return grace_keys(data, rotated, {}, suffix, None, now)
        previous: dict[str, bytes] = {}
        if arriving and ctx.before is not None:
            previous.update(self._replaced(spec, data, rotated, ctx.before, now))
        missing = [k for k in rotated if k not in previous]
        if missing and handle is not None and fetched is not None:
            previous.update(
                await self._replaced_versions(body, spec, data, missing, rot, handle, fetched, now)
            )
        missing = [k for k in rotated if k not in previous]
        if missing:
            # a source without versions (KV v1, database roles) after a restart: the value the
            # Secret held when the new one arrived, and from then on the grace key already written
            target = spec.target.name or body["metadata"]["name"]
            actual = self.index.secret(body["metadata"]["namespace"], target)
            current = decode_data((actual or {}).get("data"))
            for key in missing:
                if arriving and key in current:
                    previous[key] = current[key]
                elif not arriving and f"{key}{suffix}" in current:
                    previous[key] = current[f"{key}{suffix}"]
        return grace_keys(data, rotated, previous, suffix, retain, now)

    def _written(
        self, spec: ManagedSecretSpec, policy: EffectivePolicy, rot: Mapping[str, Any]
    ) -> dict[str, str]:
        """path -> the version the recorded rotation wrote (``pendingVersion`` once written: the
        versions in path order, or the one staged VersionId); empty when the status cannot tell."""
        pending = str(rot.get("pendingVersion") or "")
        if not pending or pending.startswith(DIGEST_PREFIX) or rot.get("phase") in (None, "Pending"):
            return {}
        try:
            paths = sorted({t.remote_key for t in self._targets(spec, policy)})
        except RotationFailure:
            return {}
        versions = pending.split(",")
        if len(versions) == len(paths):
            return dict(zip(paths, versions, strict=True))
        if len(versions) == 1:
            return dict.fromkeys(paths, versions[0])
        return {}  # cut at 256 characters: unknown

    async def _describing(
        self,
        body: Mapping[str, Any],
        spec: ManagedSecretSpec,
        policy: EffectivePolicy,
        rot: dict[str, Any],
        fetched: Fetched,
    ) -> dict[str, Any]:
        """The recorded rotation whose written versions the source holds now. The body of an event
        can be older than the status (a second operator's rotation, or this one's own latest write
        not yet seen): its ``baseVersions`` name what an earlier rotation replaced, and paired with
        the newer value they would make ``_previous`` a value from two rotations back. Then the
        stored status is read; if that does not know the source's current version either (someone
        wrote the source outside a rotation), ``rot`` stays as it is."""
        written = self._written(spec, policy, rot)
        current = {
            ref.key: str(secret.version)
            for ref, secret in fetched.refs.items()
            if ref.version is None and secret.version is not None
        }
        if all(current.get(path) in (None, version) for path, version in written.items()):
            return rot
        meta = body["metadata"]
        fresh = await self.gateway.get_object("ManagedSecret", meta["name"], meta["namespace"])
        stored = ((fresh or {}).get("status") or {}).get("rotation") or {}
        known = self._written(spec, policy, stored)
        if known and all(current.get(path) in (None, version) for path, version in known.items()):
            return dict(stored)
        return rot

    @staticmethod
    def _replaced(
        spec: ManagedSecretSpec,
        data: Mapping[str, bytes],
        rotated: list[str],
        before: Fetched,
        now: dt.datetime,
    ) -> dict[str, bytes]:
        """The rotated keys' values as the source held them before the rotation wrote."""
        try:
            old = assemble_values(spec, before.refs, before.found, before.databases, now=now)
        except (ValueFailure, KeyError):
            return {}
        return {k: old[k] for k in rotated if k in old and old[k] != data.get(k)}

    async def _replaced_versions(
        self,
        body: Mapping[str, Any],
        spec: ManagedSecretSpec,
        data: Mapping[str, bytes],
        keys: list[str],
        rot: Mapping[str, Any],
        handle: StoreHandle,
        fetched: Fetched,
        now: dt.datetime,
    ) -> dict[str, bytes]:
        """The rotated keys' values read back from exactly the source versions the rotation
        recorded as replaced (``baseVersions``: Vault KV v2 version n-1, the AWS Secrets Manager
        VersionId that is AWSPREVIOUS now, SSM version n-1), through the provider's
        ``VersionReader``. A version the source no longer holds leaves its keys to the fallback."""
        bases = rot.get("baseVersions") or {}
        backend = handle.backend
        if backend is None or not bases or not backend.reads_versions:
            return {}
        refs = dict(fetched.refs)
        replaced = False
        for ref in list(fetched.refs):
            base = bases.get(ref.key)
            current = fetched.refs[ref].version
            if ref.version is not None or not base or str(base) == current:
                continue  # pinned, not rotated, or the replaced version is still the current one
            try:
                refs[ref] = await backend.read_version(ref.key, str(base))
            except ProviderError as err:
                audit(
                    "read",
                    managed_secret=_who(body),
                    store=handle.id,
                    key=ref.key,
                    version=str(base),
                    result=err.reason,
                )
                continue
            audit("read", managed_secret=_who(body), store=handle.id, key=ref.key, version=str(base))
            replaced = True
        if not replaced:
            return {}
        before = Fetched(refs, fetched.found, fetched.databases)
        return {k: v for k, v in self._replaced(spec, data, keys, before, now).items() if k in keys}

    def _rotated_keys(
        self, spec: ManagedSecretSpec, policy: EffectivePolicy, data: Mapping[str, bytes]
    ) -> list[str]:
        assert spec.rotation is not None
        keys = list(spec.rotation.keys) or list(data)
        return [k for k in rotated_keys(policy.generator_kind, keys) if k in data]

    # ------------------------------------------------------------------ after the sync
    async def gathered(
        self,
        body: dict[str, Any],
        spec: ManagedSecretSpec,
        data: Mapping[str, bytes],
        ctx: RotationContext,
        now: dt.datetime,
        fetched: Fetched | None = None,
        handle: StoreHandle | None = None,
    ) -> tuple[RotationDone, RotationSeen]:
        """What the rotation report (rotor.rotation.report, pure) looks at once the Secret is
        written: the step's outcome, and, for strategy Observe, the backend's own view of the value."""
        policy = ctx.policy
        observe = policy is not None and policy.strategy == "Observe"
        done = RotationDone(
            rotation=dict(ctx.rotation),
            policy=policy,
            error=ctx.error,
            cause=ctx.cause,
            advanced=ctx.advanced,
            defer_until=ctx.defer_until,
            retain_until=ctx.retain_until,
            blocked=ctx.blocked,
        )
        seen = RotationSeen(
            now=now,
            generation=int(body["metadata"].get("generation") or 0),
            status=body.get("status") or {},
            data=data,
            created=_value_created(body["metadata"], fetched, now),
            observed=await self._observed(spec, handle, fetched) if observe else None,
            store_writable=handle is not None and handle.capabilities == Capabilities.READ_WRITE,
            seed=_who(body),
            provider_expiry=fetched.provider_expiry() if fetched is not None else None,
        )
        return done, seen

    async def retire_replaced(
        self,
        body: dict[str, Any],
        spec: ManagedSecretSpec,
        handle: StoreHandle,
        ctx: RotationContext,
        released: Mapping[str, str],
    ) -> bool:
        """The grace period of a completed Generate rotation is over: retire the versions it
        replaced at the keys it wrote, where the store's provider retires versions (Azure Key
        Vault disables them). Idempotent. Returns False when one could not be retired: that is a
        warning and an Event, never a failed sync, and the report keeps ``baseVersions`` so that
        the next sync tries again."""
        backend = handle.backend
        policy = ctx.policy
        if backend is None or not backend.retires_versions or policy is None or policy.strategy != "Generate":
            return True
        try:
            written = {t.remote_key for t in self._targets(spec, policy)}
        except RotationFailure:
            return True
        who = _who(body)
        failures: list[str] = []
        for key in sorted(written & set(released)):
            version = released[key]
            try:
                retired = await backend.retire_version(key, version)
            except ProviderError as err:
                audit(
                    "retire", managed_secret=who, store=handle.id, key=key, version=version, result=err.reason
                )
                failures.append(err.message)
                continue
            audit(
                "retire",
                managed_secret=who,
                store=handle.id,
                key=key,
                version=version,
                result="success" if retired else "current",
            )
        if not failures:
            return True
        note = (
            f"the grace period is over, but the replaced version could not be retired: {'; '.join(failures)}. "
            "Retried at the next sync"
        )
        log.warning("rotation of %s: %s", who, note, extra={"managedSecret": who})
        await self.gateway.post_event(
            body, type_="Warning", reason="RetireFailed", note=note, action="Rotate"
        )
        return False

    @staticmethod
    def counted(body: Mapping[str, Any], report: RotationReport) -> None:
        """The metrics and the log line of a rotation the report completed."""
        if report.completed is None:
            return
        strategy, seconds = report.completed
        ROTATION_TOTAL.labels(strategy, "success").inc()
        if seconds is not None:
            ROTATION_DURATION.observe(seconds)
        log.info("rotation of %s completed", _who(body), extra={"managedSecret": _who(body)})

    async def _observed(
        self, spec: ManagedSecretSpec, handle: StoreHandle | None, fetched: Fetched | None
    ) -> ObservedState | None:
        if handle is None or handle.backend is None or fetched is None or not fetched.refs:
            return None
        states: list[ObservedState] = []
        for key in sorted({ref.key for ref in fetched.refs}):
            try:
                meta = await handle.backend.describe(key)
            except ProviderError:
                continue
            stages = (
                {k: tuple(v) for k, v in (meta.versions or {}).items()}
                if handle.provider_kind == "aws"
                else {}
            )
            states.append(
                ObservedState(
                    created_time=meta.created,
                    updated_time=meta.updated,
                    last_rotated=meta.last_rotated,
                    rotation_enabled=bool(meta.rotation_enabled),
                    next_rotation=meta.next_rotation,
                    version_stages=stages,
                )
            )
        if not states:
            return None
        # the oldest value decides the age; any stray AWSPENDING is reported
        oldest = min(states, key=lambda s: s.last_changed or dt.datetime.max.replace(tzinfo=dt.UTC))
        stray = next((s for s in states if s.stray_pending), None)
        return (
            stray
            if stray is not None and stray.last_changed == oldest.last_changed
            else (
                ObservedState(
                    created_time=oldest.created_time,
                    updated_time=oldest.updated_time,
                    last_rotated=oldest.last_rotated,
                    rotation_enabled=oldest.rotation_enabled,
                    next_rotation=oldest.next_rotation,
                    version_stages=(stray or oldest).version_stages,
                )
            )
        )


def _value_created(meta: Mapping[str, Any], fetched: Fetched | None, now: dt.datetime) -> dt.datetime:
    """Where a value's age counts from before its first rotation: the creation time of the source
    version read (the newest, when several), else the ManagedSecret's creation."""
    times: list[dt.datetime] = []
    if fetched is not None:
        times += [s.created for s in fetched.refs.values() if s.created is not None]
        times += [s.created for s in fetched.databases.values() if s.created is not None]
    return max(times) if times else parse_time(meta.get("creationTimestamp")) or now


def default_writer() -> str:
    """This process, as status.rotation.claimedBy names it: the pod (or host) and the process id,
    so that two operators, or an operator and its restarted self, are told apart."""
    return f"{os.environ.get('POD_NAME') or os.uname().nodename}/{os.getpid()}"


def rotation_token(
    meta: Mapping[str, Any],
    rot: Mapping[str, Any],
    trigger: str | None,
    request: str | None,
    due_at: dt.datetime,
) -> str:
    """The rotation's id and idempotency token (the AWS ClientRequestToken, which becomes the new
    VersionId): derived from what identifies the rotation (the object, the rotation it follows, its
    trigger and the request or due date it serves), so that two operators starting the same
    rotation stage one version, never two."""
    served = request if trigger == "Manual" and request else format_time(due_at)
    owner = meta.get("uid") or f"{meta.get('namespace')}/{meta.get('name')}"
    name = f"rotor.dev/rotation/{owner}/{rot.get('lastRotationTime') or ''}/{trigger}/{served}"
    return str(uuid.uuid5(uuid.NAMESPACE_URL, name))


def next_token(token: str | None) -> str:
    """The token of a rotation started again (its staged version did not hold what was recorded):
    derived from the last one, so every writer agrees on it too."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"rotor.dev/rotation/restart/{token or ''}"))


def _who(body: Mapping[str, Any]) -> str:
    return f"{body['metadata']['namespace']}/{body['metadata']['name']}"


__all__ = [
    "FAULT_EXIT",
    "FAULT_HOLD",
    "RotationClaimLost",
    "RotationContext",
    "RotationFailure",
    "RotationService",
]

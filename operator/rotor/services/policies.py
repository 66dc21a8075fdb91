"""RotationPolicy and ClusterRotationPolicy status: whether the policy is usable (Ready), how many
ManagedSecrets use it (``boundManagedSecrets``) and the soonest ``nextRotationTime`` among them
(``earliestNextRotation``).

The summary is computed from the index (ManagedSecrets and policies, as the watches delivered
them), every few seconds, and written only when it changed.

A ClusterRotationPolicy is seen by every operator instance, and each instance knows only the
ManagedSecrets of the namespaces it serves. So an instance writes a cluster policy's status only
while some of its ManagedSecrets use the policy (and once more, to write 0, after the last one
stopped); with several instances sharding namespaces, the count is the writing instance's.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from rotor.api.rotationpolicy import RotationPolicySpec
from rotor.clock import Clock, format_time, parse_time
from rotor.conditions import readiness_conditions
from rotor.kube.gateway import KubeError, KubeGateway
from rotor.rotation.errors import RotationError
from rotor.rotation.presets import effective_policy
from rotor.services.ports import ObjectIndex, PolicyKey, policy_key_of

log = logging.getLogger("rotor.policies")

INTERVAL = 3.0


@dataclass(frozen=True)
class PolicySummary:
    ready: bool
    reason: str
    message: str
    bound: int
    earliest: dt.datetime | None


def validity(spec: Mapping[str, Any]) -> tuple[bool, str, str]:
    """(ready, reason, message) of a policy spec."""
    try:
        RotationPolicySpec.model_validate(spec)
        policy = effective_policy(spec)
    except ValidationError as exc:
        first = exc.errors()[0]
        return False, "InvalidSpec", f"spec.{'.'.join(map(str, first['loc']))}: {first['msg']}"
    except RotationError as err:
        return False, "InvalidSpec", err.message
    return (
        True,
        "Valid",
        f"strategy {policy.strategy}" + (f", preset {policy.preset}" if policy.preset else ""),
    )


def bound_to(ms: Mapping[str, Any]) -> PolicyKey | None:
    """The policy a ManagedSecret body names, as a PolicyKey."""
    ref = ((ms.get("spec") or {}).get("rotation") or {}).get("policyRef") or {}
    if not ref.get("name"):
        return None
    return policy_key_of((ms.get("metadata") or {}).get("namespace") or "", ref.get("kind"), ref["name"])


def summarize(
    policies: Mapping[PolicyKey, Mapping[str, Any]], managed_secrets: Iterable[Mapping[str, Any]]
) -> dict[PolicyKey, PolicySummary]:
    """The summary of every known policy (pure)."""
    bound: dict[PolicyKey, int] = {}
    earliest: dict[PolicyKey, dt.datetime] = {}
    for ms in managed_secrets:
        key = bound_to(ms)
        if key is None or key not in policies:
            continue
        bound[key] = bound.get(key, 0) + 1
        nxt = parse_time(((ms.get("status") or {}).get("rotation") or {}).get("nextRotationTime"))
        if nxt is not None and (key not in earliest or nxt < earliest[key]):
            earliest[key] = nxt
    out: dict[PolicyKey, PolicySummary] = {}
    for key, body in policies.items():
        ready, reason, message = validity(body.get("spec") or {})
        out[key] = PolicySummary(ready, reason, message, bound.get(key, 0), earliest.get(key))
    return out


def status_patch(
    body: Mapping[str, Any], summary: PolicySummary, now: dt.datetime, *, usage: bool = True
) -> dict[str, Any] | None:
    """The status to write, or None when the stored one already says the same. Without ``usage``
    only the conditions and observedGeneration (not boundManagedSecrets, earliestNextRotation)."""
    status = body.get("status") or {}
    generation = int((body.get("metadata") or {}).get("generation") or 0)
    conditions = readiness_conditions(
        status.get("conditions") or [],
        ready=summary.ready,
        reason=summary.reason,
        message=summary.message,
        generation=generation,
        now=now,
    )
    new: dict[str, Any] = {
        "observedGeneration": generation,
        "conditions": conditions,
        "boundManagedSecrets": summary.bound,
        "earliestNextRotation": format_time(summary.earliest) if summary.earliest else None,
    }
    if not usage:
        del new["boundManagedSecrets"], new["earliestNextRotation"]

    def timeless(conds: Any) -> list[dict[str, Any]]:
        return [{k: v for k, v in c.items() if k != "lastTransitionTime"} for c in conds or []]

    same = all(status.get(k) == v for k, v in new.items() if k != "conditions") and timeless(
        status.get("conditions")
    ) == timeless(conditions)
    return None if same else new


class PolicyStatusService:
    """Writes policy status from the index every ``INTERVAL`` seconds. Holds the gateway, the
    clock and the index; ``start()`` runs it, ``stop()`` ends it."""

    def __init__(
        self,
        gateway: KubeGateway,
        clock: Clock,
        index: ObjectIndex,
        *,
        leading: Callable[[], bool] = lambda: True,
    ) -> None:
        self.gateway = gateway
        self.clock = clock
        self.index = index
        #: whether this replica writes now (a standby keeps its index warm and writes nothing)
        self.leading = leading
        self._written_bound: dict[PolicyKey, int] = {}
        #: the body each status write returned, until the index holds that version or a newer one
        self._stored: dict[PolicyKey, dict[str, Any]] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(INTERVAL)
            try:
                await self.update()
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug here must not stop rotations
                log.exception("updating RotationPolicy status failed")

    def _current(self) -> dict[PolicyKey, Mapping[str, Any]]:
        """Every policy in the index, or the body our last status write returned when the index
        has not seen that write yet (so an unchanged status is never written twice)."""
        out: dict[PolicyKey, Mapping[str, Any]] = {}
        for key, body in self.index.policies():
            stored = self._stored.get(key)
            if stored is not None and _newer(stored, body):
                out[key] = stored
            else:
                self._stored.pop(key, None)
                out[key] = body
        return out

    async def update(self) -> int:
        """Write every policy status that changed; returns how many were written."""
        if not self.leading():
            return 0
        policies = self._current()
        if not policies:
            return 0  # nothing to summarize: no scan of every ManagedSecret every few seconds
        summaries = summarize(policies, [body for _, body in self.index.managed_secrets()])
        now = self.clock.now()
        written = 0
        for key, summary in summaries.items():
            kind, namespace, name = key
            # a ClusterRotationPolicy no ManagedSecret of this instance uses: another shard may
            # serve the namespaces that use it, so write only what every shard agrees on (whether
            # the spec is valid, for this generation), never the usage counts
            usage = not (
                kind == "ClusterRotationPolicy" and summary.bound == 0 and not self._written_bound.get(key)
            )
            patch = status_patch(policies[key], summary, now, usage=usage)
            if patch is None:
                continue
            try:
                stored = await self.gateway.patch_status(kind, name, namespace or None, patch)
            except KubeError as err:
                log.warning("writing the status of %s %s failed: %s", kind, name, err)
                continue
            written += 1
            self._written_bound[key] = summary.bound
            if stored is not None:
                self._stored[key] = stored
        return written

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


def _newer(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    try:
        return int(a["metadata"]["resourceVersion"]) > int(b["metadata"]["resourceVersion"])
    except (KeyError, TypeError, ValueError):
        return False

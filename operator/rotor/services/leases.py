"""Dynamic credentials of one ManagedSecret (``dataFrom.vaultDynamic``): gather, decide, act.

The credentials live only in the Secret; ``status.lease`` records their lease. A sync gathers the
recorded lease and the Secret's values (trusted only when the Secret still holds exactly what
Rotor wrote: its keyed hash matches ``status.dataHash``), asks ``rotor.sync.lease.next_step`` what
to do, and then keeps them, renews the lease (``sys/leases/renew``) or issues new credentials,
keeping the replaced ones under ``<key><previousKeySuffix>`` until their lease ends. A restart
therefore resumes the recorded lease and issues nothing.

New credentials whose Secret write then fails are revoked (``discard_unwritten``), so failing
syncs never pile up leases. Values never reach a log line, an Event or status.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from rotor.api.managedsecret import ManagedSecretSpec
from rotor.api.names import MANAGED_KEYS_ANNOTATION
from rotor.kube.gateway import decode_data
from rotor.observability.logging import audit
from rotor.providers.base import LeaseRefused, ProviderError
from rotor.services.backend import Backend
from rotor.sync import lease as leases
from rotor.sync.lease import Lease, LeaseReport, Step
from rotor.values.hashing import data_hash
from rotor.values.properties import flatten_map

log = logging.getLogger("rotor.leases")


class LeaseBlocked(Exception):
    """New credentials would be needed, but the Secret cannot be written (none are issued)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Gathered:
    """What the dynamic source gives this sync."""

    #: the current credentials, by Secret key (never printed)
    values: dict[str, bytes]
    #: ``<key><suffix>`` -> the previous credentials, while their lease runs
    previous: dict[str, bytes]
    report: LeaseReport

    def __repr__(self) -> str:
        return f"Gathered(lease={self.report.lease.id!r}, keys={sorted(self.values)})"


class DynamicCredentials:
    def __init__(self, *, hash_key: bytes) -> None:
        self.hash_key = hash_key
        #: new leases whose credentials have not reached the Secret yet: object id -> (backend, id)
        self._unwritten: dict[str, tuple[Backend, str]] = {}

    def trusted_data(
        self, spec: ManagedSecretSpec, status: Mapping[str, Any], actual: Mapping[str, Any] | None
    ) -> dict[str, bytes] | None:
        """The Secret's data when it is exactly what Rotor last wrote (else None: values edited
        outside Rotor are never taken for credentials)."""
        if actual is None or not status.get("dataHash"):
            return None
        data = decode_data(actual.get("data"))
        if spec.target.creation_policy == "Merge":
            ours = (((actual.get("metadata") or {}).get("annotations")) or {}).get(MANAGED_KEYS_ANNOTATION)
            keys = {k for k in (ours or "").split(",") if k}
            data = {k: v for k, v in data.items() if k in keys}
        digest = data_hash(data, key=self.hash_key, secret_type=spec.target.type)
        return data if digest == status.get("dataHash") else None

    async def gather(
        self,
        who: str,
        spec: ManagedSecretSpec,
        backend: Backend,
        store_id: str,
        status: Mapping[str, Any],
        secret: Mapping[str, bytes] | None,
        now: Any,
        blocked: Callable[[], Awaitable[str | None]],
    ) -> Gathered:
        dyn = spec.vault_dynamic
        assert dyn is not None
        pct, suffix = dyn.renew_percent, dyn.previous_key_suffix
        recorded = leases.lease_of(status)
        held = dict(secret or {})
        present = recorded is not None and bool(recorded.keys) and all(k in held for k in recorded.keys)
        decision = leases.next_step(
            recorded, path=dyn.path, now=now, renew_percent=pct, values_present=present
        )
        lease = recorded
        if decision.step is Step.RENEW and lease is not None:
            try:
                grant = await backend.renew_lease(lease.id, lease.duration)
            except LeaseRefused as err:
                audit(
                    "renew-lease",
                    managed_secret=who,
                    store=store_id,
                    key=dyn.path,
                    version=lease.id,
                    result="Refused",
                )
                lease = leases.refused(lease)
                decision = leases.Decision(Step.ISSUE, err.message)
            except ProviderError as err:
                audit(
                    "renew-lease",
                    managed_secret=who,
                    store=store_id,
                    key=dyn.path,
                    version=lease.id,
                    result=err.reason,
                )
                raise
            else:
                audit("renew-lease", managed_secret=who, store=store_id, key=dyn.path, version=lease.id)
                lease = leases.renewed(lease, granted=grant.duration, renewable=grant.renewable, now=now)
                # capped at the max TTL closer than the lead: replace it now
                decision = leases.next_step(
                    lease, path=dyn.path, now=now, renew_percent=pct, values_present=True
                )
                if decision.step is Step.RENEW:
                    decision = leases.Decision(Step.KEEP)
        if decision.step is not Step.ISSUE and lease is not None:
            lease = leases.without_ended_previous(lease, now)
            return Gathered(
                {k: held[k] for k in lease.keys},
                self._previous(lease, held, suffix, now),
                LeaseReport(lease, pct, None, suffix),
            )
        why = await blocked()
        if why is not None:
            raise LeaseBlocked(why)
        issued = await backend.issue_leased(dyn.path)
        audit("issue-lease", managed_secret=who, store=store_id, key=dyn.path, version=issued.lease_id)
        self._unwritten[who] = (backend, issued.lease_id)
        values = flatten_map(issued.data, None, key=dyn.path)
        # the replaced credentials stay while their lease runs, when the Secret still holds them
        old_kept = (
            lease is not None
            and present
            and (lease.expires_at is None or now < lease.expires_at)
            and not set(lease.keys) & {f"{k}{suffix}" for k in values}
        )
        new = leases.issued(
            lease_id=issued.lease_id,
            path=dyn.path,
            duration=issued.duration,
            renewable=issued.renewable,
            now=now,
            keys=tuple(sorted(values)),
            replacing=lease,
            kept_previous=old_kept,
        )
        previous: dict[str, bytes] = {}
        if old_kept and lease is not None:
            previous = {f"{k}{suffix}": held[k] for k in lease.keys}
        log.info(
            "issued new credentials for %s from %s (lease %s): %s",
            who,
            dyn.path,
            issued.lease_id,
            decision.why,
            extra={"managedSecret": who, "remoteKey": dyn.path},
        )
        return Gathered(values, previous, LeaseReport(new, pct, decision.why, suffix))

    @staticmethod
    def _previous(lease: Lease, held: Mapping[str, bytes], suffix: str, now: Any) -> dict[str, bytes]:
        if lease.previous is None or not leases.previous_kept(lease, now):
            return {}
        kept = {f"{k}{suffix}": held[f"{k}{suffix}"] for k in lease.previous.keys if f"{k}{suffix}" in held}
        return kept if len(kept) == len(lease.previous.keys) else {}

    def written(self, who: str) -> None:
        """The new credentials reached the Secret."""
        self._unwritten.pop(who, None)

    async def discard_unwritten(self, who: str) -> None:
        """Revoke credentials issued by a sync that then failed before writing them."""
        pending = self._unwritten.pop(who, None)
        if pending is None:
            return
        backend, lease_id = pending
        try:
            await backend.revoke_lease(lease_id)
            audit("revoke-lease", managed_secret=who, store=backend.store, key=None, version=lease_id)
        except ProviderError as err:
            log.warning(
                "could not revoke lease %s of %s, whose credentials were never written: %s",
                lease_id,
                who,
                err.message,
                extra={"managedSecret": who, "reason": err.reason},
            )

    async def revoke(self, who: str, backend: Backend, status: Mapping[str, Any]) -> list[str]:
        """Revoke the recorded lease and a previous one still kept (deletion with revokeOnDelete).
        Returns the lease ids revoked; raises ProviderError."""
        lease = leases.lease_of(status)
        if lease is None:
            return []
        ids = [lease.id] + ([lease.previous.id] if lease.previous is not None else [])
        for lease_id in ids:
            await backend.revoke_lease(lease_id)
            audit("revoke-lease", managed_secret=who, store=backend.store, key=lease.path, version=lease_id)
        return ids


__all__ = ["DynamicCredentials", "Gathered", "LeaseBlocked"]

"""An in-memory provider for unit tests: the whole protocol, and the capabilities it claims
(versions, check-and-set, staged writes, find, describe, rollback, per-path write checks, leased
credentials with a TTL and a max TTL on its own settable clock), with
failures a test can set (KeyNotFound, AccessDenied, Unreachable, ...) and a count of every call.

Versions are numbered "1", "2", ... per key; like AWS Secrets Manager's stages, one version is
labelled ``AWSCURRENT``, the one it replaced ``AWSPREVIOUS``, a staged one ``AWSPENDING`` (its id
is the caller's token), so the rotation's staged path runs against it as against AWS. A ref's
version may be an id or a label; ``read_version`` takes ids only. Values are kept as given (a map, bytes or text) and never printed.
"""

from __future__ import annotations

import datetime as dt
import itertools
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rotor.providers.base import (
    CallObserver,
    Capabilities,
    InvalidSpec,
    KeyNotFound,
    LeasedValue,
    LeaseGrant,
    LeaseRefused,
    ProviderError,
    RemoteRef,
    RemoteSecret,
    RolledBack,
    SecretMetadata,
    WriteConflict,
    WriteResult,
)
from rotor.providers.find import compile_name_regexp

Value = dict[str, Any] | bytes | str

CURRENT, PREVIOUS, PENDING = "AWSCURRENT", "AWSPREVIOUS", "AWSPENDING"
EPOCH = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


@dataclass
class _Version:
    id: str
    value: Value
    created: dt.datetime
    stages: set[str] = field(default_factory=set)


@dataclass
class _Role:
    ttl: int
    max_ttl: int
    renewable: bool


@dataclass
class _Lease:
    path: str
    issued: dt.datetime
    expires: dt.datetime
    data: dict[str, str]
    renewable: bool
    max_ttl: int
    revoked: bool = False


@dataclass
class _Failure:
    error: ProviderError
    key: str | None
    operations: frozenset[str] | None
    times: int | None


class FakeProvider:
    """Blocking like the real providers, and thread-safe (the backend calls it from a pool)."""

    name = "fake"

    def __init__(self, *, capabilities: Capabilities = Capabilities.READ_WRITE) -> None:
        self.capabilities = capabilities
        self.calls: Counter[str] = Counter()
        #: what ``missing_write`` reports: key -> missing capabilities (e.g. ["update"])
        self.write_denied: dict[str, list[str]] = {}
        self.closed = False
        self._keys: dict[str, list[_Version]] = {}
        self._failures: list[_Failure] = []
        self._lock = threading.RLock()
        self._tick = 0
        #: the clock leases are timed by (tests set it to their own)
        self.clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)
        self._roles: dict[str, _Role] = {}
        self.leases: dict[str, _Lease] = {}
        self._serial = itertools.count(1)

    # ------------------------------------------------------------------ test controls
    def put(self, key: str, value: Value) -> str:
        """Seed (or overwrite, as a new version) a key without counting a call; its version id."""
        with self._lock:
            return self._new_version(key, value, [CURRENT]).id

    def fail(
        self,
        error: ProviderError,
        *,
        key: str | None = None,
        operations: set[str] | None = None,
        times: int | None = None,
    ) -> None:
        """Make calls raise ``error``: only on ``key`` if given (None: every call, validate too),
        only for ``operations`` if given ("read", "write", "describe", ...), ``times`` times if
        given (None: until ``heal``)."""
        with self._lock:
            ops = frozenset(operations) if operations is not None else None
            self._failures.append(_Failure(error, key, ops, times))

    def heal(self) -> None:
        with self._lock:
            self._failures.clear()

    def dynamic(self, path: str, *, ttl: int, max_ttl: int, renewable: bool = True) -> None:
        """Make reading ``path`` issue new credentials (username, password) with a lease."""
        with self._lock:
            self._roles[path] = _Role(ttl, max_ttl, renewable)

    def live_leases(self, path: str | None = None) -> list[str]:
        """Lease ids not revoked and not ended on the fake's clock."""
        now = self.clock()
        with self._lock:
            return [
                i
                for i, lease in self.leases.items()
                if not lease.revoked and lease.expires > now and (path is None or lease.path == path)
            ]

    def value(self, key: str, version: str | None = None) -> Value:
        """What a version holds, for assertions (no call counted)."""
        with self._lock:
            return self._version(key, version).value

    # ------------------------------------------------------------------ internals
    def _enter(self, operation: str, key: str | None) -> None:
        with self._lock:
            self.calls[operation] += 1
            for failure in list(self._failures):
                if failure.key is not None and failure.key != key:
                    continue
                if failure.operations is not None and operation not in failure.operations:
                    continue
                if failure.times is not None:
                    failure.times -= 1
                    if failure.times <= 0:
                        self._failures.remove(failure)
                raise failure.error

    def _now(self) -> dt.datetime:
        self._tick += 1
        return EPOCH + dt.timedelta(seconds=self._tick)

    def _new_version(
        self, key: str, value: Value, stages: list[str], version_id: str | None = None
    ) -> _Version:
        versions = self._keys.setdefault(key, [])
        if CURRENT in stages:
            for old in versions:
                old.stages.discard(PREVIOUS)
            for old in versions:
                if CURRENT in old.stages:
                    old.stages.discard(CURRENT)
                    old.stages.add(PREVIOUS)
        version = _Version(version_id or str(len(versions) + 1), value, self._now(), set(stages))
        versions.append(version)
        return version

    def _version(self, key: str, version: str | None) -> _Version:
        versions = self._keys.get(key.strip("/"))
        if not versions:
            raise KeyNotFound(f"fake: no secret at '{key}'")
        wanted = version or CURRENT
        for v in reversed(versions):
            if v.id == wanted or wanted in v.stages:
                return v
        raise KeyNotFound(f"fake: '{key}' has no version {wanted!r}")

    def _current_id(self, key: str) -> str | None:
        versions = self._keys.get(key) or []
        return next((v.id for v in versions if CURRENT in v.stages), None)

    @staticmethod
    def _secret(key: str, version: _Version) -> RemoteSecret:
        value = version.value
        if isinstance(value, dict):
            return RemoteSecret(key=key, version=version.id, data=dict(value), created=version.created)
        raw = value.encode() if isinstance(value, str) else bytes(value)
        return RemoteSecret(
            key=key,
            version=version.id,
            raw=raw,
            created=version.created,
            metadata={"stages": sorted(version.stages)},
        )

    # ------------------------------------------------------------------ the protocol
    def validate(self) -> Capabilities:
        self._enter("validate", None)
        return self.capabilities

    def read(self, ref: RemoteRef) -> RemoteSecret:
        self._enter("read", ref.key)
        with self._lock:
            return self._secret(ref.key, self._version(ref.key, ref.version))

    def read_version(self, key: str, version: str) -> RemoteSecret:
        """Exactly the version with id ``version`` (never a label), as ``VersionReader`` says."""
        self._enter("read_version", key)
        with self._lock:
            found = next((v for v in self._keys.get(key.strip("/")) or [] if v.id == version), None)
            if found is None:
                raise KeyNotFound(f"fake: '{key}' has no version with id {version!r}")
            return self._secret(key, found)

    def read_many(self, refs: list[RemoteRef]) -> dict[RemoteRef, RemoteSecret | ProviderError]:
        out: dict[RemoteRef, RemoteSecret | ProviderError] = {}
        for ref in refs:
            try:
                out[ref] = self.read(ref)
            except ProviderError as err:
                out[ref] = err
        return out

    def find(self, path: str, name_regexp: str | None) -> list[str]:
        self._enter("find", None)
        pattern = compile_name_regexp(name_regexp)
        with self._lock:
            keys = [k for k in self._keys if k.startswith(path) and self._current_id(k) is not None]
        return sorted(k for k in keys if pattern is None or pattern.search(k[len(path) :].lstrip("/")))

    def describe(self, key: str) -> SecretMetadata:
        self._enter("describe", key)
        with self._lock:
            versions = self._keys.get(key)
            if not versions:
                raise KeyNotFound(f"fake: no secret at '{key}'")
            current = self._version(key, None)
            return SecretMetadata(
                key=key,
                current_version=current.id,
                created=versions[0].created,
                updated=current.created,
                versions={v.id: sorted(v.stages) for v in versions},
            )

    def write(self, key: str, value: Value, cas: str | None) -> WriteResult:
        self._enter("write", key)
        with self._lock:
            current = self._current_id(key)
            if cas is not None and cas != current:
                raise WriteConflict(f"fake: '{key}' is at version {current}, not {cas}")
            return WriteResult(key=key, version=self._new_version(key, value, [CURRENT]).id)

    def close(self) -> None:
        self.calls["close"] += 1
        self.closed = True

    # ------------------------------------------------------------------ capabilities
    def stage(self, key: str, value: Value, token: str) -> str:
        self._enter("stage", key)
        with self._lock:
            if any(v.id == token for v in self._keys.get(key) or []):
                return token  # a resumed rotation keeps what it staged first
            if key not in self._keys:
                raise KeyNotFound(f"fake: no secret at '{key}' to stage a version of")
            return self._new_version(key, value, [PENDING], version_id=token).id

    def verify(self, key: str, version_id: str, expected: Value) -> bool:
        self._enter("verify", key)
        with self._lock:
            return self._version(key, version_id).value == expected

    def promote(self, key: str, version_id: str) -> None:
        self._enter("promote", key)
        with self._lock:
            target = self._version(key, version_id)
            if CURRENT in target.stages:
                target.stages.discard(PENDING)
                return
            for v in self._keys[key]:
                v.stages.discard(PREVIOUS)
                if CURRENT in v.stages:
                    v.stages.discard(CURRENT)
                    v.stages.add(PREVIOUS)
            target.stages.discard(PENDING)
            target.stages.add(CURRENT)

    def rollback(self, key: str) -> RolledBack:
        """Move ``current`` back to the ``previous`` version (a second rollback undoes the first)."""
        self._enter("rollback", key)
        with self._lock:
            current = self._version(key, None)
            previous = next((v for v in self._keys[key] if PREVIOUS in v.stages), None)
            if previous is None:
                raise KeyNotFound(f"fake: '{key}' has no previous version to roll back to")
            current.stages = (current.stages - {CURRENT}) | {PREVIOUS}
            previous.stages = (previous.stages - {PREVIOUS}) | {CURRENT}
            return RolledBack(key=key, version=previous.id, before=current.id, restored=previous.id)

    def issue_leased(self, path: str) -> LeasedValue:
        self._enter("issue", path)
        with self._lock:
            role = self._roles.get(path)
            if role is None:
                raise InvalidSpec(f"fake: path '{path}' returned no lease")
            serial = next(self._serial)
            lease_id = f"{path}/lease-{serial}"
            now = self.clock()
            data = {"username": f"v-user-{serial}", "password": f"fake-password-{serial}-{path}"}
            self.leases[lease_id] = _Lease(
                path, now, now + dt.timedelta(seconds=role.ttl), data, role.renewable, role.max_ttl
            )
            return LeasedValue(path, lease_id, role.ttl, role.renewable, dict(data))

    def renew_lease(self, lease_id: str, increment: int) -> LeaseGrant:
        self._enter("renew", lease_id)
        with self._lock:
            lease = self.leases.get(lease_id)
            now = self.clock()
            if lease is None or lease.revoked or lease.expires <= now:
                raise LeaseRefused(f"fake: lease {lease_id} not found")
            if not lease.renewable:
                raise LeaseRefused(f"fake: lease {lease_id} is not renewable")
            end = min(
                now + dt.timedelta(seconds=increment), lease.issued + dt.timedelta(seconds=lease.max_ttl)
            )
            lease.expires = end
            return LeaseGrant(int((end - now).total_seconds()), True)

    def revoke_lease(self, lease_id: str) -> None:
        self._enter("revoke", lease_id)
        with self._lock:
            lease = self.leases.get(lease_id)
            if lease is not None:
                lease.revoked = True

    def missing_write(self, keys: list[str], *, creating: bool = False) -> dict[str, list[str]]:
        self._enter("capabilities", None)
        return {k: list(self.write_denied[k]) for k in keys if k in self.write_denied}

    def describe_missing_write(self, missing: dict[str, list[str]]) -> str:
        return "; ".join(f"fake credentials lack {', '.join(c)} on {k}" for k, c in missing.items())


class BatchingFakeProvider(FakeProvider):
    """A fake that declares batched reads (``BatchReader``) and counts its own calls
    (``SelfCounting``), like the AWS providers: ``batches`` records each read_many's refs."""

    name = "fake-batching"
    batch_size = 20

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.batches: list[list[RemoteRef]] = []
        self.observer: CallObserver | None = None

    def observe_calls(self, observer: CallObserver) -> None:
        self.observer = observer

    def read_many(self, refs: list[RemoteRef]) -> dict[RemoteRef, RemoteSecret | ProviderError]:
        with self._lock:
            self.batches.append(list(refs))
        result = super().read_many(refs)
        if self.observer is not None:
            self.observer("read_many", "success", 0.0)
        return result

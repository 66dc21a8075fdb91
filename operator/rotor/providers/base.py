"""The one provider protocol every backend implements (Vault, AWS, the fake for unit tests).

Providers are plain blocking code: they are only ever called from the bounded thread pool in
``rotor.services.backend`` (never on kopf's event loop). They raise ``ProviderError`` subclasses,
whose ``reason`` is a documented condition reason and whose message never contains a value.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable


class Capabilities(enum.StrEnum):
    """What a store's credentials were found able to do when the store was validated."""

    READ_ONLY = "ReadOnly"
    READ_WRITE = "ReadWrite"
    #: authenticated and able to read; write access depends on the path and is checked for the
    #: paths a rotation writes, when it writes them (``WriteChecker``; Vault policies are per path)
    PER_PATH = "PerPath"


# --------------------------------------------------------------------------- errors


class ProviderError(Exception):
    """A backend failure. ``reason`` is a documented condition reason; the message is for people
    and must never contain a secret value."""

    reason = "ProviderError"
    #: would trying again later plausibly help (network, throttling, 5xx)?
    retryable = True

    def __init__(self, message: str, *, backend_code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        #: the backend's own error code this was made from (e.g. AWS ``ResourceNotFoundException``)
        self.backend_code = backend_code
        #: the backend asked Rotor to slow down (HTTP 429, AWS ThrottlingException, Vault 503):
        #: the store's rate limiter backs off
        self.throttled = False


class KeyNotFound(ProviderError):
    reason = "KeyNotFound"
    retryable = False


class AccessDenied(ProviderError):
    reason = "Forbidden"
    retryable = False


class AuthFailed(ProviderError):
    reason = "AuthFailed"
    retryable = False


class Unreachable(ProviderError):
    reason = "Unreachable"


class InvalidConfig(ProviderError):
    reason = "InvalidConfig"
    retryable = False


class InvalidSpec(ProviderError):
    """The object's own spec asks for something the backend cannot mean (e.g. a Vault KV version
    that is not a number): a person must fix the spec; retrying does not help."""

    reason = "InvalidSpec"
    retryable = False


class WriteConflict(ProviderError):
    """Check-and-set failed: someone else wrote the path since we read it."""

    reason = "Conflict"


#: seconds a settled read is shared with the callers that ask for the same value after it
#: (``rotor.services.backend.Backend``): objects on one refresh slot read once. A provider that
#: caches metadata per secret (Secret Manager's ``expireTime``) keeps it as long.
SHARE_WINDOW = 5.0


# --------------------------------------------------------------------------- values


@dataclass(frozen=True)
class RemoteRef:
    """Where one remote secret lives. ``version`` is a provider version id (Vault KV version,
    AWS VersionId, SSM version number) or a stage/label (``AWSCURRENT``, ``AWSPREVIOUS``, an SSM
    label); ``None`` means the current one."""

    key: str
    version: str | None = None


@dataclass
class RemoteSecret:
    """One remote secret as the backend returned it.

    Exactly one of ``data`` (a map of properties: Vault KV data, or a JSON object stored in AWS)
    and ``raw`` (an opaque string or binary value) is meaningful. ``properties()`` gives the map
    view where there is one.
    """

    key: str
    version: str | None
    data: dict[str, Any] | None = None
    raw: bytes | None = None
    created: datetime | None = None
    #: when the backend says this version stops being valid (Azure Key Vault ``exp``): it feeds
    #: ``status.expiry`` (source ``Provider``)
    expires: datetime | None = None
    #: provider metadata useful for expiry/rotation tracking, never values
    #: (e.g. ``stages``, ``last_rotated``, ``next_rotation``, ``updated``, ``versions``)
    metadata: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:  # never print values
        return f"RemoteSecret(key={self.key!r}, version={self.version!r})"

    __str__ = __repr__


@dataclass(frozen=True)
class SecretMetadata:
    """What a backend says about a secret without its value (for Observe, change detection)."""

    key: str
    current_version: str | None
    created: datetime | None = None
    updated: datetime | None = None
    last_rotated: datetime | None = None
    next_rotation: datetime | None = None
    #: AWS: version id -> stages; Vault KV v2: version -> {"created": iso, "deleted": bool}
    versions: dict[str, list[str]] = field(default_factory=dict)
    rotation_enabled: bool | None = None


@dataclass(frozen=True)
class WriteResult:
    key: str
    version: str | None


@dataclass(frozen=True)
class RolledBack(WriteResult):
    """A rollback's outcome: ``before`` was current, the value of ``restored`` is current again,
    as version ``version`` (the same as ``restored`` where the backend moves a label back, a new
    version where it writes the old value again)."""

    before: str | None = None
    restored: str | None = None


# --------------------------------------------------------------------------- protocol


@runtime_checkable
class Provider(Protocol):
    """A connection to one backend, as configured by one SecretStore. Blocking."""

    #: "vault" | "aws-secretsmanager" | "aws-parameterstore" | "fake"
    name: str

    def validate(self) -> Capabilities:
        """Really authenticate and read/list one thing; return what the credentials can do."""

    def read(self, ref: RemoteRef) -> RemoteSecret:
        """Read one secret. Raise KeyNotFound, AccessDenied, Unreachable, ..."""

    def read_many(self, refs: list[RemoteRef]) -> dict[RemoteRef, RemoteSecret | ProviderError]:
        """Read several at once (AWS batches 20 per call); per-ref errors are returned, not raised."""

    def find(self, path: str, name_regexp: str | None) -> list[str]:
        """Keys under ``path`` whose last segment (or whole name) matches ``name_regexp``."""

    def describe(self, key: str) -> SecretMetadata:
        """Metadata only: versions, stages, timestamps."""

    def write(self, key: str, value: dict[str, Any] | bytes | str, cas: str | None) -> WriteResult:
        """Write a new version. ``cas`` is the version the caller read (Vault check-and-set);
        a mismatch raises WriteConflict."""

    def close(self) -> None:
        """Release clients and revoke what should be revoked."""


# --------------------------------------------------------------------------- capabilities
# Optional abilities beyond the protocol above. Callers check them with ``isinstance`` (through
# ``rotor.services.backend.Backend``), never by a provider's name or with ``getattr``.


@runtime_checkable
class BatchReader(Protocol):
    """Reads batched on the wire (AWS BatchGetSecretValue): ``read_many`` makes one call per
    ``batch_size`` refs, so the backend gathers reads that arrive together. (Every provider has
    ``read_many``; only a batch reader declares ``batch_size``.)"""

    #: how many current values one API call reads
    batch_size: int

    def read_many(self, refs: list[RemoteRef]) -> dict[RemoteRef, RemoteSecret | ProviderError]: ...


#: called after every real backend API call with (operation, result, seconds); result is
#: "success" or an error reason such as "KeyNotFound"
CallObserver = Callable[[str, str, float], None]


@runtime_checkable
class SelfCounting(Protocol):
    """Reports every real API call itself (a batch of 20 reads is one call), to the observer the
    backend hands it, so the backend does not count the provider's method calls as well."""

    def observe_calls(self, observer: CallObserver) -> None: ...


@runtime_checkable
class ChangeLister(Protocol):
    """Lists the current version id of many keys in one pass without reading values."""

    def list_changes(self, keys: list[str]) -> dict[str, str]: ...


@dataclass(frozen=True)
class QueuedChange:
    """One message of a change-event queue: the handle to delete it with, and its body."""

    receipt: str
    body: str = field(repr=False)


@runtime_checkable
class ChangeEventSource(Protocol):
    """Change events from a queue the store names (AWS: ``changeEvents.sqsQueueURL``, SQS long
    polling). ``has_change_events`` is False when the store names none."""

    @property
    def has_change_events(self) -> bool: ...

    def receive_changes(self, wait_seconds: int) -> list[QueuedChange]:
        """Wait up to ``wait_seconds`` for messages (blocks: run it off the event loop)."""
        ...

    def delete_changes(self, receipts: list[str]) -> None:
        """Delete handled messages (the rest come back after the queue's visibility timeout)."""
        ...


@runtime_checkable
class StagedWriter(Protocol):
    """Writes a new version beside the current one (AWS AWSPENDING), verifies and promotes it.
    ``token`` is the idempotency token recorded before the write."""

    def stage(self, key: str, value: dict[str, Any] | bytes | str, token: str) -> str: ...

    def verify(self, key: str, version_id: str, expected: dict[str, Any] | bytes | str) -> bool: ...

    def promote(self, key: str, version_id: str) -> None: ...


@runtime_checkable
class Creator(Protocol):
    """Creates a key that does not exist, never overwriting one that does (createIfMissing):
    Vault KV v2 check-and-set 0, AWS CreateSecret keyed by ``token`` (the ClientRequestToken, which
    becomes the VersionId), SSM PutParameter without Overwrite. Raises ``WriteConflict`` when
    anything exists at ``key`` (nothing is written then), ``Unsupported`` when this store cannot
    create without overwriting (Vault KV v1)."""

    def create(self, key: str, value: dict[str, Any] | bytes | str, token: str) -> WriteResult: ...


@runtime_checkable
class SelfRotating(Protocol):
    """The backend rotates the secret itself (AWS RotateSecret with a rotation function)."""

    def rotate(self, key: str, token: str | None = None) -> str | None: ...


@runtime_checkable
class DatabaseCredentials(Protocol):
    """Static database credentials that the backend rotates (Vault database static roles)."""

    def read_database_credentials(self, mount: str, role: str) -> RemoteSecret: ...

    def rotate_database_role(self, mount: str, role: str) -> None: ...


@dataclass
class LeasedValue:
    """Credentials issued with a lease (Vault dynamic secrets). ``data`` holds the credentials and
    is never printed; the lease id is not a secret value (it cannot be used to read them)."""

    path: str
    lease_id: str
    #: seconds granted; 0 = the lease does not expire
    duration: int
    renewable: bool
    data: dict[str, Any]

    def __repr__(self) -> str:  # never print values
        return f"LeasedValue(path={self.path!r}, lease_id={self.lease_id!r}, duration={self.duration})"

    __str__ = __repr__


@dataclass(frozen=True)
class LeaseGrant:
    """A renewal's answer: the seconds granted from now, and whether Vault still calls it renewable."""

    duration: int
    renewable: bool


class LeaseRefused(ProviderError):
    """The backend refused to renew a lease (unknown, expired, revoked or not renewable): new
    credentials must be issued."""

    reason = "ProviderError"
    retryable = False


@runtime_checkable
class LeasedCredentials(Protocol):
    """Issues credentials with a lease, renews and revokes leases (Vault dynamic secrets: the
    database, AWS and RabbitMQ engines, any path that returns a lease)."""

    def issue_leased(self, path: str) -> LeasedValue:
        """Read ``path``, which issues new credentials; raise InvalidSpec when it gives no lease."""
        ...

    def renew_lease(self, lease_id: str, increment: int) -> LeaseGrant:
        """Ask for ``increment`` more seconds; raise LeaseRefused when renewing is refused."""
        ...

    def revoke_lease(self, lease_id: str) -> None:
        """End the lease now (the backend removes the credentials)."""
        ...


@runtime_checkable
class CertificateIssuer(Protocol):
    """Issues a certificate and key (Vault PKI)."""

    def issue_certificate(
        self, mount: str, role: str, common_name: str, alt_names: list[str], ttl: str | None
    ) -> dict[str, str]: ...


@runtime_checkable
class RollingBack(Protocol):
    """Makes the previous version current again (``rotor rollback``)."""

    def rollback(self, key: str) -> RolledBack: ...


@runtime_checkable
class TagFinder(Protocol):
    """``dataFrom.find`` by tags: keys under ``path`` matching ``name_regexp`` (as ``find``) that
    carry every one of ``tags`` with exactly its value (Azure Key Vault tags, Google Secret Manager
    labels, AWS Secrets Manager tags), from the same listing calls as ``find``."""

    def find_tagged(self, path: str, name_regexp: str | None, tags: dict[str, str]) -> list[str]: ...


@runtime_checkable
class RetiresVersions(Protocol):
    """Retires the version a Generate rotation replaced, once its grace period is over (Azure Key
    Vault: the version is disabled, and ``rotor rollback`` enables it again). Google Secret
    Manager leaves replaced versions as they are, so it has no such capability.

    Idempotent (a version already retired, or gone, is fine), and it never retires the version
    that is current: it returns False and does nothing when ``version`` is current, True when the
    version is retired (now or before)."""

    def retire_version(self, key: str, version: str) -> bool: ...


@runtime_checkable
class VersionReader(Protocol):
    """Keeps earlier versions of a secret and reads one back by the exact id a caller recorded:
    Vault KV v2 version n-1, the AWS Secrets Manager VersionId that was AWSCURRENT (AWSPREVIOUS
    after a rotation), SSM Parameter Store version n-1. Used for the previous value of a rotation
    (``status.rotation.baseVersions``) when it cannot be taken from this reconcile's reads.

    ``version`` is always a version id, never a stage or label, and the answer is that version or
    an error: ``KeyNotFound`` when the backend no longer holds it (destroyed, deleted, aged out,
    or a store that keeps no versions, such as Vault KV v1)."""

    def read_version(self, key: str, version: str) -> RemoteSecret: ...


@runtime_checkable
class MapsOnly(Protocol):
    """The backend stores maps of properties only (Vault KV): a value pushed whole goes under a
    property, and creating a key that must not exist is check-and-set version 0."""

    maps_only: bool


@runtime_checkable
class RemoteDeleter(Protocol):
    """Deletes a remote secret with all its versions (a PushSecret's ``deletionPolicy: Delete``):
    Vault KV v2 metadata and versions, AWS DeleteSecret without a recovery window, SSM
    DeleteParameter. A secret that is already gone is fine."""

    def delete_secret(self, key: str) -> None: ...


@runtime_checkable
class PathReader(Protocol):
    """Reads every value under a path at once (SSM GetParametersByPath; ``rotor import``)."""

    def read_path(self, path: str) -> dict[str, bytes]: ...


@runtime_checkable
class WriteChecker(Protocol):
    """Judges write access for the exact keys a rotation is about to write (Vault:
    ``sys/capabilities-self``), instead of a probe path at store validation."""

    def missing_write(self, keys: list[str], *, creating: bool = False) -> dict[str, list[str]]:
        """For each key that cannot be written (``creating``: created where nothing exists yet,
        createIfMissing), the missing capabilities ("create", "update"),
        keyed by the backend path (e.g. ``secret/data/app/db``); keys that can be written are
        absent. Raises ProviderError when the backend cannot answer."""
        ...

    def describe_missing_write(self, missing: dict[str, list[str]]) -> str:
        """A message naming each path and missing capability, and where to grant them."""
        ...


class WriteDenied(AccessDenied):
    """The credentials cannot write some of the paths a rotation is about to write;
    ``missing`` maps each such path to the capabilities it lacks."""

    def __init__(self, message: str, missing: dict[str, list[str]]) -> None:
        super().__init__(message)
        self.missing = missing


class Unsupported(ProviderError):
    """The store's provider does not have the capability an object asks for."""

    reason = "InvalidConfig"
    retryable = False


# --------------------------------------------------------------------------- building from a spec


@dataclass(frozen=True)
class StoreAccess:
    """What a provider may ask of Kubernetes while it builds its config from a store spec: the
    port the store service hands in, so that providers never import a Kubernetes client.

    ``secret_value(namespace, name, key)`` reads one key of a Secret as text (raising
    ``InvalidConfig`` when the Secret or the key is missing); ``service_account_token(namespace,
    name, audiences)`` returns a fresh ServiceAccount token (TokenRequest). The token callable
    blocks: providers call it from the backend's worker threads, never on the event loop.
    """

    store_id: str  # "<kind>/<namespace>/<name>", for messages and metrics
    namespace: str | None  # the store's namespace; None for a ClusterSecretStore
    secret_value: Callable[[str, str, str], Awaitable[str]]
    service_account_token: Callable[[str, str, list[str]], str]

    async def secret(self, ref: Any) -> str:
        """The value of a ``secretRef`` (``{name, key}``, with ``namespace`` in cluster stores)."""
        return await self.secret_value(ref.namespace_in(self.namespace), ref.name, ref.key)


@dataclass(frozen=True)
class ProviderBuilder:
    """How one provider is made from its section of a store spec (``spec.provider.<field>``).

    ``configure`` resolves the section (reading credentials through ``StoreAccess``) into the
    provider's plain config; ``create`` builds the provider from it without any network call.
    The two are separate so that the store service rebuilds a provider only when its config
    (credentials included) changed.
    """

    configure: Callable[[Any, StoreAccess], Awaitable[Any]]
    create: Callable[[Any], Provider]

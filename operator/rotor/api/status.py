"""Status models, condition types and reasons (DESIGN.md §1 and §3).

Status models ignore fields they do not know, so a status written by another operator version still
parses. Timestamps are timezone-aware UTC and are written as RFC 3339 with seconds precision.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, PlainSerializer

from rotor.api.common import StatusModel

__all__ = [
    "Condition",
    "ConditionStatus",
    "ConditionType",
    "Expiry",
    "FailureCause",
    "LeaseStatus",
    "ManagedSecretStatus",
    "PlannedEvent",
    "PreviousLease",
    "Reason",
    "RolloutStatus",
    "RotationPhase",
    "RotationPolicyStatus",
    "RotationStatus",
    "SecretStoreStatus",
    "Timestamp",
    "format_timestamp",
]


def _to_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def format_timestamp(value: datetime) -> str:
    """RFC 3339, UTC, whole seconds: the form Kubernetes itself writes (``2025-01-31T12:00:00Z``)."""
    return _to_utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")


#: A point in time in status. Naive datetimes are taken as UTC.
Timestamp = Annotated[
    datetime,
    AfterValidator(_to_utc),
    PlainSerializer(format_timestamp, return_type=str, when_used="json"),
    Field(json_schema_extra={"format": "date-time"}),
]


class ConditionType(enum.StrEnum):
    READY = "Ready"
    ROTATING = "Rotating"
    EXPIRING = "Expiring"
    RECONCILING = "Reconciling"
    STALLED = "Stalled"


class Reason(enum.StrEnum):
    """Every condition reason a user can see (DESIGN.md §1 and §3)."""

    # ManagedSecret Ready
    SYNCED = "Synced"
    INVALID_SPEC = "InvalidSpec"
    STORE_NOT_FOUND = "StoreNotFound"
    STORE_NOT_READY = "StoreNotReady"
    FORBIDDEN = "Forbidden"
    KEY_NOT_FOUND = "KeyNotFound"
    PROVIDER_ERROR = "ProviderError"
    VALIDATION_FAILED = "ValidationFailed"
    TEMPLATE_ERROR = "TemplateError"
    TEMPLATE_MISSING = "TemplateMissing"
    SECRET_CONFLICT = "SecretConflict"
    EXPIRED = "Expired"
    INVALID_KEY = "InvalidKey"
    # PushSecret Ready (and Forbidden, StoreNotFound, StoreNotReady, InvalidSpec, ProviderError...)
    PUSHED = "Pushed"
    SECRET_MISSING = "SecretMissing"
    KEY_MISSING = "KeyMissing"
    REMOTE_CONFLICT = "RemoteConflict"
    # Stalled=False while Reconciling=True
    PROGRESSING = "Progressing"
    # Rotating
    SCHEDULED = "Scheduled"
    MANUAL = "Manual"
    EXPIRING = "Expiring"
    #: createIfMissing: the remote key did not exist; Rotor creates it
    MISSING = "Missing"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    # (and SecretConflict: a due rotation waits because its Secret cannot be written)
    # Expiring
    EXPIRES_SOON = "ExpiresSoon"
    ROTATION_OVERDUE = "RotationOverdue"
    ROTATION_STALLED = "RotationStalled"
    # SecretStore Ready
    VALID = "Valid"
    INVALID_CONFIG = "InvalidConfig"
    AUTH_FAILED = "AuthFailed"
    UNREACHABLE = "Unreachable"
    # ClusterManagedSecret Ready, and its failedNamespaces (beside the ManagedSecrets' own reasons)
    NAMESPACES_FAILED = "NamespacesFailed"
    NAME_CONFLICT = "NameConflict"
    NAMESPACE_NOT_FOUND = "NamespaceNotFound"
    WRITE_FAILED = "WriteFailed"


ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(StatusModel):
    type: Annotated[str, Field(min_length=1, max_length=316)] = Field(
        description="Ready, Rotating, Expiring, Reconciling or Stalled."
    )
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: Annotated[str, Field(max_length=1024)] = Field(
        default="", description="A CamelCase word saying why, from the documented list."
    )
    message: Annotated[str, Field(max_length=32768)] = Field(
        default="", description="What happened, for people. Never contains a secret value."
    )
    observed_generation: int | None = Field(
        default=None, ge=0, description="The metadata.generation this condition was computed for."
    )
    last_transition_time: Timestamp | None = Field(
        default=None, description="When status last changed (not when reason or message did)."
    )


#: Conditions are a list keyed by type, so server-side apply merges them per type.
CONDITIONS_LIST: dict[str, Any] = {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]}


class Expiry(StatusModel):
    not_after: Timestamp | None = Field(default=None, description="When the data stops being good.")
    source: Literal["Certificate", "Policy", "Provider"] | None = Field(
        default=None,
        description="What set notAfter: a certificate in the data, the policy's maxAge, or the backend.",
    )
    renewal_time: Timestamp | None = Field(
        default=None, description="notAfter minus rotateBefore: when Expiring turns True."
    )


class RotationPhase(enum.StrEnum):
    """The phases of rotor.rotation.phases' state machine."""

    PENDING = "Pending"
    WRITTEN = "Written"  # written in place (Vault, Parameter Store, database roles, RotateSecret)
    STAGED = "Staged"  # AWS Secrets Manager
    VERIFIED = "Verified"  # AWS Secrets Manager
    PROMOTED = "Promoted"  # AWS Secrets Manager
    SYNCED = "Synced"  # the Secret holds the new value; completion not yet recorded
    COMPLETED = "Completed"
    FAILED = "Failed"  # a rotation that could not start (read-only store, Observe, bad policy)


class FailureCause(enum.StrEnum):
    """Where the last failed rotation attempt's cause lies, so that a later reconcile can tell,
    without reading messages, whether it has been fixed."""

    POLICY = "Policy"  # the policy is missing or invalid
    READ_ONLY_STORE = "ReadOnlyStore"  # the store's credentials cannot write
    SPEC = "Spec"  # the ManagedSecret's rotation settings (keys, pinned versions, Observe)
    SECRET_CONFLICT = "SecretConflict"  # the Secret cannot be written, so the source is not either
    SOURCE = "Source"  # the backend refused or failed a step


@dataclass(frozen=True)
class PlannedEvent:
    """An Event a decision asks for; the service posts it. ``note`` never holds a value."""

    type: Literal["Normal", "Warning"]
    reason: str
    note: str
    action: str


class RotationStatus(StatusModel):
    last_rotation_time: Timestamp | None = Field(
        default=None, description="When the last rotation completed."
    )
    next_rotation_time: Timestamp | None = Field(default=None, description="When the next rotation is due.")
    phase: RotationPhase | None = Field(
        default=None,
        description="Step of the current or last rotation. Written in place (Vault, Parameter Store, "
        "database roles, RotateSecret): Pending, Written, Synced, Completed. AWS Secrets Manager: Pending, "
        "Staged, Verified, Promoted, Synced, Completed. Failed: it could not start.",
    )
    failed_attempts: int = Field(default=0, ge=0, description="Failed attempts at the current rotation.")
    last_failure_time: Timestamp | None = Field(default=None, description="When the last attempt failed.")
    failure_cause: FailureCause | None = Field(
        default=None,
        description="What the last failure came from: Policy, ReadOnlyStore, Spec, SecretConflict or Source.",
    )
    previous_retained_until: Timestamp | None = Field(
        default=None, description="When the previous value's key leaves the Secret (end of gracePeriod)."
    )
    due_at: Timestamp | None = Field(
        default=None,
        description="The due date the current rotation serves; one due date is never rotated twice.",
    )
    pending_version: Annotated[str, Field(max_length=256)] | None = Field(
        default=None, description="The version written to the source by the current rotation."
    )
    trigger: Literal["Scheduled", "Manual", "Expiring", "Missing"] | None = Field(
        default=None,
        description="What started the current rotation (Missing: createIfMissing creates the remote key).",
    )
    last_rotate_request: str | None = Field(
        default=None, description="The rotor.dev/rotate annotation value already handled."
    )
    started_at: Timestamp | None = Field(default=None, description="When the current rotation started.")
    token: Annotated[str, Field(max_length=64)] | None = Field(
        default=None,
        description="Idempotency token of the current rotation (the AWS ClientRequestToken), so a resumed "
        "rotation never writes a second new version.",
    )
    base_versions: dict[str, str] = Field(
        default_factory=dict,
        description="Source versions the current rotation replaced; a source that moved past them was "
        "written by this rotation before a restart. Kept through the grace period: the previous value is "
        "read from them.",
    )
    claimed_by: Annotated[str, Field(max_length=253)] | None = Field(
        default=None,
        description="The operator process that recorded the current phase. Each phase is claimed with a "
        "conditional status write (resourceVersion precondition) before the source is touched; a second "
        "operator that loses the claim backs off and posts a RotationClaimLost Event.",
    )
    claimed_at: Timestamp | None = Field(default=None, description="When claimedBy recorded the phase.")


LeaseId = Annotated[str, Field(min_length=1, max_length=1024)]


class PreviousLease(StatusModel):
    id: LeaseId = Field(description="The lease of the credentials replaced last.")
    expires_at: Timestamp | None = Field(
        default=None, description="When that lease ends: its keys leave the Secret then."
    )
    keys: list[str] = Field(
        default_factory=list, description="The Secret keys it wrote (kept as <key><previousKeySuffix>)."
    )


class LeaseStatus(StatusModel):
    """The lease of the dynamic credentials in the Secret (never the credentials)."""

    id: LeaseId = Field(description="Vault's lease id, e.g. database/creds/app/<id>.")
    path: str | None = Field(default=None, description="The Vault path that issued it.")
    issued_at: Timestamp | None = Field(default=None, description="When these credentials were issued.")
    duration: int = Field(
        default=0,
        ge=0,
        description="The lease's duration in seconds, as Vault granted it at issue; each renewal "
        "asks for this much again. 0: the lease does not expire.",
    )
    renewable: bool = Field(
        default=False,
        description="Whether renewing can extend the lease: false when Vault issued it non-renewable, "
        "refused a renewal, or capped one at the role's max TTL. New credentials are then issued "
        "before expiresAt.",
    )
    expires_at: Timestamp | None = Field(default=None, description="When the lease ends unless renewed.")
    keys: list[str] = Field(default_factory=list, description="The Secret keys these credentials wrote.")
    previous: PreviousLease | None = Field(
        default=None,
        description="The replaced credentials' lease while they are still kept in the Secret.",
    )


class RolloutStatus(StatusModel):
    last_restart_time: Timestamp | None = Field(
        default=None, description="When workloads were last restarted."
    )
    restarted: list[str] = Field(
        default_factory=list, description='Workloads restarted last time, e.g. ["Deployment/api"].'
    )


class ManagedSecretStatus(StatusModel):
    observed_generation: int | None = Field(
        default=None, ge=0, description="The metadata.generation this status was computed for."
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Ready, Rotating, Expiring, Reconciling and Stalled.",
        json_schema_extra=CONDITIONS_LIST,
    )
    secret_name: str | None = Field(default=None, description="Name of the Secret written.")
    last_sync_time: Timestamp | None = Field(
        default=None,
        description="When the Secret's data last changed: the first sync, or a sync that found new "
        "values at the source. A refresh that finds nothing new does not move it (such refreshes "
        "write no status), so it is not when the source was last read. The metric "
        "rotor_managedsecret_last_sync_timestamp_seconds is this same time.",
    )
    next_refresh_time: Timestamp | None = Field(
        default=None,
        description="The next refresh planned when this status was last written. Refreshes that "
        "find nothing new write no status, so this is not moved forward by each of them: once it "
        "is past, the source has been read on schedule since and nothing has changed.",
    )
    source_versions: dict[str, str] = Field(
        default_factory=dict, description="The provider's version id of each Secret key's source."
    )
    data_hash: str | None = Field(
        default=None, description="Keyed digest of the written data (hmac-sha256:...), never the data."
    )
    expiry: Expiry | None = Field(default=None, description="How long the data stays good.")
    rotation: RotationStatus | None = Field(default=None, description="Progress of rotations.")
    rollout: RolloutStatus | None = Field(default=None, description="Last restart of consuming workloads.")
    lease: LeaseStatus | None = Field(
        default=None, description="The lease of dynamic credentials (dataFrom.vaultDynamic)."
    )
    last_force_sync: str | None = Field(
        default=None, description="The rotor.dev/force-sync annotation value already handled."
    )


class SecretStoreStatus(StatusModel):
    observed_generation: int | None = Field(
        default=None, ge=0, description="The metadata.generation this status was computed for."
    )
    conditions: list[Condition] = Field(
        default_factory=list, description="Ready.", json_schema_extra=CONDITIONS_LIST
    )
    capabilities: Literal["ReadOnly", "ReadWrite", "PerPath"] | None = Field(
        default=None,
        description="What the credentials were found able to do. PerPath: they authenticate and "
        "write access depends on the path (Vault policies); it is checked for the paths a rotation "
        "writes, when it writes them.",
    )


class RotationPolicyStatus(StatusModel):
    observed_generation: int | None = Field(
        default=None, ge=0, description="The metadata.generation this status was computed for."
    )
    conditions: list[Condition] = Field(
        default_factory=list, description="Ready.", json_schema_extra=CONDITIONS_LIST
    )
    bound_managed_secrets: int = Field(
        default=0, ge=0, description="How many ManagedSecrets use this policy."
    )
    earliest_next_rotation: Timestamp | None = Field(
        default=None, description="The soonest next rotation among those ManagedSecrets."
    )

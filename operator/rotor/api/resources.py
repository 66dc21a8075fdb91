"""The five kinds as whole objects (apiVersion, kind, metadata, spec, status), with what their CRDs need
beyond the schema: names, scope, short names and printer columns."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from rotor.api.clustermanagedsecret import ClusterManagedSecretSpec, ClusterManagedSecretStatus
from rotor.api.managedsecret import ManagedSecretSpec
from rotor.api.names import API_VERSION
from rotor.api.pushsecret import PushSecretSpec, PushSecretStatus
from rotor.api.rotationpolicy import RotationPolicySpec
from rotor.api.secretstore import ClusterSecretStoreSpec, SecretStoreSpec
from rotor.api.status import ManagedSecretStatus, RotationPolicyStatus, SecretStoreStatus

__all__ = [
    "ClusterManagedSecret",
    "ClusterRotationPolicy",
    "ClusterSecretStore",
    "CrdInfo",
    "ManagedSecret",
    "ObjectMeta",
    "PrinterColumn",
    "PushSecret",
    "Resource",
    "RotationPolicy",
    "SecretStore",
]


@dataclass(frozen=True)
class PrinterColumn:
    name: str
    type: Literal["string", "integer", "number", "boolean", "date"]
    json_path: str
    description: str
    priority: int = 0

    def to_crd(self) -> dict[str, Any]:
        column: dict[str, Any] = {
            "name": self.name,
            "type": self.type,
            "jsonPath": self.json_path,
            "description": self.description,
        }
        if self.priority:
            column["priority"] = self.priority
        return column


@dataclass(frozen=True)
class CrdInfo:
    plural: str
    singular: str
    scope: Literal["Namespaced", "Cluster"]
    short_names: tuple[str, ...]
    printer_columns: tuple[PrinterColumn, ...]
    description: str


def _condition_column(name: str, field: str, description: str, priority: int = 0) -> PrinterColumn:
    return PrinterColumn(
        name, "string", f'.status.conditions[?(@.type=="Ready")].{field}', description, priority
    )


_READY = _condition_column("Ready", "status", "Whether the Ready condition is True.")
_REASON = _condition_column("Reason", "reason", "Why Ready is what it is.")
_AGE = PrinterColumn("Age", "date", ".metadata.creationTimestamp", "Time since creation.")
_STORE_COLUMNS = (
    _READY,
    PrinterColumn("Capabilities", "string", ".status.capabilities", "What the credentials can do."),
    _AGE,
)
_POLICY_COLUMNS = (
    PrinterColumn("Strategy", "string", ".spec.strategy", "Generate, Provider or Observe."),
    _AGE,
)


class ObjectMeta(BaseModel):
    """The metadata fields Rotor reads; the rest are ignored."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore", alias_generator=to_camel)

    name: str | None = None
    namespace: str | None = None
    uid: str | None = None
    generation: int | None = None
    resource_version: str | None = None
    creation_timestamp: datetime | None = None
    deletion_timestamp: datetime | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    finalizers: list[str] = Field(default_factory=list)


class Resource(BaseModel):
    """Base of the five kinds. Unknown top-level fields are ignored; ``spec`` is strict."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore", alias_generator=to_camel)

    crd: ClassVar[CrdInfo]

    api_version: str = API_VERSION
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)

    @property
    def name(self) -> str:
        return self.metadata.name or ""

    @property
    def namespace(self) -> str | None:
        return self.metadata.namespace


class ManagedSecret(Resource):
    crd = CrdInfo(
        plural="managedsecrets",
        singular="managedsecret",
        scope="Namespaced",
        short_names=("ms",),
        description="ManagedSecret says which remote values, from which store, become which Kubernetes "
        "Secret, how often they are refreshed, and how they are rotated.",
        # Future times are shown as RFC 3339 strings: a ``date`` column renders only the past and
        # shows ``<invalid>`` for any time ahead (kubectl's human durations do not go forwards).
        printer_columns=(
            _READY,
            _REASON,
            PrinterColumn(
                "Rotation",
                "string",
                '.status.conditions[?(@.type=="Rotating")].reason',
                "The Rotating condition's reason: Failed when the last rotation failed; Succeeded, "
                "Scheduled, or the trigger (Manual, Expiring) while one runs.",
            ),
            PrinterColumn(
                "Expires", "string", ".status.expiry.notAfter", "When the data stops being good (UTC)."
            ),
            PrinterColumn(
                "Next Rotation",
                "string",
                ".status.rotation.nextRotationTime",
                "When the next rotation is due (UTC).",
            ),
            _AGE,
            PrinterColumn(
                "Message",
                "string",
                '.status.conditions[?(@.type=="Ready")].message',
                "The Ready condition's message (with -o wide).",
                priority=1,
            ),
        ),
    )

    kind: Literal["ManagedSecret"] = "ManagedSecret"
    spec: ManagedSecretSpec
    status: ManagedSecretStatus = Field(default_factory=ManagedSecretStatus)


class SecretStore(Resource):
    crd = CrdInfo(
        plural="secretstores",
        singular="secretstore",
        scope="Namespaced",
        short_names=("ss",),
        description="SecretStore says how to reach one backend (HashiCorp Vault, AWS Secrets Manager or "
        "SSM Parameter Store) and authenticate to it, for ManagedSecrets of its own namespace.",
        printer_columns=_STORE_COLUMNS,
    )

    kind: Literal["SecretStore"] = "SecretStore"
    spec: SecretStoreSpec
    status: SecretStoreStatus = Field(default_factory=SecretStoreStatus)


class ClusterSecretStore(Resource):
    crd = CrdInfo(
        plural="clustersecretstores",
        singular="clustersecretstore",
        scope="Cluster",
        short_names=("css",),
        description="ClusterSecretStore says how to reach one backend and authenticate to it, for "
        "ManagedSecrets of the namespaces its conditions allow, limited to its allowedKeys.",
        printer_columns=_STORE_COLUMNS,
    )

    kind: Literal["ClusterSecretStore"] = "ClusterSecretStore"
    spec: ClusterSecretStoreSpec
    status: SecretStoreStatus = Field(default_factory=SecretStoreStatus)


class RotationPolicy(Resource):
    crd = CrdInfo(
        plural="rotationpolicies",
        singular="rotationpolicy",
        scope="Namespaced",
        short_names=("rp",),
        description="RotationPolicy says when to rotate a value and how to produce the new one, for "
        "ManagedSecrets of its own namespace.",
        printer_columns=_POLICY_COLUMNS,
    )

    kind: Literal["RotationPolicy"] = "RotationPolicy"
    spec: RotationPolicySpec
    status: RotationPolicyStatus = Field(default_factory=RotationPolicyStatus)


class ClusterRotationPolicy(Resource):
    crd = CrdInfo(
        plural="clusterrotationpolicies",
        singular="clusterrotationpolicy",
        scope="Cluster",
        short_names=("crp",),
        description="ClusterRotationPolicy says when to rotate a value and how to produce the new one, for "
        "ManagedSecrets of any namespace.",
        printer_columns=_POLICY_COLUMNS,
    )

    kind: Literal["ClusterRotationPolicy"] = "ClusterRotationPolicy"
    spec: RotationPolicySpec
    status: RotationPolicyStatus = Field(default_factory=RotationPolicyStatus)


class PushSecret(Resource):
    crd = CrdInfo(
        plural="pushsecrets",
        singular="pushsecret",
        scope="Namespaced",
        short_names=("ps",),
        description="PushSecret pushes keys of a Kubernetes Secret in its namespace to remote keys of a "
        "store (Vault KV, AWS Secrets Manager, SSM Parameter Store), when their data changes.",
        printer_columns=(
            _READY,
            _REASON,
            PrinterColumn("Last Push", "date", ".status.lastPushTime", "When Rotor last wrote to the store."),
            _AGE,
            PrinterColumn(
                "Message",
                "string",
                '.status.conditions[?(@.type=="Ready")].message',
                "The Ready condition's message (with -o wide).",
                priority=1,
            ),
        ),
    )

    kind: Literal["PushSecret"] = "PushSecret"
    spec: PushSecretSpec
    status: PushSecretStatus = Field(default_factory=PushSecretStatus)


class ClusterManagedSecret(Resource):
    crd = CrdInfo(
        plural="clustermanagedsecrets",
        singular="clustermanagedsecret",
        scope="Cluster",
        short_names=("cms",),
        description="ClusterManagedSecret writes one ManagedSecret, from one template, into every "
        "namespace it selects, and removes it from namespaces that stop matching. The "
        "ClusterSecretStore's conditions and allowedKeys apply to each copy as to any ManagedSecret.",
        printer_columns=(
            _READY,
            _REASON,
            PrinterColumn("Selected", "integer", ".status.namespaces.selected", "Namespaces selected."),
            PrinterColumn(
                "Ready NS", "integer", ".status.namespaces.ready", "Namespaces whose ManagedSecret is Ready."
            ),
            _AGE,
        ),
    )

    kind: Literal["ClusterManagedSecret"] = "ClusterManagedSecret"
    spec: ClusterManagedSecretSpec
    status: ClusterManagedSecretStatus = Field(default_factory=ClusterManagedSecretStatus)

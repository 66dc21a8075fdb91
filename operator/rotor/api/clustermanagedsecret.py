"""ClusterManagedSecret spec and status: one ManagedSecret per selected namespace (DESIGN §11)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from rotor.api.common import K8sName, LabelSelector, NamespaceName, SpecModel, StatusModel
from rotor.api.managedsecret import ManagedSecretSpec
from rotor.api.rules import AtLeastOneOf, Custom
from rotor.api.status import CONDITIONS_LIST, Condition

__all__ = [
    "MAX_FAILED_NAMESPACES",
    "NAMESPACE_PLACEHOLDER",
    "ClusterManagedSecretSpec",
    "ClusterManagedSecretStatus",
    "FailedNamespace",
    "NamespaceCounts",
]

#: ``{namespace}`` in a template's remote keys stands for the namespace each copy is written into
NAMESPACE_PLACEHOLDER = "{namespace}"
#: ``status.failedNamespaces`` lists at most this many (the counts cover them all)
MAX_FAILED_NAMESPACES = 20


class ClusterManagedSecretSpec(SpecModel):
    cel_rules = (
        AtLeastOneOf(
            ("namespace_selector", "namespaces"), message="set namespaceSelector, namespaces or both"
        ),
        Custom(
            expression="has(self.template.storeRef.kind) && self.template.storeRef.kind == 'ClusterSecretStore'",
            check=lambda spec: spec.template.store_ref.kind == "ClusterSecretStore",
            message="template.storeRef.kind must be ClusterSecretStore: a namespaced SecretStore "
            "exists in one namespace only, and the ClusterSecretStore's conditions and allowedKeys "
            "decide which namespaces and keys each copy may use",
        ),
    )

    namespace_selector: LabelSelector | None = Field(
        default=None, description="Namespaces whose labels match get a ManagedSecret."
    )
    namespaces: list[NamespaceName] | None = Field(
        default=None,
        min_length=1,
        max_length=1000,
        description="Namespaces named here get a ManagedSecret (beside those the selector picks). A "
        "named namespace that does not exist is listed in failedNamespaces (NamespaceNotFound).",
    )
    managed_secret_name: K8sName | None = Field(
        default=None,
        description="Name of each generated ManagedSecret. Default: this object's metadata.name.",
    )
    template: ManagedSecretSpec = Field(
        description="The spec of every generated ManagedSecret. {namespace} in remote keys "
        "(data[].remoteRef.key, dataFrom[].extract.key, dataFrom[].find.path, "
        "dataFrom[].vaultDynamic.path) is replaced by the namespace the copy is written into. "
        "storeRef must name a ClusterSecretStore."
    )


class FailedNamespace(StatusModel):
    namespace: Annotated[str, Field(max_length=63)] = Field(description="The namespace.")
    reason: str = Field(
        description="NameConflict, NamespaceNotFound, WriteFailed, or the Ready reason of the "
        "namespace's ManagedSecret (Forbidden, KeyNotFound, ...)."
    )
    message: str = Field(default="", description="What is wrong there, and what to do.")


class NamespaceCounts(StatusModel):
    selected: int = Field(default=0, ge=0, description="Namespaces selected (by the selector or by name).")
    ready: int = Field(default=0, ge=0, description="Of those, namespaces whose ManagedSecret is Ready.")
    failed: int = Field(default=0, ge=0, description="Of those, namespaces listed as failed (all of them).")


class ClusterManagedSecretStatus(StatusModel):
    observed_generation: int | None = Field(
        default=None, ge=0, description="The metadata.generation this status was computed for."
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Ready (True when every selected namespace has a Ready ManagedSecret), "
        "Reconciling and Stalled.",
        json_schema_extra=CONDITIONS_LIST,
    )
    namespaces: NamespaceCounts | None = Field(default=None, description="How many namespaces are where.")
    failed_namespaces: list[FailedNamespace] = Field(
        default_factory=list,
        max_length=MAX_FAILED_NAMESPACES,
        description=f"Up to {MAX_FAILED_NAMESPACES} failed namespaces, by name.",
    )

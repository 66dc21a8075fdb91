"""Pieces shared by every kind: the base models, name types and references to other objects."""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, GetJsonSchemaHandler, model_validator
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from rotor.api.duration import Duration, PositiveDuration
from rotor.api.rules import Custom, Rule

__all__ = [
    "ClusterSecretKeySelector",
    "ClusterServiceAccountRef",
    "Duration",
    "K8sName",
    "LabelSelector",
    "LabelSelectorRequirement",
    "NamespaceName",
    "PositiveDuration",
    "SecretDataKey",
    "SecretDataKeyMap",
    "SecretKeySelector",
    "ServiceAccountRef",
    "SpecModel",
    "StatusModel",
]

DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
#: Letters, digits, '-', '_' and '.', but not "." itself nor a name starting with ".." (what the
#: apiserver refuses in a Secret's data). No lookahead: the CRD's pattern is checked by Go's RE2.
SECRET_KEY_PATTERN = r"^(\.?[-_a-zA-Z0-9][-._a-zA-Z0-9]*)$"
_SECRET_KEY = re.compile(SECRET_KEY_PATTERN)

#: The name of a namespaced object (Secret, ServiceAccount, Deployment, store, policy): a DNS subdomain.
K8sName = Annotated[str, Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN)]
#: A namespace name: a DNS label.
NamespaceName = Annotated[str, Field(min_length=1, max_length=63, pattern=DNS_LABEL_PATTERN)]
#: A key in a Secret's ``data``.
SecretDataKey = Annotated[str, Field(min_length=1, max_length=253, pattern=SECRET_KEY_PATTERN)]


def check_secret_data_keys(value: dict[str, str]) -> dict[str, str]:
    """Map keys cannot carry a schema ``pattern``; check them here (Python side only)."""
    bad = sorted(k for k in value if not _SECRET_KEY.fullmatch(k) or len(k) > 253)
    if bad:
        raise ValueError(
            f"{', '.join(repr(k) for k in bad)}: "
            "Secret keys may contain only letters, digits, '-', '_' and '.', "
            "and may not be '.' or start with '..'"
        )
    return value


SecretDataKeyMap = Annotated[dict[str, str], AfterValidator(check_secret_data_keys)]


class SpecModel(BaseModel):
    """Base of every spec model: camelCase on the wire, unknown fields refused, cross-field ``cel_rules``
    checked in Python and rendered into the CRD as ``x-kubernetes-validations``."""

    model_config = ConfigDict(
        populate_by_name=True,
        extra="forbid",
        alias_generator=to_camel,
    )

    cel_rules: ClassVar[tuple[Rule, ...]] = ()

    @model_validator(mode="after")
    def _check_cel_rules(self) -> Self:
        broken = [rule.message for rule in type(self).cel_rules if not rule.holds(self)]
        if broken:
            raise ValueError("; ".join(broken))
        return self

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = super().__get_pydantic_json_schema__(core_schema, handler)
        if cls.cel_rules:
            target = handler.resolve_ref_schema(json_schema)
            target["x-kubernetes-validations"] = [r.x_kubernetes_validation(cls) for r in cls.cel_rules]
        return json_schema

    def to_wire(self) -> dict[str, Any]:
        """camelCase JSON-ready dict of the fields that were given (defaults left to the API server), as
        it would be written in a manifest."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True, exclude_none=True)


class StatusModel(BaseModel):
    """Base of status models: camelCase, and tolerant of fields written by other operator versions."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore", alias_generator=to_camel)

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class SecretKeySelector(SpecModel):
    """A key of a Secret in the store's own namespace."""

    name: K8sName = Field(description="Name of the Secret.")
    key: SecretDataKey = Field(description="Key inside the Secret's data.")

    def namespace_in(self, store_namespace: str | None) -> str:
        """The namespace the Secret lives in: the store's own, for a namespaced SecretStore."""
        if store_namespace is None:
            raise ValueError(f"secret reference {self.name!r} has no namespace")
        return store_namespace


class ClusterSecretKeySelector(SecretKeySelector):
    """A key of a Secret, naming its namespace (ClusterSecretStores have none of their own)."""

    namespace: NamespaceName = Field(description="Namespace of the Secret.")

    def namespace_in(self, store_namespace: str | None) -> str:
        return self.namespace


class ServiceAccountRef(SpecModel):
    """A ServiceAccount in the store's own namespace whose token Rotor requests."""

    name: K8sName = Field(description="Name of the ServiceAccount whose token is presented to Vault.")
    audiences: list[Annotated[str, Field(min_length=1, max_length=253)]] | None = Field(
        default=None,
        min_length=1,
        max_length=16,
        description="Audiences of the requested token. Default: the Kubernetes API server's own audience.",
    )

    def namespace_in(self, store_namespace: str | None) -> str:
        if store_namespace is None:
            raise ValueError(f"service account reference {self.name!r} has no namespace")
        return store_namespace


class ClusterServiceAccountRef(ServiceAccountRef):
    """A ServiceAccount, naming its namespace (ClusterSecretStores have none of their own)."""

    namespace: NamespaceName = Field(description="Namespace of the ServiceAccount.")

    def namespace_in(self, store_namespace: str | None) -> str:
        return self.namespace


class LabelSelectorRequirement(SpecModel):
    """One ``matchExpressions`` entry, as in any Kubernetes label selector."""

    cel_rules = (
        Custom(
            expression="self.operator in ['In', 'NotIn'] ? has(self.values) : !has(self.values)",
            check=lambda r: (r.values is not None) == (r.operator in ("In", "NotIn")),
            message="values are required for the In and NotIn operators, and not allowed for Exists "
            "and DoesNotExist",
        ),
    )

    key: Annotated[str, Field(min_length=1, max_length=317)] = Field(description="The label key.")
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"] = Field(
        description="How the label's value is compared with values."
    )
    values: list[Annotated[str, Field(max_length=63)]] | None = Field(
        default=None, min_length=1, max_length=256, description="Label values, for In and NotIn."
    )


class LabelSelector(SpecModel):
    """A Kubernetes label selector; all of its terms must match."""

    match_labels: dict[str, Annotated[str, Field(max_length=63)]] | None = Field(
        default=None, description="Labels that must all be present with exactly these values."
    )
    match_expressions: list[LabelSelectorRequirement] | None = Field(
        default=None, max_length=32, description="Label requirements that must all hold."
    )

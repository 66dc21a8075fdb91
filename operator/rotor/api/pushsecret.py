"""PushSecret: keys of a Kubernetes Secret pushed to a remote key of a store (DESIGN §11)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from rotor.api.common import K8sName, SecretDataKey, SpecModel, StatusModel
from rotor.api.duration import RefreshInterval
from rotor.api.managedsecret import StoreRef
from rotor.api.rules import Custom
from rotor.api.status import CONDITIONS_LIST, Condition, Timestamp

__all__ = [
    "PushData",
    "PushRefresh",
    "PushRemoteRef",
    "PushSecretSpec",
    "PushSecretStatus",
    "PushSelector",
    "PushSourceSecret",
    "PushedKey",
]

PushRemoteKey = Annotated[str, Field(min_length=1, max_length=2048)]
PushProperty = Annotated[str, Field(min_length=1, max_length=1024)]


class PushRemoteRef(SpecModel):
    key: PushRemoteKey = Field(
        description="Where to push: a Vault KV path under the store's mount (apps/partner), an AWS "
        "Secrets Manager secret name, or an SSM parameter name (/apps/partner/api-key). Checked "
        "against a ClusterSecretStore's allowedKeys before anything is written."
    )
    property: PushProperty | None = Field(
        default=None,
        description="The property of the remote value to set (a Vault KV property, a key of a JSON AWS "
        "secret or parameter); the remote value's other properties are kept. Absent: the whole remote "
        "value is the Secret key's value (on Vault, which stores maps, the property is then the "
        "secretKey).",
    )


class PushData(SpecModel):
    secret_key: SecretDataKey = Field(description="The key of the source Secret to push.")
    remote_ref: PushRemoteRef = Field(description="Where its value goes.")


class PushSourceSecret(SpecModel):
    name: K8sName = Field(description="Name of a Secret in the PushSecret's namespace.")


class PushSelector(SpecModel):
    secret: PushSourceSecret = Field(description="The Kubernetes Secret whose keys are pushed.")


class PushRefresh(SpecModel):
    interval: RefreshInterval = Field(
        default="1h",
        description="How often to check the remote again even when the Secret did not change (a "
        "Secret change is pushed at once, through the watch); at least 1s.",
    )


def _remote_use_consistent(spec: PushSecretSpec) -> bool:
    whole = {d.remote_ref.key for d in spec.data if d.remote_ref.property is None}
    used: dict[str, int] = {}
    for d in spec.data:
        used[d.remote_ref.key] = used.get(d.remote_ref.key, 0) + 1
    return all(used[k] == 1 for k in whole)


def _unique_targets(spec: PushSecretSpec) -> bool:
    targets = [(d.remote_ref.key, d.remote_ref.property) for d in spec.data]
    return len(targets) == len(set(targets))


class PushSecretSpec(SpecModel):
    cel_rules = (
        Custom(
            expression="self.data.all(d, has(d.remoteRef.property) || "
            "self.data.filter(e, e.remoteRef.key == d.remoteRef.key).size() == 1)",
            check=_remote_use_consistent,
            message="a remote key pushed whole (no remoteRef.property) cannot also take other data "
            "entries: give each entry on that key a property",
        ),
        Custom(
            expression="self.data.all(d, self.data.filter(e, e.remoteRef.key == d.remoteRef.key && "
            "(has(e.remoteRef.property) ? e.remoteRef.property : '') == "
            "(has(d.remoteRef.property) ? d.remoteRef.property : '')).size() == 1)",
            check=_unique_targets,
            message="two data entries push to the same remoteRef key and property",
        ),
    )

    store_ref: StoreRef = Field(description="The store to push to (its credentials must be able to write).")
    selector: PushSelector = Field(description="What to push from.")
    data: list[PushData] = Field(
        min_length=1,
        max_length=64,
        description="The Secret keys to push, each to one remote key (and property); at most 64 (so "
        "that the CEL rules comparing entries stay within the apiserver's cost budget).",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["secretKey"]},
    )
    update_policy: Literal["Replace", "IfNotExists"] = Field(
        default="Replace",
        description="Replace: write the Secret's value whenever it changes, and put it back when someone "
        "else changed the remote value meanwhile (a RemoteOverwritten Event names the versions). "
        "IfNotExists: write only a remote key that does not exist; an existing one is never "
        "overwritten (Ready=False, reason RemoteConflict, when it differs from the Secret).",
    )
    deletion_policy: Literal["None", "Delete"] = Field(
        default="None",
        description="When the PushSecret is deleted: None leaves the remote values; Delete removes what "
        "was pushed (the remote key, or only the pushed properties when others remain), under a "
        "finalizer, and only where the remote value is still the version Rotor pushed.",
    )
    refresh: PushRefresh = Field(default_factory=PushRefresh, description="When to check the remote again.")

    @field_validator("data")
    @classmethod
    def _unique_secret_keys(cls, value: list[PushData]) -> list[PushData]:
        keys = [item.secret_key for item in value]
        dupes = sorted({k for k in keys if keys.count(k) > 1})
        if dupes:
            raise ValueError(f"secretKey listed twice in data: {', '.join(dupes)}")
        return value


class PushedKey(StatusModel):
    remote_key: str = Field(description="The remote key written.")
    version: str | None = Field(
        default=None,
        description="The backend's version id after the last push (Vault KV version, AWS "
        "VersionId, SSM version).",
    )
    time: Timestamp | None = Field(default=None, description="When it was last pushed.")


class PushSecretStatus(StatusModel):
    observed_generation: int | None = Field(
        default=None, ge=0, description="The metadata.generation this status was computed for."
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Ready, Reconciling and Stalled.",
        json_schema_extra=CONDITIONS_LIST,
    )
    pushed: list[PushedKey] = Field(
        default_factory=list, description="Each remote key pushed, with the version Rotor wrote."
    )
    data_hash: str | None = Field(
        default=None,
        description="Keyed digest (hmac-sha256:...) of the data last pushed and where it went, never the "
        "data: a push happens only when it changes.",
    )
    last_push_time: Timestamp | None = Field(default=None, description="When Rotor last wrote to the store.")

"""ManagedSecret spec: which remote values become which Kubernetes Secret."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, field_validator

from rotor.api.common import (
    Duration,
    K8sName,
    SecretDataKey,
    SpecModel,
    check_secret_data_keys,
)
from rotor.api.duration import RefreshInterval
from rotor.api.rules import (
    AtLeastOneOf,
    AtMostOneOf,
    Custom,
    ExactlyOneOf,
    NotEqual,
    OnlyWhen,
    RequiredWhen,
)

__all__ = [
    "DataFromItem",
    "DataItem",
    "ExtractRef",
    "FindName",
    "FindRef",
    "ManagedSecretSpec",
    "PolicyRef",
    "Refresh",
    "RemoteRef",
    "Rollout",
    "RolloutTarget",
    "Rotation",
    "StoreRef",
    "Target",
    "Template",
    "TemplateConfigMapRef",
    "TemplateFrom",
    "ValidateFormat",
    "ValueValidation",
    "VaultDatabaseRef",
    "VaultDynamicRef",
]

RemoteKey = Annotated[str, Field(min_length=1, max_length=2048)]
#: ``dataFrom.find.tags``: at most this many, each key 1-256 and each value 0-256 characters (the
#: backends allow less: Azure 512, GCP 63 lowercase, AWS 128/256; the backend refuses the rest)
MAX_FIND_TAGS = 16
MAX_TAG_KEY = 256
TagValue = Annotated[str, Field(max_length=256)]
RemoteVersion = Annotated[str, Field(min_length=1, max_length=256)]
#: ``validations``: at most this many checks on one key
MAX_VALIDATIONS = 8

ValidateFormat = Literal[
    "min-length",
    "regex",
    "base64",
    "hex",
    "json",
    "url",
    "pem-private-key",
    "pem-public-key",
    "pem-certificate",
    "certificate-matches-key",
    "fernet-key",
    "jwt-hs256-key",
]


def _check_regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as err:
        raise ValueError(f"{value!r} is not a valid regular expression: {err}") from err
    return value


Regex = Annotated[str, Field(min_length=1, max_length=1024), AfterValidator(_check_regex)]


class StoreRef(SpecModel):
    name: K8sName = Field(description="Name of the SecretStore or ClusterSecretStore.")
    kind: Literal["SecretStore", "ClusterSecretStore"] = Field(
        default="SecretStore",
        description="SecretStore (in this namespace) or ClusterSecretStore (must allow this namespace).",
    )


class Target(SpecModel):
    cel_rules = (
        NotEqual(
            "type",
            "kubernetes.io/service-account-token",
            message="type kubernetes.io/service-account-token is refused: Kubernetes itself fills such "
            "Secrets with a token; request a token with TokenRequest or a projected volume instead",
        ),
    )

    name: K8sName | None = Field(
        default=None, description="Name of the Secret to write. Default: metadata.name."
    )
    type: Annotated[str, Field(min_length=1, max_length=253)] = Field(
        default="Opaque",
        description="Secret type, e.g. Opaque, kubernetes.io/tls, kubernetes.io/dockerconfigjson. "
        "Keys the type requires must be produced by data, dataFrom or template.",
    )
    labels: dict[str, str] = Field(
        default_factory=dict, description="Extra labels for the Secret, beside rotor.dev/managed-by."
    )
    annotations: dict[str, str] = Field(
        default_factory=dict, description="Extra annotations for the Secret, beside rotor.dev/data-hash."
    )
    creation_policy: Literal["Owner", "Merge", "Orphan"] = Field(
        default="Owner",
        description="Owner: create the Secret, owned by this ManagedSecret (deleted with it by the garbage "
        "collector unless deletionPolicy is Retain). Merge: write only this ManagedSecret's keys into an "
        "existing Secret, which must already exist; several ManagedSecrets may merge into one Secret, each "
        "owning its keys (annotation rotor.dev/managed-keys.<name>), and a key another one owns is "
        "SecretConflict for the later. Orphan: create the Secret without an ownerReference.",
    )
    deletion_policy: Literal["Retain", "Delete"] = Field(
        default="Retain",
        description="When the ManagedSecret is deleted: Retain keeps the Secret (Rotor removes its "
        "ownerReference and label); Delete removes the Secret (under Merge: only this ManagedSecret's keys; "
        "under Owner the garbage collector deletes it, so no finalizer is needed).",
    )


class RemoteRef(SpecModel):
    key: RemoteKey = Field(
        description="Path or name of the remote secret: a Vault KV path under the store's mount "
        "(apps/db), an AWS secret name or ARN, or an SSM parameter name (/apps/db/password)."
    )
    property: Annotated[str, Field(min_length=1, max_length=1024)] | None = Field(
        default=None,
        description="One property of a Vault KV secret or of a JSON AWS secret. Absent: the whole value "
        "(a single-property Vault secret gives that property; otherwise the JSON document).",
    )
    version: RemoteVersion | None = Field(
        default=None,
        description="Pin a version: a Vault KV version number, an AWS VersionId or stage (AWSPREVIOUS), "
        "or an SSM version or label. Absent: the current version.",
    )


class ValueValidation(SpecModel):
    cel_rules = (
        RequiredWhen("min_length", "format", "min-length", message="format min-length needs minLength"),
        RequiredWhen("pattern", "format", "regex", message="format regex needs pattern"),
        RequiredWhen(
            "key",
            "format",
            "certificate-matches-key",
            message="format certificate-matches-key needs key: the Secret key holding the private key",
        ),
    )

    format: ValidateFormat = Field(description="What the value must be.")
    min_length: int | None = Field(
        default=None, ge=1, le=1048576, description="min-length: the least number of characters."
    )
    pattern: Regex | None = Field(
        default=None, description="regex: a regular expression the whole value must match."
    )
    decoded_bytes: int | None = Field(
        default=None,
        alias="bytes",
        ge=1,
        le=1048576,
        description="base64, hex: the exact number of bytes once decoded, e.g. 32.",
    )
    not_expired_within: Duration | None = Field(
        default=None,
        description="pem-certificate: refuse a certificate that expires within this duration, e.g. 72h.",
    )
    key: SecretDataKey | None = Field(
        default=None,
        description="certificate-matches-key: the other key of this Secret that holds the private key.",
    )


class DataItem(SpecModel):
    cel_rules = (
        AtMostOneOf(
            ("validation", "validations"),
            message="set validate (one check) or validations (a list of checks), not both",
        ),
    )

    secret_key: SecretDataKey = Field(description="Key to write in the Secret.")
    remote_ref: RemoteRef = Field(description="Where the value comes from.")
    decode: Literal["None", "Base64", "Auto"] = Field(
        default="None",
        description="None: write the value as it is. Base64: decode it first (refused if it is not base64). "
        "Auto: decode it when it is valid base64.",
    )
    validation: ValueValidation | None = Field(
        default=None,
        alias="validate",
        description="Refuse values that are not what they must be; the last good Secret is kept and "
        "Ready=False with reason ValidationFailed names the key and the rule. One check; for "
        "several, use validations.",
    )
    validations: list[ValueValidation] = Field(
        default_factory=list,
        min_length=1,
        max_length=MAX_VALIDATIONS,
        description="Several checks on this key, applied in order (e.g. pem-certificate with "
        "notExpiredWithin, then certificate-matches-key); the first that fails is reported as "
        "ValidationFailed naming its format and its place in the list. Not together with validate.",
    )

    @property
    def checks(self) -> list[ValueValidation]:
        """Every check on this key, in order (validate or validations)."""
        return [self.validation] if self.validation is not None else list(self.validations)


class ExtractRef(SpecModel):
    key: RemoteKey = Field(description="The remote secret whose every property becomes a Secret key.")
    version: RemoteVersion | None = Field(default=None, description="Pin a version. Absent: the current one.")


class FindName(SpecModel):
    regexp: Regex = Field(description="Regular expression the remote secret's name must match.")


class FindRef(SpecModel):
    cel_rules = (
        Custom(
            expression=f"!has(self.tags) || self.tags.all(k, size(k) >= 1 && size(k) <= {MAX_TAG_KEY})",
            check=lambda f: all(1 <= len(k) <= MAX_TAG_KEY for k in (f.tags or {})),
            message=f"find.tags: every tag (label) name is 1-{MAX_TAG_KEY} characters",
        ),
    )

    path: RemoteKey = Field(
        description="Prefix to search under: a Vault KV folder (apps/), an AWS name prefix, or an SSM path."
    )
    name: FindName | None = Field(default=None, description="Keep only secrets whose names match.")
    tags: dict[str, TagValue] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_FIND_TAGS,
        description="Keep only secrets that carry every one of these tags with exactly these values: "
        "Azure Key Vault tags, Google Secret Manager labels, AWS Secrets Manager tags. Refused "
        "(InvalidSpec) on stores whose provider has none (Vault, SSM Parameter Store).",
    )


class VaultDatabaseRef(SpecModel):
    mount: Annotated[str, Field(min_length=1, max_length=256)] = Field(
        default="database", description="Mount path of the Vault database secrets engine."
    )
    role: Annotated[str, Field(min_length=1, max_length=256)] = Field(
        description="The static role; its credentials are written as the keys username and password."
    )


class VaultDynamicRef(SpecModel):
    path: Annotated[str, Field(min_length=1, max_length=1024, pattern=r"^[^/](.*[^/])?$")] = Field(
        description="A Vault path that issues credentials with a lease when read, e.g. "
        "database/creds/app (database engine), aws/creds/deploy, rabbitmq/creds/app. Every property "
        "of the response becomes a Secret key (username and password for a database role)."
    )
    renew_percent: int = Field(
        default=67,
        ge=10,
        le=90,
        description="Renew the lease when this share of its duration has passed. When Vault refuses "
        "the renewal, or caps it at the role's max TTL, new credentials are issued that long before "
        "the lease ends, and the previous ones stay under <key><previousKeySuffix> until it does.",
    )
    revoke_on_delete: bool = Field(
        default=False,
        description="Revoke the lease (and a previous one still running) when the ManagedSecret is "
        "deleted, so the credentials stop working at once.",
    )
    previous_key_suffix: Annotated[str, Field(min_length=1, max_length=63, pattern=r"^[-._a-zA-Z0-9]+$")] = (
        Field(
            default="_previous",
            description="After new credentials are issued, the previous ones stay in the Secret under "
            "<key><previousKeySuffix> (password -> password_previous) until their lease ends.",
        )
    )


class RewriteRegexp(SpecModel):
    source: Regex = Field(
        description="Regular expression matched against each key name (every match is replaced)."
    )
    target: Annotated[str, Field(max_length=1024)] = Field(
        description="What a match becomes: $1, ${1} or ${name} stand for the groups of source, $$ for '$'."
    )


class Rewrite(SpecModel):
    regexp: RewriteRegexp = Field(description="Replace what a regular expression matches.")


class DataFromItem(SpecModel):
    cel_rules = (
        ExactlyOneOf(
            ("extract", "find", "vault_database", "vault_dynamic"),
            message="each dataFrom entry sets exactly one of extract, find, vaultDatabase or vaultDynamic",
        ),
        Custom(
            expression="!has(self.rewrite) || size(self.rewrite) == 0 || has(self.extract) || has(self.find)",
            check=lambda d: not d.rewrite or d.extract is not None or d.find is not None,
            message="rewrite is used only with extract or find",
        ),
    )

    extract: ExtractRef | None = Field(
        default=None, description="Every property of one JSON or KV secret, each as a Secret key."
    )
    find: FindRef | None = Field(
        default=None,
        description="Many remote secrets at once, each as a Secret key named after what follows the "
        "path, with '/' (and any character a Secret key may not hold) turned into '_': under path "
        "/prod/web/, /prod/web/db/password becomes the key db_password.",
    )
    vault_database: VaultDatabaseRef | None = Field(
        default=None, description="Vault database static-role credentials: the keys username and password."
    )
    vault_dynamic: VaultDynamicRef | None = Field(
        default=None,
        description="Credentials Vault issues with a lease (dynamic secrets): the lease is recorded in "
        "status.lease, renewed, and replaced before it ends. At most one per ManagedSecret.",
    )
    rewrite: list[Rewrite] = Field(
        default_factory=list,
        max_length=16,
        description="Rewrites of the key names this entry produces, applied in order (extract: the "
        "property names; find: the remote names relative to path, '/' kept). With rewrite, a find "
        "name is not sanitised: every result must be a valid Secret key, and two names must not "
        "become one key, else Ready=False with reason InvalidKey.",
    )


class TemplateConfigMapRef(SpecModel):
    name: K8sName = Field(description="The ConfigMap, in the ManagedSecret's namespace.")
    key: SecretDataKey = Field(description="The key of the ConfigMap's data that holds the template.")
    secret_key: SecretDataKey | None = Field(
        default=None, description="The Secret key the template renders to. Default: key."
    )

    @property
    def target(self) -> str:
        return self.secret_key or self.key


class TemplateFrom(SpecModel):
    config_map: TemplateConfigMapRef = Field(
        description="A template kept in a ConfigMap (for long templates shared by many objects). "
        "Rotor watches it: an edit re-renders every ManagedSecret that uses it. A missing "
        "ConfigMap or key is Ready=False with reason TemplateMissing (the last good Secret kept)."
    )


def _template_keys_distinct(template: Any) -> bool:
    return template.from_ is None or template.from_.config_map.target not in (template.data or {})


class Template(SpecModel):
    cel_rules = (
        AtLeastOneOf(("data", "from_"), message="template sets data, from or both"),
        Custom(
            expression="!has(self.from) || !has(self.data) || !((has(self.from.configMap.secretKey) ? "
            "self.from.configMap.secretKey : self.from.configMap.key) in self.data)",
            check=_template_keys_distinct,
            message="template.from renders a key that template.data renders too; rename one (set "
            "from.configMap.secretKey) so each Secret key has one template",
        ),
    )

    data: Annotated[dict[str, str], Field(min_length=1), AfterValidator(check_secret_data_keys)] | None = (
        Field(
            default=None,
            description="Secret keys rendered with Jinja2 (sandboxed) from the fetched keys, e.g. "
            '"postgresql://{{ username }}:{{ password | urlencode }}@db:5432/app". Under mergePolicy '
            "Merge the rendered keys are added to the fetched ones, replacing any of the same name.",
        )
    )
    from_: TemplateFrom | None = Field(
        default=None,
        alias="from",
        description="One more template, kept in a ConfigMap, rendered like those of data (same "
        "context, same limits) to the Secret key from.configMap.secretKey (default: its key). It "
        "adds to data; a key rendered by both is refused at apply time.",
    )
    merge_policy: Literal["Merge", "Replace"] = Field(
        default="Merge",
        description="Merge: the Secret holds the fetched keys and the rendered ones. Replace: it holds "
        "only the rendered keys (the fetched ones are the templates' input only), e.g. a "
        "kubernetes.io/dockerconfigjson Secret with just .dockerconfigjson. Under Replace, the keys "
        "a rotation generates must be rendered keys too.",
    )

    @property
    def replaces(self) -> bool:
        return self.merge_policy == "Replace"

    @property
    def rendered_keys(self) -> set[str]:
        """Every Secret key a template renders (inline data and from)."""
        keys = set(self.data or {})
        if self.from_ is not None:
            keys.add(self.from_.config_map.target)
        return keys

    @property
    def config_map(self) -> TemplateConfigMapRef | None:
        return self.from_.config_map if self.from_ is not None else None


class Refresh(SpecModel):
    interval: RefreshInterval = Field(
        default="1h",
        description="How often to read the source again, under the Periodic policy; at least 1s. Reads of "
        "one key are shared for 5s, so the shortest effective refresh is 5s.",
    )
    policy: Literal["Periodic", "OnChange", "Once"] = Field(
        default="Periodic",
        description="Periodic: every interval. OnChange: only when the spec changes. Once: never after "
        "the first success.",
    )


class PolicyRef(SpecModel):
    name: K8sName = Field(description="Name of the RotationPolicy or ClusterRotationPolicy.")
    kind: Literal["RotationPolicy", "ClusterRotationPolicy"] = Field(
        default="RotationPolicy", description="RotationPolicy (in this namespace) or ClusterRotationPolicy."
    )


class Rotation(SpecModel):
    policy_ref: PolicyRef = Field(description="The policy that says when and how to rotate.")
    keys: list[SecretDataKey] = Field(
        min_length=1,
        max_length=100,
        description="The Secret keys the policy generates or watches, e.g. [password].",
    )


class RolloutTarget(SpecModel):
    kind: Literal["Deployment", "StatefulSet", "DaemonSet"] = Field(description="Workload kind.")
    name: K8sName = Field(description="Workload name, in this namespace.")


class Rollout(SpecModel):
    cel_rules = (
        OnlyWhen("targets", "strategy", "Explicit", message="targets are used only with strategy Explicit"),
        RequiredWhen("targets", "strategy", "Explicit", message="strategy Explicit needs targets"),
    )

    strategy: Literal["None", "Auto", "Explicit", "Notify"] = Field(
        default="None",
        description="None: restart nothing. Auto: restart the Deployments, StatefulSets and DaemonSets in "
        "this namespace whose pod templates use the Secret. Explicit: restart the listed targets. Notify: "
        "restart nothing, but post an Event on each workload Auto would restart (and on the ManagedSecret) "
        "and count it in rotor_rollout_notifications_total.",
    )
    targets: list[RolloutTarget] = Field(
        default_factory=list,
        min_length=1,
        max_length=64,
        description="Workloads to restart under the Explicit strategy.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["kind", "name"]},
    )

    @field_validator("targets")
    @classmethod
    def _unique_targets(cls, value: list[RolloutTarget]) -> list[RolloutTarget]:
        seen = [f"{t.kind}/{t.name}" for t in value]
        dupes = sorted({s for s in seen if seen.count(s) > 1})
        if dupes:
            raise ValueError(f"targets listed twice: {', '.join(dupes)}")
        return value


def _dynamic_count(spec: ManagedSecretSpec) -> int:
    return sum(1 for d in spec.data_from if d.vault_dynamic is not None)


def _rotated_keys_rendered(spec: Any) -> bool:
    template, rotation = spec.template, spec.rotation
    if template is None or not template.replaces or rotation is None:
        return True
    return all(k in template.rendered_keys for k in rotation.keys)


class ManagedSecretSpec(SpecModel):
    cel_rules = (
        AtLeastOneOf(("data", "data_from"), message="set data, dataFrom or both"),
        Custom(
            expression="!has(self.dataFrom) || self.dataFrom.filter(d, has(d.vaultDynamic)).size() <= 1",
            check=lambda spec: _dynamic_count(spec) <= 1,
            message="at most one dataFrom entry may be vaultDynamic (a ManagedSecret records one "
            "lease); use one ManagedSecret per dynamic path",
        ),
        Custom(
            expression="!has(self.template) || !has(self.template.mergePolicy) || "
            "self.template.mergePolicy != 'Replace' || !has(self.rotation) || "
            "self.rotation.keys.all(k, (has(self.template.data) && k in self.template.data) || "
            "(has(self.template.from) && k == (has(self.template.from.configMap.secretKey) ? "
            "self.template.from.configMap.secretKey : self.template.from.configMap.key)))",
            check=_rotated_keys_rendered,
            message="template.mergePolicy Replace: the Secret holds only the rendered keys, so every "
            "key in rotation.keys must be a key of template.data too (or the key template.from renders)",
        ),
    )

    store_ref: StoreRef = Field(description="The store to read from (and to write rotated values to).")
    target: Target = Field(default_factory=Target, description="The Kubernetes Secret to write.")
    data: list[DataItem] = Field(
        default_factory=list,
        min_length=1,
        max_length=100,
        description="Single remote values, one Secret key each.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["secretKey"]},
    )
    data_from: list[DataFromItem] = Field(
        default_factory=list,
        min_length=1,
        max_length=32,
        description="Many keys at once. Keys from data win over keys of the same name from dataFrom.",
    )
    template: Template | None = Field(default=None, description="Render extra or replacement keys.")
    refresh: Refresh = Field(default_factory=Refresh, description="When to read the source again.")
    rotation: Rotation | None = Field(
        default=None, description="Rotate some keys under a RotationPolicy. Absent: never rotate."
    )
    rollout: Rollout = Field(
        default_factory=Rollout,
        description="Restart the workloads that use the Secret when its data changes.",
    )

    @field_validator("data")
    @classmethod
    def _unique_secret_keys(cls, value: list[DataItem]) -> list[DataItem]:
        keys = [item.secret_key for item in value]
        dupes = sorted({k for k in keys if keys.count(k) > 1})
        if dupes:
            raise ValueError(f"secretKey listed twice in data: {', '.join(dupes)}")
        return value

    @property
    def vault_dynamic(self) -> VaultDynamicRef | None:
        """The one dynamic source, if any."""
        return next((d.vault_dynamic for d in self.data_from if d.vault_dynamic is not None), None)

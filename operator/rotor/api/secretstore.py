"""SecretStore and ClusterSecretStore specs: how to reach one backend and authenticate to it.

The provider tree is generic over the kind of references it holds: in a SecretStore a ``secretRef`` is
``{name, key}`` in the store's namespace; in a ClusterSecretStore it is ``{name, key, namespace}``.
Code that uses either accepts ``StoreProvider[Any, Any]`` and calls ``ref.namespace_in(store_ns)``.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import AfterValidator, Field

from rotor.api.common import (
    ClusterSecretKeySelector,
    ClusterServiceAccountRef,
    LabelSelector,
    NamespaceName,
    SecretKeySelector,
    ServiceAccountRef,
    SpecModel,
)
from rotor.api.rules import AtLeastOneOf, AtMostOneOf, ExactlyOneOf, OnlyWhen

__all__ = [
    "AnyStoreProvider",
    "AnyStoreSpec",
    "AwsAssumeRole",
    "AwsAuth",
    "AwsChangeEvents",
    "AwsProvider",
    "AwsSecretRefAuth",
    "AzureKeyVaultAuth",
    "AzureKeyVaultProvider",
    "AzureServicePrincipalAuth",
    "AzureWorkloadIdentityAuth",
    "ClusterSecretStoreSpec",
    "GcpSecretManagerAuth",
    "GcpSecretManagerProvider",
    "GcpWorkloadIdentityAuth",
    "RateLimit",
    "SecretStoreSpec",
    "StoreCondition",
    "StoreProvider",
    "VaultAppRoleAuth",
    "VaultAuth",
    "VaultKV",
    "VaultKubernetesAuth",
    "VaultProvider",
    "VaultTokenAuth",
]

KeyRefT = TypeVar("KeyRefT", bound=SecretKeySelector)
SARefT = TypeVar("SARefT", bound=ServiceAccountRef)

URL_PATTERN = r"^https?://[^\s/]+(/\S*)?$"
VaultMount = Annotated[str, Field(min_length=1, max_length=256, pattern=r"^[^/\s]+(/[^/\s]+)*$")]


def _check_base64_pem(value: str) -> str:
    try:
        decoded = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as err:
        raise ValueError("caBundle must be base64-encoded PEM") from err
    if b"-----BEGIN CERTIFICATE-----" not in decoded:
        raise ValueError("caBundle must be base64-encoded PEM holding at least one CERTIFICATE block")
    return value


# --------------------------------------------------------------------------- Vault


class VaultKV(SpecModel):
    mount: VaultMount = Field(default="secret", description="Mount path of the KV secrets engine.")
    version: Literal[1, 2] = Field(default=2, description="KV secrets engine version: 1 or 2.")


class VaultTokenAuth(SpecModel, Generic[KeyRefT]):
    secret_ref: KeyRefT = Field(description="The Secret key holding a Vault token.")


class VaultAppRoleAuth(SpecModel, Generic[KeyRefT]):
    mount: VaultMount = Field(default="approle", description="Mount path of the AppRole auth method.")
    role_id: Annotated[str, Field(min_length=1, max_length=256)] = Field(
        description="The AppRole role_id (not a secret)."
    )
    secret_id_ref: KeyRefT = Field(description="The Secret key holding the AppRole secret_id.")


class VaultKubernetesAuth(SpecModel, Generic[SARefT]):
    mount: VaultMount = Field(default="kubernetes", description="Mount path of the Kubernetes auth method.")
    role: Annotated[str, Field(min_length=1, max_length=256)] = Field(
        description="The Vault role to log in as."
    )
    service_account_ref: SARefT = Field(
        description="The ServiceAccount whose short-lived token (TokenRequest) Rotor presents to Vault. "
        "Rotor never logs in with its own identity on a store's behalf."
    )


class VaultAuth(SpecModel, Generic[KeyRefT, SARefT]):
    cel_rules = (
        ExactlyOneOf(
            ("token", "app_role", "kubernetes"),
            message="set exactly one Vault auth method: token, appRole or kubernetes",
        ),
    )

    token: VaultTokenAuth[KeyRefT] | None = Field(default=None, description="Log in with a static token.")
    app_role: VaultAppRoleAuth[KeyRefT] | None = Field(
        default=None, description="Log in with AppRole (role_id and secret_id)."
    )
    kubernetes: VaultKubernetesAuth[SARefT] | None = Field(
        default=None, description="Log in with a Kubernetes ServiceAccount token."
    )


class VaultProvider(SpecModel, Generic[KeyRefT, SARefT]):
    cel_rules = (
        AtMostOneOf(("ca_bundle", "ca_secret_ref"), message="set caBundle or caSecretRef, not both"),
    )

    server: Annotated[str, Field(max_length=2048, pattern=URL_PATTERN)] = Field(
        description="Vault address, for example https://vault.example:8200."
    )
    namespace: Annotated[str, Field(min_length=1, max_length=256)] | None = Field(
        default=None, description="Vault Enterprise namespace. Leave unset for open-source Vault."
    )
    ca_bundle: Annotated[str, Field(max_length=1048576), AfterValidator(_check_base64_pem)] | None = Field(
        default=None,
        description="Base64-encoded PEM certificates to trust for the server's TLS certificate. "
        "Default: the system trust store.",
    )
    ca_secret_ref: KeyRefT | None = Field(
        default=None, description="A Secret key holding PEM certificates to trust, instead of caBundle."
    )
    kv: VaultKV = Field(default_factory=VaultKV, description="The KV secrets engine that keys refer to.")
    auth: VaultAuth[KeyRefT, SARefT] = Field(description="How Rotor logs in to Vault.")


# --------------------------------------------------------------------------- AWS


class AwsSecretRefAuth(SpecModel, Generic[KeyRefT]):
    access_key_id: KeyRefT = Field(description="The Secret key holding the AWS access key id.")
    secret_access_key: KeyRefT = Field(description="The Secret key holding the AWS secret access key.")
    session_token: KeyRefT | None = Field(
        default=None, description="The Secret key holding a session token, for temporary credentials."
    )


class AwsAssumeRole(SpecModel):
    role_arn: Annotated[str, Field(max_length=2048, pattern=r"^arn:[^:\s]+:iam::[0-9]{12}:role/\S+$")] = (
        Field(description="ARN of the IAM role to assume, e.g. arn:aws:iam::123456789012:role/rotor.")
    )
    external_id: Annotated[str, Field(min_length=2, max_length=1224)] | None = Field(
        default=None, description="External id the role's trust policy requires, if any."
    )


class AwsAuth(SpecModel, Generic[KeyRefT]):
    cel_rules = (
        AtLeastOneOf(
            ("secret_ref", "assume_role"),
            message="auth needs secretRef, assumeRole or both; leave auth out to use the default "
            "credential chain (IRSA, EKS Pod Identity)",
        ),
    )

    secret_ref: AwsSecretRefAuth[KeyRefT] | None = Field(
        default=None, description="Static credentials read from Secret keys."
    )
    assume_role: AwsAssumeRole | None = Field(
        default=None,
        description="A role to assume with STS, starting from secretRef or from the default chain.",
    )


class AwsChangeEvents(SpecModel):
    sqs_queue_url: Annotated[str, Field(max_length=2048, pattern=r"^https?://\S+$")] = Field(
        alias="sqsQueueURL",
        description="URL of an SQS queue that an EventBridge rule feeds with this account's Secrets "
        "Manager events (PutSecretValue, UpdateSecret, RotationSucceeded). The leader long-polls it "
        "with the store's credentials (sqs:ReceiveMessage, sqs:DeleteMessage) and refreshes the "
        "ManagedSecrets that read the secret an event names; a message is deleted once that refresh "
        "is queued. Polling by refresh.interval stays the safety net.",
    )


class AwsProvider(SpecModel, Generic[KeyRefT]):
    cel_rules = (
        OnlyWhen(
            "change_events",
            "service",
            "SecretsManager",
            message="changeEvents come from Secrets Manager; ParameterStore stores refresh by interval",
        ),
    )

    service: Literal["SecretsManager", "ParameterStore"] = Field(
        default="SecretsManager",
        description="Which AWS service holds the secrets: SecretsManager or ParameterStore (SSM).",
    )
    region: Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[a-z0-9]+(-[a-z0-9]+)+$")] = Field(
        description="AWS region, for example eu-west-1."
    )
    endpoint: Annotated[str, Field(max_length=2048, pattern=URL_PATTERN)] | None = Field(
        default=None, description="Custom endpoint URL: a VPC endpoint or an emulator. Default: AWS's own."
    )
    auth: AwsAuth[KeyRefT] | None = Field(
        default=None,
        description="Credentials. Absent: the SDK's default chain (IRSA, EKS Pod Identity, instance role).",
    )
    change_events: AwsChangeEvents | None = Field(
        default=None,
        description="Refresh on Secrets Manager change events from an SQS queue, within seconds of a "
        "change instead of at the next refresh. SecretsManager only.",
    )


# --------------------------------------------------------------------------- Azure Key Vault

AZURE_VAULT_URL = r"^https://[^\s/]+/?$"
AzureId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[0-9A-Za-z][0-9A-Za-z.-]*$")]


class AzureServicePrincipalAuth(SpecModel, Generic[KeyRefT]):
    tenant_id: AzureId = Field(alias="tenantID", description="The Microsoft Entra tenant (directory) id.")
    client_id: AzureId = Field(
        alias="clientID", description="The application (client) id of the service principal."
    )
    client_secret_ref: KeyRefT = Field(
        description="The Secret key holding the service principal's client secret."
    )


class AzureWorkloadIdentityAuth(SpecModel, Generic[SARefT]):
    tenant_id: AzureId = Field(alias="tenantID", description="The Microsoft Entra tenant (directory) id.")
    client_id: AzureId = Field(
        alias="clientID",
        description="The client id of the application or user-assigned managed identity that has a federated "
        "credential for the ServiceAccount (issuer: the cluster's OIDC issuer; subject: "
        "system:serviceaccount:<namespace>:<name>).",
    )
    service_account_ref: SARefT = Field(
        description="The ServiceAccount whose short-lived token (TokenRequest) Rotor exchanges for a Microsoft "
        "Entra token, as AKS workload identity does. Audiences default to api://AzureADTokenExchange."
    )


class AzureKeyVaultAuth(SpecModel, Generic[KeyRefT, SARefT]):
    cel_rules = (
        ExactlyOneOf(
            ("workload_identity", "service_principal"),
            message="set exactly one Azure auth method: workloadIdentity or servicePrincipal",
        ),
    )

    workload_identity: AzureWorkloadIdentityAuth[SARefT] | None = Field(
        default=None, description="A federated ServiceAccount token exchanged for an Entra token."
    )
    service_principal: AzureServicePrincipalAuth[KeyRefT] | None = Field(
        default=None, description="A service principal's client secret read from a Secret key."
    )


class AzureKeyVaultProvider(SpecModel, Generic[KeyRefT, SARefT]):
    vault_url: Annotated[str, Field(max_length=2048, pattern=AZURE_VAULT_URL)] = Field(
        alias="vaultURL", description="The vault's URL, for example https://my-vault.vault.azure.net."
    )
    authority_host: Annotated[str, Field(max_length=2048, pattern=URL_PATTERN)] | None = Field(
        default=None,
        description="The Microsoft Entra authority, for sovereign clouds (https://login.microsoftonline.us). "
        "Default: https://login.microsoftonline.com.",
    )
    auth: AzureKeyVaultAuth[KeyRefT, SARefT] = Field(
        description="How Rotor authenticates to Microsoft Entra."
    )


# --------------------------------------------------------------------------- Google Secret Manager

GCP_WIF_AUDIENCE = r"^//iam\.googleapis\.com/projects/[0-9]+/locations/global/workloadIdentityPools/[^/\s]+/providers/[^/\s]+$"


class GcpWorkloadIdentityAuth(SpecModel, Generic[SARefT]):
    audience: Annotated[str, Field(max_length=1024, pattern=GCP_WIF_AUDIENCE)] = Field(
        description="The workload identity pool provider, //iam.googleapis.com/projects/<number>/locations/"
        "global/workloadIdentityPools/<pool>/providers/<provider>."
    )
    service_account_ref: SARefT = Field(
        description="The ServiceAccount whose short-lived token (TokenRequest) Rotor exchanges with Google's "
        "Security Token Service. Audiences default to the provider's own: https:<audience>."
    )
    token_url: Annotated[str, Field(max_length=2048, pattern=URL_PATTERN)] | None = Field(
        default=None,
        alias="tokenURL",
        description="The Security Token Service endpoint. Default: https://sts.googleapis.com/v1/token.",
    )


class GcpSecretManagerAuth(SpecModel, Generic[KeyRefT, SARefT]):
    cel_rules = (
        ExactlyOneOf(
            ("workload_identity", "service_account_key_ref"),
            message="set exactly one GCP auth method: workloadIdentity or serviceAccountKeyRef",
        ),
    )

    workload_identity: GcpWorkloadIdentityAuth[SARefT] | None = Field(
        default=None, description="Workload identity federation with a ServiceAccount token."
    )
    service_account_key_ref: KeyRefT | None = Field(
        default=None, description="The Secret key holding a Google service account key (JSON)."
    )


class GcpSecretManagerProvider(SpecModel, Generic[KeyRefT, SARefT]):
    project_id: Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[a-z0-9][a-z0-9.:-]*$")] = (
        Field(alias="projectID", description="The Google Cloud project holding the secrets.")
    )
    endpoint: Annotated[str, Field(max_length=2048, pattern=r"^[^\s/:]+(:[0-9]{1,5})?$")] | None = Field(
        default=None,
        description="The Secret Manager API host[:port], e.g. a regional endpoint "
        "(secretmanager.europe-west1.rep.googleapis.com). Default: secretmanager.googleapis.com.",
    )
    auth: GcpSecretManagerAuth[KeyRefT, SARefT] = Field(description="How Rotor authenticates to Google.")


# --------------------------------------------------------------------------- stores


class StoreProvider(SpecModel, Generic[KeyRefT, SARefT]):
    cel_rules = (
        ExactlyOneOf(
            ("vault", "aws", "azure_key_vault", "gcp_secret_manager"),
            message="set exactly one provider: vault, aws, azureKeyVault or gcpSecretManager",
        ),
    )

    vault: VaultProvider[KeyRefT, SARefT] | None = Field(default=None, description="HashiCorp Vault.")
    aws: AwsProvider[KeyRefT] | None = Field(
        default=None, description="AWS Secrets Manager or SSM Parameter Store."
    )
    azure_key_vault: AzureKeyVaultProvider[KeyRefT, SARefT] | None = Field(
        default=None, description="Azure Key Vault secrets."
    )
    gcp_secret_manager: GcpSecretManagerProvider[KeyRefT, SARefT] | None = Field(
        default=None, description="Google Cloud Secret Manager."
    )

    def _selected(self) -> tuple[str, SpecModel]:
        for field_name, info in type(self).model_fields.items():
            section = getattr(self, field_name)
            if section is not None:
                return info.alias or field_name, section
        raise ValueError("the store sets no provider")

    @property
    def kind(self) -> str:
        """The provider field this store sets (``vault``, ``aws``, ``azure_key_vault``, ...): the key of
        the provider registry."""
        return self._selected()[0]

    @property
    def section(self) -> SpecModel:
        """The spec of the provider this store uses (``spec.provider.<kind>``)."""
        return self._selected()[1]


class RateLimit(SpecModel):
    qps: float = Field(
        default=200, gt=0, le=10000, description="The most requests per second Rotor sends to the backend."
    )
    burst: int = Field(default=400, ge=1, le=100000, description="The most requests sent at once above qps.")


RATE_LIMIT_DESCRIPTION = (
    "The cap on requests from Rotor to this backend, for this store. Below the cap the rate adapts: "
    "each throttling answer (HTTP 429, AWS ThrottlingException, Vault 429 or 503, gRPC RESOURCE_EXHAUSTED) halves it, and each "
    "second without one gives 5% of the cap back."
)


class SecretStoreSpec(SpecModel):
    provider: StoreProvider[SecretKeySelector, ServiceAccountRef] = Field(
        description="The backend and how to authenticate to it. Secret and ServiceAccount references "
        "are in the store's own namespace."
    )
    rate_limit: RateLimit = Field(default_factory=RateLimit, description=RATE_LIMIT_DESCRIPTION)


class StoreCondition(SpecModel):
    cel_rules = (
        ExactlyOneOf(
            ("namespaces", "namespace_selector"),
            message="each condition sets exactly one of namespaces or namespaceSelector; "
            "list several conditions to allow more namespaces",
        ),
    )

    namespaces: list[NamespaceName] | None = Field(
        default=None, min_length=1, max_length=1024, description="Namespaces allowed by name."
    )
    namespace_selector: LabelSelector | None = Field(
        default=None,
        description="Namespaces allowed by their labels. An empty selector ({}) allows every namespace.",
    )


AllowedKeyGlob = Annotated[str, Field(min_length=1, max_length=2048)]


class ClusterSecretStoreSpec(SpecModel):
    provider: StoreProvider[ClusterSecretKeySelector, ClusterServiceAccountRef] = Field(
        description="The backend and how to authenticate to it. Every Secret and ServiceAccount "
        "reference names its namespace."
    )
    rate_limit: RateLimit = Field(default_factory=RateLimit, description=RATE_LIMIT_DESCRIPTION)
    conditions: list[StoreCondition] | None = Field(
        default=None,
        max_length=64,
        description="Which namespaces may use this store; a namespace that matches any condition may. "
        "None listed: no namespace may.",
    )
    allowed_keys: list[AllowedKeyGlob] | None = Field(
        default=None,
        max_length=256,
        description="Glob patterns (*, ?, [..]) of the remote keys ManagedSecrets may read or rotate "
        "through this store. {namespace} stands for the ManagedSecret's namespace, e.g. "
        '"tenants/{namespace}/*". Absent: every key.',
    )


AnyStoreSpec = SecretStoreSpec | ClusterSecretStoreSpec
AnyStoreProvider = StoreProvider[Any, Any]

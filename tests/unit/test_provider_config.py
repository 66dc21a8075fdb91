"""Each provider builds its own config from its section of the store spec, auth method by auth
method, reading Secret keys and ServiceAccount tokens only through the StoreAccess port."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import pytest

from rotor.api.secretstore import ClusterSecretStoreSpec, SecretStoreSpec
from rotor.providers import registry
from rotor.providers.aws import AwsConfig
from rotor.providers.base import InvalidConfig, StoreAccess
from rotor.providers.vault.auth_approle import AppRoleAuth
from rotor.providers.vault.auth_kubernetes import KubernetesAuth
from rotor.providers.vault.auth_token import TokenAuth
from rotor.providers.vault.config import VaultConfig

PEM = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


class Port:
    def __init__(self, secrets: dict[tuple[str, str, str], str], namespace: str | None = "team") -> None:
        self.secrets = secrets
        self.read: list[tuple[str, str, str]] = []
        self.tokens: list[tuple[str, str, list[str]]] = []
        self.namespace = namespace

    async def secret_value(self, namespace: str, name: str, key: str) -> str:
        self.read.append((namespace, name, key))
        try:
            return self.secrets[(namespace, name, key)]
        except KeyError:
            raise InvalidConfig(f"Secret {namespace}/{name} has no key '{key}'") from None

    def service_account_token(self, namespace: str, name: str, audiences: list[str]) -> str:
        self.tokens.append((namespace, name, audiences))
        return "jwt-for-" + name

    def access(self) -> StoreAccess:
        return StoreAccess(
            "SecretStore/team/s", self.namespace, self.secret_value, self.service_account_token
        )


def _configure(spec: dict[str, Any], port: Port, *, cluster: bool = False) -> Any:
    model = (ClusterSecretStoreSpec if cluster else SecretStoreSpec).model_validate(spec)
    provider = model.provider
    return asyncio.run(registry.builder(provider.kind).configure(provider.section, port.access()))


def _vault(auth: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"provider": {"vault": {"server": "https://vault:8200", "auth": auth, **extra}}}


def test_vault_token_auth_and_ca_from_a_secret() -> None:
    port = Port({("team", "t", "token"): "s.tok", ("team", "ca", "ca.crt"): PEM.decode()})
    config = _configure(
        _vault(
            {"token": {"secretRef": {"name": "t", "key": "token"}}},
            caSecretRef={"name": "ca", "key": "ca.crt"},
        ),
        port,
    )
    assert isinstance(config, VaultConfig) and config.store_id == "SecretStore/team/s"
    assert config.auth == TokenAuth("s.tok") and config.auth_method == "token"
    assert config.ca_pem == PEM
    assert "s.tok" not in repr(config)
    assert config.kv_path("app/db") == "secret/data/app/db"


def test_vault_approle_auth() -> None:
    port = Port({("team", "ar", "secret-id"): "sid"})
    config = _configure(
        _vault(
            {"appRole": {"roleId": "rid", "secretIdRef": {"name": "ar", "key": "secret-id"}, "mount": "ar"}}
        ),
        port,
    )
    assert config.auth == AppRoleAuth(role_id="rid", secret_id="sid", mount="ar")
    assert "sid" not in repr(config)


def test_vault_kubernetes_auth_asks_the_port_for_a_token_at_login_only() -> None:
    port = Port({}, namespace=None)
    config = _configure(
        _vault(
            {
                "kubernetes": {
                    "role": "reader",
                    "serviceAccountRef": {"name": "app", "namespace": "apps", "audiences": ["vault"]},
                }
            },
            caBundle=base64.b64encode(PEM).decode(),
        ),
        port,
        cluster=True,
    )
    assert isinstance(config.auth, KubernetesAuth)
    assert (config.auth.role, config.auth.mount, config.auth.service_account) == (
        "reader",
        "kubernetes",
        "apps/app",
    )
    assert config.ca_pem == PEM
    assert port.tokens == []  # not at configure time: each login asks for a fresh one
    assert config.auth.jwt() == "jwt-for-app"
    assert port.tokens == [("apps", "app", ["vault"])]


def test_a_missing_credentials_secret_is_invalid_config() -> None:
    with pytest.raises(InvalidConfig, match="Secret team/t has no key 'token'"):
        _configure(_vault({"token": {"secretRef": {"name": "t", "key": "token"}}}), Port({}))


def _aws(auth: dict[str, Any] | None) -> dict[str, Any]:
    aws: dict[str, Any] = {"service": "ParameterStore", "region": "eu-west-1"}
    if auth is not None:
        aws["auth"] = auth
    return {"provider": {"aws": aws}}


def test_aws_default_chain_reads_no_secret() -> None:
    port = Port({})
    config = _configure(_aws(None), port)
    assert config == AwsConfig(service="ParameterStore", region="eu-west-1", store_id="SecretStore/team/s")
    assert port.read == []


def test_aws_static_keys_and_assumed_role() -> None:
    port = Port(
        {("team", "k", "id"): "AKIA1", ("team", "k", "secret"): "shh", ("team", "k", "session"): "tok"}
    )
    config = _configure(
        _aws(
            {
                "secretRef": {
                    "accessKeyId": {"name": "k", "key": "id"},
                    "secretAccessKey": {"name": "k", "key": "secret"},
                    "sessionToken": {"name": "k", "key": "session"},
                },
                "assumeRole": {"roleArn": "arn:aws:iam::123456789012:role/rotor", "externalId": "ext-1"},
            }
        ),
        port,
    )
    assert (config.access_key_id, config.secret_access_key, config.session_token) == ("AKIA1", "shh", "tok")
    assert (config.role_arn, config.external_id) == ("arn:aws:iam::123456789012:role/rotor", "ext-1")
    assert "shh" not in repr(config)


def test_aws_assumed_role_from_the_default_chain() -> None:
    config = _configure(_aws({"assumeRole": {"roleArn": "arn:aws:iam::123456789012:role/rotor"}}), Port({}))
    assert config.access_key_id is None and config.role_arn == "arn:aws:iam::123456789012:role/rotor"


def test_registry_has_one_builder_per_spec_provider_field() -> None:
    from rotor.api.secretstore import StoreProvider

    # keyed by the field as the spec spells it (spec.provider.azureKeyVault)
    assert set(registry.PROVIDERS) == {f.alias or n for n, f in StoreProvider.model_fields.items()}
    with pytest.raises(InvalidConfig, match="unknown provider 'nope'"):
        registry.builder("nope")


def test_aws_change_events_name_the_queue_and_only_secrets_manager_has_them() -> None:
    from pydantic import ValidationError

    from rotor.providers.aws.provider import SecretsManagerProvider

    url = "https://sqs.eu-west-1.amazonaws.com/123456789012/rotor-secret-changes"
    spec = {"provider": {"aws": {"region": "eu-west-1", "changeEvents": {"sqsQueueURL": url}}}}
    config = _configure(spec, Port({}))
    assert config.change_events_queue == url
    provider = SecretsManagerProvider(config)
    assert provider.has_change_events
    assert not SecretsManagerProvider(
        _configure({"provider": {"aws": {"region": "eu-west-1"}}}, Port({}))
    ).has_change_events
    spec["provider"]["aws"]["service"] = "ParameterStore"
    with pytest.raises(ValidationError, match="changeEvents come from Secrets Manager"):
        SecretStoreSpec.model_validate(spec)


# --------------------------------------------------------------------------- Azure Key Vault


def _azure(auth: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "provider": {"azureKeyVault": {"vaultURL": "https://team.vault.azure.net", "auth": auth, **extra}}
    }


def test_azure_service_principal_reads_its_client_secret() -> None:
    from rotor.providers.azure import AzureConfig
    from rotor.providers.azure.auth_service_principal import ServicePrincipalAuth

    port = Port({("team", "sp", "secret"): "client-secret-value"})
    config = _configure(
        _azure(
            {
                "servicePrincipal": {
                    "tenantID": "t1",
                    "clientID": "c1",
                    "clientSecretRef": {"name": "sp", "key": "secret"},
                }
            }
        ),
        port,
    )
    assert isinstance(config, AzureConfig) and isinstance(config.auth, ServicePrincipalAuth)
    assert (config.auth.tenant_id, config.auth.client_id, config.auth.client_secret) == (
        "t1",
        "c1",
        "client-secret-value",
    )
    assert config.verify_challenge_resource  # an Azure host: the SDK checks the challenge's resource
    assert "client-secret-value" not in repr(config)


def test_azure_workload_identity_requests_a_token_exchange_token_per_assertion() -> None:
    from rotor.providers.azure.auth_workload_identity import WorkloadIdentityAuth

    port = Port({}, namespace=None)
    config = _configure(
        _azure(
            {
                "workloadIdentity": {
                    "tenantID": "t1",
                    "clientID": "c1",
                    "serviceAccountRef": {"name": "sa", "namespace": "ops"},
                }
            },
            authorityHost="https://login.microsoftonline.us",
        ),
        port,
        cluster=True,
    )
    assert (
        isinstance(config.auth, WorkloadIdentityAuth)
        and config.authority_host == "https://login.microsoftonline.us"
    )
    assert port.tokens == []  # no token until the credential asks for one
    assert config.auth.assertion() == "jwt-for-sa"
    assert port.tokens == [("ops", "sa", ["api://AzureADTokenExchange"])]


def test_azure_challenge_resource_is_checked_only_on_azure_hosts() -> None:
    from rotor.providers.azure import AzureConfig
    from rotor.providers.azure.auth_service_principal import ServicePrincipalAuth

    auth = ServicePrincipalAuth("t", "c", "s")
    assert AzureConfig("https://x.vault.usgovcloudapi.net", "s", auth).verify_challenge_resource
    assert not AzureConfig("https://127.0.0.1:8443", "s", auth).verify_challenge_resource


@pytest.mark.parametrize(
    "auth",
    [
        {},
        {
            "servicePrincipal": {
                "tenantID": "t",
                "clientID": "c",
                "clientSecretRef": {"name": "a", "key": "b"},
            },
            "workloadIdentity": {"tenantID": "t", "clientID": "c", "serviceAccountRef": {"name": "sa"}},
        },
    ],
)
def test_azure_needs_exactly_one_auth_method(auth: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="exactly one Azure auth method"):
        SecretStoreSpec.model_validate(_azure(auth))


# --------------------------------------------------------------------------- Google Secret Manager

AUDIENCE = "//iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/pool/providers/k8s"


def test_gcp_workload_identity_defaults_the_token_audience_to_the_provider() -> None:
    from rotor.providers.gcp import GcpConfig
    from rotor.providers.gcp.auth_workload_identity import DEFAULT_TOKEN_URL, WorkloadIdentityAuth

    port = Port({})
    config = _configure(
        {
            "provider": {
                "gcpSecretManager": {
                    "projectID": "my-project",
                    "auth": {"workloadIdentity": {"audience": AUDIENCE, "serviceAccountRef": {"name": "sa"}}},
                }
            }
        },
        port,
    )
    assert isinstance(config, GcpConfig) and isinstance(config.auth, WorkloadIdentityAuth)
    assert config.auth.token_url == DEFAULT_TOKEN_URL and config.endpoint is None
    assert config.auth.subject_token() == "jwt-for-sa"
    assert port.tokens == [("team", "sa", ["https:" + AUDIENCE])]


def test_gcp_service_account_key_that_is_not_a_key_is_invalid_config() -> None:
    from rotor.providers.gcp.auth_service_account_key import ServiceAccountKeyAuth

    port = Port({("team", "gsa", "key.json"): '{"type": "authorized_user", "secret": "hunter2-value"}'})
    config = _configure(
        {
            "provider": {
                "gcpSecretManager": {
                    "projectID": "my-project",
                    "endpoint": "secretmanager.europe-west1.rep.googleapis.com",
                    "auth": {"serviceAccountKeyRef": {"name": "gsa", "key": "key.json"}},
                }
            }
        },
        port,
    )
    assert isinstance(config.auth, ServiceAccountKeyAuth) and "hunter2" not in repr(config)
    with pytest.raises(InvalidConfig, match="does not hold a service account key") as err:
        config.auth.credentials()
    assert "hunter2" not in str(err.value)


def test_gcp_refuses_an_audience_that_is_not_a_pool_provider() -> None:
    with pytest.raises(ValueError, match="audience"):
        SecretStoreSpec.model_validate(
            {
                "provider": {
                    "gcpSecretManager": {
                        "projectID": "p",
                        "auth": {
                            "workloadIdentity": {
                                "audience": "sts.googleapis.com",
                                "serviceAccountRef": {"name": "sa"},
                            }
                        },
                    }
                }
            }
        )

"""The session's Azure Key Vault and Google Secret Manager test servers, behind one test CA.

The CA joins the public roots in a trust bundle that this process and the operator use through
the SDKs' standard variables (REQUESTS_CA_BUNDLE, GRPC_DEFAULT_SSL_ROOTS_FILE_PATH), so the
stores' specs are the ones a user writes for the real clouds, with only the endpoints changed.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from support.azure_keyvault import KeyVaultServer
from support.gcp_secretmanager import SecretManagerServer
from support.tls import TestCA


@dataclass
class CloudServers:
    ca: TestCA
    keyvault: KeyVaultServer
    secretmanager: SecretManagerServer

    @classmethod
    def start(cls, workdir: Path) -> CloudServers:
        ca = TestCA.create(workdir / "cloud-ca")
        os.environ.update(ca.client_env())  # before the first TLS client of this process
        return cls(ca, KeyVaultServer(ca).start(), SecretManagerServer(ca).start())

    def trust_cluster(self, issuer: str, public_key_pem: bytes) -> None:
        """Both services accept the cluster's ServiceAccount tokens (federated credentials)."""
        self.keyvault.trust_issuer(issuer, public_key_pem)
        self.secretmanager.trust_issuer(issuer, public_key_pem)

    def client_env(self) -> dict[str, str]:
        return self.ca.client_env()

    def stop(self) -> None:
        self.keyvault.stop()
        self.secretmanager.stop()


# ------------------------------------------------------------------------------------------ manifests
API = "rotor.dev/v1alpha1"


def azure_store(
    clouds: CloudServers,
    namespace: str,
    name: str = "azure",
    *,
    role: str | None,
    workload_identity: bool = False,
) -> list[dict[str, Any]]:
    """A SecretStore for the Key Vault test server, as a user writes it for Azure (plus the
    authority host), with an app of ``role``: a service principal whose client secret is in a
    Secret, or a federated credential for the ServiceAccount ``<name>-sa``."""
    kv = clouds.keyvault
    docs: list[dict[str, Any]] = []
    if workload_identity:
        sa = f"{name}-sa"
        app = kv.add_app(role, subject=f"system:serviceaccount:{namespace}:{sa}")
        docs.append(
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": sa, "namespace": namespace}}
        )
        auth: dict[str, Any] = {
            "workloadIdentity": {
                "tenantID": kv.tenant_id,
                "clientID": app.client_id,
                "serviceAccountRef": {"name": sa},
            }
        }
    else:
        client_secret = secrets.token_urlsafe(24)
        app = kv.add_app(role, client_secret=client_secret)
        docs.append(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": f"{name}-sp", "namespace": namespace},
                "stringData": {"clientSecret": client_secret},
            }
        )
        auth = {
            "servicePrincipal": {
                "tenantID": kv.tenant_id,
                "clientID": app.client_id,
                "clientSecretRef": {"name": f"{name}-sp", "key": "clientSecret"},
            }
        }
    docs.append(
        {
            "apiVersion": API,
            "kind": "SecretStore",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "provider": {"azureKeyVault": {"vaultURL": kv.url, "authorityHost": kv.url, "auth": auth}}
            },
        }
    )
    return docs


def gcp_store(
    clouds: CloudServers, namespace: str, name: str = "gcp", *roles: str, workload_identity: bool = False
) -> list[dict[str, Any]]:
    """A SecretStore for the Secret Manager test server: a service account key in a Secret, or
    workload identity federation for the ServiceAccount ``<name>-sa``; the principal gets ``roles``."""
    sm = clouds.secretmanager
    docs: list[dict[str, Any]] = []
    if workload_identity:
        sa = f"{name}-sa"
        pool = sm.add_pool_provider(f"pool-{secrets.token_hex(3)}", "k8s")
        sm.grant(pool.principal(f"system:serviceaccount:{namespace}:{sa}"), *roles)
        docs.append(
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": sa, "namespace": namespace}}
        )
        auth: dict[str, Any] = {
            "workloadIdentity": {
                "audience": pool.audience,
                "serviceAccountRef": {"name": sa},
                "tokenURL": sm.sts_url,
            }
        }
    else:
        key = sm.add_service_account(f"{name}-{secrets.token_hex(3)}", *roles)
        docs.append(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": f"{name}-key", "namespace": namespace},
                "stringData": {"key.json": json.dumps(key)},
            }
        )
        auth = {"serviceAccountKeyRef": {"name": f"{name}-key", "key": "key.json"}}
    docs.append(
        {
            "apiVersion": API,
            "kind": "SecretStore",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "provider": {
                    "gcpSecretManager": {"projectID": sm.project_id, "endpoint": sm.endpoint, "auth": auth}
                }
            },
        }
    )
    return docs

"""The session's Azure Key Vault and Google Secret Manager test servers, behind one test CA.

The CA joins the public roots in a trust bundle that this process and the operator use through
the SDKs' standard variables (REQUESTS_CA_BUNDLE, GRPC_DEFAULT_SSL_ROOTS_FILE_PATH), so the
stores' specs are the ones a user writes for the real clouds, with only the endpoints changed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

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

"""The session's environment: servers, CRDs installed, and the operator running."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import boto3
import hvac

from rotor.devenv import binaries
from rotor.devenv.aws import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY, AwsEmulator
from rotor.devenv.environment import LocalEnvironment
from rotor.devenv.vault import ROOT_TOKEN, VaultServer
from support.clouds import CloudServers
from support.operator import OperatorProcess

ROOT = Path(__file__).resolve().parents[2]
#: the local apiserver's --service-account-issuer (rotor.devenv.kubernetes)
SA_ISSUER = "https://kubernetes.default.svc.cluster.local"


class TestEnvironment:
    __test__ = False

    def __init__(self, workdir: Path, clouds: CloudServers | None = None) -> None:
        self.workdir = workdir
        self.clouds = clouds
        self.external = os.environ.get("ROTOR_TEST_KUBECONFIG")
        self.local: LocalEnvironment | None = None
        self.vault: VaultServer | None = None
        self.aws: AwsEmulator | None = None
        self.operator: OperatorProcess | None = None
        self.kubeconfig = Path(self.external) if self.external else workdir / "kube" / "kubeconfig"
        self.kubectl: Path = Path("kubectl")
        self.clock_file = workdir / "clock-offset"

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        if self.external:
            self.kubectl = Path(shutil.which("kubectl") or binaries.ensure("kubectl"))
            self.local = LocalEnvironment(self.workdir, with_vault=False, with_aws=False, keep_workdir=True)
            self.vault = VaultServer(self.workdir / "vault")
            self.vault.start()
            self.aws = AwsEmulator(self.workdir / "aws")
            self.aws.start()
        else:
            # ROTOR_TEST_SKIP_VAULT=1 is a development aid while Vault builds; CI never sets it.
            with_vault = os.environ.get("ROTOR_TEST_SKIP_VAULT") != "1"
            self.local = LocalEnvironment(self.workdir, keep_workdir=True, with_vault=with_vault).start()
            assert self.local.control_plane is not None
            self.kubeconfig = self.local.kubeconfig
            self.vault, self.aws = self.local.vault, self.local.aws
            self.kubectl = binaries.ensure("kubectl")
        self.install_crds()
        self.clock_file.write_text("0")
        if self.clouds is not None and self.local is not None and self.local.control_plane is not None:
            pki = self.local.control_plane.pki
            assert pki is not None
            self.clouds.trust_cluster(SA_ISSUER, pki.sa_pub.read_bytes())
        self.operator = OperatorProcess(
            str(self.kubeconfig),
            self.workdir / "logs",
            name="operator",
            namespaces=["!iso-*"],
            env={**self.aws_env(), **(self.clouds.client_env() if self.clouds else {})},
        )
        self.operator.start()

    def stop(self) -> None:
        if self.operator is not None:
            self.operator.stop()
        if self.external:
            for server in (self.aws, self.vault):
                if server is not None:
                    server.stop()
        elif self.local is not None:
            self.local.stop()
        if os.environ.get("ROTOR_KEEP_ENV") != "1":
            shutil.rmtree(self.workdir, ignore_errors=True)

    def install_crds(self) -> None:
        result = subprocess.run(
            [
                str(self.kubectl),
                "--kubeconfig",
                str(self.kubeconfig),
                "apply",
                "--server-side",
                "-k",
                str(ROOT / "crds"),
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        if result.returncode != 0:
            raise RuntimeError(f"installing the CRDs failed: {result.stderr}")
        subprocess.run(
            [
                str(self.kubectl),
                "--kubeconfig",
                str(self.kubeconfig),
                "wait",
                "--for=condition=Established",
                "--timeout=60s",
                "crd",
                "-l",
                "app.kubernetes.io/name=rotor",
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=90,
        )

    # ------------------------------------------------------------------ backends
    @property
    def vault_addr(self) -> str:
        if self.vault is None:
            return "http://127.0.0.1:1"
        return self.vault.address

    def vault_client(self) -> hvac.Client:
        return hvac.Client(url=self.vault_addr, token=ROOT_TOKEN)

    @property
    def aws_endpoint(self) -> str:
        assert self.aws is not None
        return self.aws.endpoint

    def aws_env(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
            "AWS_DEFAULT_REGION": REGION,
        }

    def boto(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.aws_endpoint,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY_ID,
            aws_secret_access_key=SECRET_ACCESS_KEY,
        )

    # ------------------------------------------------------------------ manifests
    def vault_token_store(
        self,
        namespace: str,
        name: str = "vault",
        *,
        mount: str = "secret",
        version: int = 2,
        token: str = ROOT_TOKEN,
    ) -> list[dict[str, Any]]:
        return [
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": f"{name}-token", "namespace": namespace},
                "data": {"token": base64.b64encode(token.encode()).decode()},
            },
            {
                "apiVersion": "rotor.dev/v1alpha1",
                "kind": "SecretStore",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {
                    "provider": {
                        "vault": {
                            "server": self.vault_addr,
                            "kv": {"mount": mount, "version": version},
                            "auth": {"token": {"secretRef": {"name": f"{name}-token", "key": "token"}}},
                        }
                    }
                },
            },
        ]

    def aws_store(
        self, namespace: str, name: str = "aws", service: str = "SecretsManager"
    ) -> list[dict[str, Any]]:
        return [
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": f"{name}-creds", "namespace": namespace},
                "stringData": {"id": ACCESS_KEY_ID, "secret": SECRET_ACCESS_KEY},
            },
            {
                "apiVersion": "rotor.dev/v1alpha1",
                "kind": "SecretStore",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {
                    "provider": {
                        "aws": {
                            "service": service,
                            "region": REGION,
                            "endpoint": self.aws_endpoint,
                            "auth": {
                                "secretRef": {
                                    "accessKeyId": {"name": f"{name}-creds", "key": "id"},
                                    "secretAccessKey": {"name": f"{name}-creds", "key": "secret"},
                                }
                            },
                        }
                    }
                },
            },
        ]

    def substitute(self, text: str) -> str:
        """examples/ use ${VAULT_ADDR} and ${AWS_ENDPOINT} for the servers' addresses."""
        return text.replace("${VAULT_ADDR}", self.vault_addr).replace("${AWS_ENDPOINT}", self.aws_endpoint)

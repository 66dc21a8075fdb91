"""The whole local environment: control plane, Vault, AWS emulator; shared by tests and demo."""

from __future__ import annotations

import json
import os
import shutil
import ssl
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hvac

from rotor.devenv.aws import AwsEmulator
from rotor.devenv.kubernetes import ControlPlane
from rotor.devenv.vault import ROOT_TOKEN, VaultServer

VAULT_REVIEWER_NAMESPACE = "rotor-system"
VAULT_REVIEWER_SA = "vault-token-reviewer"


def _say(message: str) -> None:
    print(f"rotor: {message}", file=sys.stderr, flush=True)


@dataclass
class LocalEnvironment:
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="rotor-env-")))
    with_controller_manager: bool = True
    with_vault: bool = True
    with_aws: bool = True
    keep_workdir: bool = False
    control_plane: ControlPlane | None = None
    vault: VaultServer | None = None
    aws: AwsEmulator | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> LocalEnvironment:
        try:
            started = time.monotonic()
            _say(f"starting etcd and kube-apiserver (work dir {self.workdir})")
            self.control_plane = ControlPlane(self.workdir / "kube", self.with_controller_manager)
            self.control_plane.start()
            if self.with_vault:
                _say("starting the Vault dev server")
                self.vault = VaultServer(self.workdir / "vault")
                self.vault.start()
                self.configure_vault()
            if self.with_aws:
                _say("starting the AWS emulator (moto server)")
                self.aws = AwsEmulator(self.workdir / "aws")
                self.aws.start()
            _say(f"environment ready in {time.monotonic() - started:.1f}s: {self.control_plane.server}")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for server in (self.aws, self.vault, self.control_plane):
            if server is not None:
                server.stop()
        if not self.keep_workdir and os.environ.get("ROTOR_KEEP_ENV") != "1":
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> LocalEnvironment:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ access
    @property
    def kubeconfig(self) -> Path:
        assert self.control_plane is not None
        return self.control_plane.kubeconfig

    def kube_request(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """A raw admin request to the apiserver (environment setup only)."""
        cp = self.control_plane
        assert cp is not None and cp.pki is not None
        ctx = ssl.create_default_context(cafile=str(cp.pki.ca_crt))
        ctx.load_cert_chain(str(cp.pki.admin_crt), str(cp.pki.admin_key))
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            cp.server + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=15, context=ctx) as resp:
                return dict(json.load(resp))
        except urllib.error.HTTPError as exc:
            if exc.code == 409 and method == "POST":
                return {}
            raise

    def vault_client(self) -> hvac.Client:
        assert self.vault is not None
        return hvac.Client(url=self.vault.address, token=ROOT_TOKEN)

    def service_account_token(
        self, namespace: str, name: str, audiences: list[str], seconds: int = 3600
    ) -> str:
        self.kube_request(
            "POST", f"/api/v1/namespaces/{namespace}/serviceaccounts", {"metadata": {"name": name}}
        )
        resp = self.kube_request(
            "POST",
            f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
            {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {"audiences": audiences, "expirationSeconds": seconds},
            },
        )
        return str(resp["status"]["token"])

    # ------------------------------------------------------------------ vault setup
    def configure_vault(self) -> None:
        """KV v1 at kv/, KV v2 at secret/ (dev default), AppRole, Kubernetes auth against our
        apiserver's TokenReview, and PKI at pki/."""
        client = self.vault_client()
        mounts = client.sys.list_mounted_secrets_engines()
        if "kv/" not in mounts:
            client.sys.enable_secrets_engine("kv", path="kv", options={"version": "1"})
        if "pki/" not in mounts:
            client.sys.enable_secrets_engine("pki", path="pki", config={"max_lease_ttl": "87600h"})
            client.secrets.pki.generate_root(
                "internal", "rotor-local-vault-ca", extra_params={"ttl": "87600h"}
            )
        auths = client.sys.list_auth_methods()
        if "approle/" not in auths:
            client.sys.enable_auth_method("approle")
        if "kubernetes/" not in auths:
            client.sys.enable_auth_method("kubernetes")
        cp = self.control_plane
        assert cp is not None and cp.pki is not None
        self.kube_request("POST", "/api/v1/namespaces", {"metadata": {"name": VAULT_REVIEWER_NAMESPACE}})
        self.kube_request(
            "POST",
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
            {
                "metadata": {"name": "rotor-vault-token-reviewer"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "system:auth-delegator",
                },
                "subjects": [
                    {
                        "kind": "ServiceAccount",
                        "name": VAULT_REVIEWER_SA,
                        "namespace": VAULT_REVIEWER_NAMESPACE,
                    }
                ],
            },
        )
        reviewer = self.service_account_token(
            VAULT_REVIEWER_NAMESPACE,
            VAULT_REVIEWER_SA,
            ["https://kubernetes.default.svc.cluster.local"],
            86400,
        )
        client.auth.kubernetes.configure(
            kubernetes_host=cp.server,
            kubernetes_ca_cert=cp.pki.ca_crt.read_text(),
            token_reviewer_jwt=reviewer,
            disable_local_ca_jwt=True,
        )

"""etcd, kube-apiserver and kube-controller-manager on loopback, with a kubeconfig for admins."""

from __future__ import annotations

import ssl
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from rotor.devenv import binaries
from rotor.devenv.certs import Pki, make_pki
from rotor.devenv.errors import EnvironmentProblem
from rotor.devenv.process import ManagedProcess, free_port, port_in_use


def write_kubeconfig(path: Path, server: str, pki: Pki) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "rotor-local", "cluster": {"server": server, "certificate-authority": str(pki.ca_crt)}}
        ],
        "users": [
            {
                "name": "rotor-admin",
                "user": {"client-certificate": str(pki.admin_crt), "client-key": str(pki.admin_key)},
            }
        ],
        "contexts": [{"name": "rotor-local", "context": {"cluster": "rotor-local", "user": "rotor-admin"}}],
        "current-context": "rotor-local",
    }
    path.write_text(yaml.safe_dump(config))


@dataclass
class ControlPlane:
    """A real Kubernetes control plane without nodes."""

    workdir: Path
    with_controller_manager: bool = True
    etcd: ManagedProcess | None = None
    apiserver: ManagedProcess | None = None
    controller_manager: ManagedProcess | None = None
    server: str = ""
    kubeconfig: Path = field(default_factory=Path)
    pki: Pki | None = None
    apiserver_port: int = 0

    def start(self) -> None:
        etcd_bin = binaries.ensure("etcd")
        apiserver_bin = binaries.ensure("kube-apiserver")
        kcm_bin = binaries.ensure("kube-controller-manager") if self.with_controller_manager else None
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.pki = pki = make_pki(self.workdir / "pki")

        client_port, peer_port = free_port(), free_port()
        self.etcd = ManagedProcess(
            "etcd",
            [
                str(etcd_bin),
                "--data-dir",
                str(self.workdir / "etcd"),
                "--listen-client-urls",
                f"http://127.0.0.1:{client_port}",
                "--advertise-client-urls",
                f"http://127.0.0.1:{client_port}",
                "--listen-peer-urls",
                f"http://127.0.0.1:{peer_port}",
                "--initial-advertise-peer-urls",
                f"http://127.0.0.1:{peer_port}",
                "--initial-cluster",
                f"default=http://127.0.0.1:{peer_port}",
                "--unsafe-no-fsync",
                "--quota-backend-bytes",
                str(4 * 1024**3),
                "--log-level",
                "warn",
            ],
            self.workdir / "logs" / "etcd.log",
        )
        self.etcd.start()
        self.etcd.wait_healthy(
            lambda: urllib.request.urlopen(f"http://127.0.0.1:{client_port}/health", timeout=2).status == 200,
            timeout=30,
            what=f"GET http://127.0.0.1:{client_port}/health",
        )

        self.apiserver_port = port = free_port()
        self.server = f"https://127.0.0.1:{port}"
        self.apiserver = ManagedProcess(
            "kube-apiserver",
            [
                str(apiserver_bin),
                f"--etcd-servers=http://127.0.0.1:{client_port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={port}",
                f"--cert-dir={self.workdir / 'apiserver-certs'}",
                f"--tls-cert-file={pki.serving_crt}",
                f"--tls-private-key-file={pki.serving_key}",
                f"--client-ca-file={pki.ca_crt}",
                f"--service-account-key-file={pki.sa_pub}",
                f"--service-account-signing-key-file={pki.sa_key}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                "--api-audiences=https://kubernetes.default.svc.cluster.local,vault",
                "--service-cluster-ip-range=10.0.0.0/24",
                "--authorization-mode=RBAC",
                "--allow-privileged=true",
                "--disable-admission-plugins=ServiceAccount",
                "--enable-priority-and-fairness=false",
                "--endpoint-reconciler-type=none",
                "--profiling=false",
                "--v=1",
            ],
            self.workdir / "logs" / "kube-apiserver.log",
        )
        self.apiserver.start()
        ctx = ssl.create_default_context(cafile=str(pki.ca_crt))
        ctx.load_cert_chain(str(pki.admin_crt), str(pki.admin_key))

        def ready() -> bool:
            with urllib.request.urlopen(f"{self.server}/readyz", timeout=3, context=ctx) as resp:
                return bool(resp.status == 200)

        self.apiserver.wait_healthy(ready, timeout=120, what=f"GET {self.server}/readyz")
        self.kubeconfig = self.workdir / "kubeconfig"
        write_kubeconfig(self.kubeconfig, self.server, pki)

        if kcm_bin is not None:
            kcm_port = free_port()
            self.controller_manager = ManagedProcess(
                "kube-controller-manager",
                [
                    str(kcm_bin),
                    f"--kubeconfig={self.kubeconfig}",
                    f"--authentication-kubeconfig={self.kubeconfig}",
                    f"--authorization-kubeconfig={self.kubeconfig}",
                    "--controllers=garbagecollector,namespace,serviceaccount,serviceaccount-token",
                    f"--service-account-private-key-file={pki.sa_key}",
                    f"--root-ca-file={pki.ca_crt}",
                    "--leader-elect=false",
                    "--use-service-account-credentials=false",
                    "--bind-address=127.0.0.1",
                    f"--secure-port={kcm_port}",
                    "--concurrent-gc-syncs=5",
                    "--concurrent-namespace-syncs=5",
                    "--v=1",
                ],
                self.workdir / "logs" / "kube-controller-manager.log",
            )
            self.controller_manager.start()
            insecure = ssl.create_default_context()
            insecure.check_hostname = False
            insecure.verify_mode = ssl.CERT_NONE

            def kcm_ready() -> bool:
                with urllib.request.urlopen(
                    f"https://127.0.0.1:{kcm_port}/healthz", timeout=3, context=insecure
                ) as r:
                    return bool(r.status == 200)

            self.controller_manager.wait_healthy(kcm_ready, timeout=60, what="GET /healthz")

    def restart_apiserver(self) -> None:
        """Stop and start kube-apiserver on the same port (fault tests)."""
        assert self.apiserver is not None
        self.apiserver.stop()
        if port_in_use(self.apiserver_port):
            raise EnvironmentProblem(f"port {self.apiserver_port} still in use after stopping kube-apiserver")
        self.apiserver.start()
        assert self.pki is not None
        ctx = ssl.create_default_context(cafile=str(self.pki.ca_crt))
        ctx.load_cert_chain(str(self.pki.admin_crt), str(self.pki.admin_key))

        def ready() -> bool:
            with urllib.request.urlopen(f"{self.server}/readyz", timeout=3, context=ctx) as resp:
                return bool(resp.status == 200)

        self.apiserver.wait_healthy(ready, timeout=120, what="GET /readyz")

    def stop(self) -> None:
        for proc in (self.controller_manager, self.apiserver, self.etcd):
            if proc is not None:
                proc.stop()

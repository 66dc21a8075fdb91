"""Deployments that really roll out, on a control plane without nodes.

The session's kube-controller-manager runs only the garbage collector and the namespace and
service-account controllers, so that tests which play the deployment controller themselves keep
full control. ``DeploymentControllers`` runs a second kube-controller-manager with the deployment
and replicaset controllers for the tests that need real rollouts (ReplicaSets created and scaled,
pods created and deleted, Deployment status written by Kubernetes). ``Kubelet`` stands in for the
missing nodes: it marks each new pod of the given label Running and Ready a little after it was
created, so rollouts take a while and then finish, as on a cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ssl
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

from kubernetes_asyncio.client.exceptions import ApiException

from rotor.devenv import binaries
from rotor.devenv.process import ManagedProcess, free_port
from support.cluster import Cluster


class DeploymentControllers:
    def __init__(self, kubeconfig: Path, log_dir: Path) -> None:
        self.kubeconfig = kubeconfig
        self.log_path = log_dir / "kube-controller-manager-workloads.log"
        self.proc: ManagedProcess | None = None

    def start(self) -> None:
        port = free_port()
        kcm = binaries.ensure("kube-controller-manager")
        self.proc = ManagedProcess(
            "kube-controller-manager (deployment, replicaset)",
            [
                str(kcm),
                f"--kubeconfig={self.kubeconfig}",
                f"--authentication-kubeconfig={self.kubeconfig}",
                f"--authorization-kubeconfig={self.kubeconfig}",
                "--controllers=deployment,replicaset",
                "--leader-elect=false",
                "--use-service-account-credentials=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={port}",
                "--concurrent-deployment-syncs=5",
                "--concurrent-replicaset-syncs=5",
                "--v=1",
            ],
            self.log_path,
        )
        self.proc.start()
        insecure = ssl.create_default_context()
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE

        def healthy() -> bool:
            with urllib.request.urlopen(
                f"https://127.0.0.1:{port}/healthz", timeout=3, context=insecure
            ) as r:
                return bool(r.status == 200)

        self.proc.wait_healthy(healthy, timeout=60, what="GET /healthz")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()


class Kubelet:
    """Marks pods labelled ``selector`` Running and Ready ``ready_after`` seconds after creation."""

    def __init__(self, cluster: Cluster, selector: str, *, ready_after: float = 1.5) -> None:
        self.cluster = cluster
        self.selector = selector
        self.ready_after = ready_after
        self.readied = 0

    async def run(self) -> None:
        while True:
            pods = await self.cluster.core.list_pod_for_all_namespaces(label_selector=self.selector)
            now = dt.datetime.now(dt.UTC)
            for pod in pods.items:
                meta, status = pod.metadata, pod.status
                if meta.deletion_timestamp or (status and status.phase == "Running"):
                    continue
                if (now - meta.creation_timestamp).total_seconds() < self.ready_after:
                    continue
                await self._ready(meta.namespace, meta.name, now)
            await asyncio.sleep(0.25)

    async def _ready(self, namespace: str, name: str, now: dt.datetime) -> None:
        at = now.strftime("%Y-%m-%dT%H:%M:%SZ")
        conditions = [
            {"type": t, "status": "True", "lastTransitionTime": at}
            for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")
        ]
        body = {"status": {"phase": "Running", "conditions": conditions, "podIP": "10.0.0.10"}}
        try:
            await self.cluster.core.patch_namespaced_pod_status(
                name, namespace, body, _content_type="application/merge-patch+json"
            )
            self.readied += 1
        except ApiException as exc:
            if exc.status not in (404, 409):
                raise


@contextlib.asynccontextmanager
async def kubelet(cluster: Cluster, selector: str, *, ready_after: float = 1.5) -> AsyncIterator[Kubelet]:
    k = Kubelet(cluster, selector, ready_after=ready_after)
    task = asyncio.create_task(k.run())
    try:
        yield k
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task  # re-raises what made it fail, if it did

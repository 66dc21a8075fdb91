"""What each kind of Kubernetes write costs the apiserver on this machine (not a test).

Rotor makes four writes for a new ManagedSecret: its finalizer (a ManagedSecret patch), the
Secret (a create), the status (a ManagedSecret status patch) and one Event. This creates N
ManagedSecrets, then makes N writes of each kind, 16 at a time, and prints the wall time and the
CPU that kube-apiserver and etcd spent per write.

    .venv/bin/python bench/api_write_cost.py 1000
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import run as bench
from rotor.devenv.environment import LocalEnvironment
from rotor.kube.gateway import KubeGateway


async def main(n: int) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="rotor-writes-"))
    env = LocalEnvironment(workdir, with_vault=False, with_aws=False)
    env.start()
    kubeconfig = str(env.kubeconfig)
    bench.apply_crds(env)
    cluster = await bench.Cluster.connect(kubeconfig)
    gateway = await KubeGateway.connect(kubeconfig)
    ns = "writes"
    try:
        await cluster.create_namespace(ns)
        await bench.create_many(
            cluster, ns, [bench.ms_doc(f"m{i}", "vault", f"p{i}", "1h") for i in range(n)]
        )
        pids = bench.server_pids(env)
        sem = asyncio.Semaphore(16)

        async def measure(label: str, write: Callable[[int], Awaitable[Any]]) -> None:
            await asyncio.sleep(2)  # let the previous step's watch traffic settle
            before = {name: bench.pid_cpu_seconds(pid) for name, pid in pids.items()}
            started = time.monotonic()

            async def one(i: int) -> None:
                async with sem:
                    await write(i)

            await asyncio.gather(*(one(i) for i in range(n)))
            wall = time.monotonic() - started
            await asyncio.sleep(1)
            cpu = {name: 1000 * (bench.pid_cpu_seconds(pid) - before[name]) / n for name, pid in pids.items()}
            print(
                f"| {label} | {1000 * wall / n:.2f} | {cpu.get('kube-apiserver', 0):.2f} | {cpu.get('etcd', 0):.2f} |",
                flush=True,
            )

        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        status = {
            "observedGeneration": 1,
            "dataHash": "0" * 64,
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "Synced",
                    "message": "ok",
                    "lastTransitionTime": now,
                    "observedGeneration": 1,
                }
            ],
        }
        regarding = {"apiVersion": "rotor.dev/v1alpha1", "kind": "ManagedSecret"}
        print(f"\n{n} writes of each kind, 16 at a time\n")
        print("| write | wall ms per write | kube-apiserver CPU ms | etcd CPU ms |")
        print("|---|---|---|---|")
        await measure(
            "ManagedSecret patch (finalizer)",
            lambda i: gateway.patch_object(
                "ManagedSecret", f"m{i}", ns, {"metadata": {"finalizers": ["rotor.dev/finalizer"]}}
            ),
        )
        await measure(
            "ManagedSecret status patch",
            lambda i: gateway.patch_status("ManagedSecret", f"m{i}", ns, {**status, "secretName": f"m{i}"}),
        )
        await measure(
            "Secret create",
            lambda i: gateway.create_secret(
                ns,
                {
                    "metadata": {"name": f"m{i}", "labels": {"rotor.dev/managed-by": f"m{i}"}},
                    "data": {"password": "c2VjcmV0"},
                },
            ),
        )
        await measure(
            "Event create",
            lambda i: gateway.post_event(
                {**regarding, "metadata": {"name": f"m{i}", "namespace": ns, "uid": str(uuid.uuid4())}},
                type_="Normal",
                reason="Synced",
                note="Secret written",
                action="Sync",
            ),
        )
    finally:
        await gateway.close()
        await cluster.close()
        env.stop()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000))

"""ClusterManagedSecret at scale (not a test): one ClusterManagedSecret over N namespaces (default
1,000) on the same real environment as the tests (etcd, kube-apiserver, kube-controller-manager,
Vault dev server). Prints:

- cold start: from the operator's start (the ClusterManagedSecret, the N namespaces and their
  Vault values already exist) to the ClusterManagedSecret Ready with all N namespaces Ready;
- the Kubernetes writes of an unchanged pass, from the apiserver's own
  ``apiserver_request_total`` (as bench/run.py counts writes): a namespace label that selects
  nothing new is changed, the operator makes a pass (its
  ``rotor_clustermanagedsecret_passes_total{result="unchanged"}`` moves), and every write verb on
  Rotor's resources and Secrets in that window is counted. It must be 0.

    .venv/bin/python bench/fanout.py               # N = 1000
    .venv/bin/python bench/fanout.py --namespaces 200
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import secrets
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from rotor.devenv.environment import LocalEnvironment  # noqa: E402
from rotor.devenv.vault import ROOT_TOKEN  # noqa: E402
from run import WRITE_VERBS, Operator, apiserver_requests, apply_crds, metric, request_delta  # noqa: E402
from support.cluster import Cluster  # noqa: E402

API = "rotor.dev/v1alpha1"
STORE_NS = "fanout-bench-store"
#: writes on these resources are Rotor's (the rest are the control plane's own: Leases, Events...)
ROTOR_RESOURCES = ("managedsecrets", "clustermanagedsecrets", "secrets")


async def create_namespaces(cluster: Cluster, names: list[str], label: str) -> None:
    limit = asyncio.Semaphore(16)

    async def one(name: str) -> None:
        async with limit:
            await cluster.create_namespace(name, {"bench": label})

    await asyncio.gather(*(one(n) for n in names))


def seed(env: LocalEnvironment, names: list[str]) -> None:
    client = env.vault_client()

    def put(ns: str) -> None:
        client.secrets.kv.v2.create_or_update_secret(
            path=f"tenants/{ns}/db", secret={"password": secrets.token_urlsafe(18)}, mount_point="secret"
        )

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, names))


async def cms_status(cluster: Cluster, name: str) -> dict[str, Any]:
    obj = await cluster.get("ClusterManagedSecret", name)
    return dict((obj or {}).get("status") or {})


async def wait_all_ready(cluster: Cluster, name: str, n: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        status = await cms_status(cluster, name)
        counts = status.get("namespaces") or {}
        ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {})
        if counts.get("ready") == n and ready.get("status") == "True":
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"not all Ready after {timeout:.0f}s: {counts}, {ready.get('message')}")
        await asyncio.sleep(1.0)


def passes(op: Operator, name: str) -> float:
    return metric(
        op.metrics(), "rotor_clustermanagedsecret_passes_total", clustermanagedsecret=name, result="unchanged"
    )


async def wait_passes_above(op: Operator, name: str, floor: float, timeout: float = 60) -> float:
    deadline = time.monotonic() + timeout
    while (value := passes(op, name)) <= floor:
        if time.monotonic() > deadline:
            raise RuntimeError("no unchanged pass")
        await asyncio.sleep(0.5)
    return value


async def main(args: argparse.Namespace) -> None:
    n = args.namespaces
    workdir = Path(tempfile.mkdtemp(prefix="rotor-bench-fanout-"))
    env = LocalEnvironment(workdir)
    env.start()
    op: Operator | None = None
    cluster: Cluster | None = None
    try:
        apply_crds(env)
        cluster = await Cluster.connect(str(env.kubeconfig))
        label = secrets.token_hex(3)
        names = [f"fan-{label}-{i:04d}" for i in range(n)]
        print(f"creating {n} namespaces and their Vault values", flush=True)
        await cluster.create_namespace(STORE_NS)
        await create_namespaces(cluster, names, label)
        seed(env, names)
        await cluster.apply(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "root-token"},
                "stringData": {"token": ROOT_TOKEN},
            },
            STORE_NS,
        )
        assert env.vault is not None
        store = {
            "apiVersion": API,
            "kind": "ClusterSecretStore",
            "metadata": {"name": "shared"},
            "spec": {
                "provider": {
                    "vault": {
                        "server": env.vault.address,
                        "kv": {"mount": "secret", "version": 2},
                        "auth": {
                            "token": {
                                "secretRef": {"name": "root-token", "key": "token", "namespace": STORE_NS}
                            }
                        },
                    }
                },
                "conditions": [{"namespaceSelector": {"matchLabels": {"bench": label}}}],
                "allowedKeys": ["tenants/{namespace}/*"],
            },
        }
        await cluster.apply(store)
        cms = "fanout"
        await cluster.apply(
            {
                "apiVersion": API,
                "kind": "ClusterManagedSecret",
                "metadata": {"name": cms},
                "spec": {
                    "namespaceSelector": {"matchLabels": {"bench": label}},
                    "template": {
                        "storeRef": {"name": "shared", "kind": "ClusterSecretStore"},
                        "dataFrom": [{"extract": {"key": "tenants/{namespace}/db"}}],
                    },
                },
            }
        )
        assert env.aws is not None
        op = Operator(str(env.kubeconfig), workdir, env.aws.client_env(), concurrency=args.concurrency)
        load_before = os.getloadavg()
        started = op.start()
        await wait_all_ready(cluster, cms, n, timeout=args.timeout)
        cold = time.monotonic() - started
        print(f"cold start to all {n} namespaces Ready: {cold:.1f}s", flush=True)

        # settle: let the echoes of the cold start's last writes arrive and be absorbed
        await asyncio.sleep(10)
        settled = passes(op, cms)
        before = apiserver_requests(env)
        await cluster.label_namespace(names[0], {"bench-unrelated": "x"})  # the one write of ours
        await wait_passes_above(op, cms, settled)
        await asyncio.sleep(2)  # let any write the pass might have made land in the counters
        delta = request_delta(before, apiserver_requests(env))
        writes = {k: v for k, v in delta.items() if k.split()[0] in WRITE_VERBS}
        rotor_writes = {k: v for k, v in writes.items() if k.split()[1].split("/")[0] in ROTOR_RESOURCES}
        load_after = os.getloadavg()
        print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
        print(f"load average (1, 5, 15 min) before: {load_before}, after: {load_after}")
        print(f"namespaces: {n}")
        print(f"cold_start_to_all_ready_s: {cold:.1f}")
        print(f"operator_cpu_s: {op.cpu_seconds():.1f}  rss_mib: {op.rss_mib():.0f}")
        print(
            f"unchanged pass: Kubernetes writes on Rotor's resources and Secrets: {sum(rotor_writes.values())}"
        )
        print(
            f"unchanged pass: every apiserver write in the window (incl. the bench's own label patch): {writes}"
        )
    except Exception:
        if op is not None:  # what the operator wrote last, to see why
            lines = [
                line for line in op.log.read_text().splitlines() if "api write" in line or "error" in line
            ]
            print("\n".join(lines[-30:]), file=sys.stderr)
        raise
    finally:
        if cluster is not None:
            await cluster.close()
        if op is not None:
            op.stop()
        env.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").strip().splitlines()[0])
    parser.add_argument("--namespaces", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--timeout", type=float, default=1200)
    asyncio.run(main(parser.parse_args()))

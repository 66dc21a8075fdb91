"""Rotor's benchmark runner (not a test): starts the same real environment as the tests
(etcd + kube-apiserver + kube-controller-manager, Vault dev server, moto), creates N
ManagedSecrets, and prints a table of what DESIGN.md §9 asks about, beside a baseline measured in
the same run: a minimal script doing the same reads and Secret writes as fast as the client
libraries allow.

    .venv/bin/python bench/run.py                 # N = 100, 1000
    .venv/bin/python bench/run.py --sizes 100 1000 5000 --runs 3
    .venv/bin/python bench/run.py --json results.json
    .venv/bin/python bench/run.py --sizes --aws-sizes --restart-sizes 1000 5000   # restarts only

Numbers depend on the machine; the table prints what it ran on.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from kubernetes_asyncio.client.exceptions import ApiException  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from rotor.devenv import binaries  # noqa: E402
from rotor.devenv.environment import LocalEnvironment  # noqa: E402
from rotor.devenv.process import free_port  # noqa: E402
from rotor.devenv.vault import ROOT_TOKEN  # noqa: E402
from rotor.kube.gateway import KubeGateway  # noqa: E402
from rotor.kube.informer import Informer  # noqa: E402
from support.cluster import Cluster  # noqa: E402

TICK = 0.25


def metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


RUNNING: list[Operator] = []


def pid_cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its waited-for children, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def server_pids(env: LocalEnvironment) -> dict[str, int]:
    plane = env.control_plane
    found = {
        "kube-apiserver": plane.apiserver if plane else None,
        "etcd": plane.etcd if plane else None,
        "kube-controller-manager": plane.controller_manager if plane else None,
        "vault": env.vault.process if env.vault else None,
    }
    return {name: p.proc.pid for name, p in found.items() if p is not None and p.proc is not None}


class Operator:
    def __init__(
        self,
        kubeconfig: str,
        workdir: Path,
        env: dict[str, str],
        concurrency: int = 16,
        extra_args: list[str] | None = None,
    ) -> None:
        self.kubeconfig = kubeconfig
        self.extra_args = extra_args or []
        self.port = free_port()
        self.log = workdir / f"operator-{self.port}.log"
        self.env = env
        self.concurrency = concurrency
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> float:
        env = dict(os.environ, KUBECONFIG=self.kubeconfig, ROTOR_HASH_KEY="bench", **self.env)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "rotor.cli.main",
                    "run",
                    "--no-leader-elect",
                    "--log-level",
                    os.environ.get("BENCH_LOG_LEVEL", "warning"),
                    "--metrics-addr",
                    f"127.0.0.1:{self.port}",
                    "--concurrency",
                    str(self.concurrency),
                    *self.extra_args,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        RUNNING.append(self)
        started = time.monotonic()
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=1):
                    return started
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"operator died; see {self.log}") from None
                time.sleep(0.1)

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=10) as resp:
            return resp.read().decode()

    def cpu_seconds(self) -> float:
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks

    def rss_mib(self) -> float:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def apply_crds(env: LocalEnvironment) -> None:
    """Install the rotor.dev CRDs into the environment's apiserver and wait until they serve."""
    kubectl = str(binaries.ensure("kubectl"))
    kubeconfig = str(env.kubeconfig)
    subprocess.run(
        [kubectl, "--kubeconfig", kubeconfig, "apply", "--server-side", "-k", str(ROOT / "crds")],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            kubectl,
            "--kubeconfig",
            kubeconfig,
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd",
            "-l",
            "app.kubernetes.io/name=rotor",
        ],
        check=True,
        capture_output=True,
    )
    # Established comes before the apiserver's storage for the new kinds is ready (429 "storage
    # is (re)initializing"): wait until a list answers
    for _ in range(60):
        listed = subprocess.run(
            [kubectl, "--kubeconfig", kubeconfig, "get", "managedsecrets,secretstores", "-A"],
            capture_output=True,
        )
        if listed.returncode == 0:
            return
        time.sleep(0.5)
    raise RuntimeError(f"the rotor.dev kinds do not answer: {listed.stderr.decode()[-300:]}")


async def vault_namespace(
    cluster: Cluster, env: LocalEnvironment, namespace: str, qps: int | None = 5000
) -> None:
    """A namespace with a token Secret and a SecretStore named ``vault`` for the dev server, with
    ``rateLimit`` qps = burst = ``qps`` (tuned), or no ``rateLimit`` at all (None: the defaults a
    user gets)."""
    assert env.vault is not None
    await cluster.create_namespace(namespace)
    await cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "vault-token"},
            "stringData": {"token": ROOT_TOKEN},
        },
        namespace,
    )
    await cluster.apply(
        {
            "apiVersion": "rotor.dev/v1alpha1",
            "kind": "SecretStore",
            "metadata": {"name": "vault"},
            "spec": {
                "provider": {
                    "vault": {
                        "server": env.vault.address,
                        "auth": {"token": {"secretRef": {"name": "vault-token", "key": "token"}}},
                    }
                },
                **({"rateLimit": {"qps": qps, "burst": qps}} if qps is not None else {}),
            },
        },
        namespace,
    )


async def wait_all_ready(kubeconfig: str, namespace: str, n: int) -> None:
    """Until ``n`` ManagedSecrets in ``namespace`` are Ready. Watches (through Rotor's own
    informer) instead of polling: listing thousands of objects several times a second would cost
    the apiserver more CPU than the operator being measured."""
    gateway = await KubeGateway.connect(kubeconfig)
    ready: set[str] = set()
    done = asyncio.Event()

    def on_event(body: dict[str, Any], event_type: str | None) -> None:
        name = body["metadata"]["name"]
        conditions = (body.get("status") or {}).get("conditions") or []
        if event_type != "DELETED" and any(
            c.get("type") == "Ready" and c.get("status") == "True" for c in conditions
        ):
            ready.add(name)
        else:
            ready.discard(name)
        if len(ready) >= n:
            done.set()

    watcher = asyncio.create_task(Informer(gateway, "ManagedSecret", on_event, namespaces=[namespace]).run())
    try:
        await done.wait()
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        await gateway.close()


async def delete_and_wait(cluster: Cluster, namespace: str, timeout: float = 300) -> None:
    """Delete a run's namespace and wait until it is gone, with the operator already stopped.
    Otherwise the next run's operator (it serves every namespace) would finalize thousands of
    ManagedSecrets of the previous run while it is being measured. The bench removes Rotor's
    finalizers itself; the garbage collector then deletes the Secrets."""
    items = (
        await cluster.custom.list_namespaced_custom_object(
            "rotor.dev", "v1alpha1", namespace, "managedsecrets"
        )
    )["items"]
    sem = asyncio.Semaphore(16)

    async def unfinalize(name: str) -> None:
        async with sem:
            await cluster.patch("ManagedSecret", name, {"metadata": {"finalizers": None}}, namespace)

    await asyncio.gather(*(unfinalize(o["metadata"]["name"]) for o in items))
    await cluster.delete_namespace(namespace)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            await cluster.core.read_namespace(namespace)
        except ApiException as exc:
            if exc.status == 404:
                return
            raise
        await asyncio.sleep(1)


async def create_many(
    cluster: Cluster, namespace: str, docs: list[dict[str, Any]], parallel: int = 16
) -> None:
    sem = asyncio.Semaphore(parallel)

    async def one(doc: dict[str, Any]) -> None:
        async with sem:
            for _ in range(5):
                try:
                    await cluster.apply(doc, namespace)
                    return
                except ApiException as exc:
                    if exc.status not in (429, 500, 503):
                        raise
                    await asyncio.sleep(0.5)

    await asyncio.gather(*(one(d) for d in docs))


def ms_doc(name: str, store: str, key: str, interval: str) -> dict[str, Any]:
    return {
        "apiVersion": "rotor.dev/v1alpha1",
        "kind": "ManagedSecret",
        "metadata": {"name": name},
        "spec": {
            "storeRef": {"name": store},
            "refresh": {"interval": interval},
            "data": [{"secretKey": "password", "remoteRef": {"key": key, "property": "password"}}],
        },
    }


def seed_vault(env: LocalEnvironment, prefix: str, n: int) -> None:
    client = env.vault_client()

    def put(i: int) -> None:
        client.secrets.kv.v2.create_or_update_secret(
            path=f"{prefix}/p{i}", secret={"password": secrets.token_urlsafe(18)}, mount_point="secret"
        )

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, range(n)))


async def baseline(env: LocalEnvironment, cluster: Cluster, prefix: str, n: int) -> float:
    """The practical limit: read N Vault paths and write N Secrets as fast as the libraries allow."""
    import hvac

    ns = f"bench-base-{secrets.token_hex(3)}"
    await cluster.create_namespace(ns)
    assert env.vault is not None
    started = time.monotonic()
    local = __import__("threading").local()

    def read(i: int) -> str:
        if not hasattr(local, "c"):
            local.c = hvac.Client(url=env.vault.address, token=ROOT_TOKEN)  # type: ignore[union-attr]
        resp = local.c.secrets.kv.v2.read_secret_version(
            path=f"{prefix}/p{i}", mount_point="secret", raise_on_deleted_version=True
        )
        return str(resp["data"]["data"]["password"])

    loop = asyncio.get_running_loop()
    pool = ThreadPoolExecutor(16)
    sem = asyncio.Semaphore(16)

    async def one(i: int) -> None:
        async with sem:
            value = await loop.run_in_executor(pool, read, i)
            await cluster.apply(
                {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "metadata": {"name": f"b{i}"},
                    "stringData": {"password": value},
                },
                ns,
            )

    await asyncio.gather(*(one(i) for i in range(n)))
    elapsed = time.monotonic() - started
    pool.shutdown()
    await delete_and_wait(cluster, ns)
    return elapsed


async def bench_size(
    env: LocalEnvironment,
    cluster: Cluster,
    workdir: Path,
    n: int,
    runs: int,
    *,
    idle_seconds: float = 60,
    refresh_rate: float = 50,
    qps: int | None = None,
) -> dict[str, Any]:
    result: dict[str, Any] = {"n": n, "store_rate_limit": "default" if qps is None else f"{qps} qps"}
    prefix = f"bench{n}-{secrets.token_hex(2)}"
    print(f"[n={n}] seeding {n} Vault paths", flush=True)
    seed_vault(env, prefix, n)
    result["baseline_s"] = round(await baseline(env, cluster, prefix, n), 2)
    print(
        f"[n={n}] baseline (read + write as fast as the libraries allow): {result['baseline_s']}s", flush=True
    )
    assert env.aws is not None
    cold: list[float] = []
    cpu_splits: list[dict[str, float]] = []
    op: Operator | None = None
    ns = ""
    for run in range(runs):
        ns = f"bench-{n}-{run}-{secrets.token_hex(2)}"
        await vault_namespace(cluster, env, ns, qps=qps)
        print(
            f"[n={n}] run {run + 1}/{runs} (store rateLimit: {result['store_rate_limit']}): "
            f"creating {n} ManagedSecrets",
            flush=True,
        )
        await create_many(cluster, ns, [ms_doc(f"m{i}", "vault", f"{prefix}/p{i}", "1h") for i in range(n)])
        op = Operator(str(env.kubeconfig), workdir, env.aws.client_env())
        servers = server_pids(env)
        cpu_before = {name: pid_cpu_seconds(pid) for name, pid in servers.items()}
        requests_before = apiserver_requests(env)
        started = op.start()
        await wait_all_ready(str(env.kubeconfig), ns, n)
        cold.append(time.monotonic() - started)
        # what the cold start asked of the apiserver (kube-controller-manager's own requests, its
        # Lease renewals and the garbage collector's reads, are in it too)
        cold_requests = request_delta(requests_before, apiserver_requests(env))
        writes = {k: round(v / n, 2) for k, v in cold_requests.items() if k.split()[0] in WRITE_VERBS}
        print(f"[n={n}] run {run + 1}: apiserver writes per object: {writes}", flush=True)
        result.setdefault("cold_writes_per_object", []).append(writes)
        result.setdefault("cold_apiserver_requests", []).append(cold_requests)
        result.setdefault("operator_cpu_s", []).append(round(op.cpu_seconds(), 2))
        split = {name: pid_cpu_seconds(pid) - cpu_before[name] for name, pid in servers.items()}
        split["rotor"] = op.cpu_seconds()
        cpu_splits.append({name: round(1000 * secs / n, 2) for name, secs in split.items()})
        print(f"[n={n}] run {run + 1}: CPU ms per object: {cpu_splits[-1]}", flush=True)
        print(f"[n={n}] run {run + 1}: cold start to all {n} Ready in {cold[-1]:.1f}s", flush=True)
        if run < runs - 1:
            op.stop()
            await delete_and_wait(cluster, ns)
    assert op is not None
    result["cold_start_s"] = round(statistics.median(cold), 2)
    result["cold_runs"] = [round(c, 2) for c in cold]
    median_run = sorted(range(len(cold)), key=cold.__getitem__)[len(cold) // 2]
    result["cold_cpu_ms_per_object"] = cpu_splits[median_run]  # of the run with the median time

    # steady state at a 1h refresh: RSS and CPU over a quiet minute, once the echoes of the
    # cold start's own writes have been absorbed (no sync for 10 s, at most 2 min)
    quiet_since, last, deadline = (
        time.monotonic(),
        metric(op.metrics(), "rotor_sync_total"),
        time.monotonic() + 120,
    )
    while time.monotonic() - quiet_since < 10 and time.monotonic() < deadline:
        await asyncio.sleep(1)
        now_syncs = metric(op.metrics(), "rotor_sync_total")
        if now_syncs != last:
            quiet_since, last = time.monotonic(), now_syncs
    cpu0, t0 = op.cpu_seconds(), time.monotonic()
    await asyncio.sleep(idle_seconds)
    result["idle_cpu_pct"] = round(100 * (op.cpu_seconds() - cpu0) / (time.monotonic() - t0), 2)
    result["rss_mib"] = round(op.rss_mib(), 1)
    print(
        f"[n={n}] steady state: RSS {result['rss_mib']} MiB, idle CPU {result['idle_cpu_pct']}% of one core",
        flush=True,
    )

    # an unchanged refresh of every object writes nothing to Kubernetes
    items = (
        await cluster.custom.list_namespaced_custom_object("rotor.dev", "v1alpha1", ns, "managedsecrets")
    )["items"]
    secrets_before = {
        s.metadata.name: s.metadata.resource_version
        for s in (await cluster.core.list_namespaced_secret(ns)).items
    }
    ms_before = {o["metadata"]["name"]: o["metadata"]["resourceVersion"] for o in items}
    syncs0 = metric(op.metrics(), "rotor_sync_total")
    reads0 = metric(op.metrics(), "rotor_provider_requests_total", operation="read")
    k = min(n, 200)
    for i in range(k):  # force-sync k objects: a refresh of those, with nothing changed upstream
        await cluster.patch(
            "ManagedSecret", f"m{i}", {"metadata": {"annotations": {"rotor.dev/force-sync": "bench"}}}, ns
        )
    while metric(op.metrics(), "rotor_sync_total") - syncs0 < k:
        await asyncio.sleep(TICK)
    await asyncio.sleep(2)
    secrets_after = {
        s.metadata.name: s.metadata.resource_version
        for s in (await cluster.core.list_namespaced_secret(ns)).items
    }
    items = (
        await cluster.custom.list_namespaced_custom_object("rotor.dev", "v1alpha1", ns, "managedsecrets")
    )["items"]
    ms_after = {o["metadata"]["name"]: o["metadata"]["resourceVersion"] for o in items}
    secret_writes = sum(1 for name, rv in secrets_after.items() if secrets_before.get(name) != rv)
    # force-sync records the handled annotation once (that is a status write a user needs: the CLI
    # waits for it); a refresh with nothing to record writes nothing: count those separately
    result["secret_writes_per_unchanged_refresh"] = secret_writes
    result["status_writes_for_force_sync"] = sum(
        1 for name, rv in ms_after.items() if ms_before.get(name) != rv
    )
    result["backend_reads_per_object_refresh"] = round(
        (metric(op.metrics(), "rotor_provider_requests_total", operation="read") - reads0) / k, 2
    )

    # new objects while everything refreshes: every object on a short refresh, so that refreshes
    # run all the time (20 s, or longer at large N so the load stays at ``refresh_rate`` per second)
    interval = max(20, round(n / refresh_rate))
    result["refresh_interval_s"] = interval
    print(
        f"[n={n}] new-object latency while {n} objects refresh every {interval}s "
        f"({n / interval:.0f} refreshes/s)",
        flush=True,
    )
    sem_docs = [(f"m{i}", {"spec": {"refresh": {"interval": f"{interval}s"}}}) for i in range(n)]
    sem = asyncio.Semaphore(16)

    async def repatch(name: str, patch: dict[str, Any]) -> None:
        async with sem:
            await cluster.patch("ManagedSecret", name, patch, ns)

    await asyncio.gather(*(repatch(nm, p) for nm, p in sem_docs))
    await asyncio.sleep(min(interval, 30))  # let the spec changes settle into refresh slots
    syncs_before, t_load = metric(op.metrics(), "rotor_sync_total"), time.monotonic()
    latencies: list[float] = []
    for j in range(40):
        name = f"new{j}"
        t = time.monotonic()
        await cluster.apply(ms_doc(name, "vault", f"{prefix}/p{j}", "1h"), ns)
        while True:
            cond = await cluster.condition("ManagedSecret", name, ns, "Ready")
            if cond and cond["status"] == "True":
                break
            await asyncio.sleep(0.02)
        latencies.append(time.monotonic() - t)
        await asyncio.sleep(0.25)  # arrivals spread over time, while refreshes go on
    latencies.sort()
    result["new_ready_p50_s"] = round(statistics.median(latencies), 3)
    result["new_ready_p99_s"] = round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 3)
    result["refreshes_per_s_during_new"] = round(
        (metric(op.metrics(), "rotor_sync_total") - syncs_before) / (time.monotonic() - t_load), 1
    )

    # upstream change to Secret: refresh interval 20s
    client = env.vault_client()
    new_value = secrets.token_urlsafe(18)
    t = time.monotonic()
    client.secrets.kv.v2.create_or_update_secret(
        path=f"{prefix}/p0", secret={"password": new_value}, mount_point="secret"
    )
    while True:
        data = await cluster.secret_data(ns, "m0")
        if data and data["password"] == new_value.encode():
            break
        await asyncio.sleep(0.1)
    result["propagation_s"] = round(time.monotonic() - t, 2)
    op.stop()
    await delete_and_wait(cluster, ns)
    return result


def apiserver_requests(env: LocalEnvironment) -> dict[str, float]:
    """``apiserver_request_total`` from the apiserver's own /metrics, summed by
    "VERB resource[/subresource]" (every code, scope and version)."""
    text = subprocess.run(
        [str(binaries.ensure("kubectl")), "--kubeconfig", str(env.kubeconfig), "get", "--raw", "/metrics"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name != "apiserver_request_total":
                continue
            labels = sample.labels
            key = f"{labels.get('verb')} {labels.get('resource')}" + (
                f"/{labels['subresource']}" if labels.get("subresource") else ""
            )
            out[key] = out.get(key, 0.0) + sample.value
    return out


def request_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, int]:
    return {k: int(v - before.get(k, 0.0)) for k, v in sorted(after.items()) if v - before.get(k, 0.0) > 0}


#: the writes an operator restart must not make (verb resource[/subresource])
WRITE_VERBS = ("POST", "PUT", "PATCH", "DELETE")


async def bench_restart(
    env: LocalEnvironment,
    cluster: Cluster,
    workdir: Path,
    n: int,
    *,
    interval: int,
    qps: int | None,
    new_objects: int = 20,
) -> dict[str, Any]:
    """An operator restart with ``n`` ManagedSecrets already synced (refresh ``interval`` s):
    the apiserver requests and backend reads of the restart over one whole interval, read from
    the apiserver's ``apiserver_request_total`` and Rotor's ``rotor_provider_requests_total``
    (nothing else talks to the apiserver meanwhile); then a second restart, with new objects
    created in its first minute, for their latency."""
    result: dict[str, Any] = {
        "n": n,
        "refresh_interval_s": interval,
        "store_rate_limit": "default" if qps is None else f"{qps} qps",
    }
    assert env.aws is not None
    prefix = f"restart{n}-{secrets.token_hex(2)}"
    print(f"[restart n={n}] seeding {n} Vault paths", flush=True)
    seed_vault(env, prefix, n + new_objects)
    ns = f"bench-restart-{n}-{secrets.token_hex(2)}"
    await vault_namespace(cluster, env, ns, qps=qps)
    await create_many(
        cluster, ns, [ms_doc(f"m{i}", "vault", f"{prefix}/p{i}", f"{interval}s") for i in range(n)]
    )
    op = Operator(str(env.kubeconfig), workdir, env.aws.client_env())
    op.start()
    await wait_all_ready(str(env.kubeconfig), ns, n)
    print(f"[restart n={n}] {n} synced; letting the echoes settle", flush=True)
    await asyncio.sleep(10)
    op.stop()

    # the restart: count everything over one refresh interval (and a tenth more)
    before = apiserver_requests(env)
    op = Operator(str(env.kubeconfig), workdir, env.aws.client_env())
    op.start()
    t0, cpu_start = time.monotonic(), op.cpu_seconds()
    buckets = 10
    step = interval / buckets
    reads: list[int] = []
    last = metric(op.metrics(), "rotor_provider_requests_total", operation="read")
    first_minute: dict[str, int] = {}
    for b in range(buckets + 1):
        await asyncio.sleep(max(0.0, t0 + (b + 1) * step - time.monotonic()))
        now_reads = metric(op.metrics(), "rotor_provider_requests_total", operation="read")
        reads.append(int(now_reads - last))
        last = now_reads
        if not first_minute and time.monotonic() - t0 >= min(60, interval):
            first_minute = request_delta(before, apiserver_requests(env))
    after = apiserver_requests(env)
    cpu = op.cpu_seconds()
    text = op.metrics()
    op.stop()
    delta = request_delta(before, after)
    writes = {k: v for k, v in delta.items() if k.split()[0] in WRITE_VERBS}
    result["apiserver_requests"] = delta
    result["apiserver_requests_first_minute"] = first_minute
    result["writes"] = writes
    result["secret_writes"] = sum(v for k, v in writes.items() if k.split()[1] == "secrets")
    result["status_writes"] = sum(v for k, v in writes.items() if k.split()[1] == "managedsecrets/status")
    result["managedsecret_writes"] = sum(v for k, v in writes.items() if k.split()[1] == "managedsecrets")
    result["event_writes"] = sum(v for k, v in writes.items() if k.split()[1] == "events")
    result["backend_reads"] = sum(reads)
    result["backend_reads_per_tenth_of_interval"] = reads
    result["syncs"] = {
        r: int(metric(text, "rotor_sync_total", result=r)) for r in ("success", "unchanged", "error")
    }
    result["operator_cpu_s"] = round(cpu - cpu_start, 2)
    result["operator_cpu_s_with_start"] = round(cpu, 2)
    print(
        f"[restart n={n}] over {interval * 1.1:.0f}s after the restart: writes {writes or 'none'}; "
        f"backend reads {sum(reads)} per tenth of the interval {reads}; syncs {result['syncs']}; "
        f"operator CPU {result['operator_cpu_s']}s after start ({result['operator_cpu_s_with_start']}s with it)",
        flush=True,
    )

    # a second restart, with new objects in its first minute
    op = Operator(str(env.kubeconfig), workdir, env.aws.client_env())
    op.start()
    latencies: list[float] = []
    for j in range(new_objects):
        name = f"new{j}"
        t = time.monotonic()
        await cluster.apply(ms_doc(name, "vault", f"{prefix}/p{n + j}", f"{interval}s"), ns)
        while True:
            cond = await cluster.condition("ManagedSecret", name, ns, "Ready")
            if cond and cond["status"] == "True":
                break
            await asyncio.sleep(0.02)
        latencies.append(time.monotonic() - t)
        await asyncio.sleep(max(0.0, 50 / new_objects - latencies[-1]))
    op.stop()
    latencies.sort()
    result["new_ready_first_minute_p50_s"] = round(statistics.median(latencies), 3)
    result["new_ready_first_minute_p99_s"] = round(
        latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 3
    )
    result["new_ready_first_minute_max_s"] = round(latencies[-1], 3)
    print(
        f"[restart n={n}] {new_objects} new objects in the first minute after a restart: Ready p50 "
        f"{result['new_ready_first_minute_p50_s']}s, p99 {result['new_ready_first_minute_p99_s']}s",
        flush=True,
    )
    await delete_and_wait(cluster, ns)
    return result


async def bench_aws(env: LocalEnvironment, cluster: Cluster, workdir: Path, n: int) -> dict[str, Any]:
    """Backend calls per refresh cycle for N ManagedSecrets over N AWS secrets."""
    import boto3

    from rotor.devenv.aws import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY

    assert env.aws is not None
    sm = boto3.client(
        "secretsmanager",
        endpoint_url=env.aws.endpoint,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET_ACCESS_KEY,
    )
    ns = f"bench-aws-{secrets.token_hex(2)}"
    print(f"[aws n={n}] seeding {n} secrets", flush=True)
    for i in range(n):
        sm.create_secret(Name=f"{ns}/s{i}", SecretString=json.dumps({"password": secrets.token_urlsafe(12)}))
    await cluster.create_namespace(ns)
    await cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "aws"},
            "stringData": {"id": ACCESS_KEY_ID, "secret": SECRET_ACCESS_KEY},
        },
        ns,
    )
    await cluster.apply(
        {
            "apiVersion": "rotor.dev/v1alpha1",
            "kind": "SecretStore",
            "metadata": {"name": "aws"},
            "spec": {
                "provider": {
                    "aws": {
                        "service": "SecretsManager",
                        "region": REGION,
                        "endpoint": env.aws.endpoint,
                        "auth": {
                            "secretRef": {
                                "accessKeyId": {"name": "aws", "key": "id"},
                                "secretAccessKey": {"name": "aws", "key": "secret"},
                            }
                        },
                    }
                },
                "rateLimit": {"qps": 1000, "burst": 1000},
            },
        },
        ns,
    )
    await create_many(cluster, ns, [ms_doc(f"m{i}", "aws", f"{ns}/s{i}", "30s") for i in range(n)])
    op = Operator(str(env.kubeconfig), workdir, env.aws.client_env())
    op.start()
    await wait_all_ready(str(env.kubeconfig), ns, n)
    store = f"SecretStore/{ns}/aws"
    text = op.metrics()
    calls0 = metric(text, "rotor_provider_requests_total", store=store)
    unchanged0 = metric(text, "rotor_sync_total", result="unchanged")
    while metric(op.metrics(), "rotor_sync_total", result="unchanged") - unchanged0 < n:
        await asyncio.sleep(TICK)
    calls = metric(op.metrics(), "rotor_provider_requests_total", store=store) - calls0
    op.stop()
    await delete_and_wait(cluster, ns)
    return {
        "n": n,
        "calls_per_refresh_cycle": calls,
        "naive_calls": n,
        "reduction": round(n / calls, 1) if calls else float("inf"),
    }


async def main(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="rotor-bench-"))
    env = LocalEnvironment(workdir)
    env.start()
    apply_crds(env)
    cluster = await Cluster.connect(str(env.kubeconfig))
    results: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"{round(os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30)} GiB, "
        f"Python {platform.python_version()}",
        "store_rate_limit": args.rate_limit,
        "commit": git_commit(),
        # the machine is shared: the load average before and after says how quiet it was
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
        "vault": [],
        "aws": [],
        "restart": [],
    }
    try:
        for n in args.sizes:
            results["vault"].append(
                await bench_size(
                    env,
                    cluster,
                    workdir,
                    n,
                    args.runs,
                    idle_seconds=args.idle_seconds,
                    refresh_rate=args.refresh_rate,
                    qps=None if args.rate_limit == "default" else int(args.rate_limit),
                )
            )
        for n in args.aws_sizes:
            results["aws"].append(await bench_aws(env, cluster, workdir, n))
        for n in args.restart_sizes:
            results["restart"].append(
                await bench_restart(
                    env,
                    cluster,
                    workdir,
                    n,
                    interval=args.restart_interval,
                    qps=None if args.rate_limit == "default" else int(args.rate_limit),
                )
            )
    finally:
        for op in RUNNING:
            op.stop()
        await cluster.close()
        env.stop()
    results["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    print_table(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


def git_commit() -> str:
    """The commit measured (short hash), or ``unknown`` outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "-C", str(Path(__file__).resolve().parent), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


def print_table(results: dict[str, Any]) -> None:
    print(f"\nmachine: {results['machine']}, commit {results.get('commit')}")
    print(
        f"load average (1, 5, 15 min) before {results.get('load_average_before')}, "
        f"after {results.get('load_average_after')}\n"
    )
    cols = [
        ("n", "N"),
        ("cold_start_s", "cold start to all Ready (s, median)"),
        ("baseline_s", "baseline read+write (s)"),
        ("new_ready_p50_s", "new object Ready p50 (s)"),
        ("new_ready_p99_s", "p99 (s)"),
        ("refreshes_per_s_during_new", "refreshes/s meanwhile"),
        ("rss_mib", "RSS (MiB)"),
        ("idle_cpu_pct", "idle CPU (% core)"),
        ("secret_writes_per_unchanged_refresh", "Secret writes / unchanged refresh"),
        ("backend_reads_per_object_refresh", "backend reads / object refresh"),
        ("refresh_interval_s", "refresh interval (s)"),
        ("propagation_s", "upstream change -> Secret (s)"),
    ]
    print("| " + " | ".join(h for _, h in cols) + " |")
    print("|" + "---|" * len(cols))
    for row in results["vault"]:
        print("| " + " | ".join(str(row.get(k, "-")) for k, _ in cols) + " |")
    for row in results["vault"]:
        split = row.get("cold_cpu_ms_per_object") or {}
        if split:
            parts = ", ".join(f"{name} {ms} ms" for name, ms in split.items())
            print(f"\nN={row['n']}: CPU per object during the cold start: {parts}")
    if results.get("restart"):
        print(
            "\n| restart at N | over (s) | Secret writes | status writes | ManagedSecret writes | Events "
            "| backend reads | reads per tenth of the interval | operator CPU after start (s) "
            "| new object Ready p50 / p99, first minute (s) |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|")
        for row in results["restart"]:
            print(
                f"| {row['n']} | {round(row['refresh_interval_s'] * 1.1)} | {row['secret_writes']} "
                f"| {row['status_writes']} | {row['managedsecret_writes']} | {row['event_writes']} "
                f"| {row['backend_reads']} | {' '.join(map(str, row['backend_reads_per_tenth_of_interval']))} "
                f"| {row['operator_cpu_s']} | {row['new_ready_first_minute_p50_s']} / "
                f"{row['new_ready_first_minute_p99_s']} |"
            )
        for row in results["restart"]:
            print(f"\nrestart at N={row['n']}: apiserver requests {row['apiserver_requests']}")
    if results["aws"]:
        print(
            "\n| AWS ManagedSecrets | backend calls per refresh cycle | one GetSecretValue each | reduction |"
        )
        print("|---|---|---|---|")
        for row in results["aws"]:
            print(
                f"| {row['n']} | {row['calls_per_refresh_cycle']} | {row['naive_calls']} | {row['reduction']}x |"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="*", default=[100, 1000], help="none: skip cold starts")
    parser.add_argument("--aws-sizes", type=int, nargs="*", default=[1000], help="none: skip AWS")
    parser.add_argument("--runs", type=int, default=3, help="cold starts per size (the median is shown)")
    parser.add_argument("--idle-seconds", type=float, default=60, help="how long idle CPU is measured")
    parser.add_argument(
        "--refresh-rate",
        type=float,
        default=50,
        help="refreshes per second while new objects are timed (interval = max(20 s, N / rate))",
    )
    parser.add_argument(
        "--rate-limit",
        default="default",
        help="the Vault stores' rateLimit: 'default' (none set: what a user gets, 200 qps burst 400) or a "
        "number of qps (burst the same), e.g. 5000 for the tuned figures",
    )
    parser.add_argument(
        "--restart-sizes",
        type=int,
        nargs="*",
        default=[],
        help="restart mode: N objects synced, the operator restarted, its requests counted over one interval",
    )
    parser.add_argument(
        "--restart-interval", type=int, default=120, help="the refresh interval (s) in restart mode"
    )
    parser.add_argument("--json", default=None)
    asyncio.run(main(parser.parse_args()))

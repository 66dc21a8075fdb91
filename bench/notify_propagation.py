"""Propagation delay with change notifications on, beside polling (not a test; prints numbers).

Starts the same real environment as the tests (etcd + kube-apiserver, Vault dev server), N
ManagedSecrets each reading its own Vault path with a refresh interval of ``--interval`` (the
polling safety net keeps running), and an operator with the signed receiver on. Then, twice, 200
changes at ``--rate`` per second to distinct objects:

- notified: write the value to Vault, then POST a signed notification naming the key;
- polled: write the value to Vault only, and wait for the refresh.

The delay of each change is from the moment Vault acknowledged the write to the moment the
Secret's watch event with the new value arrives (Rotor's own informer, so no polling of the
apiserver by the bench).

    .venv/bin/python bench/notify_propagation.py                 # N = 1000, 200 changes each
    .venv/bin/python bench/notify_propagation.py --objects 200 --changes 50
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import platform
import random
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

import aiohttp  # noqa: E402

from rotor.api.names import MANAGED_BY_LABEL, NOTIFY_PATH, NOTIFY_SIGNATURE_HEADER  # noqa: E402
from rotor.devenv.environment import LocalEnvironment  # noqa: E402
from rotor.devenv.process import free_port  # noqa: E402
from rotor.kube.gateway import KubeGateway  # noqa: E402
from rotor.kube.informer import Informer  # noqa: E402
from rotor.notify.signature import sign  # noqa: E402
from run import (  # noqa: E402
    RUNNING,
    Operator,
    apply_crds,
    create_many,
    ms_doc,
    seed_vault,
    vault_namespace,
    wait_all_ready,
)
from support.cluster import Cluster  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


class Arrivals:
    """Watches the namespace's managed Secrets; records when each expected value arrives."""

    def __init__(self) -> None:
        self.expected: dict[str, bytes] = {}
        self.arrived: dict[str, float] = {}
        self.changed = asyncio.Event()

    def on_event(self, body: dict[str, Any], event_type: str | None) -> None:
        if event_type == "DELETED":
            return
        name = body["metadata"]["name"]
        want = self.expected.get(name)
        raw = (body.get("data") or {}).get("password")
        if want is not None and name not in self.arrived and raw and base64.b64decode(raw) == want:
            self.arrived[name] = time.monotonic()
            self.changed.set()


async def changes(
    env: LocalEnvironment,
    arrivals: Arrivals,
    names: list[str],
    prefix: str,
    ns: str,
    *,
    rate: float,
    notify: tuple[str, bytes] | None,
    timeout: float,
) -> list[float]:
    client = env.vault_client()
    written: dict[str, float] = {}
    async with aiohttp.ClientSession() as session:
        for name in names:
            i = int(name[1:])
            value = secrets.token_urlsafe(18)
            arrivals.expected[name] = value.encode()
            await asyncio.to_thread(
                client.secrets.kv.v2.create_or_update_secret,
                path=f"{prefix}/p{i}",
                secret={"password": value},
                mount_point="secret",
            )
            written[name] = time.monotonic()
            if notify is not None:
                url, key = notify
                body = json.dumps(
                    {"store": {"namespace": ns, "name": "vault"}, "keys": [f"{prefix}/p{i}"]}
                ).encode()
                async with session.post(
                    url, data=body, headers={NOTIFY_SIGNATURE_HEADER: sign(key, body)}
                ) as r:
                    if r.status != 202:
                        raise RuntimeError(f"notification answered {r.status}: {await r.text()}")
            await asyncio.sleep(1 / rate)
    deadline = time.monotonic() + timeout
    while any(n not in arrivals.arrived for n in names) and time.monotonic() < deadline:
        arrivals.changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(arrivals.changed.wait(), timeout=1)
    missing = [n for n in names if n not in arrivals.arrived]
    if missing:
        print(f"  {len(missing)} changes did not arrive within {timeout:.0f} s", flush=True)
    return [arrivals.arrived[n] - written[n] for n in names if n in arrivals.arrived]


async def main(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="rotor-bench-notify-"))
    env = LocalEnvironment(workdir, with_aws=False)
    env.start()
    apply_crds(env)
    cluster = await Cluster.connect(str(env.kubeconfig))
    n = args.objects
    ns = f"bench-notify-{secrets.token_hex(2)}"
    prefix = f"notify{n}-{secrets.token_hex(2)}"
    key = secrets.token_hex(32).encode()
    gateway: KubeGateway | None = None
    watcher: asyncio.Task[None] | None = None
    try:
        print(f"[n={n}] seeding {n} Vault paths", flush=True)
        seed_vault(env, prefix, n)
        await vault_namespace(cluster, env, ns, qps=5000)
        await cluster.apply(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "rotor-notify"},
                "data": {"hmac-key": base64.b64encode(key).decode()},
            },
            ns,
        )
        await create_many(
            cluster, ns, [ms_doc(f"m{i}", "vault", f"{prefix}/p{i}", args.interval) for i in range(n)]
        )
        port = free_port()
        op = Operator(
            str(env.kubeconfig),
            workdir,
            {},
            extra_args=["--notify-addr", f"127.0.0.1:{port}", "--notify-secret", f"{ns}/rotor-notify"],
        )
        op.start()
        await wait_all_ready(str(env.kubeconfig), ns, n)
        print(f"[n={n}] all Ready; refresh interval {args.interval}", flush=True)
        arrivals = Arrivals()
        gateway = await KubeGateway.connect(str(env.kubeconfig))
        informer = Informer(
            gateway, "Secret", arrivals.on_event, namespaces=[ns], label_selector=MANAGED_BY_LABEL
        )
        watcher = asyncio.create_task(informer.run())
        await informer.synced.wait()
        picked = random.Random(7).sample([f"m{i}" for i in range(n)], 2 * args.changes)
        notified_names, polled_names = picked[: args.changes], picked[args.changes :]
        url = f"http://127.0.0.1:{port}{NOTIFY_PATH}"
        interval_s = float(args.interval.rstrip("s"))
        print(f"[n={n}] {args.changes} notified changes at {args.rate}/s", flush=True)
        notified = await changes(
            env,
            arrivals,
            notified_names,
            prefix,
            ns,
            rate=args.rate,
            notify=(url, key),
            timeout=interval_s * 2,
        )
        print(f"[n={n}] {args.changes} polled changes at {args.rate}/s", flush=True)
        polled = await changes(
            env, arrivals, polled_names, prefix, ns, rate=args.rate, notify=None, timeout=interval_s * 2
        )
    finally:
        if watcher is not None:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
        if gateway is not None:
            await gateway.close()
        for running in RUNNING:
            running.stop()
        await cluster.close()
        env.stop()

    machine = (
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"{n} ManagedSecrets, refresh interval {args.interval}, changes at {args.rate}/s"
    )
    print(f"\nmachine: {machine}\n")
    print("| upstream change -> Secret | changes | p50 (s) | p90 (s) | p99 (s) | max (s) |")
    print("|---|---|---|---|---|---|")
    for label, values in (("signed notification", notified), (f"polling (interval {args.interval})", polled)):
        if values:
            print(
                f"| {label} | {len(values)} | {statistics.median(values):.3f} | "
                f"{percentile(values, 0.9):.3f} | {percentile(values, 0.99):.3f} | {max(values):.3f} |"
            )
            print(f"  slowest 5 {label}: {', '.join(f'{v:.2f}' for v in sorted(values)[-5:])}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--objects", type=int, default=1000)
    parser.add_argument("--changes", type=int, default=200, help="changes per mode (notified, polled)")
    parser.add_argument("--interval", default="20s", help="the refresh interval (the polling safety net)")
    parser.add_argument("--rate", type=float, default=4.0, help="changes per second")
    asyncio.run(main(parser.parse_args()))

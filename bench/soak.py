"""Soak run (not a test, not in CI): many ManagedSecrets with short refresh intervals and
repeated rotations, for a bounded time, against the real local environment. It prints the
operator's memory and CPU over time, the errors it counted, and checks at the end that every
Secret equals what its source holds.

    .venv/bin/python bench/soak.py --objects 1000 --minutes 10
    .venv/bin/python bench/soak.py --objects 200 --minutes 3      # a quick look
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import run as bench
from rotor.devenv.environment import LocalEnvironment


async def soak(objects: int, minutes: float, rotate_every: float) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="rotor-soak-"))
    env = LocalEnvironment(workdir)
    env.start()
    bench.apply_crds(env)
    cluster = await bench.Cluster.connect(str(env.kubeconfig))
    op: bench.Operator | None = None
    try:
        assert env.vault is not None and env.aws is not None
        ns = "soak"
        bench.seed_vault(env, "soak", objects)
        await bench.vault_namespace(cluster, env, ns, qps=2000)
        await cluster.apply(
            {
                "apiVersion": "rotor.dev/v1alpha1",
                "kind": "RotationPolicy",
                "metadata": {"name": "pw"},
                "spec": {
                    "preset": "database-password",
                    "gracePeriod": "30s",
                    "generator": {"password": {"length": 24, "symbols": 0}},
                },
            },
            ns,
        )
        docs = []
        for i in range(objects):
            doc = bench.ms_doc(f"m{i}", "vault", f"soak/p{i}", "30s")
            if i % 10 == 0:  # one in ten rotates
                doc["spec"]["rotation"] = {"policyRef": {"name": "pw"}, "keys": ["password"]}
            docs.append(doc)
        await bench.create_many(cluster, ns, docs)
        op = bench.Operator(str(env.kubeconfig), workdir, env.aws.client_env())
        op.start()
        await bench.wait_all_ready(str(env.kubeconfig), ns, objects)
        print(
            f"{objects} ManagedSecrets Ready; soaking for {minutes} min "
            f"(refresh 30s, a rotation of {objects // 10} objects every {rotate_every:.0f}s)",
            flush=True,
        )
        print(
            f"{'t (s)':>6} {'RSS MiB':>8} {'CPU %':>6} {'syncs':>7} {'errors':>7} {'rotations':>9}",
            flush=True,
        )
        started = time.monotonic()
        cpu0, t0 = op.cpu_seconds(), started
        next_rotation = started
        round_ = 0
        rss: list[float] = []
        while time.monotonic() - started < minutes * 60:
            now = time.monotonic()
            if now >= next_rotation:
                round_ += 1
                for i in range(0, objects, 10):
                    await cluster.patch(
                        "ManagedSecret",
                        f"m{i}",
                        {"metadata": {"annotations": {"rotor.dev/rotate": f"soak-{round_}"}}},
                        ns,
                    )
                next_rotation = now + rotate_every
            await asyncio.sleep(10)
            text = op.metrics()
            cpu, t = op.cpu_seconds(), time.monotonic()
            rss.append(op.rss_mib())
            print(
                f"{t - started:6.0f} {rss[-1]:8.1f} {100 * (cpu - cpu0) / (t - t0):6.1f} "
                f"{bench.metric(text, 'rotor_sync_total'):7.0f} "
                f"{bench.metric(text, 'rotor_sync_total', result='error'):7.0f} "
                f"{bench.metric(text, 'rotor_rotation_total', result='success'):9.0f}",
                flush=True,
            )
            cpu0, t0 = cpu, t
        # let the last round finish, then check every Secret against its source
        await asyncio.sleep(45)
        client = env.vault_client()
        mismatched = 0
        for i in range(objects):
            source = client.secrets.kv.v2.read_secret_version(
                path=f"soak/p{i}", mount_point="secret", raise_on_deleted_version=True
            )
            data = await cluster.secret_data(ns, f"m{i}")
            if data is None or data.get("password") != source["data"]["data"]["password"].encode():
                mismatched += 1
        # each rotated path must hold exactly one new version per request (1 seeded + one per round)
        doubled = 0
        for i in range(0, objects, 10):
            meta = client.secrets.kv.v2.read_secret_metadata(path=f"soak/p{i}", mount_point="secret")
            if int(meta["data"]["current_version"]) != 1 + round_:
                doubled += 1
        print(f"rotated paths with a version count other than 1 + {round_} requests: {doubled}")
        third = max(1, len(rss) // 3)
        growth = (sum(rss[-third:]) / third) - (sum(rss[:third]) / third)
        print(f"\nfinal consistency: {objects - mismatched}/{objects} Secrets equal their source")
        print(
            f"memory: first third {sum(rss[:third]) / third:.1f} MiB, last third "
            f"{sum(rss[-third:]) / third:.1f} MiB (growth {growth:+.1f} MiB)"
        )
        return 0 if mismatched == 0 and doubled == 0 else 1
    finally:
        if op is not None:
            op.stop()
        await cluster.close()
        env.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--objects", type=int, default=1000)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--rotate-every", type=float, default=60)
    args = parser.parse_args()
    sys.exit(asyncio.run(soak(args.objects, args.minutes, args.rotate_every)))

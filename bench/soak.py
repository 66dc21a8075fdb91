"""Soak run (not a test, not in CI): many ManagedSecrets with short refresh intervals and
repeated rotations, for a bounded time, against the real local environment. It prints the
operator's memory and CPU over time, the errors it counted, and checks at the end that every
Secret equals what its source holds.

    .venv/bin/python bench/soak.py --objects 1000 --minutes 10
    .venv/bin/python bench/soak.py --objects 200 --minutes 3      # a quick look

With ``--writers``, the conflicting writers of tests/integration/test_conflicting_writers.py at a
low rate: a second operator without leader election serves the same objects throughout, and
every ``--touch-every`` seconds one rotating object's Secret is touched (Rotor's label removed and
put back 10 s later, a value edited, the Secret deleted, or re-typed), while pairs of
creationPolicy Merge ManagedSecrets rotate into shared Secrets. It prints the invariant violations
(tests/support/invariants.py: every Secret version the watch saw, and the settled state) and the
RSS of both operators.

    .venv/bin/python bench/soak.py --writers --objects 500 --minutes 10
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import secrets
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from kubernetes_asyncio.client.exceptions import ApiException

import run as bench
from rotor.devenv.environment import LocalEnvironment
from support.invariants import (
    SecretHistory,
    final_violations,
    history_violations,
    kv2_chain,
    restore_label,
    timeline,
    touch_secret,
)

TOUCHES = ("label", "edit", "delete", "retype")


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


async def soak_writers(objects: int, minutes: float, rotate_every: float, touch_every: float) -> int:
    """The conflicting writers at a low rate; returns 1 when any invariant was violated."""
    workdir = Path(tempfile.mkdtemp(prefix="rotor-soak-writers-"))
    env = LocalEnvironment(workdir)
    env.start()
    bench.apply_crds(env)
    cluster = await bench.Cluster.connect(str(env.kubeconfig))
    ops: list[bench.Operator] = []
    rng = random.Random(int(time.time()))
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
                "spec": {"preset": "database-password", "gracePeriod": "1h"},
            },
            ns,
        )
        vault = env.vault_client()
        # keep every version (Vault KV keeps 10 by default): the final check reads the whole chain
        vault.secrets.kv.v2.configure(max_versions=1000, mount_point="secret")
        rotated = [f"m{i}" for i in range(0, objects, 10)]
        pairs = max(1, objects // 100)
        docs = []
        for i in range(objects):
            doc = bench.ms_doc(f"m{i}", "vault", f"soak/p{i}", "30s")
            if f"m{i}" in rotated:
                doc["spec"]["rotation"] = {"policyRef": {"name": "pw"}, "keys": ["password"]}
            docs.append(doc)
        merge_writers: dict[str, tuple[str, str]] = {}  # writer -> (shared Secret, its key)
        for j in range(pairs):
            await cluster.apply(
                {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "metadata": {"name": f"shared-{j}"},
                    "data": {"other": "a2VlcA=="},
                },
                ns,
            )
            for side in ("a", "b"):
                writer, key = f"merge-{side}{j}", f"{side}-password"
                vault.secrets.kv.v2.create_or_update_secret(
                    path=f"soak/{writer}",
                    secret={"password": secrets.token_urlsafe(18)},
                    mount_point="secret",
                )
                doc = bench.ms_doc(writer, "vault", f"soak/{writer}", "30s")
                doc["spec"]["data"][0]["secretKey"] = key
                doc["spec"]["target"] = {"name": f"shared-{j}", "creationPolicy": "Merge"}
                doc["spec"]["rotation"] = {"policyRef": {"name": "pw"}, "keys": [key]}
                docs.append(doc)
                merge_writers[writer] = (f"shared-{j}", key)
        await bench.create_many(cluster, ns, docs)
        ops = [bench.Operator(str(env.kubeconfig), workdir, env.aws.client_env()) for _ in range(2)]
        for op in ops:
            op.start()  # both --no-leader-elect: two active operators on the same objects
        await bench.wait_all_ready(str(env.kubeconfig), ns, len(docs))
        targets = rotated + list(merge_writers)
        print(
            f"{len(docs)} ManagedSecrets Ready ({len(rotated)} rotating, {2 * pairs} Merge writers in "
            f"{pairs} Secrets), 2 operators; {minutes} min: a rotation of the {len(targets)} every "
            f"{rotate_every:.0f}s, a Secret touched every {touch_every:.0f}s",
            flush=True,
        )
        print(
            f"{'t (s)':>6} {'RSS A MiB':>9} {'RSS B MiB':>9} {'rotations':>9} {'claims lost':>11} {'touched':>7}",
            flush=True,
        )
        history = SecretHistory(cluster.api, ns, None)
        requests = dict.fromkeys(targets, 0)
        last_request: dict[str, str] = {}
        ours: list[str] = []
        touched: dict[str, int] = dict.fromkeys(TOUCHES, 0)
        relabel: list[tuple[float, str]] = []
        rss: list[tuple[float, float]] = []
        async with history.recording():
            started = time.monotonic()
            next_rotation = next_touch = started
            round_ = 0
            next_print = started + 10
            while time.monotonic() - started < minutes * 60:
                now = time.monotonic()
                if now >= next_rotation:
                    round_ += 1
                    for name in targets:
                        value = f"soak-{round_}"
                        await cluster.patch(
                            "ManagedSecret",
                            name,
                            {"metadata": {"annotations": {"rotor.dev/rotate": value}}},
                            ns,
                        )
                        requests[name] += 1
                        last_request[name] = value
                    next_rotation = now + rotate_every
                if now >= next_touch:
                    kind, name = rng.choice(TOUCHES), rng.choice(rotated)
                    try:
                        ours += await touch_secret(cluster.api, ns, name, kind)
                        touched[kind] += 1
                        if kind == "label":
                            relabel.append((now + 10, name))
                    except ApiException:
                        pass  # the Secret is being re-created: another one next time
                    next_touch = now + touch_every
                for due, name in [r for r in relabel if r[0] <= now]:
                    relabel.remove((due, name))
                    with contextlib.suppress(ApiException):  # deleted meanwhile: Rotor re-creates it
                        ours += await restore_label(cluster.api, ns, name)
                if now >= next_print:
                    texts = [op.metrics() for op in ops]
                    rss.append((ops[0].rss_mib(), ops[1].rss_mib()))
                    print(
                        f"{now - started:6.0f} {rss[-1][0]:9.1f} {rss[-1][1]:9.1f} "
                        f"{sum(bench.metric(t, 'rotor_rotation_total', result='success') for t in texts):9.0f} "
                        f"{sum(bench.metric(t, 'rotor_rotation_claims_lost_total') for t in texts):11.0f} "
                        f"{sum(touched.values()):7d}",
                        flush=True,
                    )
                    next_print = now + 10
                await asyncio.sleep(0.5)
            for _, name in relabel:
                with contextlib.suppress(ApiException):
                    ours += await restore_label(cluster.api, ns, name)

            # let the last round finish
            async def answered() -> bool:
                for name in targets:
                    obj = await cluster.get("ManagedSecret", name, ns)
                    rot = ((obj or {}).get("status") or {}).get("rotation") or {}
                    if rot.get("lastRotateRequest") != last_request[name] or rot.get("phase") != "Completed":
                        return False
                return True

            deadline = time.monotonic() + 180
            while not await answered() and time.monotonic() < deadline:
                await asyncio.sleep(2)
            await asyncio.sleep(40)  # past a refresh interval: every Secret re-read its source
        violations: list[str] = []
        contexts: dict[str, list[str]] = {}  # the observed versions of a Secret with a violation
        for i in range(objects):
            name = f"m{i}"
            data = await cluster.secret_data(ns, name)
            chain = kv2_chain(vault, f"soak/p{i}", 1)
            n = requests.get(name, 0)
            violations += [
                f"{name}: {v}"
                for v in final_violations(
                    data, expected={"password": chain[-1]}, rotated="password", chain=chain, requests=n
                )
            ]
            if n:
                found = history_violations(
                    history.of(name), managed=["password"], rotated="password", chain=chain, ignore=ours
                )
                violations += [f"{name}: {v}" for v in found]
                if found:
                    contexts[name] = timeline(history.of(name), rotated="password", chain=chain)
        for writer, (secret, key) in merge_writers.items():
            chain = kv2_chain(vault, f"soak/{writer}", 1)
            data = await cluster.secret_data(ns, secret)
            violations += [
                f"{writer}: {v}"
                for v in final_violations(
                    data,
                    expected={key: chain[-1], "other": b"keep"},
                    rotated=key,
                    chain=chain,
                    requests=requests[writer],
                )
            ]
            found = history_violations(
                history.of(secret), managed=["a-password", "b-password", "other"], rotated=key, chain=chain
            )
            violations += [f"{writer}: {v}" for v in found]
            if found:
                contexts[writer] = timeline(history.of(secret), rotated=key, chain=chain)
        texts = [op.metrics() for op in ops]
        print(f"\ntouched: {touched}; rotation requests per object: {round_}")
        print(
            "claims lost (both operators): "
            f"{sum(bench.metric(t, 'rotor_rotation_claims_lost_total') for t in texts):.0f}; "
            f"Secret versions watched: {sum(len(v) for v in history.seen.values())}"
        )
        print(f"invariant violations: {len(violations)}")
        for line in violations[:20]:
            print(f"  {line}")
        for name, lines in list(contexts.items())[:3]:
            print(f"versions of the Secret of {name} (resourceVersion, event, type, source positions):")
            for line in lines:
                print(f"    {line}")
        third = max(1, len(rss) // 3)
        for which in (0, 1):
            first = sum(r[which] for r in rss[:third]) / third
            last = sum(r[which] for r in rss[-third:]) / third
            print(
                f"memory of operator {'AB'[which]}: first third {first:.1f} MiB, last third {last:.1f} MiB "
                f"(growth {last - first:+.1f} MiB)"
            )
        return 0 if not violations else 1
    finally:
        for op in ops:
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
    parser.add_argument("--writers", action="store_true", help="the conflicting writers at a low rate")
    parser.add_argument(
        "--touch-every", type=float, default=15, help="with --writers: seconds between touches"
    )
    args = parser.parse_args()
    if args.writers:
        sys.exit(asyncio.run(soak_writers(args.objects, args.minutes, args.rotate_every, args.touch_every)))
    sys.exit(asyncio.run(soak(args.objects, args.minutes, args.rotate_every)))

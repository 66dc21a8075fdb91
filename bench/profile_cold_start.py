"""Profile the operator through a cold start of N ManagedSecrets (pyinstrument, text report).

.venv/bin/python bench/profile_cold_start.py 1000
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import run as bench
from rotor.devenv import binaries
from rotor.devenv.environment import LocalEnvironment


async def main(n: int) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="rotor-profile-"))
    env = LocalEnvironment(workdir)
    env.start()
    kubectl = str(binaries.ensure("kubectl"))
    crds = str(bench.ROOT / "crds")
    subprocess.run(
        [kubectl, "--kubeconfig", str(env.kubeconfig), "apply", "--server-side", "-k", crds],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            kubectl,
            "--kubeconfig",
            str(env.kubeconfig),
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
    cluster = await bench.Cluster.connect(str(env.kubeconfig))
    try:
        bench.seed_vault(env, "prof", n)
        ns = "profile"
        await cluster.create_namespace(ns)
        assert env.vault is not None
        await cluster.apply(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "vault-token"},
                "stringData": {"token": bench.ROOT_TOKEN},
            },
            ns,
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
                    "rateLimit": {"qps": 5000, "burst": 5000},
                },
            },
            ns,
        )
        await bench.create_many(
            cluster, ns, [bench.ms_doc(f"m{i}", "vault", f"prof/p{i}", "1h") for i in range(n)]
        )
        report = workdir / "profile.txt"
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pyinstrument",
                "-o",
                str(report),
                "-m",
                "rotor.cli.main",
                "run",
                "--standalone",
                "--log-level",
                "warning",
                "--metrics-addr",
                f"127.0.0.1:{bench.free_port()}",
            ],
            env=dict(os.environ, KUBECONFIG=str(env.kubeconfig), ROTOR_HASH_KEY="p"),
        )
        started = time.monotonic()
        while (await bench.ready_count(cluster, ns))[0] < n:
            await asyncio.sleep(0.25)
        print(f"cold start of {n}: {time.monotonic() - started:.1f}s", flush=True)
        proc.send_signal(2)
        proc.wait(60)
        print(report.read_text()[:12000])
    finally:
        await cluster.close()
        env.stop()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000))

"""Every manifest in examples/ works as documented: applied against the real servers (with the
values `rotor demo` seeds), every ManagedSecret becomes Ready with the data the example promises."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from rotor.devenv.examples import EXAMPLES, apply, managed_secrets
from rotor.devenv.seed import DEMO_NAMESPACES, seed_aws, seed_vault
from support.cluster import Cluster, wait_for

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_every_example_becomes_ready(cluster: Cluster, env, leaks) -> None:
    for ns in DEMO_NAMESPACES:
        with contextlib.suppress(Exception):
            await cluster.create_namespace(ns)
    vault_values = seed_vault(env.vault_client())
    aws_values = seed_aws(env.aws_endpoint)
    for data in vault_values.values():
        leaks.add(*[v for v in data.values() if isinstance(v, str) and v not in ("app", "orders")])
    for value in aws_values.values():
        leaks.add(value)
        if value.startswith("{"):
            leaks.add(*json.loads(value).values())
    apply(str(env.kubectl), str(env.kubeconfig), vault_addr=env.vault_addr, aws_endpoint=env.aws_endpoint)
    wanted = managed_secrets(EXAMPLES)
    assert len(wanted) >= 14
    for ns, name in wanted:
        await cluster.ready(name, ns, timeout=60)

    app_db = await cluster.secret_data("demo", "app-db")
    assert app_db is not None
    password = vault_values["apps/db"]["password"]
    from urllib.parse import quote

    assert (
        app_db["DATABASE_URL"].decode() == f"postgresql://app:{quote(password, safe='')}@db.demo.svc:5432/app"
    )
    registry = await cluster.secret("demo", "registry-credentials")
    assert registry is not None and registry["type"] == "kubernetes.io/dockerconfigjson"
    assert set(registry["data"]) == {".dockerconfigjson"}, "mergePolicy Replace keeps only the rendered key"
    auths = json.loads(base64.b64decode(registry["data"][".dockerconfigjson"]))["auths"]
    creds = vault_values["apps/registry"]
    assert auths["registry.example.com"]["password"] == creds["password"]
    assert base64.b64decode(auths["registry.example.com"]["auth"]).decode() == (
        f"{creds['username']}:{creds['password']}"
    )
    tls = await cluster.secret("demo", "web-tls")
    assert tls is not None and tls["type"] == "kubernetes.io/tls"
    web = await cluster.get("ManagedSecret", "web-tls", "demo")
    assert web is not None and web["status"]["expiry"]["source"] == "Certificate"
    for ns in ("team-a", "team-b"):
        data = await cluster.secret_data(ns, "team-config")
        assert data == {"api-token": vault_values[f"tenants/{ns}/config"]["api-token"].encode()}
    # cluster-managed-secret.yaml: one generated ManagedSecret per namespace (not in the count above)
    for ns in ("team-a", "team-b"):
        await cluster.ready("team-settings", ns, timeout=60)
        data = await cluster.secret_data(ns, "team-settings")
        assert data == {"api-token": vault_values[f"tenants/{ns}/config"]["api-token"].encode()}
    await cluster.wait_condition("ClusterManagedSecret", "team-settings", None, timeout=60)
    payments = await cluster.secret_data("demo", "payments")
    assert payments is not None and set(payments) == {"api-key", "signing-secret"}
    flags = await cluster.secret_data("demo", "feature-flags")
    assert flags is not None and flags["new-checkout"] == b"true"
    api = await cluster.secret_data("demo", "api-keys")
    assert api is not None and set(api) == {"stripe-key", "webhook-secret"}
    # tls-checks-list.yaml: both checks of validations passed
    strict = await cluster.secret_data("demo", "web-tls-strict")
    pair = vault_values["apps/web-tls-pair"]
    assert strict == {"tls.crt": pair["tls.crt"].encode(), "tls.key": pair["tls.key"].encode()}
    # vault-template-configmap.yaml: the ConfigMap's template, with Replace only the rendered keys
    props = await cluster.secret_data("demo", "app-properties")
    assert props is not None and set(props) == {"application.properties", "DB_HOST"}
    assert f"spring.datasource.password={password}\n" in props["application.properties"].decode()
    # vault-key-rewrite.yaml: the same values under rewritten keys
    api_env = await cluster.secret_data("demo", "api-env")
    assert api_env == {"API_stripe_key": api["stripe-key"], "API_webhook_secret": api["webhook-secret"]}

    # vault-create-if-missing.yaml: the key that was not seeded was created in Vault, once, and synced
    created = env.vault_client().secrets.kv.v2.read_secret_version(
        path="apps/session-signing", mount_point="secret", raise_on_deleted_version=True
    )["data"]
    leaks.add(created["data"]["signing-key"])
    assert created["metadata"]["version"] == 1
    signing = await cluster.secret_data("demo", "session-signing")
    assert signing == {"signing-key": created["data"]["signing-key"].encode()}
    assert len(base64.b64decode(signing["signing-key"])) == 32

    # push-secret.yaml: the Secret's two keys are pushed as properties of apps/partner
    leaks.add("pk_demo_9f2c61d0a4e84b7e", "whsec_demo_3b8e5f27c1d94a60")
    await cluster.wait_condition("PushSecret", "partner-push", "demo", reason="Pushed", timeout=60)
    partner = env.vault_client().secrets.kv.v2.read_secret_version(
        path="apps/partner", mount_point="secret", raise_on_deleted_version=True
    )["data"]["data"]
    assert partner == {"api-key": "pk_demo_9f2c61d0a4e84b7e", "webhook-secret": "whsec_demo_3b8e5f27c1d94a60"}

    # aws-change-events.yaml: a change announced on the queue reaches payments-live (refresh 1h)
    sm, sqs = env.boto("secretsmanager"), env.boto("sqs")
    changed = json.dumps({"api-key": "pk_" + secrets.token_hex(16), "signing-secret": secrets.token_hex(24)})
    leaks.add(changed, *json.loads(changed).values())
    sm.put_secret_value(SecretId="demo/payments", SecretString=changed)
    queue = sqs.get_queue_url(QueueName="rotor-demo-secret-changes")["QueueUrl"]
    event = {
        "source": "aws.secretsmanager",
        "detail-type": "AWS API Call via CloudTrail",
        "detail": {"eventName": "PutSecretValue", "requestParameters": {"secretId": "demo/payments"}},
    }
    sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(event))

    async def live() -> bool:
        data = await cluster.secret_data("demo", "payments-live")
        return data is not None and data["api-key"] == json.loads(changed)["api-key"].encode()

    await wait_for(live, timeout=60, what="payments-live updated by the change event")


async def test_demo_check_says_what_a_person_needs(tmp_path: Path) -> None:
    """`rotor demo --check --keep-logs`, run as a person runs it (its own servers): it says how to
    reach its cluster, applies stores before their users (no StoreNotFound or InvalidConfig in the
    operator's log), shows what the rotation did, and says where it kept the logs."""
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "rotor.cli.main", "demo", "--check", "--keep-logs", "--timeout", "240"],
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )
    lines = result.stdout.splitlines()
    assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-3000:])
    kubectl = next(line for line in lines if line.startswith("rotor demo: kubectl: ")).split(": ", 2)[2]
    assert Path(kubectl).is_file()
    reach = next(line for line in lines if " get ms -A" in line).strip().removeprefix("rotor demo:").strip()
    assert reach.startswith("KUBECONFIG=") and reach.endswith(f"{kubectl} get ms -A"), reach
    kubeconfig = Path(reach.split()[0].removeprefix("KUBECONFIG="))

    start = lines.index("rotor demo: rotated demo/orders-db:")
    rotation = [line.removeprefix("rotor demo: ") for line in lines[start : start + 5]]
    assert rotation[1] == "  source apps/orders-db: version 1 -> 2", rotation
    assert rotation[2] == "  Secret demo/orders-db keys: password, password_previous, username", rotation
    assert rotation[3].startswith("  password_previous: the old value, kept until "), rotation
    assert rotation[4] == "  restarted: Deployment/orders (rollout: Auto, they read the Secret)", rotation
    count = len(managed_secrets(EXAMPLES))  # every example's ManagedSecrets (13 today)
    assert count >= 10
    assert f"rotor demo: check passed: {count} ManagedSecrets Ready and a rotation completed" in lines

    assert "rotor demo: stopping… (the operator, the AWS emulator, Vault and the control plane)" in lines
    kept = next(line for line in lines if line.startswith("rotor demo: logs kept in "))
    workdir = Path(kept.removeprefix("rotor demo: logs kept in ").split(" ", 1)[0])
    try:
        assert kubeconfig.is_file() and kubeconfig.is_relative_to(workdir)
        log = (workdir / "operator.log").read_text()
        assert "rotation of demo/orders-db completed" in log
        for noise in ("StoreNotFound", "InvalidConfig"):
            assert noise not in log, f"{noise} in the operator log: the examples were applied out of order"
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


async def test_demo_says_stopping_on_ctrl_c_and_stops_everything(tmp_path: Path) -> None:
    """`rotor demo` until Ctrl-C: it says "stopping…", exits 0, and the servers it started are gone."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "rotor.cli.main",
        "demo",
        "--keep-logs",
        env={**os.environ, "TMPDIR": str(tmp_path)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    seen: list[str] = []

    async def until_watching() -> None:
        assert proc.stdout is not None
        while not seen or not seen[-1].startswith("rotor demo: watching; press Ctrl-C"):
            line = (await proc.stdout.readline()).decode()
            assert line, f"the demo ended early: {seen[-20:]}"
            seen.append(line.rstrip("\n"))

    try:
        await asyncio.wait_for(until_watching(), timeout=600)
    except BaseException:
        proc.kill()
        raise
    proc.send_signal(signal.SIGINT)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    lines = seen + out.decode().splitlines()
    assert proc.returncode == 0, (lines[-20:], err.decode()[-2000:])
    after = lines[lines.index(seen[-1]) :]
    assert "rotor demo: stopping… (the operator, the AWS emulator, Vault and the control plane)" in after
    kept = next(line for line in after if line.startswith("rotor demo: logs kept in "))
    workdir = Path(kept.removeprefix("rotor demo: logs kept in ").split(" ", 1)[0])
    try:
        server = re.search(r"environment ready in [0-9.]+s: (https://127\.0\.0\.1:(\d+))", err.decode())
        assert server is not None, err.decode()[-2000:]
        with pytest.raises(OSError):  # the apiserver it started is gone
            socket.create_connection(("127.0.0.1", int(server.group(2))), timeout=2).close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

"""The chart's RBAC is the least that works (DESIGN §7): the operator runs under exactly the
identity of the chart's ServiceAccount and syncs and rotates; what the chart does not grant,
the apiserver refuses.

For each RBAC mode the chart is rendered with ``helm template`` (the rotor.dev CRDs are already
installed by the harness, so ``--skip-crds`` and ``crds.install=false``), and its ServiceAccount,
RBAC objects are applied. A token for that ServiceAccount (TokenRequest, through
``kubectl create token``) goes into a kubeconfig with the harness's apiserver and CA, and a real
``rotor run`` uses it, with the arguments the chart's Deployment gives it (--leader-elect --lease-name,
--namespace) and the POD_NAME and POD_NAMESPACE the Deployment sets: it elects itself leader
on the shard's Lease in the release namespace.

Cluster mode is run with watchNamespaces set to the test's namespace: a cluster-wide operator
would also serve every other test's namespace beside the session operator. The grants a
cluster-wide watch needs beyond that are checked with ``kubectl auth can-i``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import secrets
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import yaml

from rotor.api.names import NOTIFY_PATH, NOTIFY_SIGNATURE_HEADER
from rotor.devenv import binaries
from rotor.devenv.process import free_port
from rotor.notify.signature import sign
from support.cluster import Cluster, wait_for
from support.environment import ROOT, TestEnvironment
from support.leaks import LeakRegistry
from support.operator import OperatorProcess

pytestmark = pytest.mark.asyncio(loop_scope="session")

CHART = ROOT / "charts" / "rotor"
API = "rotor.dev/v1alpha1"
# What a chart install creates besides the operator's own workload (Deployment, Service, PDB).
RBAC_KINDS = {
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
}
HASH_KEY_SECRET = "rotor-hash-key"
NOTIFY_SECRET = "rotor-notify"


# ``rotor run`` as the chart's Deployment runs it: with leader election instead of --no-leader-elect
ChartOperator = OperatorProcess


# ---------------------------------------------------------------------------------------------- helpers
def kubectl(
    env: TestEnvironment, *args: str, kubeconfig: Path | None = None, input_: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(env.kubectl), "--kubeconfig", str(kubeconfig or env.kubeconfig), *args],
        input=input_,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def render_chart(release: str, namespace: str, values: dict[str, Any]) -> list[dict[str, Any]]:
    helm = binaries.ensure("helm")
    result = subprocess.run(
        [
            str(helm),
            "template",
            release,
            str(CHART),
            "--namespace",
            namespace,
            "--kube-version",
            "1.34.0",
            "--skip-crds",
            "--set",
            "crds.install=false",
            "--values",
            "-",
        ],
        input=json.dumps(values),
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def sa_kubeconfig(env: TestEnvironment, token: str, path: Path) -> Path:
    """A kubeconfig for ``token`` against the harness's apiserver, trusting the harness's CA."""
    admin = yaml.safe_load(env.kubeconfig.read_text())
    context = next(c["context"] for c in admin["contexts"] if c["name"] == admin["current-context"])
    cluster = dict(next(c["cluster"] for c in admin["clusters"] if c["name"] == context["cluster"]))
    ca = cluster.get("certificate-authority")
    if ca and not Path(ca).is_absolute():
        cluster["certificate-authority"] = str((env.kubeconfig.parent / ca).resolve())
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "rotor-sa",
        "clusters": [{"name": "apiserver", "cluster": cluster}],
        "users": [{"name": "rotor-sa", "user": {"token": token}}],
        "contexts": [{"name": "rotor-sa", "context": {"cluster": "apiserver", "user": "rotor-sa"}}],
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


async def sync_and_rotate(cluster: Cluster, env: TestEnvironment, ns: str, leaks: LeakRegistry) -> None:
    """A ManagedSecret from an AWS store becomes Ready, and a manual rotation completes."""
    sm = env.boto("secretsmanager")
    old = secrets.token_urlsafe(24)
    leaks.add(old)
    key = f"{ns}/api"
    sm.create_secret(Name=key, SecretString=json.dumps({"key": old, "endpoint": "https://api.example"}))
    for doc in env.aws_store(ns):
        await cluster.apply(doc, ns)
    await cluster.apply(
        {
            "apiVersion": API,
            "kind": "RotationPolicy",
            "metadata": {"name": "api-key"},
            "spec": {"preset": "api-key", "strategy": "Generate"},
        },
        ns,
    )
    await cluster.apply(
        {
            "apiVersion": API,
            "kind": "ManagedSecret",
            "metadata": {"name": "api"},
            "spec": {
                "storeRef": {"name": "aws"},
                "dataFrom": [{"extract": {"key": key}}],
                "rotation": {"policyRef": {"name": "api-key"}, "keys": ["key"]},
            },
        },
        ns,
    )
    await cluster.wait_condition("SecretStore", "aws", ns, timeout=60)
    await cluster.ready("api", ns, timeout=60)
    assert (await cluster.secret_data(ns, "api") or {}).get("key") == old.encode()

    await cluster.patch(
        "ManagedSecret", "api", {"metadata": {"annotations": {"rotor.dev/rotate": "rbac-1"}}}, ns
    )

    async def completed() -> dict[str, Any] | None:
        obj = await cluster.get("ManagedSecret", "api", ns)
        rotation = ((obj or {}).get("status") or {}).get("rotation") or {}
        return (
            obj
            if rotation.get("phase") == "Completed" and rotation.get("lastRotateRequest") == "rbac-1"
            else None
        )

    obj = await wait_for(completed, timeout=60, what="the manual rotation to complete")
    data = await cluster.secret_data(ns, "api") or {}
    new = data.get("key", b"").decode()
    leaks.add(new)
    assert new and new != old and len(new) == 40
    assert data.get("key_previous") == old.encode()
    current = json.loads(sm.get_secret_value(SecretId=key, VersionStage="AWSCURRENT")["SecretString"])
    assert current["key"] == new
    rotating = next(c for c in obj["status"]["conditions"] if c["type"] == "Rotating")
    assert (rotating["status"], rotating["reason"]) == ("False", "Succeeded")
    ready = next(c for c in obj["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True"
    # Events are posted under the ServiceAccount's identity too
    assert "Rotated" in await cluster.event_reasons(ns, "api")


async def notified_refresh(
    cluster: Cluster, env: TestEnvironment, ns: str, leaks: LeakRegistry, url: str, key: bytes
) -> None:
    """The receiver reads its key from the notify Secret under the chart's RBAC: a signed
    notification brings a change long before the 1 h refresh."""
    sm = env.boto("secretsmanager")
    name = f"{ns}/plain"
    old, new = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    leaks.add(old, new)
    sm.create_secret(Name=name, SecretString=json.dumps({"v": old}))
    await cluster.apply(
        {
            "apiVersion": API,
            "kind": "ManagedSecret",
            "metadata": {"name": "plain"},
            "spec": {
                "storeRef": {"name": "aws"},
                "refresh": {"interval": "1h"},
                "data": [{"secretKey": "v", "remoteRef": {"key": name, "property": "v"}}],
            },
        },
        ns,
    )
    await cluster.ready("plain", ns, timeout=60)
    sm.put_secret_value(SecretId=name, SecretString=json.dumps({"v": new}))
    body = json.dumps({"store": {"namespace": ns, "name": "aws"}, "keys": [name]}).encode()
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=body, headers={NOTIFY_SIGNATURE_HEADER: sign(key, body)}) as resp,
    ):
        assert resp.status == 202, await resp.text()

    async def refreshed() -> bool:
        return (await cluster.secret_data(ns, "plain") or {}).get("v") == new.encode()

    await wait_for(refreshed, timeout=30, what="the notified change")


def refused(result: subprocess.CompletedProcess[str]) -> bool:
    return result.returncode != 0 and "forbidden" in (result.stderr + result.stdout).lower()


def can_i(env: TestEnvironment, kubeconfig: Path, *args: str) -> str:
    return kubectl(env, "auth", "can-i", *args, kubeconfig=kubeconfig).stdout.strip()


def permission_errors(log: str) -> list[str]:
    """Warnings and errors where the apiserver refused the operator something."""
    found = []
    for line in log.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            entry = {"level": "error", "msg": line}  # a traceback or other raw output
        if not isinstance(entry, dict) or entry.get("level") not in ("warning", "error", "critical"):
            continue
        text = f"{entry.get('msg', '')} {entry.get('error', '')}"
        if re.search(r"\b403\b|forbidden|cannot keep the data-hash key", text, re.IGNORECASE):
            found.append(line)
    return found


# ---------------------------------------------------------------------------------------------- fixture
@pytest_asyncio.fixture(loop_scope="session", params=["cluster", "namespaced"])
async def chart_install(
    request: pytest.FixtureRequest, cluster: Cluster, env: TestEnvironment, leaks: LeakRegistry
) -> AsyncIterator[dict[str, Any]]:
    """The chart's RBAC for one mode, a token of its ServiceAccount, and the operator under it."""
    mode = request.param
    suffix = secrets.token_hex(3)
    served = f"iso-rbac-{mode[0]}-{suffix}"
    release_ns = f"iso-rbac-{mode[0]}-sys-{suffix}"
    release = f"rbac-{mode[0]}-{suffix}"
    await cluster.create_namespace(served)
    await cluster.create_namespace(release_ns)
    values = {
        "rbac": {"mode": mode},
        "watchNamespaces": [served],
        "notifications": {"enabled": True, "existingSecret": NOTIFY_SECRET},
    }
    docs = render_chart(release, release_ns, values)
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "ServiceAccount", "Role"} <= kinds
    assert not kinds & {"KopfPeering", "ClusterKopfPeering"}
    installed = [d for d in docs if d["kind"] in RBAC_KINDS]
    manifest = yaml.safe_dump_all(installed)
    result = kubectl(env, "apply", "-f", "-", input_=manifest)
    assert result.returncode == 0, result.stderr
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    sa = deployment["spec"]["template"]["spec"]["serviceAccountName"]
    assert "--leader-elect" in container["args"] and f"--namespace={served}" in container["args"]
    (lease,) = [a.split("=", 1)[1] for a in container["args"] if a.startswith("--lease-name=")]
    # the receiver as the chart configures it (its key Secret in the release namespace), on a
    # local port instead of the container's
    notify_port = free_port()
    notify_args = [
        f"--notify-addr=127.0.0.1:{notify_port}" if a.startswith("--notify-addr=") else a
        for a in container["args"]
        if a.startswith("--notify-")
    ]
    assert f"--notify-secret={release_ns}/{NOTIFY_SECRET}" in notify_args
    notify_key = secrets.token_hex(32).encode()
    leaks.add(notify_key)
    await cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": NOTIFY_SECRET},
            "data": {"hmac-key": base64.b64encode(notify_key).decode()},
        },
        release_ns,
    )

    token = kubectl(env, "create", "token", sa, "-n", release_ns, "--duration=2h")
    assert token.returncode == 0, token.stderr
    workdir = env.workdir / "chart-rbac" / release
    workdir.mkdir(parents=True, exist_ok=True)
    kubeconfig = sa_kubeconfig(env, token.stdout.strip(), workdir / "kubeconfig")
    assert kubectl(env, "auth", "whoami", "-o", "json", kubeconfig=kubeconfig).returncode == 0

    op = ChartOperator(
        str(kubeconfig),
        env.workdir / "logs",
        name=f"op-chart-rbac-{mode}-{suffix}",
        lease=lease,  # in POD_NAMESPACE, as in the chart's Deployment
        identity=f"{release}-pod",
        namespaces=[served],
        # no ROTOR_HASH_KEY: the key Secret in the release namespace is part of what RBAC must allow
        hash_key="",
        env={**env.aws_env(), "POD_NAMESPACE": release_ns},
        extra_args=notify_args,
    )
    await asyncio.to_thread(op.start)
    try:
        yield {
            "mode": mode,
            "served": served,
            "release_ns": release_ns,
            "sa": sa,
            "kubeconfig": kubeconfig,
            "operator": op,
            "lease": lease,
            "notify_url": f"http://127.0.0.1:{notify_port}{NOTIFY_PATH}",
            "notify_key": notify_key,
        }
    finally:
        await asyncio.to_thread(op.stop)
        kubectl(env, "delete", "--ignore-not-found", "--wait=false", "-f", "-", input_=manifest)
        await cluster.delete_namespace(served)
        await cluster.delete_namespace(release_ns)


# ---------------------------------------------------------------------------------------------- the test
async def test_operator_syncs_and_rotates_under_exactly_the_charts_rbac(
    chart_install: dict[str, Any], cluster: Cluster, env: TestEnvironment, leaks: LeakRegistry
) -> None:
    mode, served, release_ns = chart_install["mode"], chart_install["served"], chart_install["release_ns"]
    kubeconfig: Path = chart_install["kubeconfig"]
    op: ChartOperator = chart_install["operator"]
    who = f"system:serviceaccount:{release_ns}:{chart_install['sa']}"

    await sync_and_rotate(cluster, env, served, leaks)
    await notified_refresh(
        cluster, env, served, leaks, chart_install["notify_url"], chart_install["notify_key"]
    )

    # it led through the shard's Lease in the release namespace
    lease = kubectl(env, "get", "lease", chart_install["lease"], "-n", release_ns, "-o", "json")
    assert lease.returncode == 0, lease.stderr
    assert json.loads(lease.stdout)["spec"]["holderIdentity"] == op.identity

    # the data-hash key was kept where the chart's Deployment points the operator (POD_NAMESPACE),
    # so every replica and every restart hashes alike
    hash_key = await cluster.secret(release_ns, HASH_KEY_SECRET)
    assert hash_key is not None and (hash_key.get("data") or {}).get("key")

    # nothing the operator tried was refused
    log = op.log_text()
    leaks.capture(f"chart-rbac {mode} operator log", log)
    assert not permission_errors(log), "\n".join(permission_errors(log)[:10])

    # ---- what the chart does not grant, the apiserver refuses
    assert can_i(env, kubeconfig, "delete", "nodes") == "no"
    assert can_i(env, kubeconfig, "create", "pods", "-n", served) == "no"
    assert can_i(env, kubeconfig, "create", "clusterrolebindings") == "no"
    assert can_i(env, kubeconfig, "escalate", "clusterroles") == "no"
    assert can_i(env, kubeconfig, "impersonate", "serviceaccounts") == "no"
    # ManagedSecrets it may create and delete (the copies of ClusterManagedSecrets); the stores
    # and policies people write, never
    assert can_i(env, kubeconfig, "delete", "managedsecrets.rotor.dev", "-n", served) == "yes"
    assert can_i(env, kubeconfig, "delete", "secretstores.rotor.dev", "-n", served) == "no"
    assert can_i(env, kubeconfig, "delete", "rotationpolicies.rotor.dev", "-n", served) == "no"
    assert can_i(env, kubeconfig, "delete", "clustersecretstores.rotor.dev") == "no"
    binding = kubectl(
        env,
        "create",
        "clusterrolebinding",
        f"rbac-escape-{secrets.token_hex(3)}",
        "--clusterrole=cluster-admin",
        f"--serviceaccount={release_ns}:{chart_install['sa']}",
        kubeconfig=kubeconfig,
    )
    assert refused(binding), binding
    assert who in binding.stderr

    if mode == "namespaced":
        # no Secrets outside the served namespace, beyond its own data-hash key
        kube_system = kubectl(env, "get", "secrets", "-n", "kube-system", kubeconfig=kubeconfig)
        assert refused(kube_system), kube_system
        everywhere = kubectl(env, "get", "secrets", "--all-namespaces", kubeconfig=kubeconfig)
        assert refused(everywhere), everywhere
        assert can_i(env, kubeconfig, "list", "secrets", "-n", "default") == "no"
        assert can_i(env, kubeconfig, "get", "secrets", "-n", release_ns) == "no"
        assert can_i(env, kubeconfig, "get", f"secrets/{HASH_KEY_SECRET}", "-n", release_ns) == "yes"
        assert can_i(env, kubeconfig, "get", f"secrets/{NOTIFY_SECRET}", "-n", release_ns) == "yes"
        assert can_i(env, kubeconfig, "list", "secrets", "-n", release_ns) == "no"
        assert can_i(env, kubeconfig, "list", "deployments.apps", "-n", "default") == "no"
        assert can_i(env, kubeconfig, "list", "managedsecrets.rotor.dev", "--all-namespaces") == "no"
    else:
        # what a cluster-wide operator (watchNamespaces empty) needs beyond this run's namespace
        for verb, resource in [
            ("watch", "secrets"),
            ("list", "managedsecrets.rotor.dev"),
            ("watch", "secretstores.rotor.dev"),
            ("list", "rotationpolicies.rotor.dev"),
            ("patch", "deployments.apps"),
        ]:
            assert can_i(env, kubeconfig, verb, resource, "--all-namespaces") == "yes", (verb, resource)
    # the shard's Lease, in the release namespace only
    lease_ref = f"leases.coordination.k8s.io/{chart_install['lease']}"
    assert can_i(env, kubeconfig, "update", lease_ref, "-n", release_ns) == "yes"
    assert can_i(env, kubeconfig, "update", "leases.coordination.k8s.io/other", "-n", release_ns) == "no"
    assert can_i(env, kubeconfig, "update", lease_ref, "-n", served) == "no"
    assert can_i(env, kubeconfig, "create", "leases.coordination.k8s.io", "-n", served) == "no"
    # both modes read the cluster-scoped kinds and namespaces (store conditions), but never write them
    assert can_i(env, kubeconfig, "watch", "clustersecretstores.rotor.dev") == "yes"
    assert can_i(env, kubeconfig, "list", "namespaces") == "yes"
    assert can_i(env, kubeconfig, "delete", "namespaces") == "no"
    assert can_i(env, kubeconfig, "create", "clustersecretstores.rotor.dev") == "no"

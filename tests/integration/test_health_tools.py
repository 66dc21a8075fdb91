"""What the GitOps tools say about Rotor's objects, asked of the tools themselves (issue 14.2).

kstatus (``sigs.k8s.io/cli-utils/pkg/kstatus/status``, what Flux and kpt use) runs as
``kstatus-check``, and docs/gitops.md's Argo CD health script runs in gopher-lua as Argo CD runs
it (``argo-health``); both are built from Go modules by ``hack/build-binaries.sh health-tools``
(hack/tools). Every (state, kind) of docs/gitops.md's health table is produced on the live API
server, both tools are run over the live object, and their verdicts must be the table's.

Without the tools these tests fail (CI builds them), like the chart tests without helm.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import pathlib
import re
import secrets
import subprocess
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from rotor.devenv import binaries
from support.cluster import Cluster
from support.environment import TestEnvironment
from support.leaks import LeakRegistry
from support.objects import (
    apply_all,
    apply_token_store,
    data_item,
    iso_namespace_fixture,
    ms_manifest,
    self_signed,
    token_secret,
    vault_store,
)
from support.rotation import kv2_write, managed_secret, policy

pytestmark = pytest.mark.asyncio(loop_scope="session")

ROOT = pathlib.Path(__file__).resolve().parents[2]
GITOPS = ROOT / "docs" / "gitops.md"
KINDS = ("ManagedSecret", "SecretStore", "ClusterSecretStore", "RotationPolicy", "ClusterRotationPolicy")
INVALID_POLICY = {
    "schedule": {"every": "1h"},
    "window": {"cron": "0 0 30 2 *", "duration": "1h"},  # 30 February: the window never opens
    "generator": {"fernetKey": {}},
}

iso_namespace = iso_namespace_fixture("health")


# ---------------------------------------------------------------------------------------------- the docs
def health_table() -> dict[str, dict[str, Any]]:
    """docs/gitops.md's table: {state: {"kinds": [...], "kstatus": ..., "argo": ...}}."""
    text = GITOPS.read_text()
    m = re.search(r"<!-- health-table -->\n(.*?)<!-- /health-table -->", text, re.S)
    assert m, "docs/gitops.md has no <!-- health-table --> block"
    rows = [line for line in m.group(1).splitlines() if line.startswith("|")]
    header = [c.strip() for c in rows[0].strip("|").split("|")]
    assert header == ["State", "Kinds", "Ready", "Reconciling", "Stalled", "kstatus", "Argo CD"], header
    out: dict[str, dict[str, Any]] = {}
    for line in rows[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        state, kinds, ready, reconciling, stalled, kstatus, argo = cells
        out[state] = {
            "kinds": [k.strip() for k in kinds.split(",")],
            "conditions": {"Ready": ready, "Reconciling": reconciling, "Stalled": stalled},
            "kstatus": kstatus,
            "argo": argo,
        }
    return out


def argo_script() -> str:
    text = GITOPS.read_text()
    m = re.search(
        r"resource\.customizations\.health\.rotor\.dev_ManagedSecret: \|\n((?:    .*\n|\n)+?)```", text
    )
    assert m, "docs/gitops.md has no Argo CD health script"
    return "\n".join(line[4:] for line in m.group(1).splitlines()) + "\n"


def tool(name: str) -> pathlib.Path:
    path = binaries.locate(name)
    if path is None:
        pytest.fail(
            f"no {name} binary: run `hack/build-binaries.sh health-tools` (CI builds it)", pytrace=False
        )
    return path


def verdict(argv: list[str], obj: dict[str, Any]) -> dict[str, str]:
    proc = subprocess.run(
        argv, input=json.dumps(obj), capture_output=True, text=True, timeout=30, check=False
    )
    assert proc.returncode == 0, f"{argv[0]} failed: {proc.stderr}"
    return dict(json.loads(proc.stdout))


# ---------------------------------------------------------------------------------------------- states
Waiter = Callable[[], Awaitable[None]]


class States:
    """Creates, for each (state, kind) of the table, one live object in that state."""

    def __init__(
        self, cluster: Cluster, env: TestEnvironment, ns: str, iso: str, leaks: LeakRegistry
    ) -> None:
        self.cluster, self.env, self.ns, self.iso, self.leaks = cluster, env, ns, iso, leaks
        self.cluster_objects: list[tuple[str, str]] = []
        self.suffix = secrets.token_hex(3)

    def cname(self, base: str) -> str:
        return f"{base}-{self.suffix}"

    async def cluster_store(self, base: str, server: str, token: str | None = None) -> str:
        name = self.cname(base)
        secret = f"{base}-token"
        await self.cluster.apply(token_secret(secret, **({"token": token} if token else {})), self.ns)
        auth = {"token": {"secretRef": {"name": secret, "key": "token", "namespace": self.ns}}}
        await self.cluster.apply(vault_store(name, server, auth, cluster_scoped=True))
        self.cluster_objects.append(("ClusterSecretStore", name))
        return name

    async def cluster_policy(self, base: str, spec: dict[str, Any]) -> str:
        """A ClusterRotationPolicy with a ManagedSecret bound to it (so that Rotor reports on it)."""
        name = self.cname(base)
        await self.cluster.apply(policy(name, spec, cluster=True))
        self.cluster_objects.append(("ClusterRotationPolicy", name))
        kv2_write(self.env, f"{self.ns}/{base}", {"password": "initial-not-secret"})
        await self.cluster.apply(
            managed_secret(
                f"uses-{base}", key=f"{self.ns}/{base}", policy_name=name, policy_kind="ClusterRotationPolicy"
            ),
            self.ns,
        )
        return name

    async def create(self, state: str, kind: str) -> tuple[str, str | None, Waiter | None]:
        """(name, namespace, wait until the object is in the state)."""
        c, ns = self.cluster, self.ns

        def cond(
            kind_: str, name: str, namespace: str | None, type_: str, status: str, reason: str | None = None
        ) -> Waiter:
            async def wait() -> None:
                await c.wait_condition(
                    kind_, name, namespace, type_, status=status, reason=reason, timeout=90
                )

            return wait

        if state == "not yet seen by Rotor (no status)":
            iso = self.iso
            docs = {
                "ManagedSecret": ms_manifest("unseen", data=[data_item("a", "x", "y")]),
                "SecretStore": self.env.vault_token_store(iso, "unseen")[1],
                "RotationPolicy": policy("unseen", {"preset": "database-password"}),
            }
            await c.apply(docs[kind], iso)
            return "unseen", iso, None
        if state == "synced / valid":
            if kind == "ManagedSecret":
                kv2_write(self.env, f"{ns}/good", {"password": "not-a-secret-value"})
                await c.apply(ms_manifest("good", data=[data_item("password", f"{ns}/good", "password")]), ns)
                return "good", ns, cond(kind, "good", ns, "Ready", "True", "Synced")
            if kind == "SecretStore":
                return "vault", ns, cond(kind, "vault", ns, "Ready", "True", "Valid")
            if kind == "ClusterSecretStore":
                name = await self.cluster_store("css-good", self.env.vault_addr)
                return name, None, cond(kind, name, None, "Ready", "True", "Valid")
            if kind == "RotationPolicy":
                await c.apply(policy("valid", {"preset": "database-password"}), ns)
                return "valid", ns, cond(kind, "valid", ns, "Ready", "True", "Valid")
            name = await self.cluster_policy("crp-valid", {"preset": "database-password"})
            return name, None, cond(kind, name, None, "Ready", "True", "Valid")
        if state == "synced, certificate past its renewal time (`Expiring=True`)":
            now = dt.datetime.now(dt.UTC).replace(microsecond=0)
            pem = self_signed(
                ec.generate_private_key(ec.SECP256R1()),
                "soon.example",
                now - dt.timedelta(hours=3),
                now + dt.timedelta(hours=1),
            )
            kv2_write(self.env, f"{ns}/soon", {"crt": pem.decode()})
            await c.apply(ms_manifest("soon", data=[data_item("tls.crt", f"{ns}/soon", "crt")]), ns)
            return "soon", ns, cond(kind, "soon", ns, "Expiring", "True", "ExpiresSoon")
        if state == "`StoreNotFound`":
            await c.apply(
                ms_manifest("orphan", store="no-such-store", data=[data_item("a", f"{ns}/x", "y")]), ns
            )
            return "orphan", ns, cond(kind, "orphan", ns, "Ready", "False", "StoreNotFound")
        if state == "`KeyNotFound`, first 10 minutes":
            await c.apply(ms_manifest("missing", data=[data_item("a", f"{ns}/does-not-exist", "y")]), ns)
            return "missing", ns, cond(kind, "missing", ns, "Ready", "False", "KeyNotFound")
        if state == "`Unreachable`":
            if kind == "SecretStore":
                docs = self.env.vault_token_store(ns, "down")
                docs[1]["spec"]["provider"]["vault"]["server"] = "http://127.0.0.1:9"
                await apply_all(c, docs, ns)
                return "down", ns, cond(kind, "down", ns, "Ready", "False", "Unreachable")
            name = await self.cluster_store("css-down", "http://127.0.0.1:9")
            return name, None, cond(kind, name, None, "Ready", "False", "Unreachable")
        if state == "`StoreNotReady`":
            docs = self.env.vault_token_store(ns, "down2")
            docs[1]["spec"]["provider"]["vault"]["server"] = "http://127.0.0.1:9"
            await apply_all(c, docs, ns)
            await c.apply(ms_manifest("waiting", store="down2", data=[data_item("a", f"{ns}/x", "y")]), ns)
            return "waiting", ns, cond(kind, "waiting", ns, "Ready", "False", "StoreNotReady")
        if state == "`AuthFailed`":
            bad = "hvs.not-a-valid-token-" + secrets.token_hex(4)
            if kind == "SecretStore":
                await apply_all(c, self.env.vault_token_store(ns, "badauth", token=bad), ns)
                return "badauth", ns, cond(kind, "badauth", ns, "Ready", "False", "AuthFailed")
            name = await self.cluster_store("css-badauth", self.env.vault_addr, token=bad)
            return name, None, cond(kind, name, None, "Ready", "False", "AuthFailed")
        if state == "`SecretConflict`":
            await c.core.create_namespaced_secret(
                ns, {"metadata": {"name": "theirs"}, "stringData": {"a": "someone else's"}}
            )
            kv2_write(self.env, f"{ns}/conflict", {"password": "not-a-secret-value"})
            await c.apply(
                ms_manifest("theirs", data=[data_item("password", f"{ns}/conflict", "password")]), ns
            )
            return "theirs", ns, cond(kind, "theirs", ns, "Ready", "False", "SecretConflict")
        if state == "`Expired`":
            now = dt.datetime.now(dt.UTC).replace(microsecond=0)
            pem = self_signed(
                ec.generate_private_key(ec.SECP256R1()),
                "old.example",
                now - dt.timedelta(days=2),
                now - dt.timedelta(hours=1),
            )
            kv2_write(self.env, f"{ns}/old", {"crt": pem.decode()})
            await c.apply(ms_manifest("old", data=[data_item("tls.crt", f"{ns}/old", "crt")]), ns)
            return "old", ns, cond(kind, "old", ns, "Ready", "False", "Expired")
        if state == "`InvalidSpec`":
            if kind == "RotationPolicy":
                await c.apply(policy("never", INVALID_POLICY), ns)
                return "never", ns, cond(kind, "never", ns, "Ready", "False", "InvalidSpec")
            name = await self.cluster_policy("crp-never", INVALID_POLICY)
            return name, None, cond(kind, name, None, "Ready", "False", "InvalidSpec")
        raise AssertionError(f"the test does not know how to produce the state {state!r} of docs/gitops.md")

    async def cleanup(self) -> None:
        for kind, name in self.cluster_objects:
            await self.cluster.delete(kind, name)


# ---------------------------------------------------------------------------------------------- the tests
async def test_kstatus_and_the_argo_script_say_what_the_docs_table_says(
    cluster: Cluster,
    env: TestEnvironment,
    namespace: str,
    iso_namespace: str,
    leaks: LeakRegistry,
    tmp_path: pathlib.Path,
) -> None:
    kstatus, argo = tool("kstatus-check"), tool("argo-health")
    script = tmp_path / "health.lua"
    script.write_text(argo_script())
    table = health_table()
    # the table covers every kind and the three verdicts of each tool
    assert {k for row in table.values() for k in row["kinds"]} == set(KINDS)
    assert {row["kstatus"] for row in table.values()} >= {"Current", "InProgress", "Failed"}
    assert {row["argo"] for row in table.values()} >= {"Healthy", "Progressing", "Degraded"}

    await apply_token_store(cluster, env, namespace)
    states = States(cluster, env, namespace, iso_namespace, leaks)
    try:
        cases = []
        for state, row in table.items():
            for kind in row["kinds"]:
                assert kind in KINDS, f"docs/gitops.md: unknown kind {kind!r} in {state!r}"
                name, ns, wait = await states.create(state, kind)
                cases.append((state, kind, name, ns, wait))
        await asyncio.gather(*(wait() for *_, wait in cases if wait is not None))

        mismatches = []
        for state, kind, name, ns, _ in cases:
            obj = await cluster.get(kind, name, ns)
            assert obj is not None, (kind, name)
            row = table[state]
            conds = {c["type"]: c["status"] for c in (obj.get("status") or {}).get("conditions") or []}
            for type_, expected in row["conditions"].items():
                if conds.get(type_, "") != expected:
                    mismatches.append(
                        f"{state} / {kind}: {type_} is {conds.get(type_)!r}, the table says {expected!r}"
                    )
            ks = verdict([str(kstatus)], obj)
            lua = verdict([str(argo), str(script)], obj)
            if ks["status"] != row["kstatus"]:
                mismatches.append(f"{state} / {kind}: kstatus says {ks}, the table says {row['kstatus']}")
            if lua["status"] != row["argo"]:
                mismatches.append(
                    f"{state} / {kind}: the Argo CD script says {lua}, the table says {row['argo']}"
                )
        assert not mismatches, "docs/gitops.md's health table is wrong:\n" + "\n".join(mismatches)
    finally:
        await states.cleanup()

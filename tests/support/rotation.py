"""What the rotation tests share: manifests, an operator of their own on an ``iso-*`` namespace
(the session operator ignores those) with a clock they can move, and readers of the source."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from support.cluster import Cluster, wait_for
from support.environment import TestEnvironment
from support.operator import OperatorProcess

API = "rotor.dev/v1alpha1"


# ---------------------------------------------------------------------------------------------- manifests
def policy(name: str, spec: dict[str, Any], *, cluster: bool = False) -> dict[str, Any]:
    kind = "ClusterRotationPolicy" if cluster else "RotationPolicy"
    return {"apiVersion": API, "kind": kind, "metadata": {"name": name}, "spec": spec}


def managed_secret(
    name: str,
    *,
    store: str = "vault",
    key: str | None = None,
    keys: list[str] | None = None,
    policy_name: str | None = "policy",
    policy_kind: str = "RotationPolicy",
    **spec: Any,
) -> dict[str, Any]:
    """A ManagedSecret extracting every property of ``key`` and rotating ``keys`` under the policy."""
    body: dict[str, Any] = {"storeRef": {"name": store}, **spec}
    if key is not None:
        body.setdefault("dataFrom", [{"extract": {"key": key}}])
    if policy_name is not None:
        body["rotation"] = {
            "policyRef": {"name": policy_name, "kind": policy_kind},
            "keys": keys or ["password"],
        }
    return {"apiVersion": API, "kind": "ManagedSecret", "metadata": {"name": name}, "spec": body}


# ---------------------------------------------------------------------------------------------- the clock
class MovableClock:
    """The offset file of an operator's clock (``ROTOR_CLOCK_OFFSET_FILE``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0.0
        self.set(0)

    def set(self, seconds: float) -> None:
        self.offset = float(seconds)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(str(self.offset))
        os.replace(tmp, self.path)

    def advance(self, delta: dt.timedelta) -> None:
        self.set(self.offset + delta.total_seconds())

    def move_to(self, when: dt.datetime) -> None:
        """Make the operator's now be ``when`` (and then run on from there)."""
        self.set(when.timestamp() - time.time())

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=self.offset)


# ---------------------------------------------------------------------------------------------- own operator
@contextlib.asynccontextmanager
async def iso_namespace(cluster: Cluster, prefix: str) -> AsyncIterator[str]:
    name = f"iso-{prefix}-{secrets.token_hex(3)}"
    await cluster.create_namespace(name)
    try:
        yield name
    finally:
        if os.environ.get("ROTOR_KEEP_NAMESPACES") != "1":
            await cluster.delete_namespace(name)


def own_operator(
    env: TestEnvironment,
    namespace: str,
    clock: MovableClock | None = None,
    extra_env: dict[str, str] | None = None,
    name: str | None = None,
    extra_args: list[str] | None = None,
) -> OperatorProcess:
    """An operator (not started) serving ``namespace`` only, as ``op-{namespace}`` unless named."""
    return OperatorProcess(
        str(env.kubeconfig),
        env.workdir / "logs",
        name=name or f"op-{namespace}",
        namespaces=[namespace],
        clock_file=clock.path if clock else None,
        extra_args=extra_args,
        env={**env.aws_env(), **(extra_env or {})},
    )


@contextlib.asynccontextmanager
async def running(op: OperatorProcess) -> AsyncIterator[OperatorProcess]:
    await asyncio.to_thread(op.start)
    try:
        yield op
    finally:
        await asyncio.to_thread(op.stop)


async def wait_exit(op: OperatorProcess, timeout: float = 60) -> int:
    async def exited() -> int | None:
        assert op.proc is not None
        code = op.proc.poll()
        return None if code is None else (code if code != 0 else 256)

    return await wait_for(exited, timeout=timeout, what=f"operator {op.name} to exit")


# ---------------------------------------------------------------------------------------------- status
async def rotation_status(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    obj = await cluster.get("ManagedSecret", name, namespace)
    return dict(((obj or {}).get("status") or {}).get("rotation") or {})


async def wait_rotated(
    cluster: Cluster,
    namespace: str,
    name: str,
    *,
    request: str | None = None,
    since: str | None = None,
    timeout: float = 60,
) -> dict[str, Any]:
    """Wait for a Completed rotation: the one answering ``request``, or one newer than ``since``
    (a lastRotationTime)."""

    async def probe() -> dict[str, Any] | None:
        obj = await cluster.get("ManagedSecret", name, namespace)
        rot = ((obj or {}).get("status") or {}).get("rotation") or {}
        if rot.get("phase") != "Completed":
            return None
        if request is not None and rot.get("lastRotateRequest") != request:
            return None
        if since is not None and rot.get("lastRotationTime") == since:
            return None
        return obj

    return await wait_for(probe, timeout=timeout, what=f"a completed rotation of {namespace}/{name}")


async def force_sync(cluster: Cluster, namespace: str, name: str, timeout: float = 30) -> dict[str, Any]:
    """Ask for a sync and wait until it has been answered (a deterministic 'nothing else happened')."""
    value = f"sync-{secrets.token_hex(4)}"
    await cluster.patch(
        "ManagedSecret", name, {"metadata": {"annotations": {"rotor.dev/force-sync": value}}}, namespace
    )

    async def answered() -> dict[str, Any] | None:
        obj = await cluster.get("ManagedSecret", name, namespace)
        return obj if ((obj or {}).get("status") or {}).get("lastForceSync") == value else None

    return await wait_for(answered, timeout=timeout, what=f"force-sync {value} of {namespace}/{name}")


async def request_rotation(cluster: Cluster, namespace: str, name: str) -> str:
    value = f"rotate-{secrets.token_hex(4)}"
    await cluster.patch(
        "ManagedSecret", name, {"metadata": {"annotations": {"rotor.dev/rotate": value}}}, namespace
    )
    return value


async def wait_answered(
    cluster: Cluster, namespace: str, name: str, request: str, timeout: float = 30
) -> dict[str, Any]:
    """Wait until status.rotation answers the rotate request ``request``, however it ended."""

    async def answered() -> dict[str, Any] | None:
        obj = await cluster.get("ManagedSecret", name, namespace)
        rot = ((obj or {}).get("status") or {}).get("rotation") or {}
        return obj if rot.get("lastRotateRequest") == request else None

    return await wait_for(answered, timeout=timeout, what="the rotate request to be answered")


def condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any]:
    for cond in ((obj or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_:
            return dict(cond)
    return {}


# ---------------------------------------------------------------------------------------------- the source
def kv2_current(env: TestEnvironment, path: str, mount: str = "secret") -> tuple[int, dict[str, Any]]:
    """(current version, data) of a Vault KV v2 path."""
    resp = env.vault_client().secrets.kv.v2.read_secret_version(
        path=path, mount_point=mount, raise_on_deleted_version=True
    )
    return int(resp["data"]["metadata"]["version"]), dict(resp["data"]["data"])


def kv2_write(env: TestEnvironment, path: str, data: dict[str, Any], mount: str = "secret") -> int:
    resp = env.vault_client().secrets.kv.v2.create_or_update_secret(path=path, secret=data, mount_point=mount)
    return int(resp["data"]["version"])


async def vault_source(
    cluster: Cluster, env: TestEnvironment, ns: str, leaks: Any, spec: dict[str, Any] | None, **store: Any
) -> tuple[str, int, str]:
    """A token store "vault" (``store``: its options), the RotationPolicy "policy" with ``spec``
    (none if None) and an old password (and user "app") at ``{ns}/app``; returns (path, version,
    old)."""
    old = secrets.token_urlsafe(20)
    leaks.add(old)
    path = f"{ns}/app"
    version = kv2_write(env, path, {"password": old, "user": "app"})
    for doc in env.vault_token_store(ns, **store):
        await cluster.apply(doc, ns)
    if spec is not None:
        await cluster.apply(policy("policy", spec), ns)
    return path, version, old


def aws_stages(env: TestEnvironment, key: str) -> dict[str, list[str]]:
    return {
        v: list(s)
        for v, s in env.boto("secretsmanager")
        .describe_secret(SecretId=key)
        .get("VersionIdsToStages", {})
        .items()
    }


def aws_current(env: TestEnvironment, key: str) -> tuple[str, str]:
    """(VersionId, SecretString) of AWSCURRENT."""
    resp = env.boto("secretsmanager").get_secret_value(SecretId=key, VersionStage="AWSCURRENT")
    return str(resp["VersionId"]), str(resp["SecretString"])


# ---------------------------------------------------------------------------------------------- the CLI
class CliResult:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err

    @property
    def lines(self) -> list[str]:
        return [line for line in (self.out + self.err).splitlines() if line]


async def run_rotor(env: TestEnvironment, leaks: Any, *args: str) -> CliResult:
    """``rotor ARGS`` as a user runs it; its output joins the leak scan and must hold no value."""
    import sys

    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "rotor.cli.main",
        *args,
        env={**os.environ, "KUBECONFIG": str(env.kubeconfig)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=240)
    result = CliResult(int(proc.returncode or 0), out.decode(), err.decode())
    leaks.capture(f"rotor {' '.join(args)}", result.out + result.err)
    assert not leaks.find(result.out + result.err), f"rotor {args[0]} printed a secret value"
    return result

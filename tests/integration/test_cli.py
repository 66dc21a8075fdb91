"""The command line for people, run as a user runs it (a subprocess with KUBECONFIG) against the
session's apiserver, operator, Vault and AWS emulator: report, status, sync, rotate and import."""

from __future__ import annotations

import asyncio
import base64
import csv
import io
import json
import os
import secrets
import signal
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import yaml

from support.cluster import Cluster, wait_for

pytestmark = pytest.mark.asyncio(loop_scope="session")


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        return [line for line in (self.out + self.err).splitlines() if line]


async def rotor(env: Any, leaks: Any, *args: str, cwd: Path | None = None) -> Result:
    """``python -m rotor.cli.main ARGS`` with the session's kubeconfig; the output joins the leak scan."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "rotor.cli.main",
        *args,
        env={**os.environ, "KUBECONFIG": str(env.kubeconfig)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=cwd,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=240)
    result = Result(int(proc.returncode or 0), out.decode(), err.decode())
    leaks.capture(f"rotor {' '.join(args)}", result.out + result.err)
    assert not leaks.find(result.out + result.err), f"rotor {args[0]} printed a secret value"
    return result


def _ms(name: str, store: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "rotor.dev/v1alpha1",
        "kind": "ManagedSecret",
        "metadata": {"name": name},
        "spec": {"storeRef": {"name": store}, **spec},
    }


async def _good_and_failing(cluster: Cluster, env: Any, namespace: str, leaks: Any) -> tuple[str, str]:
    """An AWS store, a ready ManagedSecret ``good`` and a failing one ``bad``; returns (key, password)."""
    password = secrets.token_urlsafe(24)
    leaks.add(password)
    key = f"{namespace}/db"
    env.boto("secretsmanager").create_secret(
        Name=key, SecretString=json.dumps({"user": "app", "password": password})
    )
    for doc in env.aws_store(namespace):
        await cluster.apply(doc, namespace)
    await cluster.apply(_ms("good", "aws", dataFrom=[{"extract": {"key": key}}]), namespace)
    await cluster.apply(
        _ms("bad", "aws", data=[{"secretKey": "x", "remoteRef": {"key": f"{namespace}/missing"}}]), namespace
    )
    await cluster.ready("good", namespace, timeout=60)
    await cluster.wait_condition(
        "ManagedSecret", "bad", namespace, status="False", reason="KeyNotFound", timeout=60
    )
    return key, password


# --------------------------------------------------------------------------- report and status


async def test_report_in_three_formats(cluster: Cluster, env: Any, namespace: str, leaks: Any) -> None:
    key, _ = await _good_and_failing(cluster, env, namespace, leaks)

    as_json = await rotor(env, leaks, "report", "-n", namespace, "--format", "json")
    assert as_json.code == 0, as_json.err
    doc = json.loads(as_json.out)
    assert doc["generatedAt"].endswith("Z")
    items = {item["name"]: item for item in doc["items"]}
    assert set(items) == {"good", "bad"}
    good, bad = items["good"], items["bad"]
    assert (good["namespace"], good["store"], good["provider"]) == (namespace, "SecretStore/aws", "aws")
    assert good["keys"] == [f"extract:{key}"]
    assert good["sourceVersions"][key]  # the AWS VersionId that was read
    assert (good["ready"], good["reason"], good["risk"]) == (True, "Synced", "no-rotation")
    assert good["lastSyncTime"] and good["rotationPolicy"] is None
    assert (bad["ready"], bad["reason"], bad["risk"], bad["keys"]) == (
        False,
        "KeyNotFound",
        "not-ready",
        ["x"],
    )

    as_csv = await rotor(env, leaks, "report", "-n", namespace, "--format", "csv")
    assert as_csv.code == 0, as_csv.err
    rows = list(csv.DictReader(io.StringIO(as_csv.out)))
    assert {(r["NAME"], r["RISK"]) for r in rows} == {("good", "no-rotation"), ("bad", "not-ready")}

    table = await rotor(env, leaks, "report", "-n", namespace)
    assert table.code == 0, table.err
    header, *lines = table.out.splitlines()
    assert header.split()[:3] == ["NAMESPACE", "NAME", "STORE"] and header.split()[-1] == "RISK"
    assert sorted((line.split()[1], line.split()[-1]) for line in lines) == [
        ("bad", "not-ready"),
        ("good", "no-rotation"),
    ]


async def test_status_table_and_all_namespaces(
    cluster: Cluster, env: Any, namespace: str, leaks: Any
) -> None:
    await _good_and_failing(cluster, env, namespace, leaks)
    table = await rotor(env, leaks, "status", "-n", namespace)
    assert table.code == 0, table.err
    assert table.out.split()[:10] == [
        "NAMESPACE",
        "NAME",
        "READY",
        "REASON",
        "ROTATION",
        "SECRET",
        "EXPIRES",
        "NEXT-ROTATION",
        "LAST-SYNC",
        "AGE",
    ]
    rows = {line.split()[1]: line.split() for line in table.out.splitlines()[1:]}
    assert rows["good"][:6] == [namespace, "good", "True", "Synced", "-", "good"]  # ROTATION: none
    assert rows["good"][6:8] == ["-", "-"]  # no expiry, no rotation configured
    assert rows["good"][-2] == "ago" or rows["good"][-2] == "now"  # LAST-SYNC, then AGE
    assert rows["bad"][:4] == [namespace, "bad", "False", "KeyNotFound"]
    everywhere = await rotor(env, leaks, "status", "-A", "-o", "json")
    assert everywhere.code == 0, everywhere.err
    ours = [i for i in json.loads(everywhere.out)["items"] if i["namespace"] == namespace]
    assert sorted(i["name"] for i in ours) == ["bad", "good"]


async def test_future_times_and_a_failed_rotation_are_visible(
    cluster: Cluster, env: Any, namespace: str, leaks: Any, kubectl_run: Any
) -> None:
    """`kubectl get ms` shows future times as times (a `date` column shows `<invalid>` for them)
    and a failed rotation (Ready=True Synced alone would hide it); `rotor status` and `rotor
    report` show the failure too, and the report rates it a risk."""
    password = secrets.token_urlsafe(24)
    leaks.add(password)
    key = f"{namespace}/db"
    env.boto("secretsmanager").create_secret(
        Name=key, SecretString=json.dumps({"user": "app", "password": password})
    )
    for doc in env.aws_store(namespace):
        await cluster.apply(doc, namespace)
    for name, spec in (
        ("generate", {"preset": "database-password"}),
        ("observe", {"strategy": "Observe", "maxAge": "720h"}),
    ):
        await cluster.apply(
            {
                "apiVersion": "rotor.dev/v1alpha1",
                "kind": "RotationPolicy",
                "metadata": {"name": name},
                "spec": spec,
            },
            namespace,
        )
    for name in ("generate", "observe"):
        rotation = {"policyRef": {"name": name}, "keys": ["password"]}
        await cluster.apply(
            _ms(name, "aws", dataFrom=[{"extract": {"key": key}}], rotation=rotation), namespace
        )
        await cluster.ready(name, namespace, timeout=60)
    # a rotate request Rotor cannot honour (Observe never writes) is answered with a failure
    await cluster.patch(
        "ManagedSecret", "observe", {"metadata": {"annotations": {"rotor.dev/rotate": "now"}}}, namespace
    )
    await cluster.wait_condition(
        "ManagedSecret", "observe", namespace, "Rotating", status="False", reason="Failed", timeout=60
    )

    async def scheduled() -> dict[str, Any] | None:
        obj = await cluster.get("ManagedSecret", "generate", namespace)
        rotation = ((obj or {}).get("status") or {}).get("rotation") or {}
        return obj if rotation.get("nextRotationTime") else None

    generate = await wait_for(scheduled, timeout=60, what="the next rotation time")

    got = kubectl_run("get", "ms", "-n", namespace)
    assert got.returncode == 0, got.stderr
    assert "<invalid>" not in got.stdout, got.stdout
    header, *lines = got.stdout.splitlines()
    starts = [
        header.index(col)
        for col in ("NAME", "READY", "REASON", "ROTATION", "EXPIRES", "NEXT ROTATION", "AGE")
    ]
    table = {}
    for line in lines:
        cells = [line[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
        table[cells[0]] = dict(
            zip(("READY", "REASON", "ROTATION", "EXPIRES", "NEXT ROTATION"), cells[1:6], strict=True)
        )
    assert table["generate"]["NEXT ROTATION"] == generate["status"]["rotation"]["nextRotationTime"]
    assert table["generate"]["EXPIRES"] == generate["status"]["expiry"]["notAfter"]
    assert (table["observe"]["READY"], table["observe"]["REASON"]) == ("True", "Synced")
    assert table["observe"]["ROTATION"] == "Failed"

    status = await rotor(env, leaks, "status", "-n", namespace)
    assert status.code == 0, status.err
    names = status.out.splitlines()[0].split()
    rows = {
        line.split()[1]: dict(zip(names, line.split(), strict=False)) for line in status.out.splitlines()[1:]
    }
    assert (rows["observe"]["READY"], rows["observe"]["ROTATION"]) == ("True", "Failed")
    assert rows["generate"]["ROTATION"] != "Failed"

    report = await rotor(env, leaks, "report", "-n", namespace, "-o", "json")
    assert report.code == 0, report.err
    risks = {
        item["name"]: (item["ready"], item["rotation"], item["risk"])
        for item in json.loads(report.out)["items"]
    }
    assert risks["observe"] == (True, "Failed", "rotation-failed")
    assert risks["generate"][2] == "ok"


async def test_rough_edges(cluster: Cluster, env: Any, namespace: str, leaks: Any, tmp_path: Path) -> None:
    """-o yaml, a namespace that does not exist, a kubeconfig that does not exist: each said in one
    line, with the documented exit code."""
    await _good_and_failing(cluster, env, namespace, leaks)
    as_yaml = await rotor(env, leaks, "status", "-n", namespace, "-o", "yaml")
    assert as_yaml.code == 0, as_yaml.err
    items = {i["name"]: i for i in yaml.safe_load(as_yaml.out)["items"]}
    assert items["good"]["ready"] is True and items["bad"]["ready"] is False
    report = await rotor(env, leaks, "report", "-n", namespace, "-o", "yaml")
    assert report.code == 0, report.err
    assert {i["name"]: i["risk"] for i in yaml.safe_load(report.out)["items"]} == {
        "good": "no-rotation",
        "bad": "not-ready",
    }
    wide = await rotor(env, leaks, "report", "-n", namespace, "-o", "wide")
    assert wide.code == 0 and "SOURCE-VERSIONS" in wide.out.splitlines()[0]

    nowhere = f"{namespace}-gone"
    for args in (("status", "-n", nowhere), ("report", "-n", nowhere), ("sync", "good", "-n", nowhere)):
        missing = await rotor(env, leaks, *args)
        assert missing.code == 1, missing.lines
        assert missing.err.startswith(f"error: namespace {nowhere} does not exist"), missing.err
        assert len(missing.err.splitlines()) == 1

    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "rotor.cli.main",
        "status",
        env={**os.environ, "KUBECONFIG": str(tmp_path / "no-such-kubeconfig")},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 1 and out == b""
    assert err.decode().splitlines() == [
        f"error: KUBECONFIG={tmp_path / 'no-such-kubeconfig'}: no such file; point KUBECONFIG at your "
        "cluster's kubeconfig, or pass --kubeconfig PATH"
    ]

    usage = await rotor(env, leaks, "status", "-n", namespace, "-o", "xml")
    assert usage.code == 2 and "invalid choice: 'xml'" in usage.err
    assert usage.err.splitlines() == [usage.err.strip()] and usage.err.startswith("error: ")


# --------------------------------------------------------------------------- sync and rotate


async def test_sync_waits_for_the_operator(cluster: Cluster, env: Any, namespace: str, leaks: Any) -> None:
    key, _ = await _good_and_failing(cluster, env, namespace, leaks)
    newer = secrets.token_urlsafe(24)
    leaks.add(newer)
    version = env.boto("secretsmanager").put_secret_value(
        SecretId=key, SecretString=json.dumps({"user": "app", "password": newer})
    )["VersionId"]

    done = await rotor(env, leaks, "sync", "good", "-n", namespace, "--timeout", "60s")
    assert done.code == 0, done.lines
    assert done.lines[0].startswith(f"requested sync of {namespace}/good (rotor.dev/force-sync=")
    assert done.lines[-1] == f"✔ synced good: Secret good matches the source (version {version})"
    assert (await cluster.secret_data(namespace, "good") or {})["password"] == newer.encode()

    failed = await rotor(env, leaks, "sync", "bad", "-n", namespace)
    assert failed.code == 1
    assert failed.lines[-1].startswith("✘ sync of bad failed: KeyNotFound: ")

    missing = await rotor(env, leaks, "sync", "nope", "-n", namespace)
    assert missing.code == 1 and f"ManagedSecret {namespace}/nope not found" in missing.err


async def test_rotate_shows_phases_and_result(cluster: Cluster, env: Any, namespace: str, leaks: Any) -> None:
    old = secrets.token_urlsafe(24)
    leaks.add(old)
    key = f"{namespace}/app"
    env.boto("secretsmanager").create_secret(
        Name=key, SecretString=json.dumps({"user": "app", "password": old})
    )
    for doc in env.aws_store(namespace):
        await cluster.apply(doc, namespace)
    await cluster.apply(
        {
            "apiVersion": "rotor.dev/v1alpha1",
            "kind": "RotationPolicy",
            "metadata": {"name": "pw"},
            "spec": {"preset": "database-password", "generator": {"password": {"length": 40, "symbols": 0}}},
        },
        namespace,
    )
    await cluster.apply(
        _ms(
            "app",
            "aws",
            dataFrom=[{"extract": {"key": key}}],
            rotation={"policyRef": {"name": "pw"}, "keys": ["password"]},
        ),
        namespace,
    )
    await cluster.ready("app", namespace, timeout=60)

    done = await rotor(env, leaks, "rotate", "app", "-n", namespace, "--timeout", "120s")
    data = await cluster.secret_data(namespace, "app") or {}
    leaks.add(data.get("password", b""))
    assert done.code == 0, done.lines
    assert done.lines[-1].startswith("✔ rotated app: ")
    assert data["password"] != old.encode() and len(data["password"]) == 40

    plain = await rotor(env, leaks, "rotate", "nothing-here", "-n", namespace)
    assert plain.code == 1 and "not found" in plain.err


def _policy(name: str = "pw") -> dict[str, Any]:
    return {
        "apiVersion": "rotor.dev/v1alpha1",
        "kind": "RotationPolicy",
        "metadata": {"name": name},
        "spec": {"preset": "database-password"},
    }


async def _annotation(cluster: Cluster, namespace: str, name: str) -> str | None:
    obj = await cluster.get("ManagedSecret", name, namespace)
    return (((obj or {}).get("metadata") or {}).get("annotations") or {}).get("rotor.dev/rotate")


async def test_rotate_refuses_at_once_on_a_store_that_is_not_ready(
    cluster: Cluster, env: Any, namespace: str, leaks: Any
) -> None:
    """The store's reason comes back at once (exit 3), not after the 120 s timeout blaming the
    operator, and no request is left behind to rotate later without warning."""
    password = secrets.token_urlsafe(24)
    leaks.add(password)
    key = f"{namespace}/app"
    env.boto("secretsmanager").create_secret(
        Name=key, SecretString=json.dumps({"user": "app", "password": password})
    )
    credentials, store = env.aws_store(namespace)
    await cluster.apply(store, namespace)  # its credentials Secret is missing: InvalidConfig
    await cluster.apply(_policy(), namespace)
    rotation = {"policyRef": {"name": "pw"}, "keys": ["password"]}
    await cluster.apply(_ms("app", "aws", dataFrom=[{"extract": {"key": key}}], rotation=rotation), namespace)
    await cluster.wait_condition("SecretStore", "aws", namespace, status="False", timeout=60)

    refused = await rotor(env, leaks, "rotate", "app", "-n", namespace)  # default timeout: 120s
    assert refused.code == 3, refused.lines
    assert refused.lines[-1].startswith(
        f"error: cannot rotate {namespace}/app now: SecretStore 'aws' is not Ready: InvalidConfig: "
    ), refused.lines
    assert "referenced by the store does not exist" in refused.lines[-1]
    assert await _annotation(cluster, namespace, "app") is None  # nothing left to fire later

    # once the store is fixed, the ManagedSecret syncs and nothing rotates that nobody asked for
    await cluster.apply(credentials, namespace)
    await cluster.delete("SecretStore", "aws", namespace)  # a new store is validated afresh
    await cluster.apply(store, namespace)
    ms = await cluster.ready("app", namespace, timeout=90)
    rotation_status = (ms.get("status") or {}).get("rotation") or {}
    assert not rotation_status.get("lastRotateRequest") and not rotation_status.get("lastRotationTime")
    assert (await cluster.secret_data(namespace, "app") or {})["password"] == password.encode()


async def test_rotate_refuses_at_once_when_the_sync_is_forbidden(
    cluster: Cluster, env: Any, namespace: str, leaks: Any
) -> None:
    """A ClusterSecretStore that does not allow the namespace: the ManagedSecret is Forbidden, and
    `rotor rotate` says so at once instead of waiting for a rotation that cannot happen."""
    store = f"css-{namespace}"
    token, _ = env.vault_token_store(namespace)
    await cluster.apply(token, namespace)
    await cluster.apply(
        {
            "apiVersion": "rotor.dev/v1alpha1",
            "kind": "ClusterSecretStore",
            "metadata": {"name": store},
            "spec": {
                "provider": {
                    "vault": {
                        "server": env.vault_addr,
                        "kv": {"mount": "secret", "version": 2},
                        "auth": {
                            "token": {
                                "secretRef": {
                                    "name": token["metadata"]["name"],
                                    "key": "token",
                                    "namespace": namespace,
                                }
                            }
                        },
                    }
                },
                "conditions": [{"namespaces": [f"{namespace}-other"]}],
            },
        }
    )
    try:
        await cluster.apply(_policy(), namespace)
        ms = _ms("app", store, dataFrom=[{"extract": {"key": f"{namespace}/app"}}])
        ms["spec"]["storeRef"]["kind"] = "ClusterSecretStore"
        ms["spec"]["rotation"] = {"policyRef": {"name": "pw"}, "keys": ["password"]}
        await cluster.apply(ms, namespace)
        await cluster.wait_condition(
            "ManagedSecret", "app", namespace, status="False", reason="Forbidden", timeout=60
        )
        refused = await rotor(env, leaks, "rotate", "app", "-n", namespace)
        assert refused.code == 3, refused.lines
        assert refused.lines[-1].startswith(
            f"error: cannot rotate {namespace}/app now: ManagedSecret cannot use ClusterSecretStore "
            f"'{store}': Forbidden: "
        ), refused.lines
        assert await _annotation(cluster, namespace, "app") is None
    finally:
        await cluster.delete("ClusterSecretStore", store)


@pytest_asyncio.fixture(loop_scope="session")
async def unserved(cluster: Cluster, env: Any) -> Any:
    """A namespace no operator serves (the session's operator skips iso-*), with a store, a policy
    and a rotating ManagedSecret: rotate requests there are never answered."""
    name = f"iso-cli-{secrets.token_hex(3)}"
    await cluster.create_namespace(name)
    for doc in [*env.aws_store(name), _policy()]:
        await cluster.apply(doc, name)
    rotation = {"policyRef": {"name": "pw"}, "keys": ["password"]}
    await cluster.apply(_ms("app", "aws", dataFrom=[{"extract": {"key": "x"}}], rotation=rotation), name)
    yield name
    await cluster.delete_namespace(name)


async def test_an_abandoned_rotate_is_withdrawn(
    cluster: Cluster, env: Any, leaks: Any, unserved: str
) -> None:
    """Timed out or interrupted, `rotor rotate` takes its request back: nothing fires minutes later."""
    timed_out = await rotor(env, leaks, "rotate", "app", "-n", unserved, "--timeout", "2s")
    assert timed_out.code == 4, timed_out.lines
    assert any(line.startswith("✘ timed out after 2s") for line in timed_out.lines), timed_out.lines
    assert timed_out.lines[-1].startswith("withdrew rotor.dev/rotate="), timed_out.lines
    assert await _annotation(cluster, unserved, "app") is None

    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "rotor.cli.main",
        "rotate",
        "app",
        "-n",
        unserved,
        env={**os.environ, "KUBECONFIG": str(env.kubeconfig)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    first = (await asyncio.wait_for(proc.stdout.readline(), timeout=60)).decode()
    assert first.startswith(f"requested rotate of {unserved}/app (rotor.dev/rotate="), first
    value = first.split("rotor.dev/rotate=", 1)[1].rstrip(")\n")
    assert await _annotation(cluster, unserved, "app") == value
    proc.send_signal(signal.SIGINT)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 130, (out, err)
    assert f"withdrew rotor.dev/rotate={value}: nothing will rotate later" in err.decode(), err
    assert await _annotation(cluster, unserved, "app") is None

    # --no-wait is the explicit "do it when you can": the request stays
    left = await rotor(env, leaks, "rotate", "app", "-n", unserved, "--no-wait")
    assert left.code == 0, left.lines
    value = left.lines[0].split("rotor.dev/rotate=", 1)[1].rstrip(")")
    assert await _annotation(cluster, unserved, "app") == value


# --------------------------------------------------------------------------- import


def _env_file(tmp_path: Path, leaks: Any) -> tuple[Path, dict[str, str]]:
    values = {
        "DB_USER": "app",
        "DB_PASSWORD": secrets.token_urlsafe(24),
        "API_TOKEN": "tok " + secrets.token_hex(12) + " # kept",
        "PEM": "-----BEGIN KEY-----\n" + secrets.token_hex(20) + "\n-----END KEY-----",
    }
    leaks.add(*values.values())
    path = tmp_path / "app.env"
    path.write_text(
        "# migrated from the old deploy\n"
        f"export DB_USER={values['DB_USER']}\n"
        f"DB_PASSWORD = '{values['DB_PASSWORD']}'  # comment\n"
        f'API_TOKEN="{values["API_TOKEN"]}"\n'
        f'PEM="{values["PEM"]}"\n'
    )
    return path, values


def _backup_path(result: Result) -> Path:
    line = next(line for line in result.lines if line.startswith("backup written to "))
    path = Path(line.removeprefix("backup written to ").removesuffix(" (mode 0600)"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    return path


async def test_import_env_file_into_vault(
    cluster: Cluster, env: Any, namespace: str, leaks: Any, tmp_path: Path
) -> None:
    for doc in env.vault_token_store(namespace):
        await cluster.apply(doc, namespace)
    await cluster.wait_condition("SecretStore", "vault", namespace, timeout=60)
    path, values = _env_file(tmp_path, leaks)
    key = f"{namespace}/app"

    done = await rotor(
        env,
        leaks,
        "import",
        "--from-env-file",
        str(path),
        "--store",
        "vault",
        "--key",
        key,
        "--name",
        "app",
        "-n",
        namespace,
        "--backup-dir",
        str(tmp_path / "backups"),
        "--apply",
    )
    assert done.code == 0, done.lines
    assert f"read 4 keys from .env file {path}" in done.lines
    assert f"wrote 4 keys to vault '{key}' (version 1)" in done.lines
    assert "verified: read back 4 keys, all equal" in done.lines
    backup = json.loads(_backup_path(done).read_text())
    assert {k: base64.b64decode(v).decode() for k, v in backup["data"].items()} == values
    assert backup["previous"] is None

    await cluster.ready("app", namespace, timeout=60)
    data = await cluster.secret_data(namespace, "app")
    assert data == {k: v.encode() for k, v in values.items()}
    stored = env.vault_client().secrets.kv.v2.read_secret_version(
        path=key, mount_point="secret", raise_on_deleted_version=True
    )
    assert stored["data"]["data"] == values


async def test_import_refuses_to_overwrite_without_force(
    cluster: Cluster, env: Any, namespace: str, leaks: Any, tmp_path: Path
) -> None:
    for doc in env.aws_store(namespace):
        await cluster.apply(doc, namespace)
    await cluster.wait_condition("SecretStore", "aws", namespace, timeout=60)
    sm = env.boto("secretsmanager")
    key = f"{namespace}/app"
    path, values = _env_file(tmp_path, leaks)
    backups = str(tmp_path / "backups")

    first = await rotor(
        env,
        leaks,
        "import",
        "--from-env-file",
        str(path),
        "--store",
        "aws",
        "--key",
        key,
        "-n",
        namespace,
        "--backup-dir",
        backups,
        "--apply",
    )
    assert first.code == 0, first.lines
    assert any(
        line.startswith(f"wrote 4 keys to aws-secretsmanager '{key}' (version ") for line in first.lines
    )
    assert (
        f"managedsecret {namespace}/app created; follow it with: rotor status -n {namespace}" in first.lines
    )
    await cluster.ready("app", namespace, timeout=60)
    assert await cluster.secret_data(namespace, "app") == {k: v.encode() for k, v in values.items()}

    other = tmp_path / "other.env"
    replacement = secrets.token_urlsafe(24)
    leaks.add(replacement)
    other.write_text(f"ONLY={replacement}\n")
    refused = await rotor(
        env,
        leaks,
        "import",
        "--from-env-file",
        str(other),
        "--store",
        "aws",
        "--key",
        key,
        "--name",
        "other",
        "-n",
        namespace,
        "--backup-dir",
        backups,
    )
    assert refused.code == 1
    assert refused.lines[-1].startswith(
        f"✘ refusing to overwrite: aws-secretsmanager '{key}' already holds a value"
    )
    assert "nothing was written (no backup either)" in refused.lines[-1]
    assert json.loads(sm.get_secret_value(SecretId=key, VersionStage="AWSCURRENT")["SecretString"]) == values
    # refused before the backup: no copy of the values is left on disk for a write that never happened
    assert not any(line.startswith("backup written to ") for line in refused.lines)
    assert [p.name for p in Path(backups).iterdir()] == [_backup_path(first).name]

    forced = await rotor(
        env,
        leaks,
        "import",
        "--from-env-file",
        str(other),
        "--store",
        "aws",
        "--key",
        key,
        "--name",
        "other",
        "-n",
        namespace,
        "--backup-dir",
        backups,
        "--force",
    )
    assert forced.code == 0, forced.lines
    assert json.loads(sm.get_secret_value(SecretId=key, VersionStage="AWSCURRENT")["SecretString"]) == {
        "ONLY": replacement
    }, forced.lines
    kept = json.loads(_backup_path(forced).read_text())["previous"]["data"]  # --force: the old value kept
    assert {k: base64.b64decode(v).decode() for k, v in kept.items()} == values
    manifest = yaml.safe_load(forced.out)
    assert manifest["kind"] == "ManagedSecret" and manifest["metadata"] == {
        "name": "other",
        "namespace": namespace,
    }
    assert manifest["spec"]["dataFrom"] == [{"extract": {"key": key}}]


async def test_import_secret_into_secrets_manager(
    cluster: Cluster, env: Any, namespace: str, leaks: Any, tmp_path: Path
) -> None:
    for doc in env.aws_store(namespace):
        await cluster.apply(doc, namespace)
    await cluster.wait_condition("SecretStore", "aws", namespace, timeout=60)
    original = {
        "username": b"legacy",
        "password": secrets.token_urlsafe(30).encode(),
        "config.json": json.dumps({"nested": {"token": secrets.token_hex(16)}}).encode(),
    }
    leaks.add(*original.values())
    await cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "legacy"},
            "data": {k: base64.b64encode(v).decode() for k, v in original.items()},
        },
        namespace,
    )
    key = f"{namespace}/legacy"

    printed = await rotor(
        env,
        leaks,
        "import",
        "--from-secret",
        "legacy",
        "--store",
        "aws",
        "--key",
        key,
        "-n",
        namespace,
        "--backup-dir",
        str(tmp_path / "b"),
    )
    assert printed.code == 0, printed.lines
    assert "verified: read back 3 keys, all equal" in printed.lines
    assert any(
        line.startswith(f"next: Rotor will not overwrite Secret {namespace}/legacy") for line in printed.lines
    )
    manifest = yaml.safe_load(printed.out)
    assert manifest["spec"]["target"] == {"name": "legacy", "creationPolicy": "Owner"}

    # the migration as the output tells it: delete the original Secret, apply the ManagedSecret
    await cluster.core.delete_namespaced_secret("legacy", namespace)
    await cluster.apply(manifest, namespace)
    await cluster.ready("legacy", namespace, timeout=60)
    assert await cluster.secret_data(namespace, "legacy") == original


async def test_import_secret_adopted_into_parameter_store(
    cluster: Cluster, env: Any, namespace: str, leaks: Any, tmp_path: Path
) -> None:
    for doc in env.aws_store(namespace, "ssm", service="ParameterStore"):
        await cluster.apply(doc, namespace)
    await cluster.wait_condition("SecretStore", "ssm", namespace, timeout=60)
    original = {"api-key": secrets.token_hex(20).encode(), "endpoint": b"https://api.example"}
    leaks.add(original["api-key"])
    await cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "api"},
            "data": {k: base64.b64encode(v).decode() for k, v in original.items()},
        },
        namespace,
    )
    prefix = f"/{namespace}/api"

    done = await rotor(
        env,
        leaks,
        "import",
        "--from-secret",
        "api",
        "--store",
        "ssm",
        "--key",
        prefix,
        "-n",
        namespace,
        "--backup-dir",
        str(tmp_path / "b"),
        "--adopt",
        "--apply",
    )
    assert done.code == 0, done.lines
    assert f"wrote 2 keys to aws-parameterstore '{prefix}/' (2 parameters)" in done.lines
    ssm = env.boto("ssm")
    assert (
        ssm.get_parameter(Name=f"{prefix}/api-key", WithDecryption=True)["Parameter"]["Value"]
        == original["api-key"].decode()
    )
    ms = await cluster.ready("api", namespace, timeout=60)
    assert ms["spec"]["target"]["creationPolicy"] == "Merge"
    secret = await cluster.secret(namespace, "api")
    assert secret is not None
    # a Merge writer records its own keys and data hash
    assert {"rotor.dev/data-hash.api", "rotor.dev/managed-keys.api"} <= set(secret["metadata"]["annotations"])
    assert await cluster.secret_data(namespace, "api") == original

"""createIfMissing (DESIGN §11): a remote key the RotationPolicy generates that does not exist is
created at the source, once, never overwriting, then synced — against the real Vault (KV v2
check-and-set 0) and moto (Secrets Manager CreateSecret, SSM PutParameter without Overwrite).

Counted at the source: Vault KV versions, Secrets Manager versions, SSM parameter history. An
operator killed at each point of the create (the rotation's crash hooks) ends with exactly one
value; a value that appears meanwhile (another writer, or a second operator) is adopted, not
overwritten; credentials that cannot write end Ready=False Forbidden with nothing created."""

from __future__ import annotations

import asyncio
import json
import secrets
from typing import Any

import pytest

from support.cluster import Cluster, wait_for
from support.rotation import (
    condition,
    force_sync,
    iso_namespace,
    kv2_write,
    own_operator,
    policy,
    rotation_status,
    running,
    wait_exit,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")

API = "rotor.dev/v1alpha1"
FAULT = "ROTOR_FAULT_EXIT_AFTER_PHASE"
HOLD, HOLD_FILE = "ROTOR_FAULT_HOLD_AFTER_PHASE", "ROTOR_FAULT_HOLD_FILE"
BACKENDS = ["vault", "aws", "ssm"]
#: a create runs the written-in-place phases on every backend
POINTS = ["Pending", "BeforeWrite", "AfterWrite", "Written"]
RECORDED = {"BeforeWrite": "Pending", "AfterWrite": "Pending"}
POLICY = {"preset": "database-password", "createIfMissing": True}


class Source:
    """The remote key of one backend, seen as its versions."""

    def __init__(self, env: Any, backend: str, ns: str) -> None:
        self.env, self.backend = env, backend
        self.key = f"/{ns}/app" if backend == "ssm" else f"{ns}/app"

    def stores(self, ns: str) -> list[dict[str, Any]]:
        if self.backend == "vault":
            return self.env.vault_token_store(ns, "store")
        service = "ParameterStore" if self.backend == "ssm" else "SecretsManager"
        return self.env.aws_store(ns, "store", service=service)

    def managed_secret(self, name: str = "app") -> dict[str, Any]:
        spec: dict[str, Any] = {
            "storeRef": {"name": "store"},
            "rotation": {"policyRef": {"name": "policy"}, "keys": ["password"]},
        }
        if self.backend == "ssm":  # a parameter is one whole value
            spec["data"] = [{"secretKey": "password", "remoteRef": {"key": self.key}}]
        else:
            spec["dataFrom"] = [{"extract": {"key": self.key}}]
        return {"apiVersion": API, "kind": "ManagedSecret", "metadata": {"name": name}, "spec": spec}

    def put(self, password: str) -> None:
        """Someone else creates the key."""
        if self.backend == "vault":
            kv2_write(self.env, self.key, {"password": password})
        elif self.backend == "aws":
            self.env.boto("secretsmanager").create_secret(
                Name=self.key, SecretString=json.dumps({"password": password})
            )
        else:
            self.env.boto("ssm").put_parameter(Name=self.key, Value=password, Type="SecureString")

    def values(self) -> list[str]:
        """The password of every version the source holds, oldest first ([] when none)."""
        if self.backend == "vault":
            client = self.env.vault_client()
            try:
                meta = client.secrets.kv.v2.read_secret_metadata(path=self.key, mount_point="secret")
            except Exception:  # hvac InvalidPath: nothing there
                return []
            out = []
            for version in sorted(int(v) for v in meta["data"]["versions"]):
                resp = client.secrets.kv.v2.read_secret_version(
                    path=self.key, version=version, mount_point="secret", raise_on_deleted_version=True
                )
                out.append(str(resp["data"]["data"]["password"]))
            return out
        if self.backend == "aws":
            sm = self.env.boto("secretsmanager")
            try:
                sm.describe_secret(SecretId=self.key)
            except sm.exceptions.ResourceNotFoundException:
                return []
            versions = sm.list_secret_version_ids(SecretId=self.key, IncludeDeprecated=True)["Versions"]
            values = []
            for v in sorted(versions, key=lambda v: v["CreatedDate"]):
                got = sm.get_secret_value(SecretId=self.key, VersionId=v["VersionId"])
                values.append(str(json.loads(got["SecretString"])["password"]))
            return values
        ssm = self.env.boto("ssm")
        try:
            history = ssm.get_parameter_history(Name=self.key, WithDecryption=True)["Parameters"]
        except ssm.exceptions.ParameterNotFound:
            return []
        return [str(p["Value"]) for p in sorted(history, key=lambda p: p["Version"])]


async def _setup(cluster: Cluster, env: Any, ns: str, backend: str) -> Source:
    source = Source(env, backend, ns)
    for doc in source.stores(ns):
        await cluster.apply(doc, ns)
    await cluster.apply(policy("policy", POLICY), ns)
    return source


async def _synced_to_one_value(cluster: Cluster, ns: str, source: Source, leaks: Any) -> str:
    """Ready, exactly one value at the source, and the Secret holds it."""
    obj = await cluster.ready("app", ns, timeout=90)
    values = source.values()
    for value in values:
        leaks.add(value)
    assert len(values) == 1, f"exactly one value created, got {len(values)} versions"
    data = await cluster.secret_data(ns, "app") or {}
    assert data["password"] == values[0].encode()
    assert "password_previous" not in data, "a created value replaced nothing"
    assert condition(obj, "Ready")["reason"] == "Synced"
    return values[0]


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_missing_key_is_created_once_and_synced(
    cluster: Cluster, env: Any, namespace: str, leaks: Any, backend: str
) -> None:
    source = await _setup(cluster, env, namespace, backend)
    assert source.values() == []
    await cluster.apply(source.managed_secret(), namespace)
    created = await _synced_to_one_value(cluster, namespace, source, leaks)
    assert len(created) >= 32
    rot = await rotation_status(cluster, namespace, "app")
    assert rot["phase"] == "Completed" and rot["trigger"] == "Missing"
    obj = await cluster.get("ManagedSecret", "app", namespace)
    rotating = condition(obj, "Rotating")
    assert rotating["reason"] == "Succeeded" and "Missing" in rotating["message"]
    # asked again, and re-applied: nothing more is created
    await force_sync(cluster, namespace, "app")
    await cluster.apply(source.managed_secret(), namespace)
    await force_sync(cluster, namespace, "app")
    assert source.values() == [created]


@pytest.mark.parametrize("backend", BACKENDS)
async def test_an_existing_value_is_never_overwritten(
    cluster: Cluster, env: Any, namespace: str, leaks: Any, backend: str
) -> None:
    source = await _setup(cluster, env, namespace, backend)
    theirs = secrets.token_urlsafe(20)
    leaks.add(theirs)
    source.put(theirs)
    await cluster.apply(source.managed_secret(), namespace)
    assert await _synced_to_one_value(cluster, namespace, source, leaks) == theirs
    rot = await rotation_status(cluster, namespace, "app")
    assert rot.get("trigger") != "Missing", "nothing was missing: no create ran"


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_value_created_meanwhile_is_adopted(
    cluster: Cluster, env: Any, leaks: Any, backend: str
) -> None:
    """Someone creates the key between Rotor's read and its create: Rotor's create is refused
    by the source (CAS 0 / ResourceExists / ParameterAlreadyExists) and their value is synced."""
    async with iso_namespace(cluster, "cim-race") as ns:
        source = await _setup(cluster, env, ns, backend)
        hold = env.workdir / f"hold-{ns}"
        op = own_operator(env, ns, extra_env={HOLD: "BeforeWrite", HOLD_FILE: str(hold)})
        async with running(op):
            await cluster.apply(source.managed_secret(), ns)

            async def about_to_create() -> dict[str, Any] | None:
                rot = await rotation_status(cluster, ns, "app")
                return rot if str(rot.get("pendingVersion", "")).startswith("hmac:") else None

            await wait_for(about_to_create, timeout=60, what="the create to record what it will write")
            theirs = secrets.token_urlsafe(20)
            leaks.add(theirs)
            source.put(theirs)
            hold.write_text("go")
            assert await _synced_to_one_value(cluster, ns, source, leaks) == theirs
            assert (await rotation_status(cluster, ns, "app"))["phase"] == "Completed"


async def test_a_second_operator_does_not_create_twice(cluster: Cluster, env: Any, leaks: Any) -> None:
    """The first operator recorded what it will create and stalls; a second one (no peering) takes
    the create over once the claim is old, and the first, let go, finds the key there and adopts
    it: one value at the source."""
    async with iso_namespace(cluster, "cim-two") as ns:
        source = await _setup(cluster, env, ns, "vault")
        hold = env.workdir / f"hold-{ns}"
        first = own_operator(
            env,
            ns,
            name=f"op-{ns}-a",
            extra_env={HOLD: "BeforeWrite", HOLD_FILE: str(hold), "POD_NAME": "writer-a"},
        )
        second = own_operator(env, ns, name=f"op-{ns}-b", extra_env={"POD_NAME": "writer-b"})
        async with running(first):
            await cluster.apply(source.managed_secret(), ns)

            async def recorded() -> dict[str, Any] | None:
                rot = await rotation_status(cluster, ns, "app")
                return rot if str(rot.get("pendingVersion", "")).startswith("hmac:") else None

            await wait_for(recorded, timeout=60, what="the first operator to record its create")
            async with running(second):
                created = await _synced_to_one_value(cluster, ns, source, leaks)
                assert str((await rotation_status(cluster, ns, "app"))["claimedBy"]).startswith("writer-b/")
                hold.write_text("go")  # the first goes on from its stale view
                await force_sync(cluster, ns, "app", timeout=60)
                assert source.values() == [created], "the first operator did not create a second value"
                data = await cluster.secret_data(ns, "app") or {}
                assert data["password"] == created.encode()


@pytest.mark.parametrize(("backend", "point"), [(b, p) for b in BACKENDS for p in POINTS])
async def test_killed_during_the_create_ends_with_exactly_one_value(
    cluster: Cluster, env: Any, leaks: Any, backend: str, point: str
) -> None:
    async with iso_namespace(cluster, "cim-crash") as ns:
        source = await _setup(cluster, env, ns, backend)
        doomed = own_operator(env, ns, extra_env={FAULT: point}, name=f"crash-{ns}-1")
        await asyncio.to_thread(doomed.start)
        try:
            await cluster.apply(source.managed_secret(), ns)
            code = await wait_exit(doomed)
        finally:
            await asyncio.to_thread(doomed.stop)
        assert code == 137, f"the operator was to die at {point}; see {doomed.log_path}"
        rot = await rotation_status(cluster, ns, "app")
        assert rot["phase"] == RECORDED.get(point, point) and rot["trigger"] == "Missing"
        before = source.values()
        for value in before:
            leaks.add(value)
        assert len(before) == (1 if point in ("AfterWrite", "Written") else 0)
        async with running(own_operator(env, ns, name=f"crash-{ns}-2")):
            created = await _synced_to_one_value(cluster, ns, source, leaks)
            if before:
                assert created == before[0], "the value created before the crash is kept"

            async def completed() -> dict[str, Any] | None:
                rot = await rotation_status(cluster, ns, "app")
                return rot if rot.get("phase") == "Completed" else None

            await wait_for(completed, timeout=60, what="the create to complete")
            await force_sync(cluster, ns, "app")
            assert source.values() == [created]


async def test_without_write_access_nothing_is_created_and_forbidden_says_what_to_grant(
    cluster: Cluster, env: Any, namespace: str, leaks: Any
) -> None:
    client = env.vault_client()
    client.sys.create_or_update_policy(
        name=f"ro-{namespace}",
        policy=f'path "secret/data/{namespace}/*" {{ capabilities = ["read"] }}\n'
        f'path "secret/metadata/{namespace}/*" {{ capabilities = ["read", "list"] }}\n',
    )
    token = client.auth.token.create(policies=[f"ro-{namespace}"], ttl="2h")["auth"]["client_token"]
    leaks.add(token)
    source = Source(env, "vault", namespace)
    for doc in env.vault_token_store(namespace, "store", token=token):
        await cluster.apply(doc, namespace)
    await cluster.apply(policy("policy", POLICY), namespace)
    await cluster.apply(source.managed_secret(), namespace)
    cond = await cluster.wait_condition(
        "ManagedSecret", "app", namespace, "Ready", status="False", reason="Forbidden", timeout=60
    )
    assert "does not exist" in cond["message"] and "'create'" in cond["message"], cond["message"]
    assert f"secret/data/{namespace}/app" in cond["message"]
    assert source.values() == [], "nothing created"
    assert await cluster.secret_data(namespace, "app") is None
    obj = await cluster.get("ManagedSecret", "app", namespace)
    assert condition(obj, "Rotating")["reason"] == "Failed"
    # a later pass (asked to look again) stays Forbidden and still creates nothing
    await force_sync(cluster, namespace, "app")
    obj = await cluster.get("ManagedSecret", "app", namespace)
    assert condition(obj, "Ready")["reason"] == "Forbidden"
    assert source.values() == []


async def test_kubectl_apply_refuses_create_if_missing_without_generate(
    cluster: Cluster, kubectl_run: Any, namespace: str
) -> None:
    bad = policy("bad", {"strategy": "Observe", "maxAge": "240h", "createIfMissing": True})
    bad["metadata"]["namespace"] = namespace
    result = kubectl_run("apply", "-f", "-", input_=json.dumps(bad))
    assert result.returncode != 0, f"apply was accepted:\n{result.stdout}"
    assert "createIfMissing needs strategy Generate" in result.stderr, result.stderr
    assert await cluster.get("RotationPolicy", "bad", namespace) is None
    # the control: the same policy with strategy Generate is accepted
    good = policy("good", {**POLICY})
    good["metadata"]["namespace"] = namespace
    accepted = kubectl_run("apply", "-f", "-", input_=json.dumps(good))
    assert accepted.returncode == 0, accepted.stderr

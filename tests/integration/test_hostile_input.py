"""Hostile and malformed input (issue 8): remote values that are binary, huge, exotic Unicode,
invalid UTF-8, deeply nested JSON or carry key names a Secret cannot hold; template sandbox
escapes and bombs; and generated ManagedSecret specs. Whatever comes in, the operator

- never crashes (the process lives, no "unexpected error" for these objects in its log),
- never stalls other objects (a good ManagedSecret created after the hostile ones becomes Ready),
- and ends every hostile object in a Ready condition with a documented reason (DESIGN §3).

Tests that could freeze an operator run their own on an ``iso-*`` namespace and kill it after.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import random
import secrets
import string
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import pytest
from kubernetes_asyncio.client.exceptions import ApiException

from support.cluster import Cluster, wait_for
from support.environment import TestEnvironment
from support.leaks import LeakRegistry
from support.objects import API, apply_all, data_item, iso_namespace_fixture, ms_manifest
from support.operator import OperatorProcess
from support.rotation import kv2_write, own_operator

pytestmark = pytest.mark.asyncio(loop_scope="session")

DOCUMENTED = {
    "InvalidSpec",
    "StoreNotFound",
    "StoreNotReady",
    "Forbidden",
    "KeyNotFound",
    "ProviderError",
    "ValidationFailed",
    "TemplateError",
    "SecretConflict",
    "Expired",
}


# ---------------------------------------------------------------------------------------------- helpers
async def _stores(cluster: Cluster, env: TestEnvironment, namespace: str, *, aws: bool = True) -> None:
    await apply_all(
        cluster, env.vault_token_store(namespace) + (env.aws_store(namespace) if aws else []), namespace
    )
    await cluster.wait_condition("SecretStore", "vault", namespace, status="True")
    if aws:
        await cluster.wait_condition("SecretStore", "aws", namespace, status="True")


async def _settled(cluster: Cluster, namespace: str, name: str, timeout: float = 45) -> dict[str, Any]:
    """Wait until the object has a Ready condition for its current generation; return it."""

    async def probe() -> dict[str, Any] | None:
        obj = await cluster.get("ManagedSecret", name, namespace)
        status = (obj or {}).get("status") or {}
        if obj is None or status.get("observedGeneration") != obj["metadata"]["generation"]:
            return None
        return next((c for c in status.get("conditions") or [] if c["type"] == "Ready"), None)

    return await wait_for(probe, timeout=timeout, what=f"{namespace}/{name} to settle")


def _documented(cond: dict[str, Any]) -> bool:
    if cond["status"] == "True":
        return cond["reason"] == "Synced"
    return cond["reason"] in DOCUMENTED and bool(cond.get("message"))


async def _good_one_syncs(
    cluster: Cluster, env: TestEnvironment, namespace: str, leaks: LeakRegistry, timeout: float = 45
) -> None:
    """A good ManagedSecret created after the hostile ones becomes Ready with the right data."""
    value = secrets.token_urlsafe(24)
    leaks.add(value)
    kv2_write(env, f"{namespace}/good", {"value": value})
    await cluster.apply(
        ms_manifest("good-after", data=[data_item("value", f"{namespace}/good", "value")]), namespace
    )
    await cluster.ready("good-after", namespace, timeout=timeout)
    assert await cluster.secret_data(namespace, "good-after") == {"value": value.encode()}


def _crashes(log_text: str, namespace: str) -> list[str]:
    return [
        line[:300]
        for line in log_text.splitlines()
        if "unexpected error syncing" in line and f"{namespace}/" in line
    ]


def _assert_alive(env: TestEnvironment, namespace: str) -> None:
    op = env.operator
    assert op is not None and op.proc is not None and op.proc.poll() is None, "the operator died"
    assert not _crashes(op.log_text(), namespace), _crashes(op.log_text(), namespace)


async def _no_value_in_status(cluster: Cluster, namespace: str, values: list[str]) -> None:
    objs = await cluster.custom.list_namespaced_custom_object(
        "rotor.dev", "v1alpha1", namespace, "managedsecrets"
    )
    text = json.dumps([o.get("status") for o in objs.get("items", [])])
    notes = "\n".join(await cluster.event_notes(namespace))
    for value in values:
        if len(value) >= 8:
            assert value not in text, "a value reached a status"
            assert value not in notes, "a value reached an Event"


@contextlib.asynccontextmanager
async def disposable_operator(
    env: TestEnvironment, cluster: Cluster, namespace: str, *extra: str
) -> AsyncIterator[OperatorProcess]:
    """An operator for one iso-* namespace that may end up frozen: SIGKILLed afterwards, and its
    finalizers taken off so the namespace can go."""
    op = own_operator(env, namespace, extra_args=list(extra))
    await asyncio.to_thread(op.start)
    try:
        yield op
    finally:
        await asyncio.to_thread(op.kill)
        objs = await cluster.custom.list_namespaced_custom_object(
            "rotor.dev", "v1alpha1", namespace, "managedsecrets"
        )
        for obj in objs.get("items", []):
            with contextlib.suppress(ApiException):
                await cluster.patch(
                    "ManagedSecret", obj["metadata"]["name"], {"metadata": {"finalizers": None}}, namespace
                )


iso_namespace = iso_namespace_fixture("hostile")


# ---------------------------------------------------------------------------------------------- remote values
async def test_hostile_remote_values(
    cluster: Cluster, env: TestEnvironment, namespace: str, leaks: LeakRegistry
) -> None:
    sm = env.boto("secretsmanager")
    await _stores(cluster, env, namespace)
    tok = secrets.token_hex(8)
    values: list[str] = []

    def value(text: str) -> str:
        values.append(text)
        leaks.add(text)
        return text

    # AWS: binary that is not UTF-8, exotic Unicode, key names a Secret cannot hold, nested JSON
    binary = b"\xff\xfe\x00\x80" + secrets.token_bytes(32) + b"\xc3\x28"
    sm.create_secret(Name=f"{namespace}/binary", SecretBinary=binary)
    unicode_text = value(f"p\u00e4ss-\u2713-\U0001f511-\u202e-\u0000-{tok}-\u200b")
    sm.create_secret(Name=f"{namespace}/unicode", SecretString=unicode_text)
    illegal_keys = {
        "a/b": value(f"slash-{tok}-1"),
        "..": value(f"dots-{tok}-2"),
        "ключ": value(f"cyr-{tok}-3"),
    }
    sm.create_secret(Name=f"{namespace}/illegal-keys", SecretString=json.dumps(illegal_keys))
    nested: Any = value(f"deep-{tok}-leaf")
    for _ in range(200):
        nested = {"a": nested}
    sm.create_secret(Name=f"{namespace}/nested", SecretString=json.dumps(nested))
    sm.create_secret(Name=f"{namespace}/found/x/y", SecretString=value(f"found-{tok}-1"))
    # Vault: two values over the Secret size limit together, and a map of many that is too
    # (registered for the leak scan by a marked prefix only: scanning for 3000 needles costs minutes)
    marker = value(f"huge-{tok}-start")
    # Vault refuses a single JSON string over 1 MiB, so two of 600 KB each
    kv2_write(env, f"{namespace}/huge", {"value": marker + "H" * 600_000, "other": "O" * 600_000})
    many = {f"k{i}": f"{i:04d}-{tok}-" + "m" * 400 for i in range(3000)}
    value(many["k0"])
    kv2_write(env, f"{namespace}/many", many)

    cases: dict[str, tuple[dict[str, Any], set[str]]] = {
        # name: (ManagedSecret, the acceptable Ready reasons)
        "binary-whole": (
            ms_manifest("binary-whole", "aws", data=[data_item("blob", f"{namespace}/binary")]),
            {"Synced"},
        ),
        "binary-extract": (
            ms_manifest("binary-extract", "aws", dataFrom=[{"extract": {"key": f"{namespace}/binary"}}]),
            {"ValidationFailed"},
        ),
        "binary-property": (
            ms_manifest("binary-property", "aws", data=[data_item("p", f"{namespace}/binary", "p")]),
            {"KeyNotFound"},
        ),
        "binary-base64": (
            ms_manifest(
                "binary-base64", "aws", data=[data_item("b", f"{namespace}/binary", decode="Base64")]
            ),
            {"ValidationFailed"},
        ),
        "binary-template": (
            ms_manifest(
                "binary-template",
                "aws",
                data=[data_item("blob", f"{namespace}/binary")],
                template={"data": {"out": "{{ blob }}", "b64": "{{ blob | b64enc }}"}},
            ),
            {"Synced", "TemplateError"},
        ),
        "unicode": (
            ms_manifest("unicode", "aws", data=[data_item("text", f"{namespace}/unicode")]),
            {"Synced"},
        ),
        "illegal-keys": (
            ms_manifest("illegal-keys", "aws", dataFrom=[{"extract": {"key": f"{namespace}/illegal-keys"}}]),
            {"InvalidSpec"},
        ),
        "illegal-key-property": (
            ms_manifest(
                "illegal-key-property", "aws", data=[data_item("ok", f"{namespace}/illegal-keys", "a/b")]
            ),
            {"Synced"},
        ),
        "nested": (
            ms_manifest("nested", "aws", dataFrom=[{"extract": {"key": f"{namespace}/nested"}}]),
            {"Synced"},
        ),
        "nested-deep-property": (
            ms_manifest(
                "nested-deep-property",
                "aws",
                data=[data_item("leaf", f"{namespace}/nested", ".".join(["a"] * 200))],
            ),
            {"Synced"},
        ),
        "found-slashes": (
            ms_manifest("found-slashes", "aws", dataFrom=[{"find": {"path": f"{namespace}/found/"}}]),
            {"Synced"},
        ),
        "huge": (
            ms_manifest("huge", dataFrom=[{"extract": {"key": f"{namespace}/huge"}}]),
            {"ValidationFailed"},
        ),
        "many": (
            ms_manifest("many", dataFrom=[{"extract": {"key": f"{namespace}/many"}}]),
            {"ValidationFailed"},
        ),
    }
    for manifest, _ in cases.values():
        await cluster.apply(manifest, namespace)
    await _good_one_syncs(cluster, env, namespace, leaks)

    outcomes = {}
    for name, (_, allowed) in cases.items():
        cond = await _settled(cluster, namespace, name)
        assert _documented(cond), (name, cond)
        outcomes[name] = cond["reason"]
        assert cond["reason"] in allowed, (name, cond)
    assert outcomes and all(r in DOCUMENTED | {"Synced"} for r in outcomes.values())
    # what was synced is exact, byte for byte
    assert await cluster.secret_data(namespace, "binary-whole") == {"blob": binary}
    assert await cluster.secret_data(namespace, "unicode") == {"text": unicode_text.encode()}
    assert await cluster.secret_data(namespace, "illegal-key-property") == {
        "ok": illegal_keys["a/b"].encode()
    }
    found = await cluster.secret_data(namespace, "found-slashes")
    assert found is not None and list(found.values()) == [f"found-{tok}-1".encode()]
    assert all(k and "/" not in k for k in found), found
    leaf = await cluster.secret_data(namespace, "nested-deep-property")
    assert leaf == {"leaf": f"deep-{tok}-leaf".encode()}
    if outcomes["binary-template"] == "Synced":
        data = await cluster.secret_data(namespace, "binary-template")
        assert data is not None and base64.b64decode(data["b64"]) == binary
    # refused objects wrote nothing
    for name in ("binary-extract", "illegal-keys", "huge", "many"):
        assert await cluster.secret(namespace, name) is None, name
    await _no_value_in_status(cluster, namespace, values)
    _assert_alive(env, namespace)


async def test_deeply_nested_json_is_a_documented_failure(
    cluster: Cluster, env: TestEnvironment, namespace: str, leaks: LeakRegistry
) -> None:
    await _stores(cluster, env, namespace)
    depth = 20_000  # 60 KB of JSON: under Secrets Manager's 64 KiB, far over Python's recursion limit
    text = '{"a":' * depth + '"x"' + "}" * depth
    env.boto("secretsmanager").create_secret(Name=f"{namespace}/deep", SecretString=text)
    await cluster.apply(
        ms_manifest("deep", "aws", dataFrom=[{"extract": {"key": f"{namespace}/deep"}}]), namespace
    )
    await _good_one_syncs(cluster, env, namespace, leaks)
    cond = await _settled(cluster, namespace, "deep", timeout=30)
    assert cond["status"] == "False" and cond["reason"] in DOCUMENTED, cond
    _assert_alive(env, namespace)


# ---------------------------------------------------------------------------------------------- templates
ESCAPES = {
    "mro": "{{ ''.__class__.__mro__ }}",
    "subclasses": "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "cycler": "{{ cycler.__init__.__globals__ }}",
    "lipsum": "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "self": "{{ self.__init__.__globals__ }}",
    "value-class": "{{ password.__class__.__base__ }}",
    "attr-filter": "{{ password | attr('__class__') }}",
    "range-globals": "{{ range.__globals__ }}",
    "config": "{{ config.items() }}",
    "format-self": "{{ 'x'.format.__self__ }}",
    "import": "{% import 'os' as os %}{{ os }}",
    "include": "{% include '/etc/passwd' %}",
    "loop-bomb": "{% for i in range(10000) %}{% for j in range(10000) %}x{% endfor %}{% endfor %}",
    "mul-bomb": "{{ 'x' * 100000000 }}",
    "value-bomb": "{{ password * 10000000 }}",
    "output-bomb": "{% set x = 'x' * 1000 %}{% for i in range(10000) %}{{ x }}{% endfor %}",
    "center-bomb": "{{ password | center(100000000) }}",
    "format-bomb": "{{ '%0999999999d' % 1 }}",
    "syntax": "{{ password ",
}


async def test_template_sandbox_escapes_are_template_errors(
    cluster: Cluster, env: TestEnvironment, namespace: str, leaks: LeakRegistry
) -> None:
    password = secrets.token_urlsafe(24)
    leaks.add(password)
    kv2_write(env, f"{namespace}/app", {"password": password})
    await _stores(cluster, env, namespace, aws=False)
    for name, source in ESCAPES.items():
        await cluster.apply(
            ms_manifest(
                f"t-{name}",
                data=[data_item("password", f"{namespace}/app", "password")],
                template={"data": {"out": source}},
            ),
            namespace,
        )
    await _good_one_syncs(cluster, env, namespace, leaks)
    for name in ESCAPES:
        cond = await _settled(cluster, namespace, f"t-{name}")
        assert cond["status"] == "False" and cond["reason"] == "TemplateError", (name, cond)
        assert "out" in cond["message"], (name, cond)
        assert password not in cond["message"]
        assert await cluster.secret(namespace, f"t-{name}") is None, f"{name}: a Secret was written"
    await _no_value_in_status(cluster, namespace, [password])
    _assert_alive(env, namespace)


# ---------------------------------------------------------------------------------------------- generated specs
#: text that the schema accepts where any string is allowed (remote keys, properties, templates)
_WEIRD_TEXT = [
    "a/b",
    "..",
    ".",
    "-",
    "\u00ff",
    "\u202e",
    "\U0001f511",
    "a" * 300,
    "%2e%2e",
    "x\ny",
    "\x00",
    " ",
    "$(id)",
    "{{ 7*7 }}",
    "../../etc/passwd",
    "ok",
    "password",
    "p.q.r",
    "0",
    "\\",
    "?a=b#c",
]


def _fuzz_spec(rng: random.Random, namespace: str) -> dict[str, Any]:
    """A ManagedSecret spec that mostly passes the schema (so the operator, not the API, must cope)
    with hostile content; now and then a field the schema must refuse."""

    def pick(options: list[Any]) -> Any:
        return rng.choice(options)

    def either(valid: list[Any], invalid: list[Any], p_invalid: float = 0.02) -> Any:
        return pick(invalid) if rng.random() < p_invalid else pick(valid)

    def text() -> str:
        if rng.random() < 0.5:
            return pick(_WEIRD_TEXT)
        return "".join(
            rng.choice(string.printable + "\u00e9\u4e2d\U0001f600") for _ in range(rng.randint(1, 40))
        )

    def key() -> str:
        return either(
            [
                f"{namespace}/app",
                f"{namespace}/app",
                f"{namespace}/missing",
                f"{namespace}/../other/app",
                "/",
                f"{namespace}//app",
                text(),
            ],
            ["", "x" * 3000],
        )

    secret_keys = ["password", "username", "ok", "x.y", "-_.", "a" * 253]
    spec: dict[str, Any] = {
        "storeRef": {
            "name": either(["vault", "vault", "aws", "nope"], ["Vault!", "", "a/b"]),
            "kind": either(["SecretStore"] * 4 + ["ClusterSecretStore"], ["Bogus"]),
        }
    }
    spec["data"] = []
    for secret_key in rng.sample(secret_keys, rng.randint(0, 3)):
        ref: dict[str, Any] = {"key": key()}
        if rng.random() < 0.6:
            ref["property"] = either(["password", "username", "a.b.c", "0", "password.x", text()], [""])
        if rng.random() < 0.3:
            ref["version"] = either(["1", "-1", "abc", "9" * 30, "AWSPREVIOUS", "AWSPENDING", text()], [""])
        item: dict[str, Any] = {"secretKey": either([secret_key], ["a/b", "..", ""]), "remoteRef": ref}
        if rng.random() < 0.3:
            item["decode"] = either(["None", "Base64", "Auto"], ["Rot13"])
        if rng.random() < 0.3:
            item["validate"] = either(
                [
                    {"format": "min-length", "minLength": rng.randint(1, 10**6)},
                    {"format": "regex", "pattern": pick(["^[a-z]+$", ".*", "^\\S{8,}$", "[\u00e9]"])},
                    {"format": "base64", "bytes": rng.randint(1, 64)},
                    {"format": "pem-certificate", "notExpiredWithin": "72h"},
                    {"format": "certificate-matches-key", "key": pick(secret_keys)},
                    {
                        "format": pick(
                            ["json", "url", "hex", "fernet-key", "jwt-hs256-key", "pem-private-key"]
                        )
                    },
                ],
                [{"format": "min-length"}, {"format": "regex", "pattern": "("}, {"format": "nope"}],
            )
        spec["data"].append(item)
    if not spec["data"]:
        del spec["data"]
    if rng.random() < 0.6 or "data" not in spec:
        spec["dataFrom"] = []
        for _ in range(rng.randint(1, 2)):
            choice = rng.randint(0, 3)
            if choice == 0:
                spec["dataFrom"].append({"extract": {"key": key()}})
            elif choice == 1:
                found: dict[str, Any] = {"path": key()}
                if rng.random() < 0.5:
                    found["name"] = {
                        "regexp": either(
                            [".*", "^db-", "\\d+", text().replace("(", "").replace("[", "")], ["("]
                        )
                    }
                spec["dataFrom"].append({"find": found})
            elif choice == 2:
                spec["dataFrom"].append(
                    {
                        "vaultDatabase": {
                            "mount": either(["database", text()[:256]], [""]),
                            "role": either(["app", text()[:256]], [""]),
                        }
                    }
                )
            else:
                spec["dataFrom"].append(
                    either(
                        [{"extract": {"key": key()}}], [{"extract": {"key": key()}, "find": {"path": key()}}]
                    )
                )
    if rng.random() < 0.4:
        sources = [
            *ESCAPES.values(),
            text(),
            "{{ password }}",
            "{{ values['a/b'] }}",
            "{{ password | b64dec }}",
            "{{ username ~ password }}",
        ]
        spec["template"] = {"data": {pick(["out", "out", "a/b", "..", text()]): pick(sources)}}
    if rng.random() < 0.4:
        spec["refresh"] = {
            "interval": either(["1s", "2s", "99999h", "1h"], ["0s", "-1s", "abc"]),
            "policy": either(["Periodic", "OnChange", "Once"], ["Never"]),
        }
    if rng.random() < 0.4:
        spec["target"] = {
            "name": either(
                ["ok", "fuzz-00", "vault-token", "aws-creds", "x" * 253], ["Bad_Name", "../other", "a/b"]
            ),
            "type": either(
                [
                    "Opaque",
                    "kubernetes.io/tls",
                    "kubernetes.io/dockerconfigjson",
                    "kubernetes.io/basic-auth",
                    "example.com/custom",
                ],
                ["kubernetes.io/service-account-token"],
            ),
            "creationPolicy": either(["Owner", "Merge", "Orphan"], ["Steal"]),
        }
    if rng.random() < 0.2:
        spec["rotation"] = {
            "policyRef": {"name": either(["pw", "nope"], ["Bad_Name"])},
            "keys": [pick(secret_keys)],
        }
    return spec


@pytest.mark.slow
async def test_generated_specs_never_crash_or_stall(
    cluster: Cluster, env: TestEnvironment, namespace: str, leaks: LeakRegistry
) -> None:
    # a fixed seed keeps CI reproducible; ROTOR_FUZZ_SEED=random (or a number) explores further
    wanted = os.environ.get("ROTOR_FUZZ_SEED", "8")
    seed = random.randrange(1 << 30) if wanted == "random" else int(wanted)
    rng = random.Random(seed)
    password = secrets.token_urlsafe(24)
    leaks.add(password)
    kv2_write(env, f"{namespace}/app", {"username": "app", "password": password})
    await _stores(cluster, env, namespace)
    credentials = {name: await cluster.secret(namespace, name) for name in ("vault-token", "aws-creds")}
    accepted, refused = [], 0
    for i in range(40):
        name = f"fuzz-{i:02d}"
        try:
            await cluster.apply(
                {
                    "apiVersion": API,
                    "kind": "ManagedSecret",
                    "metadata": {"name": name},
                    "spec": _fuzz_spec(rng, namespace),
                },
                namespace,
            )
            accepted.append(name)
        except ApiException as exc:
            assert exc.status in (400, 422), (seed, exc.status, exc.reason)
            refused += 1
    assert accepted, f"every generated spec was refused by the API (seed {seed})"
    await _good_one_syncs(cluster, env, namespace, leaks)
    for name in accepted:
        cond = await _settled(cluster, namespace, name)
        assert _documented(cond), (f"seed {seed}", name, cond)
    # whatever was written stayed in the namespace (no field reaches elsewhere)
    for name in accepted:
        obj = await cluster.get("ManagedSecret", name, namespace)
        secret_name = ((obj or {}).get("status") or {}).get("secretName")
        if secret_name:
            assert await cluster.secret(namespace, secret_name) is not None, (
                name,
                json.dumps(obj.get("spec")),
                json.dumps(obj.get("status")),
            )
    # the stores' credential Secrets (targets some specs aimed at) are untouched
    for name, before in credentials.items():
        after = await cluster.secret(namespace, name)
        assert before is not None and after is not None
        assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"], name
    await _no_value_in_status(cluster, namespace, [password])
    _assert_alive(env, namespace)


# ---------------------------------------------------------------------------------------------- regular expressions
async def test_catastrophic_validate_regex_does_not_stall_others(
    cluster: Cluster, env: TestEnvironment, iso_namespace: str, leaks: LeakRegistry
) -> None:
    ns = iso_namespace
    value = secrets.token_urlsafe(24)
    leaks.add(value)
    kv2_write(env, f"{ns}/app", {"password": value})
    async with disposable_operator(env, cluster, ns) as op:
        await _stores(cluster, env, ns, aws=False)
        await cluster.apply(
            ms_manifest(
                "redos",
                data=[
                    data_item(
                        "password",
                        f"{ns}/app",
                        "password",
                        validate={"format": "regex", "pattern": "(.*.*)*#"},
                    )
                ],
            ),
            ns,
        )
        await _good_one_syncs(cluster, env, ns, leaks, timeout=30)
        cond = await _settled(cluster, ns, "redos", timeout=30)
        assert cond["reason"] == "ValidationFailed", cond
        assert op.proc is not None and op.proc.poll() is None


async def test_catastrophic_find_regexp_does_not_stall_others(
    cluster: Cluster, env: TestEnvironment, iso_namespace: str, leaks: LeakRegistry
) -> None:
    ns = iso_namespace
    kv2_write(env, f"{ns}/redos/{'a' * 40}!", {"value": "x"})
    async with disposable_operator(env, cluster, ns, "--concurrency", "2") as op:
        await _stores(cluster, env, ns, aws=False)
        for i in range(3):
            await cluster.apply(
                ms_manifest(
                    f"redos-{i}", dataFrom=[{"find": {"path": f"{ns}/redos/", "name": {"regexp": "^(a+)+$"}}}]
                ),
                ns,
            )
        await _good_one_syncs(cluster, env, ns, leaks, timeout=30)
        for i in range(3):
            cond = await _settled(cluster, ns, f"redos-{i}", timeout=30)
            assert _documented(cond), cond
        assert op.proc is not None and op.proc.poll() is None


# ---------------------------------------------------------------------------------------------- CPU off the loop
#: regex work that holds the GIL and stays under the step budget, so it runs to the time limit (5 s)
BUDGET_BURNER = (
    "{% set s = 'ab ' * 300000 %}{% for i in range(10000) %}{% if s | wordcount > 5 %}{% endif %}{% endfor %}"
)


def _healthz(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


async def test_a_template_burning_its_budget_does_not_stall_the_loop(
    cluster: Cluster, env: TestEnvironment, iso_namespace: str, leaks: LeakRegistry
) -> None:
    """While one object's template renders for its whole time budget, /healthz answers and another
    object syncs: the second Secret exists before the first object's TemplateError is written."""
    ns = iso_namespace
    value = secrets.token_urlsafe(24)
    leaks.add(value)
    kv2_write(env, f"{ns}/app", {"password": value})
    kv2_write(env, f"{ns}/good", {"value": value})
    async with disposable_operator(env, cluster, ns) as op:
        await _stores(cluster, env, ns, aws=False)
        await cluster.apply(
            ms_manifest(
                "burner",
                data=[data_item("password", f"{ns}/app", "password")],
                template={"data": {"out": BUDGET_BURNER}},
            ),
            ns,
        )

        async def sync_started() -> bool:
            obj = await cluster.get("ManagedSecret", "burner", ns)
            return "rotor.dev/finalizer" in ((obj or {}).get("metadata") or {}).get("finalizers", [])

        await wait_for(sync_started, timeout=30, interval=0.05, what="the burner's sync to start")
        await cluster.apply(ms_manifest("good", data=[data_item("value", f"{ns}/good", "value")]), ns)
        health: list[int] = []

        async def good_written() -> bool:
            health.append(await asyncio.to_thread(_healthz, op.metrics_url + "/healthz"))
            return await cluster.secret(ns, "good") is not None

        await wait_for(good_written, timeout=30, interval=0.05, what="the good Secret")
        burner = await cluster.get("ManagedSecret", "burner", ns)
        ready = next(
            (c for c in ((burner or {}).get("status") or {}).get("conditions") or [] if c["type"] == "Ready"),
            None,
        )
        assert ready is None or ready["reason"] != "TemplateError", (
            "the good Secret was written only after the burner's render had ended"
        )
        assert health and all(code == 200 for code in health), health
        cond = await _settled(cluster, ns, "burner", timeout=30)
        assert cond["reason"] == "TemplateError" and "time limit" in cond["message"], cond
        assert await cluster.secret_data(ns, "good") == {"value": value.encode()}
        assert op.proc is not None and op.proc.poll() is None

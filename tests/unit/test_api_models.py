"""The API models: what a user's manifest turns into, and what it is refused for (and why)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from rotor.api import (
    KINDS,
    ClusterSecretStoreSpec,
    ManagedSecretSpec,
    RotationPolicySpec,
    SecretStoreSpec,
    format_duration,
    parse_duration,
    parse_managed_secret,
    parse_resource,
)
from rotor.api.duration import DURATION_PATTERN
from rotor.api.status import Condition, ManagedSecretStatus, RotationPhase

REPO = Path(__file__).resolve().parents[2]

VAULT_TOKEN = {
    "server": "https://vault.example:8200",
    "auth": {"token": {"secretRef": {"name": "t", "key": "k"}}},
}
MINIMAL_MS = {
    "storeRef": {"name": "vault"},
    "data": [{"secretKey": "password", "remoteRef": {"key": "apps/db"}}],
}


def ms(**extra: Any) -> dict[str, Any]:
    return {**MINIMAL_MS, **extra}


def refused(model: Any, spec: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as err:
        model.model_validate(spec)
    return str(err.value)


# --------------------------------------------------------------------------- defaults


def test_managed_secret_defaults_match_the_design() -> None:
    spec = ManagedSecretSpec.model_validate(MINIMAL_MS)
    assert spec.store_ref.kind == "SecretStore"
    assert spec.target.name is None
    assert spec.target.type == "Opaque"
    assert spec.target.creation_policy == "Owner"
    assert spec.target.deletion_policy == "Retain"
    assert spec.data[0].decode == "None"
    assert spec.data[0].validation is None
    assert spec.data_from == []
    assert (spec.refresh.interval, spec.refresh.policy) == ("1h", "Periodic")
    assert spec.rollout.strategy == "None"
    assert spec.rotation is None


def test_secret_store_defaults_match_the_design() -> None:
    spec = SecretStoreSpec.model_validate({"provider": {"vault": VAULT_TOKEN}})
    assert spec.provider.vault is not None
    assert (spec.provider.vault.kv.mount, spec.provider.vault.kv.version) == ("secret", 2)
    assert (spec.rate_limit.qps, spec.rate_limit.burst) == (200, 400)  # a cap; the rate adapts below it
    assert spec.provider.kind == "vault"

    approle = SecretStoreSpec.model_validate(
        {
            "provider": {
                "vault": {
                    "server": "http://vault:8200",
                    "auth": {"appRole": {"roleId": "r", "secretIdRef": {"name": "s", "key": "id"}}},
                }
            }
        }
    )
    assert approle.provider.vault is not None and approle.provider.vault.auth.app_role is not None
    assert approle.provider.vault.auth.app_role.mount == "approle"

    aws = SecretStoreSpec.model_validate({"provider": {"aws": {"region": "eu-west-1"}}})
    assert aws.provider.aws is not None
    assert aws.provider.aws.service == "SecretsManager"
    assert aws.provider.aws.auth is None
    assert aws.provider.kind == "aws"


def test_rotation_policy_defaults_match_the_design() -> None:
    spec = RotationPolicySpec.model_validate(
        {"schedule": {"cron": "0 3 * * 0"}, "generator": {"password": {}}}
    )
    assert spec.strategy == "Generate"
    assert spec.previous_key_suffix == "_previous"
    assert spec.grace_period is None  # the preset's, else none: decided by the rotation code
    assert spec.schedule is not None and spec.schedule.time_zone == "UTC"
    assert spec.generator is not None and spec.generator.password is not None
    password = spec.generator.password
    assert (password.length, password.lower, password.upper, password.digits, password.symbols) == (
        32,
        1,
        1,
        1,
        0,
    )
    assert set(password.exclude) == {'"', "'", "`", "\\"}


def test_policy_ref_kind_defaults_to_namespaced_policy() -> None:
    spec = ManagedSecretSpec.model_validate(ms(rotation={"policyRef": {"name": "p"}, "keys": ["password"]}))
    assert spec.rotation is not None and spec.rotation.policy_ref.kind == "RotationPolicy"


def test_python_names_and_camel_case_names_both_parse_and_dump_as_camel_case() -> None:
    by_python = ManagedSecretSpec.model_validate(
        {"store_ref": {"name": "v"}, "data": [{"secret_key": "a", "remote_ref": {"key": "k"}}]}
    )
    wire = by_python.to_wire()
    assert wire == {"storeRef": {"name": "v"}, "data": [{"secretKey": "a", "remoteRef": {"key": "k"}}]}
    assert ManagedSecretSpec.model_validate(wire) == by_python


def test_validate_is_spelled_validate_on_the_wire() -> None:
    spec = ManagedSecretSpec.model_validate(
        ms(
            data=[
                {"secretKey": "k", "remoteRef": {"key": "a"}, "validate": {"format": "base64", "bytes": 32}}
            ]
        )
    )
    rule = spec.data[0].validation
    assert rule is not None and rule.decoded_bytes == 32
    assert spec.to_wire()["data"][0]["validate"] == {"format": "base64", "bytes": 32}


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        (ms(bogus=1), "bogus"),
        (ms(target={"nmae": "x"}), "nmae"),
        ({**MINIMAL_MS, "data": [{"secretKey": "a", "remoteRef": {"key": "k", "path": "x"}}]}, "path"),
    ],
)
def test_unknown_fields_are_refused_by_name(spec: dict[str, Any], field: str) -> None:
    assert field in refused(ManagedSecretSpec, spec)


MS_RULES = [
    ({"storeRef": {"name": "v"}}, "set data, dataFrom or both"),
    (
        ms(dataFrom=[{"extract": {"key": "a"}, "find": {"path": "b"}}]),
        "exactly one of extract, find, vaultDatabase or vaultDynamic",
    ),
    (ms(dataFrom=[{}]), "exactly one of extract, find, vaultDatabase or vaultDynamic"),
    (
        ms(
            dataFrom=[
                {"vaultDynamic": {"path": "database/creds/a"}},
                {"vaultDynamic": {"path": "aws/creds/b"}},
            ]
        ),
        "at most one dataFrom entry may be vaultDynamic",
    ),
    (ms(dataFrom=[{"vaultDynamic": {"path": "/database/creds/a"}}]), "should match pattern"),
    (
        ms(dataFrom=[{"vaultDynamic": {"path": "database/creds/a", "renewPercent": 95}}]),
        "less than or equal to 90",
    ),
    (ms(target={"type": "kubernetes.io/service-account-token"}), "service-account-token is refused"),
    (ms(rollout={"strategy": "Explicit"}), "strategy Explicit needs targets"),
    (
        ms(rollout={"strategy": "Auto", "targets": [{"kind": "Deployment", "name": "api"}]}),
        "targets are used only with strategy Explicit",
    ),
    (ms(refresh={"interval": "0s"}), "refresh.interval must be at least 1s"),
    (ms(refresh={"interval": "0h0m"}), "refresh.interval must be at least 1s"),
    (ms(refresh={"interval": "1ms"}), "refresh.interval must be at least 1s"),
    (ms(refresh={"interval": "999ms"}), "refresh.interval must be at least 1s"),
    (ms(refresh={"interval": "soon"}), "not a duration"),
    (
        {
            **MINIMAL_MS,
            "data": [{"secretKey": "a", "remoteRef": {"key": "k"}, "validate": {"format": "regex"}}],
        },
        "format regex needs pattern",
    ),
    (
        {
            **MINIMAL_MS,
            "data": [{"secretKey": "a", "remoteRef": {"key": "k"}, "validate": {"format": "min-length"}}],
        },
        "format min-length needs minLength",
    ),
    (
        {
            **MINIMAL_MS,
            "data": [
                {
                    "secretKey": "a",
                    "remoteRef": {"key": "k"},
                    "validate": {"format": "certificate-matches-key"},
                }
            ],
        },
        "format certificate-matches-key needs key",
    ),
    (
        {
            **MINIMAL_MS,
            "data": [{"secretKey": "a", "remoteRef": {"key": "k"}, "validate": {"format": "uuid"}}],
        },
        "format",
    ),
    (
        {
            **MINIMAL_MS,
            "data": [
                {"secretKey": "a", "remoteRef": {"key": "k"}},
                {"secretKey": "a", "remoteRef": {"key": "j"}},
            ],
        },
        "secretKey listed twice in data: a",
    ),
    ({**MINIMAL_MS, "data": [{"secretKey": "no/slash", "remoteRef": {"key": "k"}}]}, "secretKey"),
    # the apiserver refuses "." and names starting with ".." in a Secret's data: so does the schema
    ({**MINIMAL_MS, "data": [{"secretKey": ".", "remoteRef": {"key": "k"}}]}, "secretKey"),
    ({**MINIMAL_MS, "data": [{"secretKey": "..x", "remoteRef": {"key": "k"}}]}, "secretKey"),
    (ms(template={"data": {"..": "x"}}), "may not be '.' or start with '..'"),
    (ms(template={"data": {"bad key": "x"}}), "Secret keys may contain only"),
    (
        ms(
            template={"data": {"url": "{{ password }}"}, "mergePolicy": "Replace"},
            rotation={"policyRef": {"name": "p"}, "keys": ["password"]},
        ),
        "every key in rotation.keys must be a key of template.data too",
    ),
    (ms(template={"data": {"url": "x"}, "mergePolicy": "Overwrite"}), "mergePolicy"),
    ({**MINIMAL_MS, "storeRef": {"name": "v", "kind": "Vault"}}, "storeRef.kind"),
    (ms(target={"creationPolicy": "Adopt"}), "creationPolicy"),
    (
        {**MINIMAL_MS, "dataFrom": [{"find": {"path": "a/", "name": {"regexp": "(unclosed"}}}]},
        "not a valid regular expression",
    ),
]


@pytest.mark.parametrize(("spec", "message"), MS_RULES)
def test_managed_secret_rules_refuse_with_an_actionable_message(spec: dict[str, Any], message: str) -> None:
    assert message in refused(ManagedSecretSpec, spec)


STORE_RULES = [
    ({"provider": {}}, "set exactly one provider: vault, aws, azureKeyVault or gcpSecretManager"),
    ({"provider": {"vault": VAULT_TOKEN, "aws": {"region": "eu-west-1"}}}, "set exactly one provider"),
    ({"provider": {"vault": {**VAULT_TOKEN, "auth": {}}}}, "set exactly one Vault auth method"),
    (
        {
            "provider": {
                "vault": {
                    **VAULT_TOKEN,
                    "auth": {
                        "token": {"secretRef": {"name": "t", "key": "k"}},
                        "kubernetes": {"role": "r", "serviceAccountRef": {"name": "sa"}},
                    },
                }
            }
        },
        "set exactly one Vault auth method",
    ),
    ({"provider": {"vault": {**VAULT_TOKEN, "server": "vault:8200"}}}, "server"),
    ({"provider": {"vault": {**VAULT_TOKEN, "kv": {"version": 3}}}}, "version"),
    ({"provider": {"vault": {**VAULT_TOKEN, "caBundle": "not base64!"}}}, "caBundle must be base64"),
    (
        {
            "provider": {
                "vault": {
                    **VAULT_TOKEN,
                    "caBundle": "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t",
                    "caSecretRef": {"name": "c", "key": "ca.crt"},
                }
            }
        },
        "set caBundle or caSecretRef, not both",
    ),
    ({"provider": {"aws": {"region": "eu-west-1", "auth": {}}}}, "auth needs secretRef, assumeRole or both"),
    ({"provider": {"aws": {"region": "eu-west-1", "service": "KMS"}}}, "service"),
    (
        {"provider": {"aws": {"region": "eu-west-1", "auth": {"assumeRole": {"roleArn": "rotor"}}}}},
        "roleArn",
    ),
    # a namespaced store cannot reach into another namespace
    (
        {
            "provider": {
                "vault": {
                    **VAULT_TOKEN,
                    "auth": {"token": {"secretRef": {"name": "t", "key": "k", "namespace": "x"}}},
                }
            }
        },
        "namespace",
    ),
    ({"provider": {"vault": VAULT_TOKEN}, "rateLimit": {"qps": 0}}, "qps"),
]


@pytest.mark.parametrize(("spec", "message"), STORE_RULES)
def test_secret_store_rules_refuse_with_an_actionable_message(spec: dict[str, Any], message: str) -> None:
    assert message in refused(SecretStoreSpec, spec)


CLUSTER_VAULT = {
    "server": "https://vault.example:8200",
    "auth": {"token": {"secretRef": {"name": "t", "key": "k", "namespace": "rotor"}}},
}


def test_cluster_store_references_name_their_namespace() -> None:
    missing = {"provider": {"vault": VAULT_TOKEN}}
    assert "namespace" in refused(ClusterSecretStoreSpec, missing)

    spec = ClusterSecretStoreSpec.model_validate({"provider": {"vault": CLUSTER_VAULT}})
    assert spec.provider.vault is not None and spec.provider.vault.auth.token is not None
    ref = spec.provider.vault.auth.token.secret_ref
    assert ref.namespace_in(None) == "rotor"

    namespaced = SecretStoreSpec.model_validate({"provider": {"vault": VAULT_TOKEN}})
    assert namespaced.provider.vault is not None and namespaced.provider.vault.auth.token is not None
    assert namespaced.provider.vault.auth.token.secret_ref.namespace_in("team-a") == "team-a"


def test_cluster_store_kubernetes_auth_names_the_service_account_namespace() -> None:
    auth = {"kubernetes": {"role": "rotor", "serviceAccountRef": {"name": "reader", "audiences": ["vault"]}}}
    spec = {"provider": {"vault": {"server": "https://v:8200", "auth": auth}}}
    assert "namespace" in refused(ClusterSecretStoreSpec, spec)
    auth["kubernetes"]["serviceAccountRef"]["namespace"] = "team-a"  # type: ignore[index]
    parsed = ClusterSecretStoreSpec.model_validate(spec)
    assert parsed.provider.vault is not None and parsed.provider.vault.auth.kubernetes is not None
    assert parsed.provider.vault.auth.kubernetes.mount == "kubernetes"
    assert parsed.provider.vault.auth.kubernetes.service_account_ref.namespace_in(None) == "team-a"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"conditions": [{"namespaces": ["a"], "namespaceSelector": {}}]}, "exactly one of namespaces or"),
        ({"conditions": [{}]}, "exactly one of namespaces or"),
        (
            {"conditions": [{"namespaceSelector": {"matchExpressions": [{"key": "t", "operator": "In"}]}}]},
            "values are required for the In and NotIn operators",
        ),
        (
            {
                "conditions": [
                    {
                        "namespaceSelector": {
                            "matchExpressions": [{"key": "t", "operator": "Exists", "values": ["x"]}]
                        }
                    }
                ]
            },
            "not allowed for Exists",
        ),
        ({"conditions": [{"namespaces": ["Team_A"]}]}, "namespaces"),
    ],
)
def test_cluster_store_conditions_rules(extra: dict[str, Any], message: str) -> None:
    assert message in refused(ClusterSecretStoreSpec, {"provider": {"vault": CLUSTER_VAULT}, **extra})


def test_cluster_store_scoping_fields_parse() -> None:
    spec = ClusterSecretStoreSpec.model_validate(
        {
            "provider": {"vault": CLUSTER_VAULT},
            "conditions": [
                {"namespaces": ["team-a"]},
                {"namespaceSelector": {"matchLabels": {"tenant": "true"}}},
            ],
            "allowedKeys": ["tenants/{namespace}/*"],
        }
    )
    assert spec.conditions is not None and spec.conditions[0].namespaces == ["team-a"]
    assert spec.conditions[1].namespace_selector is not None
    assert spec.conditions[1].namespace_selector.match_labels == {"tenant": "true"}
    assert spec.allowed_keys == ["tenants/{namespace}/*"]
    assert "conditions" in refused(SecretStoreSpec, {"provider": {"vault": VAULT_TOKEN}, "conditions": []})


POLICY_RULES = [
    ({"generator": {"fernetKey": {}}}, "set schedule, maxAge, rotateBefore or a preset"),
    ({"schedule": {"every": "720h"}}, "strategy Generate needs a generator"),
    ({"schedule": {"every": "720h"}, "strategy": "Provider"}, "strategy Provider needs provider"),
    (
        {"schedule": {"every": "720h", "cron": "0 3 * * *"}, "preset": "api-key"},
        "exactly one of every or cron",
    ),
    ({"schedule": {}, "preset": "api-key"}, "exactly one of every or cron"),
    ({"schedule": {"cron": "every sunday"}, "preset": "api-key"}, "not a cron expression"),
    (
        {"schedule": {"cron": "0 3 * * 0", "timeZone": "Mars/Olympus"}, "preset": "api-key"},
        "not an IANA time zone",
    ),
    ({"schedule": {"every": "0d"}, "preset": "api-key"}, "a rotation interval must be at least 1m"),
    ({"schedule": {"every": "1ms"}, "preset": "api-key"}, "a rotation interval must be at least 1m"),
    ({"preset": "api-key", "gracePeriod": "1ms"}, "gracePeriod must be at least 1s"),
    ({"preset": "ssh-key"}, "preset"),
    ({"preset": "api-key", "generator": {"fernetKey": {}, "apiKey": {}}}, "generator sets exactly one of"),
    ({"preset": "api-key", "generator": {}}, "generator sets exactly one of"),
    (
        {"preset": "api-key", "generator": {"password": {"length": 8, "lower": 4, "upper": 4, "digits": 1}}},
        "lower + upper + digits + symbols must not exceed length",
    ),
    (
        {"preset": "certificate", "generator": {"selfSignedCertificate": {}}},
        "needs commonName, dnsNames or both",
    ),
    ({"preset": "api-key", "generator": {"rsaKeyPair": {"bits": 1024}}}, "bits"),
    (
        {"preset": "api-key", "strategy": "Provider", "provider": {}},
        "exactly one of vaultDatabaseStaticRole or",
    ),
    ({"preset": "api-key", "previousKeySuffix": "/old"}, "previousKeySuffix"),
    (
        {"preset": "api-key", "window": {"cron": "0 2 * * 1-5", "duration": "0m"}},
        "a rotation interval must be at least 1m",
    ),
]


@pytest.mark.parametrize(("spec", "message"), POLICY_RULES)
def test_rotation_policy_rules_refuse_with_an_actionable_message(spec: dict[str, Any], message: str) -> None:
    assert message in refused(RotationPolicySpec, spec)


@pytest.mark.parametrize(
    "spec",
    [
        {"preset": "database-password"},  # the preset gives schedule and generator
        {"preset": "api-key", "strategy": "Observe"},
        {"maxAge": "2160h", "strategy": "Observe"},
        {"rotateBefore": "240h", "generator": {"selfSignedCertificate": {"commonName": "example.com"}}},
        {"schedule": {"every": "30d"}, "strategy": "Provider", "provider": {"awsRotateSecret": {}}},
        {"schedule": {"every": "30d"}, "generator": {"vaultPKI": {"role": "web", "commonName": "a.example"}}},
        {"schedule": {"every": "30d"}, "generator": {"ed25519KeyPair": {}}, "gracePeriod": "0"},
    ],
)
def test_sensible_policies_are_accepted(spec: dict[str, Any]) -> None:
    RotationPolicySpec.model_validate(spec)


def test_vault_pki_keeps_its_upper_case_name() -> None:
    spec = RotationPolicySpec.model_validate(
        {"schedule": {"every": "30d"}, "generator": {"vaultPKI": {"role": "web", "commonName": "a.example"}}}
    )
    assert spec.generator is not None and spec.generator.vault_pki is not None
    assert spec.generator.vault_pki.mount == "pki"
    assert "vaultPKI" in spec.to_wire()["generator"]


def test_several_broken_rules_are_reported_together() -> None:
    message = refused(RotationPolicySpec, {"strategy": "Provider"})
    assert "strategy Provider needs provider" in message
    assert "no rotation ever falls due" in message


# --------------------------------------------------------------------------- durations


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", timedelta(0)),
        ("30s", timedelta(seconds=30)),
        ("90m", timedelta(minutes=90)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("720h", timedelta(days=30)),
        ("30d", timedelta(days=30)),
        ("1d12h", timedelta(days=1, hours=12)),
        ("1.5h", timedelta(minutes=90)),
        ("250ms", timedelta(milliseconds=250)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "1", "h", "-1h", "1 h", "1y", "1H", "P30D", "1h-30m", "1.h"])
def test_parse_duration_refuses_garbage_with_an_example(text: str) -> None:
    with pytest.raises(ValueError, match="for example"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (timedelta(0), "0s"),
        (timedelta(seconds=30), "30s"),
        (timedelta(minutes=90), "1h30m"),
        (timedelta(days=30), "720h"),
        (timedelta(hours=1, seconds=5), "1h5s"),
        (timedelta(milliseconds=1500), "1.5s"),
    ],
)
def test_format_duration(value: timedelta, expected: str) -> None:
    assert format_duration(value) == expected


def test_format_duration_refuses_negative() -> None:
    with pytest.raises(ValueError):
        format_duration(timedelta(seconds=-1))


@given(st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=3650)))
def test_format_then_parse_round_trips(value: timedelta) -> None:
    text = format_duration(value)
    assert re.fullmatch(DURATION_PATTERN, text)
    assert parse_duration(text) == value


@given(st.from_regex(DURATION_PATTERN, fullmatch=True).filter(lambda s: len(s) <= 32))
def test_every_string_the_schema_pattern_accepts_parses_or_is_too_long(text: str) -> None:
    try:
        assert parse_duration(text) >= timedelta(0)
    except ValueError as err:
        assert "at most 100 years" in str(err)


# --------------------------------------------------------------------------- whole objects and status


def test_parse_resource_dispatches_on_kind_and_refuses_others() -> None:
    body = {
        "apiVersion": "rotor.dev/v1alpha1",
        "kind": "ManagedSecret",
        "metadata": {"name": "app", "namespace": "team-a", "generation": 4, "managedFields": [{}]},
        "spec": MINIMAL_MS,
    }
    parsed = parse_resource(body)
    assert type(parsed) is KINDS["ManagedSecret"]
    assert (parsed.name, parsed.namespace, parsed.metadata.generation) == ("app", "team-a", 4)
    with pytest.raises(KeyError, match="not a Rotor kind"):
        parse_resource({**body, "kind": "Secret"})


def test_status_parses_what_rotor_writes_and_ignores_what_it_does_not_know() -> None:
    body = {
        "kind": "ManagedSecret",
        "metadata": {"name": "app"},
        "spec": MINIMAL_MS,
        "status": {
            "observedGeneration": 2,
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "Synced",
                    "message": "",
                    "lastTransitionTime": "2025-01-31T12:00:00Z",
                }
            ],
            "rotation": {"phase": "Written", "dueAt": "2025-02-01T00:00:00Z", "pendingVersion": "7"},
            "kopf": {"progress": {}},
        },
    }
    status = parse_managed_secret(body).status
    assert status.rotation is not None and status.rotation.phase is RotationPhase.WRITTEN
    assert status.rotation.due_at == datetime(2025, 2, 1, tzinfo=UTC)
    assert status.conditions[0].last_transition_time == datetime(2025, 1, 31, 12, tzinfo=UTC)


def test_status_timestamps_are_written_like_kubernetes_writes_them() -> None:
    status = ManagedSecretStatus(
        last_sync_time=datetime(2025, 3, 1, 8, 30, 15, 123456, tzinfo=UTC),
        conditions=[Condition(type="Ready", status="False", reason="KeyNotFound", message="apps/db")],
    )
    wire = status.to_wire()
    assert wire["lastSyncTime"] == "2025-03-01T08:30:15Z"
    assert wire["conditions"] == [
        {"type": "Ready", "status": "False", "reason": "KeyNotFound", "message": "apps/db"}
    ]
    naive = ManagedSecretStatus(next_refresh_time=datetime(2025, 3, 1, 9, 0))
    assert naive.to_wire()["nextRefreshTime"] == "2025-03-01T09:00:00Z"


# --------------------------------------------------------------------------- examples


def _example_documents() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted((REPO / "examples").rglob("*.y*ml")) if (REPO / "examples").is_dir() else []:
        # the examples' documented placeholders for the servers' addresses
        text = path.read_text(encoding="utf-8").replace("${VAULT_ADDR}", "https://vault.example:8200")
        text = text.replace("${AWS_ENDPOINT}", "https://secretsmanager.eu-west-1.amazonaws.com")
        for doc in yaml.safe_load_all(text):
            if isinstance(doc, dict) and str(doc.get("apiVersion", "")).startswith("rotor.dev/"):
                found.append((f"{path.relative_to(REPO)}:{doc.get('kind')}/{doc['metadata']['name']}", doc))
    return found


EXAMPLES = _example_documents()


@pytest.mark.parametrize("doc", [d for _, d in EXAMPLES], ids=[name for name, _ in EXAMPLES])
def test_every_example_parses(doc: dict[str, Any]) -> None:
    parsed = parse_resource(doc)
    assert type(parsed).__name__ == doc["kind"]


def test_replace_with_rotated_keys_among_the_rendered_ones_is_accepted() -> None:
    spec = ManagedSecretSpec.model_validate(
        ms(
            template={"data": {"password": "{{ password }}"}, "mergePolicy": "Replace"},
            rotation={"policyRef": {"name": "p"}, "keys": ["password"]},
        )
    )
    assert spec.template is not None and spec.template.replaces
    assert (
        ManagedSecretSpec.model_validate(ms(template={"data": {"u": "x"}})).template.merge_policy == "Merge"
    )

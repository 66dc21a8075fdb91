"""Bad manifests are refused by `kubectl apply` itself: the real kube-apiserver checks the CRDs'
structural schemas and CEL rules (DESIGN §1), with a message a person can act on."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from support.cluster import Cluster

pytestmark = pytest.mark.asyncio(loop_scope="session")

Kubectl = Callable[..., subprocess.CompletedProcess[str]]

VAULT = {"server": "http://127.0.0.1:8200", "auth": {"token": {"secretRef": {"name": "t", "key": "token"}}}}
AWS = {"service": "SecretsManager", "region": "eu-west-1"}


def _store(namespace: str, provider: dict) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "rotor.dev/v1alpha1",
            "kind": "SecretStore",
            "metadata": {"name": "bad", "namespace": namespace},
            "spec": {"provider": provider},
        }
    )


def _ms(namespace: str, **spec: object) -> str:
    body = {
        "storeRef": {"name": "vault"},
        "data": [{"secretKey": "password", "remoteRef": {"key": "apps/db", "property": "password"}}],
    }
    body.update(spec)
    return yaml.safe_dump(
        {
            "apiVersion": "rotor.dev/v1alpha1",
            "kind": "ManagedSecret",
            "metadata": {"name": "bad", "namespace": namespace},
            "spec": body,
        }
    )


def _refused(kubectl_run: Kubectl, manifest: str, *fragments: str) -> str:
    result = kubectl_run("apply", "-f", "-", input_=manifest)
    assert result.returncode != 0, f"apply was accepted:\n{result.stdout}"
    for fragment in fragments:
        assert fragment in result.stderr, f"{fragment!r} not in:\n{result.stderr}"
    return result.stderr


async def _nothing_stored(cluster: Cluster, kind: str, namespace: str) -> None:
    assert await cluster.get(kind, "bad", namespace) is None


async def test_store_with_both_providers(cluster: Cluster, kubectl_run: Kubectl, namespace: str) -> None:
    _refused(
        kubectl_run,
        _store(namespace, {"vault": VAULT, "aws": AWS}),
        "exactly one provider: vault, aws, azureKeyVault or gcpSecretManager",
    )
    await _nothing_stored(cluster, "SecretStore", namespace)


async def test_store_with_no_provider(cluster: Cluster, kubectl_run: Kubectl, namespace: str) -> None:
    _refused(
        kubectl_run,
        _store(namespace, {}),
        "exactly one provider: vault, aws, azureKeyVault or gcpSecretManager",
    )


async def test_cloud_stores_need_exactly_one_auth_method(
    cluster: Cluster, kubectl_run: Kubectl, namespace: str
) -> None:
    sp = {"tenantID": "t", "clientID": "c", "clientSecretRef": {"name": "sp", "key": "secret"}}
    wi = {"tenantID": "t", "clientID": "c", "serviceAccountRef": {"name": "sa"}}
    azure = {
        "vaultURL": "https://v.vault.azure.net",
        "auth": {"servicePrincipal": sp, "workloadIdentity": wi},
    }
    _refused(kubectl_run, _store(namespace, {"azureKeyVault": azure}), "exactly one Azure auth method")
    gcp = {"projectID": "p", "auth": {}}
    _refused(kubectl_run, _store(namespace, {"gcpSecretManager": gcp}), "exactly one GCP auth method")
    wif = {"audience": "sts.googleapis.com", "serviceAccountRef": {"name": "sa"}}
    gcp = {"projectID": "p", "auth": {"workloadIdentity": wif}}
    _refused(kubectl_run, _store(namespace, {"gcpSecretManager": gcp}), "audience")


async def test_vault_store_without_auth(cluster: Cluster, kubectl_run: Kubectl, namespace: str) -> None:
    vault = {"server": "http://127.0.0.1:8200"}
    _refused(kubectl_run, _store(namespace, {"vault": vault}), "auth", "Required value")
    vault_empty_auth = {"server": "http://127.0.0.1:8200", "auth": {}}
    _refused(
        kubectl_run,
        _store(namespace, {"vault": vault_empty_auth}),
        "exactly one Vault auth method: token, appRole or kubernetes",
    )
    await _nothing_stored(cluster, "SecretStore", namespace)


async def test_vault_store_with_two_auth_methods(kubectl_run: Kubectl, namespace: str) -> None:
    vault = {
        "server": "http://127.0.0.1:8200",
        "auth": {
            "token": {"secretRef": {"name": "t", "key": "token"}},
            "appRole": {"roleId": "r", "secretIdRef": {"name": "s", "key": "id"}},
        },
    }
    _refused(kubectl_run, _store(namespace, {"vault": vault}), "exactly one Vault auth method")


@pytest.mark.parametrize("interval", ["0s", "1ms", "999ms"])
async def test_refresh_interval_below_the_minimum(
    cluster: Cluster, kubectl_run: Kubectl, namespace: str, interval: str
) -> None:
    _refused(
        kubectl_run,
        _ms(namespace, refresh={"interval": interval}),
        "spec.refresh.interval",
        "refresh.interval must be at least 1s",
    )
    await _nothing_stored(cluster, "ManagedSecret", namespace)


async def test_unknown_decode_value(kubectl_run: Kubectl, namespace: str) -> None:
    data = [{"secretKey": "password", "remoteRef": {"key": "apps/db"}, "decode": "Hex"}]
    err = _refused(kubectl_run, _ms(namespace, data=data), "decode", "Unsupported value")
    assert '"Base64"' in err and '"Auto"' in err


async def test_rollout_targets_with_auto(kubectl_run: Kubectl, namespace: str) -> None:
    rollout = {"strategy": "Auto", "targets": [{"kind": "Deployment", "name": "api"}]}
    _refused(kubectl_run, _ms(namespace, rollout=rollout), "targets are used only with strategy Explicit")


async def test_explicit_rollout_without_targets(kubectl_run: Kubectl, namespace: str) -> None:
    _refused(kubectl_run, _ms(namespace, rollout={"strategy": "Explicit"}), "strategy Explicit needs targets")


async def test_two_dynamic_sources(cluster: Cluster, kubectl_run: Kubectl, namespace: str) -> None:
    dynamic = [{"vaultDynamic": {"path": "database/creds/a"}}, {"vaultDynamic": {"path": "aws/creds/b"}}]
    _refused(kubectl_run, _ms(namespace, dataFrom=dynamic), "at most one dataFrom entry may be vaultDynamic")
    await _nothing_stored(cluster, "ManagedSecret", namespace)


async def test_replace_template_must_render_the_rotated_keys(
    cluster: Cluster, kubectl_run: Kubectl, namespace: str
) -> None:
    manifest = _ms(
        namespace,
        template={"data": {"url": "db://{{ password }}"}, "mergePolicy": "Replace"},
        rotation={"policyRef": {"name": "p"}, "keys": ["password"]},
    )
    _refused(kubectl_run, manifest, "every key in rotation.keys must be a key of template.data too")
    await _nothing_stored(cluster, "ManagedSecret", namespace)


async def test_duplicate_secret_key(kubectl_run: Kubectl, namespace: str) -> None:
    data = [
        {"secretKey": "password", "remoteRef": {"key": "apps/db"}},
        {"secretKey": "password", "remoteRef": {"key": "apps/other"}},
    ]
    _refused(kubectl_run, _ms(namespace, data=data), "spec.data", "Duplicate value", "password")


async def test_no_data_at_all(kubectl_run: Kubectl, namespace: str) -> None:
    manifest = yaml.safe_dump(
        {
            "apiVersion": "rotor.dev/v1alpha1",
            "kind": "ManagedSecret",
            "metadata": {"name": "bad", "namespace": namespace},
            "spec": {"storeRef": {"name": "vault"}},
        }
    )
    _refused(kubectl_run, manifest, "set data, dataFrom or both")


async def test_validate_min_length_needs_min_length(kubectl_run: Kubectl, namespace: str) -> None:
    data = [{"secretKey": "password", "remoteRef": {"key": "apps/db"}, "validate": {"format": "min-length"}}]
    _refused(kubectl_run, _ms(namespace, data=data), "format min-length needs minLength")


async def test_service_account_token_target(kubectl_run: Kubectl, namespace: str) -> None:
    _refused(
        kubectl_run,
        _ms(namespace, target={"type": "kubernetes.io/service-account-token"}),
        "kubernetes.io/service-account-token is refused",
    )


async def test_generate_policy_without_generator(
    cluster: Cluster, kubectl_run: Kubectl, namespace: str
) -> None:
    manifest = yaml.safe_dump(
        {
            "apiVersion": "rotor.dev/v1alpha1",
            "kind": "RotationPolicy",
            "metadata": {"name": "bad", "namespace": namespace},
            "spec": {"strategy": "Generate", "schedule": {"every": "720h"}},
        }
    )
    _refused(kubectl_run, manifest, "strategy Generate needs a generator")
    await _nothing_stored(cluster, "RotationPolicy", namespace)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"schedule": {"every": "1ms"}}, "a rotation interval must be at least 1m"),
        ({"schedule": {"every": "59s"}}, "a rotation interval must be at least 1m"),
        ({"schedule": {"every": "720h"}, "gracePeriod": "1ms"}, "gracePeriod must be at least 1s"),
    ],
)
async def test_rotation_intervals_below_the_minimum(
    cluster: Cluster, kubectl_run: Kubectl, namespace: str, spec: dict[str, object], message: str
) -> None:
    manifest = yaml.safe_dump(
        {
            "apiVersion": "rotor.dev/v1alpha1",
            "kind": "RotationPolicy",
            "metadata": {"name": "bad", "namespace": namespace},
            "spec": {"strategy": "Generate", "generator": {"password": {}}, **spec},
        }
    )
    _refused(kubectl_run, manifest, message)
    await _nothing_stored(cluster, "RotationPolicy", namespace)


async def test_minimum_intervals_are_accepted(kubectl_run: Kubectl, namespace: str) -> None:
    """The control: exactly the minimums (and a grace period of 0, days CEL cannot read) apply."""
    policy = yaml.safe_dump(
        {
            "apiVersion": "rotor.dev/v1alpha1",
            "kind": "RotationPolicy",
            "metadata": {"name": "edge", "namespace": namespace},
            "spec": {
                "strategy": "Generate",
                "generator": {"password": {}},
                "schedule": {"every": "1m"},
                "gracePeriod": "0",
            },
        }
    )
    ok = kubectl_run("apply", "-f", "-", input_=policy)
    assert ok.returncode == 0, ok.stderr
    ms = _ms(namespace, refresh={"interval": "1s"}).replace("name: bad", "name: edge")
    ok = kubectl_run("apply", "-f", "-", input_=ms)
    assert ok.returncode == 0, ok.stderr
    days = _ms(namespace, refresh={"interval": "1d"}).replace("name: bad", "name: days")
    ok = kubectl_run("apply", "-f", "-", input_=days)
    assert ok.returncode == 0, ok.stderr


async def test_good_manifest_is_accepted_and_printer_columns(kubectl_run: Kubectl, namespace: str) -> None:
    """The control for the refusals above: a correct manifest goes through, and `kubectl get ms`
    shows READY and REASON."""
    ok = kubectl_run("apply", "-f", "-", input_=_ms(namespace).replace("name: bad", "name: good"))
    assert ok.returncode == 0, ok.stderr
    got = kubectl_run("get", "ms", "-n", namespace)
    assert got.returncode == 0, got.stderr
    header = got.stdout.splitlines()[0].split()
    assert "READY" in header and "REASON" in header, got.stdout
    assert "good" in got.stdout
    wide = kubectl_run("get", "managedsecrets.rotor.dev", "good", "-n", namespace, "-o", "wide")
    assert wide.returncode == 0 and "REASON" in wide.stdout, wide.stderr


async def test_the_plain_manifests_apply_in_one_go(kubectl_run: Kubectl) -> None:
    """`kubectl apply --server-side -k deploy/` as the README says: every object in deploy/ is
    accepted by the apiserver in one apply (server-side dry run, so nothing is installed). It used
    to fail on a fresh cluster: kopf's peering object came before its CRD."""
    root = Path(__file__).resolve().parents[2]
    result = kubectl_run("apply", "--server-side", "--dry-run=server", "-k", str(root / "deploy"))
    assert result.returncode == 0, result.stderr
    applied = result.stdout
    for kind in ("customresourcedefinition", "deployment", "serviceaccount", "clusterrole"):
        assert kind in applied, applied
    assert "kopf" not in applied, "no kopf peering objects or CRDs: leader election is by Lease"

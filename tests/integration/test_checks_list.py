"""Several checks on one key (``validations``), against the real apiserver and Vault: every check
passes; a value that fails the first or the second check is ValidationFailed naming that rule, the
last good Secret kept; the apiserver refuses validate and validations together."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from kubernetes_asyncio.client.exceptions import ApiException

from support.cluster import Cluster, wait_for
from support.objects import (
    apply_token_store,
    assert_unchanged,
    data_item,
    ms_manifest,
    private_pem,
    self_signed,
)
from support.rotation import kv2_write

pytestmark = pytest.mark.asyncio(loop_scope="session")

CHECKS: list[dict[str, Any]] = [
    {"format": "pem-certificate", "notExpiredWithin": "72h"},
    {"format": "certificate-matches-key", "key": "tls.key"},
]


def _pair(key: Any, *, hours: float = 24 * 30) -> tuple[str, str]:
    now = dt.datetime.now(dt.UTC)
    cert = self_signed(key, "web.example", now - dt.timedelta(hours=1), now + dt.timedelta(hours=hours))
    return cert.decode(), private_pem(key).decode()


def _spec(namespace: str) -> dict[str, Any]:
    return {
        "target": {"type": "kubernetes.io/tls"},
        "data": [
            data_item("tls.key", f"{namespace}/web", "key", validate={"format": "pem-private-key"}),
            data_item("tls.crt", f"{namespace}/web", "crt", validations=CHECKS),
        ],
    }


async def _force(cluster: Cluster, namespace: str, value: str) -> None:
    await cluster.patch(
        "ManagedSecret", "web", {"metadata": {"annotations": {"rotor.dev/force-sync": value}}}, namespace
    )


async def _failed(cluster: Cluster, namespace: str, rule: str) -> dict[str, Any]:
    """Ready=False, ValidationFailed, naming ``rule`` (an earlier failure may be reported first)."""

    async def probe() -> dict[str, Any] | None:
        cond = await cluster.condition("ManagedSecret", "web", namespace, "Ready")
        if (
            cond
            and cond["status"] == "False"
            and cond["reason"] == "ValidationFailed"
            and rule in cond["message"]
        ):
            return cond
        return None

    return await wait_for(probe, timeout=30, what=f"ValidationFailed naming {rule}")


async def test_every_check_in_order_and_the_first_failure_named(
    cluster: Cluster, env, namespace: str, leaks
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    cert, pem = _pair(key)
    leaks.add(pem)
    kv2_write(env, f"{namespace}/web", {"crt": cert, "key": pem})
    await apply_token_store(cluster, env, namespace)
    await cluster.apply(ms_manifest("web", **_spec(namespace)), namespace)
    await cluster.ready("web", namespace)
    data = await cluster.secret_data(namespace, "web")
    assert data == {"tls.crt": cert.encode(), "tls.key": pem.encode()}
    before = await cluster.secret(namespace, "web")
    assert before is not None

    # a certificate that expires within 72h fails the first check (and the second passes)
    short, _ = _pair(key, hours=10)
    kv2_write(env, f"{namespace}/web", {"crt": short, "key": pem})
    await _force(cluster, namespace, "short")
    cond = await _failed(cluster, namespace, "(rule 1 of 2)")
    assert "'tls.crt'" in cond["message"] and "pem-certificate" in cond["message"]
    assert "within 72h" in cond["message"] and pem not in cond["message"]
    await assert_unchanged(cluster, namespace, "web", before)

    # a valid certificate for another key fails the second check
    other = ec.generate_private_key(ec.SECP256R1())
    other_cert, _ = _pair(other)
    kv2_write(env, f"{namespace}/web", {"crt": other_cert, "key": pem})
    await _force(cluster, namespace, "other")
    cond = await _failed(cluster, namespace, "(rule 2 of 2)")
    assert "certificate-matches-key" in cond["message"] and "does not match" in cond["message"]
    await assert_unchanged(cluster, namespace, "web", before)

    # both fail: the first in the list is the one reported
    other_short, _ = _pair(other, hours=10)
    kv2_write(env, f"{namespace}/web", {"crt": other_short, "key": pem})
    await _force(cluster, namespace, "both")
    await _failed(cluster, namespace, "(rule 1 of 2)")
    await assert_unchanged(cluster, namespace, "web", before)

    # fixed at the source: Ready again with the new pair
    fresh_key = ec.generate_private_key(ec.SECP256R1())
    fresh_cert, fresh_pem = _pair(fresh_key)
    leaks.add(fresh_pem)
    kv2_write(env, f"{namespace}/web", {"crt": fresh_cert, "key": fresh_pem})
    await _force(cluster, namespace, "fixed")
    await cluster.wait_condition(
        "ManagedSecret", "web", namespace, status="True", reason="Synced", timeout=30
    )
    assert await cluster.secret_data(namespace, "web") == {
        "tls.crt": fresh_cert.encode(),
        "tls.key": fresh_pem.encode(),
    }


async def test_the_apiserver_refuses_validate_and_validations_together(
    cluster: Cluster, namespace: str
) -> None:
    spec = _spec(namespace)
    spec["data"][1]["validate"] = CHECKS[0]
    with pytest.raises(ApiException) as err:
        await cluster.apply(ms_manifest("web", **spec), namespace)
    assert err.value.status == 422
    assert "set validate (one check) or validations (a list of checks), not both" in str(err.value.body)
    spec = _spec(namespace)
    spec["data"][1]["validations"] = []
    with pytest.raises(ApiException) as err:
        await cluster.apply(ms_manifest("web", **spec), namespace)
    assert err.value.status == 422
    assert await cluster.get("ManagedSecret", "web", namespace) is None

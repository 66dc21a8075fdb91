"""validations: several checks on one key, applied in order; the first failure names its rule and
its place; a single validate reads as before; both at once are refused by the schema."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import ValidationError

from rotor.api.managedsecret import ManagedSecretSpec
from rotor.providers.base import RemoteRef, RemoteSecret
from rotor.sync.assemble import assemble
from rotor.values import ValidationFailed, validate_all
from support.objects import private_pem, self_signed

NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
KEY, OTHER = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
CERT = self_signed(KEY, "app.example", NOW - dt.timedelta(days=1), NOW + dt.timedelta(days=30))
SHORT = self_signed(KEY, "app.example", NOW - dt.timedelta(days=1), NOW + dt.timedelta(hours=10))
RULES: list[dict[str, Any]] = [
    {"format": "pem-certificate", "notExpiredWithin": "72h"},
    {"format": "certificate-matches-key", "key": "tls.key"},
]


def _check(cert: bytes, key: bytes, rules: list[dict[str, Any]] = RULES) -> None:
    validate_all("tls.crt", cert, rules, all_values={"tls.crt": cert, "tls.key": key}, now=NOW)


def test_every_check_passes() -> None:
    _check(CERT, private_pem(KEY))


def test_the_first_failure_names_its_rule_and_place() -> None:
    with pytest.raises(ValidationFailed) as err:
        _check(SHORT, private_pem(OTHER))  # both fail: the first one is reported
    assert "pem-certificate" in err.value.message and "(rule 1 of 2)" in err.value.message
    assert "within 72h" in err.value.message
    with pytest.raises(ValidationFailed) as err:
        _check(CERT, private_pem(OTHER))
    assert "certificate-matches-key" in err.value.message and "(rule 2 of 2)" in err.value.message
    assert err.value.reason == "ValidationFailed"


def test_one_rule_reads_as_a_single_validate() -> None:
    with pytest.raises(ValidationFailed) as err:
        _check(SHORT, private_pem(KEY), RULES[:1])
    assert "rule 1 of" not in err.value.message
    assert err.value.message.startswith("key 'tls.crt' failed validation pem-certificate")


def _spec(item: dict[str, Any]) -> ManagedSecretSpec:
    return ManagedSecretSpec.model_validate(
        {
            "storeRef": {"name": "vault"},
            "data": [
                {"secretKey": "tls.key", "remoteRef": {"key": "apps/web", "property": "key"}},
                {"secretKey": "tls.crt", "remoteRef": {"key": "apps/web", "property": "crt"}, **item},
            ],
        }
    )


def _fetched(cert: bytes, key: bytes) -> dict[RemoteRef, RemoteSecret]:
    return {
        RemoteRef("apps/web"): RemoteSecret(
            key="apps/web", version="1", data={"crt": cert.decode(), "key": key.decode()}
        )
    }


def test_the_pipeline_applies_the_list_in_order() -> None:
    spec = _spec({"validations": RULES})
    assert [c.format for c in spec.data[1].checks] == ["pem-certificate", "certificate-matches-key"]
    out = assemble(spec, _fetched(CERT, private_pem(KEY)), {}, {}, now=NOW)
    assert out["tls.crt"] == CERT
    with pytest.raises(ValidationFailed, match=r"certificate-matches-key.*\(rule 2 of 2\)"):
        assemble(spec, _fetched(CERT, private_pem(OTHER)), {}, {}, now=NOW)


def test_validate_alone_is_still_accepted_and_both_are_refused() -> None:
    assert [c.format for c in _spec({"validate": RULES[0]}).data[1].checks] == ["pem-certificate"]
    assert _spec({}).data[1].checks == []
    with pytest.raises(ValidationError, match=r"set validate .* or validations"):
        _spec({"validate": RULES[0], "validations": RULES})
    with pytest.raises(ValidationError):
        _spec({"validations": []})

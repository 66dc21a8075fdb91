"""validate: every format of DESIGN §4, accepted and refused, with real keys and certificates."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from rotor.values import FORMATS, InvalidSpec, ValidationFailed, validate_value

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def _pem_key(key: Any, fmt: serialization.PrivateFormat = serialization.PrivateFormat.PKCS8) -> bytes:
    return bytes(key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption()))


def _pem_public(key: Any) -> bytes:
    return bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def _certificate(key: Any, *, not_after: datetime, cn: str = "app.example") -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=30))
        .not_valid_after(not_after)
        .sign(key, algorithm)
    )
    return certificate.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def ed_key() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


def check(key: str, value: bytes, rule: dict[str, Any], **others: bytes) -> None:
    validate_value(key, value, rule, all_values={key: value, **others}, now=NOW)


def refused(key: str, value: bytes, rule: dict[str, Any], **others: bytes) -> str:
    with pytest.raises(ValidationFailed) as caught:
        check(key, value, rule, **others)
    assert caught.value.reason == "ValidationFailed"
    assert f"key '{key}'" in caught.value.message
    assert str(rule["format"]) in caught.value.message
    return caught.value.message


def test_every_documented_format_is_known() -> None:
    documented = {
        "min-length",
        "regex",
        "base64",
        "hex",
        "json",
        "url",
        "pem-private-key",
        "pem-public-key",
        "pem-certificate",
        "certificate-matches-key",
        "fernet-key",
        "jwt-hs256-key",
    }
    assert set(FORMATS) == documented


# --------------------------------------------------------------------------- text formats


def test_min_length_counts_characters() -> None:
    check("password", ("é" * 24).encode(), {"format": "min-length", "minLength": 24})
    refused("password", ("é" * 23).encode(), {"format": "min-length", "minLength": 24})  # 46 bytes
    message = refused("password", b"short", {"format": "min-length", "minLength": 24})
    assert "shorter than the required 24 characters" in message


def test_min_length_without_a_bound_is_a_spec_error() -> None:
    with pytest.raises(InvalidSpec):
        check("password", b"whatever", {"format": "min-length"})


def test_min_length_also_applies_alongside_another_format() -> None:
    refused("token", b"abcd", {"format": "hex", "minLength": 8})
    check("token", b"abcdabcd", {"format": "hex", "minLength": 8})


def test_regex_must_match_the_whole_value() -> None:
    rule = {"format": "regex", "pattern": "[a-z]+-[0-9]+"}
    check("id", b"app-42", rule)
    refused("id", b"app-42 trailing", rule)
    refused("id", b"\xff\xfe", rule)


def test_an_invalid_pattern_is_a_spec_error() -> None:
    with pytest.raises(InvalidSpec) as caught:
        check("id", b"x", {"format": "regex", "pattern": "("})
    assert caught.value.reason == "InvalidSpec"


def test_base64_with_optional_decoded_length() -> None:
    value = base64.b64encode(bytes(32))
    check("aes", value, {"format": "base64"})
    check("aes", value, {"format": "base64", "bytes": 32})
    message = refused("aes", value, {"format": "base64", "bytes": 16})
    assert "16 bytes" in message
    refused("aes", b"not base64!", {"format": "base64"})
    refused("aes", b"", {"format": "base64"})


def test_hex_with_optional_decoded_length() -> None:
    check("salt", b"00ffAA10", {"format": "hex"})
    check("salt", b"00ffAA10", {"format": "hex", "bytes": 4})
    refused("salt", b"00ffAA10", {"format": "hex", "bytes": 8})
    refused("salt", b"abc", {"format": "hex"})
    refused("salt", b"zz", {"format": "hex"})


def test_json() -> None:
    check("config", b'{"a": [1, 2]}', {"format": "json"})
    refused("config", b"{a: 1}", {"format": "json"})


@pytest.mark.parametrize("url", [b"https://vault.example:8200/v1", b"postgresql://u:p@db:5432/app"])
def test_url_accepts_absolute_urls(url: bytes) -> None:
    check("endpoint", url, {"format": "url"})


@pytest.mark.parametrize(
    "url", [b"vault.example/v1", b"/relative/path", b"https://", b"http://a b", b"http://host:notaport"]
)
def test_url_refuses_what_is_not_an_absolute_url(url: bytes) -> None:
    refused("endpoint", url, {"format": "url"})


# --------------------------------------------------------------------------- keys


def test_private_keys_of_accepted_types_and_encodings(
    rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey, ed_key: ed25519.Ed25519PrivateKey
) -> None:
    rule = {"format": "pem-private-key"}
    check("key", _pem_key(rsa_key), rule)
    check("key", _pem_key(rsa_key, serialization.PrivateFormat.TraditionalOpenSSL), rule)  # PKCS#1
    check("key", _pem_key(ec_key), rule)
    check("key", _pem_key(ec_key, serialization.PrivateFormat.TraditionalOpenSSL), rule)  # SEC1
    check("key", _pem_key(ed_key), rule)


def test_a_small_rsa_key_is_refused() -> None:
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    message = refused("key", _pem_key(small), {"format": "pem-private-key"})
    assert "2048 bits" in message


def test_an_encrypted_private_key_is_refused(ec_key: ec.EllipticCurvePrivateKey) -> None:
    encrypted = ec_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase"),
    )
    assert "encrypted" in refused("key", encrypted, {"format": "pem-private-key"})


def test_a_dsa_key_is_refused() -> None:
    key = dsa.generate_private_key(key_size=2048)
    assert "RSA, EC or Ed25519" in refused("key", _pem_key(key), {"format": "pem-private-key"})


def test_garbage_and_public_keys_are_not_private_keys(ec_key: ec.EllipticCurvePrivateKey) -> None:
    refused(
        "key",
        b"-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n",
        {"format": "pem-private-key"},
    )
    refused("key", _pem_public(ec_key), {"format": "pem-private-key"})


def test_public_keys(rsa_key: rsa.RSAPrivateKey, ed_key: ed25519.Ed25519PrivateKey) -> None:
    check("pub", _pem_public(rsa_key), {"format": "pem-public-key"})
    check("pub", _pem_public(ed_key), {"format": "pem-public-key"})
    refused("pub", _pem_key(ed_key), {"format": "pem-public-key"})
    refused("pub", b"ssh-ed25519 AAAA", {"format": "pem-public-key"})


# --------------------------------------------------------------------------- certificates


def test_a_certificate_chain_parses(
    ec_key: ec.EllipticCurvePrivateKey, ed_key: ed25519.Ed25519PrivateKey
) -> None:
    chain = _certificate(ec_key, not_after=NOW + timedelta(days=90)) + _certificate(
        ed_key, not_after=NOW + timedelta(days=900), cn="ca"
    )
    check("tls.crt", chain, {"format": "pem-certificate"})
    check("tls.crt", chain, {"format": "pem-certificate", "notExpiredWithin": "72h"})


def test_not_a_certificate_is_refused(ec_key: ec.EllipticCurvePrivateKey) -> None:
    refused("tls.crt", b"hello", {"format": "pem-certificate"})
    refused("tls.crt", _pem_key(ec_key), {"format": "pem-certificate"})


@pytest.mark.parametrize("within", ["72h", "3d", "1h30m", "4320m", "259200s"])
def test_a_certificate_expiring_within_the_window_is_refused(
    ec_key: ec.EllipticCurvePrivateKey, within: str
) -> None:
    soon = _certificate(ec_key, not_after=NOW + timedelta(hours=1))
    message = refused("tls.crt", soon, {"format": "pem-certificate", "notExpiredWithin": within})
    assert "certificate 1 of 1 expires at" in message


def test_a_certificate_later_in_the_chain_is_checked_too(ec_key: ec.EllipticCurvePrivateKey) -> None:
    chain = _certificate(ec_key, not_after=NOW + timedelta(days=90)) + _certificate(
        ec_key, not_after=NOW + timedelta(hours=2), cn="ca"
    )
    message = refused("tls.crt", chain, {"format": "pem-certificate", "notExpiredWithin": "72h"})
    assert "certificate 2 of 2" in message


def test_an_expired_certificate_is_refused_only_when_expiry_is_checked(
    ec_key: ec.EllipticCurvePrivateKey,
) -> None:
    expired = _certificate(ec_key, not_after=NOW - timedelta(days=1))
    check("tls.crt", expired, {"format": "pem-certificate"})
    message = refused("tls.crt", expired, {"format": "pem-certificate", "notExpiredWithin": "0s"})
    assert "expired at" in message


@pytest.mark.parametrize("bad", ["72", "h", "1x", "", "72h "])
def test_a_bad_duration_is_a_spec_error(ec_key: ec.EllipticCurvePrivateKey, bad: str) -> None:
    certificate = _certificate(ec_key, not_after=NOW + timedelta(days=9))
    with pytest.raises(InvalidSpec):
        check("tls.crt", certificate, {"format": "pem-certificate", "notExpiredWithin": bad})


@pytest.mark.parametrize("kind", ["rsa", "ec", "ed25519"])
def test_certificate_matches_its_own_key(
    kind: str,
    rsa_key: rsa.RSAPrivateKey,
    ec_key: ec.EllipticCurvePrivateKey,
    ed_key: ed25519.Ed25519PrivateKey,
) -> None:
    key = {"rsa": rsa_key, "ec": ec_key, "ed25519": ed_key}[kind]
    certificate = _certificate(key, not_after=NOW + timedelta(days=30))
    rule = {"format": "certificate-matches-key", "key": "tls.key"}
    check("tls.crt", certificate, rule, **{"tls.key": _pem_key(key)})


def test_certificate_with_another_key_is_refused(
    ec_key: ec.EllipticCurvePrivateKey, ed_key: ed25519.Ed25519PrivateKey
) -> None:
    certificate = _certificate(ec_key, not_after=NOW + timedelta(days=30))
    rule = {"format": "certificate-matches-key", "key": "tls.key"}
    message = refused("tls.crt", certificate, rule, **{"tls.key": _pem_key(ed_key)})
    assert "does not match the private key in 'tls.key'" in message


def test_certificate_matches_key_names_a_missing_or_bad_key(ec_key: ec.EllipticCurvePrivateKey) -> None:
    certificate = _certificate(ec_key, not_after=NOW + timedelta(days=30))
    rule = {"format": "certificate-matches-key", "key": "tls.key"}
    assert "'tls.key' is not in the Secret" in refused("tls.crt", certificate, rule)
    assert "'tls.key' is not a PEM private key" in refused("tls.crt", certificate, rule, **{"tls.key": b"x"})


def test_certificate_matches_key_also_checks_expiry(ec_key: ec.EllipticCurvePrivateKey) -> None:
    certificate = _certificate(ec_key, not_after=NOW + timedelta(hours=1))
    rule = {"format": "certificate-matches-key", "key": "tls.key", "notExpiredWithin": "24h"}
    refused("tls.crt", certificate, rule, **{"tls.key": _pem_key(ec_key)})


def test_certificate_matches_key_without_a_key_is_a_spec_error(ec_key: ec.EllipticCurvePrivateKey) -> None:
    certificate = _certificate(ec_key, not_after=NOW + timedelta(days=30))
    with pytest.raises(InvalidSpec):
        check("tls.crt", certificate, {"format": "certificate-matches-key"})


# --------------------------------------------------------------------------- symmetric keys


def test_fernet_keys() -> None:
    check("fernet", Fernet.generate_key(), {"format": "fernet-key"})
    refused("fernet", base64.urlsafe_b64encode(bytes(16)), {"format": "fernet-key"})
    refused("fernet", Fernet.generate_key().rstrip(b"="), {"format": "fernet-key"})
    refused("fernet", base64.b64encode(b"\xfb" * 32), {"format": "fernet-key"})  # standard alphabet


def test_jwt_hs256_keys() -> None:
    check("jwt", b"k" * 32, {"format": "jwt-hs256-key"})
    assert "32 bytes" in refused("jwt", b"k" * 31, {"format": "jwt-hs256-key"})


# --------------------------------------------------------------------------- spec errors


@pytest.mark.parametrize("rule", [{}, {"format": "uuid"}, {"format": 3}])
def test_a_rule_without_a_known_format_is_a_spec_error(rule: dict[str, Any]) -> None:
    with pytest.raises(InvalidSpec) as caught:
        check("k", b"v", rule)
    assert caught.value.reason == "InvalidSpec"
    assert "'k'" in caught.value.message


def test_json_rule_values_as_they_come_from_the_crd() -> None:
    rule = json.loads('{"format": "min-length", "minLength": 3}')
    check("k", b"abc", rule)

"""Value generators: constraints honoured, impossible ones refused, material that parses."""

from __future__ import annotations

import base64
import binascii
import logging
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from rotor.rotation.errors import GeneratorError
from rotor.rotation.generators import DIGITS, LOWER, SYMBOLS, UPPER, generate, verify_generated

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
CLASSES = {"lower": LOWER, "upper": UPPER, "digits": DIGITS, "symbols": SYMBOLS}


@pytest.mark.parametrize(
    "params",
    [
        {"length": 12, "lower": 3, "upper": 3, "digits": 3, "symbols": 3},
        {"length": 4, "lower": 1, "upper": 1, "digits": 1, "symbols": 1},
        {"length": 32, "lower": 0, "upper": 0, "digits": 20, "symbols": 0},
        {"length": 20, "lower": 5, "upper": 5, "digits": 5, "symbols": 5, "exclude": "aeiouAEIOU01!#$"},
    ],
)
def test_password_minimums_and_exclusions_hold_on_200_samples(params):
    exclude = set(params.get("exclude", ""))
    for _ in range(200):
        value = generate("password", params, key="password", now=NOW)["password"].decode()
        assert len(value) == params["length"]
        assert not exclude & set(value)
        for name, alphabet in CLASSES.items():
            assert sum(c in alphabet for c in value) >= params[name], name
        assert set(value) <= set(LOWER + UPPER + DIGITS + SYMBOLS)


def test_password_defaults_and_values_differ():
    values = {generate("password", {}, key="p", now=NOW)["p"] for _ in range(50)}
    assert len(values) == 50
    assert all(len(v) == 32 for v in values)


def test_password_excluding_symbols_keeps_them_out():
    values = [generate("password", {"exclude": SYMBOLS}, key="p", now=NOW)["p"].decode() for _ in range(100)]
    assert not set("".join(values)) & set(SYMBOLS)


@pytest.mark.parametrize(
    ("params", "names"),
    [
        ({"length": 3, "lower": 1, "upper": 1, "digits": 1, "symbols": 1}, ["minimums", "length 3"]),
        ({"length": 10, "digits": 2, "exclude": DIGITS}, ["digits", "exclude"]),
        ({"length": 0}, ["length"]),
        (
            {"length": 8, "lower": 0, "upper": 0, "digits": 0, "exclude": LOWER + UPPER + DIGITS + SYMBOLS},
            ["exclude"],
        ),
        ({"length": "32"}, ["length", "integer"]),
        ({"lenght": 32}, ["unknown", "lenght"]),
        ({"symbols": -1}, ["symbols"]),
    ],
)
def test_password_impossible_constraints_are_refused_with_the_constraint_named(params, names):
    with pytest.raises(GeneratorError) as info:
        generate("password", params, key="p", now=NOW)
    assert info.value.reason == "Failed"
    for name in names:
        assert name in info.value.message


@pytest.mark.parametrize(
    ("encoding", "decode"),
    [("base64", base64.b64decode), ("base64url", base64.urlsafe_b64decode), ("hex", binascii.unhexlify)],
)
def test_random_bytes_encodings_decode_to_the_requested_length(encoding, decode):
    out = generate("randomBytes", {"length": 48, "encoding": encoding}, key="k", now=NOW)
    assert len(decode(out["k"])) == 48
    if encoding == "base64url":
        assert not set(out["k"].decode()) & set("+/")


def test_random_bytes_refuses_unknown_encoding():
    with pytest.raises(GeneratorError, match="encoding"):
        generate("randomBytes", {"encoding": "base32"}, key="k", now=NOW)


def test_api_key_has_prefix_and_alphanumeric_body():
    value = generate("apiKey", {"prefix": "sk_", "length": 40}, key="k", now=NOW)["k"].decode()
    assert value.startswith("sk_")
    body = value.removeprefix("sk_")
    assert len(body) == 40
    assert body.isalnum()


def _load_pair(out, key):
    private_key = serialization.load_pem_private_key(out[key], password=None)
    public_key = serialization.load_pem_public_key(out[f"{key}.pub"])
    assert out[key].startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS#8
    assert out[f"{key}.pub"].startswith(b"-----BEGIN PUBLIC KEY-----")  # SubjectPublicKeyInfo
    der = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    assert private_key.public_key().public_bytes(*der) == public_key.public_bytes(*der)
    return private_key


@pytest.mark.parametrize("bits", [2048, 3072])
def test_rsa_key_pair_parses_and_matches(bits):
    private_key = _load_pair(generate("rsaKeyPair", {"bits": bits}, key="jwt", now=NOW), "jwt")
    assert isinstance(private_key, rsa.RSAPrivateKey)
    assert private_key.key_size == bits


def test_rsa_refuses_weak_keys():
    with pytest.raises(GeneratorError, match="bits"):
        generate("rsaKeyPair", {"bits": 1024}, key="k", now=NOW)


@pytest.mark.parametrize(
    ("curve", "name"), [("P-256", "secp256r1"), ("P-384", "secp384r1"), ("P-521", "secp521r1")]
)
def test_ec_key_pair_uses_the_curve(curve, name):
    private_key = _load_pair(generate("ecKeyPair", {"curve": curve}, key="ec", now=NOW), "ec")
    assert isinstance(private_key, ec.EllipticCurvePrivateKey)
    assert private_key.curve.name == name


def test_ed25519_key_pair():
    out = generate("ed25519KeyPair", {}, key="sign", now=NOW)
    assert sorted(out) == ["sign", "sign.pub"]
    assert isinstance(_load_pair(out, "sign"), ed25519.Ed25519PrivateKey)


def test_fernet_key_encrypts_and_decrypts():
    key = generate("fernetKey", {}, key="k", now=NOW)["k"]
    f = Fernet(key)
    assert f.decrypt(f.encrypt(b"hello")) == b"hello"


@pytest.mark.parametrize("algorithm", ["RSA-2048", "ECDSA-P256", "ECDSA-P384", "Ed25519"])
def test_self_signed_certificate_names_validity_and_key(algorithm):
    params = {
        "commonName": "api.example.com",
        "dnsNames": ["api.example.com", "api.internal"],
        "duration": "720h",
        "keyAlgorithm": algorithm,
    }
    out = generate("selfSignedCertificate", params, key="tls.crt", now=NOW)
    assert sorted(out) == ["tls.crt", "tls.key"]
    cert = x509.load_pem_x509_certificate(out["tls.crt"])
    key = serialization.load_pem_private_key(out["tls.key"], password=None)
    der = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    assert cert.public_key().public_bytes(*der) == key.public_key().public_bytes(*der)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["api.example.com", "api.internal"]
    assert cert.subject.rfc4514_string() == "CN=api.example.com"
    assert cert.not_valid_before_utc == NOW - timedelta(minutes=5)
    assert cert.not_valid_after_utc == NOW + timedelta(hours=720)
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False


@pytest.mark.parametrize(
    ("key", "names"), [("tls.crt", ["tls.crt", "tls.key"]), ("cert", ["cert", "cert.key"])]
)
def test_self_signed_certificate_key_names(key, names):
    out = generate("selfSignedCertificate", {"dnsNames": ["a.example"]}, key=key, now=NOW)
    assert sorted(out) == names
    cert = x509.load_pem_x509_certificate(out[key])
    assert cert.subject.rfc4514_string() == "CN=a.example"  # commonName defaults to the first DNS name


@pytest.mark.parametrize(
    ("params", "word"),
    [
        ({}, "commonName"),
        ({"commonName": "x", "duration": "0s"}, "duration"),
        ({"commonName": "x", "keyAlgorithm": "DSA"}, "keyAlgorithm"),
        ({"commonName": "x", "dnsNames": "a.example"}, "dnsNames"),
    ],
)
def test_self_signed_certificate_refuses_bad_params(params, word):
    with pytest.raises(GeneratorError, match=word):
        generate("selfSignedCertificate", params, key="tls.crt", now=NOW)


def test_vault_pki_is_not_generated_locally():
    with pytest.raises(GeneratorError, match="Vault"):
        generate("vaultPKI", {"role": "web", "commonName": "a"}, key="tls.crt", now=NOW)


def test_unknown_generator_is_refused():
    with pytest.raises(GeneratorError, match="unknown generator"):
        generate("uuid", {}, key="k", now=NOW)


def test_naive_clock_is_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        generate("password", {}, key="k", now=datetime(2024, 1, 1))


def test_verify_detects_a_public_key_that_does_not_match():
    a = generate("ecKeyPair", {}, key="k", now=NOW)
    b = generate("ecKeyPair", {}, key="k", now=NOW)
    with pytest.raises(GeneratorError, match="self-check"):
        verify_generated("ecKeyPair", {"k": a["k"], "k.pub": b["k.pub"]})


def test_verify_detects_a_certificate_for_another_key():
    a = generate("selfSignedCertificate", {"commonName": "a"}, key="tls.crt", now=NOW)
    b = generate("selfSignedCertificate", {"commonName": "a"}, key="tls.crt", now=NOW)
    with pytest.raises(GeneratorError, match="self-check") as info:
        verify_generated("selfSignedCertificate", {"tls.crt": a["tls.crt"], "tls.key": b["tls.key"]})
    assert b"PRIVATE" not in str(info.value).encode()
    assert info.value.__cause__ is None


def test_generated_values_never_show_in_repr_str_logs_or_errors(caplog):
    caplog.set_level(logging.DEBUG)
    outputs = [
        generate("password", {}, key="password", now=NOW),
        generate("apiKey", {"prefix": "sk_"}, key="token", now=NOW),
        generate("selfSignedCertificate", {"commonName": "a"}, key="tls.crt", now=NOW),
    ]
    bad = dict(outputs[2])
    bad["tls.key"] = outputs[2]["tls.key"][:-40]  # truncated key: self-check fails
    with pytest.raises(GeneratorError) as info:
        verify_generated("selfSignedCertificate", bad)
    logging.getLogger("test").info("generated %s and %r", outputs[0], outputs[1])
    shown = " ".join(
        [repr(o) + str(o) + f"{o}" for o in outputs] + [str(info.value), repr(info.value), caplog.text]
    )
    for out in outputs:
        for value in out.values():
            for line in value.decode().splitlines():
                if "-----" not in line:
                    assert line not in shown
    assert "password" in repr(outputs[0])  # the key names do show


def test_password_class_with_zero_count_is_left_out() -> None:
    from datetime import UTC, datetime

    from rotor.rotation.generators import SYMBOLS, generate

    for _ in range(50):
        value = generate(
            "password", {"length": 40, "symbols": 0, "digits": 0}, key="pw", now=datetime.now(UTC)
        )["pw"]
        assert not set(value.decode()) & set(SYMBOLS)
        assert not any(ch.isdigit() for ch in value.decode())

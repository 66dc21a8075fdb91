"""Value generators for the Generate strategy: passwords, random bytes, API keys, key pairs, Fernet
keys and self-signed certificates.

``generate(kind, params, key=..., now=...)`` returns the new Secret keys and their values, after
parsing the material back (``verify_generated``). Parameters use the CRD's camelCase names. Errors
are ``GeneratorError`` whose message names the parameter at fault and never contains a value; the
result's ``repr``/``str`` shows key names only.
"""

from __future__ import annotations

import base64
import secrets
import string
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from rotor.rotation.durations import parse_duration
from rotor.rotation.errors import GeneratorError

LOWER = string.ascii_lowercase
UPPER = string.ascii_uppercase
DIGITS = string.digits
SYMBOLS = "!#$%&()*+,-./:;<=>?@[]^_{|}~"
ALPHANUMERIC = LOWER + UPPER + DIGITS

#: Certificates are back-dated by this much to tolerate clock skew between machines.
CERTIFICATE_BACKDATE = timedelta(minutes=5)

MAX_LENGTH = 4096
RSA_BITS = (2048, 3072, 4096)
EC_CURVES: dict[str, type[ec.EllipticCurve]] = {
    "P-256": ec.SECP256R1,
    "P-384": ec.SECP384R1,
    "P-521": ec.SECP521R1,
}
KEY_ALGORITHMS = ("RSA-2048", "RSA-3072", "ECDSA-P256", "ECDSA-P384", "Ed25519")
ENCODINGS = ("base64", "base64url", "hex")

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


class GeneratedData(dict[str, bytes]):
    """Generated Secret keys and values. Printing it shows the key names, never the values."""

    def __repr__(self) -> str:
        return f"GeneratedData(keys={sorted(self)!r})"

    __str__ = __repr__


# --------------------------------------------------------------------------- parameter parsing


class _Params:
    """Reads one generator's parameters, refusing unknown names and wrong types."""

    def __init__(self, kind: str, params: Mapping[str, Any] | None, allowed: tuple[str, ...]) -> None:
        self.kind = kind
        self.params: Mapping[str, Any] = params or {}
        if not isinstance(self.params, Mapping):
            raise GeneratorError(f"generator {kind}: parameters must be a mapping")
        unknown = sorted(set(self.params) - set(allowed))
        if unknown:
            raise GeneratorError(
                f"generator {kind}: unknown field(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}"
            )

    def integer(self, name: str, default: int, *, low: int, high: int) -> int:
        value = self.params.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise GeneratorError(f"generator {self.kind}: {name} must be an integer")
        if not low <= value <= high:
            raise GeneratorError(
                f"generator {self.kind}: {name} must be between {low} and {high}, got {value}"
            )
        return value

    def text(self, name: str, default: str | None) -> str | None:
        value = self.params.get(name, default)
        if value is not None and not isinstance(value, str):
            raise GeneratorError(f"generator {self.kind}: {name} must be a string")
        return value

    def choice(self, name: str, default: str, options: tuple[str, ...]) -> str:
        value = self.text(name, default)
        if value not in options:
            raise GeneratorError(f"generator {self.kind}: {name} must be one of {', '.join(options)}")
        return value

    def duration(self, name: str, default: str) -> timedelta:
        raw = self.params.get(name, default)
        try:
            value = parse_duration(raw)
        except ValueError as exc:
            raise GeneratorError(f"generator {self.kind}: {name}: {exc}") from None
        if value <= timedelta(0):
            raise GeneratorError(f"generator {self.kind}: {name} must be longer than 0s")
        return value

    def strings(self, name: str) -> list[str]:
        value = self.params.get(name, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise GeneratorError(f"generator {self.kind}: {name} must be a list of non-empty strings")
        return list(value)


@dataclass(frozen=True)
class PasswordRules:
    length: int
    minimums: tuple[tuple[str, str, int], ...]  # (class name, alphabet after exclusions, minimum)

    @property
    def pool(self) -> str:
        return "".join(alphabet for _, alphabet, _ in self.minimums)


def _password_rules(params: Mapping[str, Any] | None) -> PasswordRules:
    p = _Params("password", params, ("length", "lower", "upper", "digits", "symbols", "exclude"))
    length = p.integer("length", 32, low=1, high=MAX_LENGTH)
    exclude = set(p.text("exclude", "") or "")
    classes: list[tuple[str, str, int]] = []
    for name, alphabet, default in (
        ("lower", LOWER, 1),
        ("upper", UPPER, 1),
        ("digits", DIGITS, 1),
        ("symbols", SYMBOLS, 0),
    ):
        minimum = p.integer(name, default, low=0, high=MAX_LENGTH)
        # a count of 0 leaves the class out entirely (symbols: 0 means no symbols)
        allowed = "".join(c for c in alphabet if c not in exclude) if minimum > 0 else ""
        if minimum > 0 and not allowed:
            raise GeneratorError(
                f"generator password: {name} requires at least {minimum}, "
                f"but exclude removes every {name} character"
            )
        classes.append((name, allowed, minimum))
    required = sum(m for _, _, m in classes)
    if required > length:
        raise GeneratorError(
            f"generator password: the minimums (lower+upper+digits+symbols = {required}) "
            f"exceed length {length}"
        )
    rules = PasswordRules(length=length, minimums=tuple(classes))
    if not rules.pool:
        raise GeneratorError("generator password: exclude removes every allowed character")
    return rules


@dataclass(frozen=True)
class CertificateRequest:
    common_name: str
    dns_names: tuple[str, ...]
    duration: timedelta
    key_algorithm: str


def _certificate_request(params: Mapping[str, Any] | None) -> CertificateRequest:
    p = _Params("selfSignedCertificate", params, ("commonName", "dnsNames", "duration", "keyAlgorithm"))
    dns_names = p.strings("dnsNames")
    common_name = p.text("commonName", None) or (dns_names[0] if dns_names else None)
    if not common_name:
        raise GeneratorError("generator selfSignedCertificate: set commonName or at least one of dnsNames")
    if len(common_name) > 64:
        raise GeneratorError("generator selfSignedCertificate: commonName must be at most 64 characters")
    for name in (common_name, *dns_names):
        if not name.isascii():
            raise GeneratorError(
                "generator selfSignedCertificate: names must be ASCII (use the IDNA/punycode form)"
            )
    return CertificateRequest(
        common_name=common_name,
        dns_names=tuple(dns_names),
        duration=p.duration("duration", "2160h"),
        key_algorithm=p.choice("keyAlgorithm", "ECDSA-P256", KEY_ALGORITHMS),
    )


def _check_vault_pki(params: Mapping[str, Any] | None) -> None:
    p = _Params("vaultPKI", params, ("mount", "role", "commonName", "altNames", "ttl"))
    if not p.text("role", None):
        raise GeneratorError("generator vaultPKI: role is required")
    if not p.text("commonName", None):
        raise GeneratorError("generator vaultPKI: commonName is required")
    p.text("mount", "pki")
    p.strings("altNames")
    if "ttl" in p.params:
        p.duration("ttl", "720h")


def _random_bytes_params(params: Mapping[str, Any] | None) -> tuple[int, str]:
    p = _Params("randomBytes", params, ("length", "encoding"))
    return p.integer("length", 32, low=1, high=MAX_LENGTH), p.choice("encoding", "base64", ENCODINGS)


def _api_key_params(params: Mapping[str, Any] | None) -> tuple[str, int]:
    p = _Params("apiKey", params, ("prefix", "length"))
    prefix = p.text("prefix", "") or ""
    if not prefix.isascii() or any(c.isspace() for c in prefix):
        raise GeneratorError("generator apiKey: prefix must be ASCII without spaces")
    return prefix, p.integer("length", 40, low=1, high=MAX_LENGTH)


def _rsa_bits(params: Mapping[str, Any] | None) -> int:
    p = _Params("rsaKeyPair", params, ("bits",))
    bits = p.integer("bits", 3072, low=2048, high=4096)
    if bits not in RSA_BITS:
        raise GeneratorError(f"generator rsaKeyPair: bits must be one of {', '.join(map(str, RSA_BITS))}")
    return bits


def _ec_curve(params: Mapping[str, Any] | None) -> str:
    return _Params("ecKeyPair", params, ("curve",)).choice("curve", "P-256", tuple(EC_CURVES))


def _no_params(kind: str) -> Callable[[Mapping[str, Any] | None], object]:
    return lambda params: _Params(kind, params, ())


_PARAM_CHECKS: dict[str, Callable[[Mapping[str, Any] | None], object]] = {
    "password": _password_rules,
    "randomBytes": _random_bytes_params,
    "apiKey": _api_key_params,
    "rsaKeyPair": _rsa_bits,
    "ecKeyPair": _ec_curve,
    "ed25519KeyPair": _no_params("ed25519KeyPair"),
    "fernetKey": _no_params("fernetKey"),
    "selfSignedCertificate": _certificate_request,
    "vaultPKI": _check_vault_pki,
}


def check_params(kind: str, params: Mapping[str, Any] | None) -> None:
    """Validate a generator's parameters without generating anything. Raises ``GeneratorError``."""
    if kind not in _PARAM_CHECKS:
        raise GeneratorError(f"unknown generator {kind!r}; known: {', '.join(_PARAM_CHECKS)}")
    _PARAM_CHECKS[kind](params)


# --------------------------------------------------------------------------- generators


def _password(params: Mapping[str, Any] | None, key: str, now: datetime) -> dict[str, bytes]:
    rules = _password_rules(params)
    chars = [secrets.choice(alphabet) for _, alphabet, minimum in rules.minimums for _ in range(minimum)]
    pool = rules.pool
    chars += [secrets.choice(pool) for _ in range(rules.length - len(chars))]
    secrets.SystemRandom().shuffle(chars)
    return {key: "".join(chars).encode("ascii")}


def _random_bytes(params: Mapping[str, Any] | None, key: str, now: datetime) -> dict[str, bytes]:
    length, encoding = _random_bytes_params(params)
    raw = secrets.token_bytes(length)
    encoders: dict[str, Callable[[bytes], bytes]] = {
        "base64": base64.b64encode,
        "base64url": base64.urlsafe_b64encode,
        "hex": lambda b: b.hex().encode("ascii"),
    }
    return {key: encoders[encoding](raw)}


def _api_key(params: Mapping[str, Any] | None, key: str, now: datetime) -> dict[str, bytes]:
    prefix, length = _api_key_params(params)
    body = "".join(secrets.choice(ALPHANUMERIC) for _ in range(length))
    return {key: (prefix + body).encode("ascii")}


def _private_pem(private_key: PrivateKey) -> bytes:
    return private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _public_pem(private_key: PrivateKey) -> bytes:
    return private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _key_pair(key: str, private_key: PrivateKey) -> dict[str, bytes]:
    return {key: _private_pem(private_key), f"{key}.pub": _public_pem(private_key)}


def _rsa_key_pair(params: Mapping[str, Any] | None, key: str, now: datetime) -> dict[str, bytes]:
    return _key_pair(key, rsa.generate_private_key(public_exponent=65537, key_size=_rsa_bits(params)))


def _ec_key_pair(params: Mapping[str, Any] | None, key: str, now: datetime) -> dict[str, bytes]:
    return _key_pair(key, ec.generate_private_key(EC_CURVES[_ec_curve(params)]()))


def _ed25519_key_pair(params: Mapping[str, Any] | None, key: str, now: datetime) -> dict[str, bytes]:
    _Params("ed25519KeyPair", params, ())
    return _key_pair(key, ed25519.Ed25519PrivateKey.generate())


def _fernet_key(params: Mapping[str, Any] | None, key: str, now: datetime) -> dict[str, bytes]:
    _Params("fernetKey", params, ())
    return {key: Fernet.generate_key()}


def _new_private_key(algorithm: str) -> PrivateKey:
    if algorithm == "RSA-2048":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if algorithm == "RSA-3072":
        return rsa.generate_private_key(public_exponent=65537, key_size=3072)
    if algorithm == "ECDSA-P256":
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm == "ECDSA-P384":
        return ec.generate_private_key(ec.SECP384R1())
    return ed25519.Ed25519PrivateKey.generate()


def certificate_key_name(key: str) -> str:
    """Where the private key of a certificate written to ``key`` goes: ``tls.crt`` -> ``tls.key``,
    anything else -> ``<key>.key``."""
    return key.removesuffix(".crt") + ".key" if key.endswith(".crt") else f"{key}.key"


def _self_signed_certificate(params: Mapping[str, Any] | None, key: str, now: datetime) -> dict[str, bytes]:
    request = _certificate_request(params)
    private_key = _new_private_key(request.key_algorithm)
    public_key = private_key.public_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, request.common_name)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CERTIFICATE_BACKDATE)
        .not_valid_after(now + request.duration)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=isinstance(private_key, rsa.RSAPrivateKey),
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )
    if request.dns_names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in request.dns_names]), critical=False
        )
    algorithm = None if isinstance(private_key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    try:
        certificate = builder.sign(private_key, algorithm)
    except ValueError:
        raise GeneratorError("generator selfSignedCertificate: the certificate could not be signed") from None
    return {
        key: certificate.public_bytes(serialization.Encoding.PEM),
        certificate_key_name(key): _private_pem(private_key),
    }


def _vault_pki(params: Mapping[str, Any] | None, key: str, now: datetime) -> dict[str, bytes]:
    raise GeneratorError(
        "generator vaultPKI: certificates are issued by Vault (pki/issue) through the store, "
        "not generated locally"
    )


_GENERATORS: dict[str, Callable[[Mapping[str, Any] | None, str, datetime], dict[str, bytes]]] = {
    "password": _password,
    "randomBytes": _random_bytes,
    "apiKey": _api_key,
    "rsaKeyPair": _rsa_key_pair,
    "ecKeyPair": _ec_key_pair,
    "ed25519KeyPair": _ed25519_key_pair,
    "fernetKey": _fernet_key,
    "selfSignedCertificate": _self_signed_certificate,
    "vaultPKI": _vault_pki,
}
GENERATOR_KINDS: tuple[str, ...] = tuple(_GENERATORS)
#: Kinds Rotor generates itself (vaultPKI is issued by Vault).
LOCAL_GENERATOR_KINDS: tuple[str, ...] = tuple(k for k in _GENERATORS if k != "vaultPKI")


def generate(kind: str, params: Mapping[str, Any] | None, *, key: str, now: datetime) -> GeneratedData:
    """Generate a new value for the Secret key ``key`` and check it by parsing it back.

    Returns every key written: ``key`` itself, plus ``<key>.pub`` for key pairs and the private key
    (``tls.crt`` -> ``tls.key``, otherwise ``<key>.key``) for certificates.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if kind not in _GENERATORS:
        raise GeneratorError(f"unknown generator {kind!r}; known: {', '.join(GENERATOR_KINDS)}")
    output = GeneratedData(_GENERATORS[kind](params, key, now))
    verify_generated(kind, output)
    return output


# --------------------------------------------------------------------------- self-check


def _pem_blocks(output: Mapping[str, bytes], marker: bytes) -> Iterator[bytes]:
    return (
        value for value in output.values() if value.lstrip().startswith(b"-----BEGIN " + marker + b"-----")
    )


def _only(output: Mapping[str, bytes], marker: bytes) -> bytes:
    blocks = list(_pem_blocks(output, marker))
    if len(blocks) != 1:
        raise ValueError("expected exactly one PEM block of this type")
    return blocks[0]


def _spki(public_key: Any) -> bytes:
    der: bytes = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return der


def _verify(kind: str, output: Mapping[str, bytes]) -> None:
    if not output or not all(isinstance(v, bytes) and v for v in output.values()):
        raise ValueError("empty output")
    if kind in ("rsaKeyPair", "ecKeyPair", "ed25519KeyPair"):
        private_key = serialization.load_pem_private_key(_only(output, b"PRIVATE KEY"), password=None)
        public_key = serialization.load_pem_public_key(_only(output, b"PUBLIC KEY"))
        if _spki(private_key.public_key()) != _spki(public_key):
            raise ValueError("public key does not match private key")
    elif kind == "selfSignedCertificate":
        certificate = x509.load_pem_x509_certificate(_only(output, b"CERTIFICATE"))
        private_key = serialization.load_pem_private_key(_only(output, b"PRIVATE KEY"), password=None)
        if _spki(certificate.public_key()) != _spki(private_key.public_key()):
            raise ValueError("certificate does not match private key")
        certificate.verify_directly_issued_by(certificate)
    elif kind == "fernetKey":
        for value in output.values():
            Fernet(value)
    else:
        for value in output.values():
            value.decode("ascii")


def verify_generated(kind: str, output: Mapping[str, bytes]) -> None:
    """Parse generated material back: keys load, public halves and certificates match their
    private keys. Raises ``GeneratorError`` (never quoting the material)."""
    try:
        _verify(kind, output)
    except Exception:
        raise GeneratorError(f"generator {kind}: the generated material failed its self-check") from None

"""``validate`` rules of DESIGN §4: refuse to materialise a value that is not what it must be.

A failure raises ValidationFailed naming the Secret key and the rule, never the value (nor its
length). A rule that cannot be applied as written raises InvalidSpec.
"""

from __future__ import annotations

import functools
import json
import re
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from rotor.patterns import PatternInvalid, PatternTooSlow, compile_pattern, matches
from rotor.values.decode import strict_b64decode
from rotor.values.errors import InvalidSpec, ValidationFailed
from rotor.values.properties import quote_name

MIN_RSA_BITS = 2048
JWT_HS256_MIN_BYTES = 32
FERNET_KEY_BYTES = 32


@dataclass(frozen=True)
class _Check:
    key: str
    value: bytes
    rule: Mapping[str, Any]
    all_values: Mapping[str, bytes]
    now: datetime


#: a check returns None when the value passes, else what is wrong, in words without the value
_Checker = Callable[[_Check], str | None]


def validate_value(
    key: str, value: bytes, rule: Mapping[str, Any], *, all_values: Mapping[str, bytes], now: datetime
) -> None:
    """Check ``value`` (of Secret key ``key``) against ``rule`` (a ``validate`` block, camelCase).

    ``all_values`` holds every key of the Secret, for rules that compare keys
    (``certificate-matches-key``). ``now`` is the time certificates are judged at.
    """
    rule_format = rule.get("format")
    if not isinstance(rule_format, str):
        raise InvalidSpec(f"key {quote_name(key)}: validate needs a format")
    checker = FORMATS.get(rule_format)
    if checker is None:
        raise InvalidSpec(
            f"key {quote_name(key)}: unknown validate format {quote_name(rule_format)}; "
            f"known formats: {', '.join(sorted(FORMATS))}"
        )
    check = _Check(key=key, value=value, rule=rule, all_values=all_values, now=now)
    problem = checker(check)
    if problem is None and rule_format != "min-length" and "minLength" in rule:
        problem = _min_length(check)
    if problem is not None:
        raise ValidationFailed(f"key {quote_name(key)} failed validation {rule_format}: {problem}")


def validate_all(
    key: str,
    value: bytes,
    rules: Sequence[Mapping[str, Any]],
    *,
    all_values: Mapping[str, bytes],
    now: datetime,
) -> None:
    """Apply ``rules`` (a ``validations`` list, or one ``validate`` block) in order; the first that
    fails raises. With more than one rule, the message says which one by its format and place
    (``rule 2 of 2``), so two checks of the same format can be told apart."""
    for place, rule in enumerate(rules, start=1):
        try:
            validate_value(key, value, rule, all_values=all_values, now=now)
        except ValidationFailed as err:
            if len(rules) == 1:
                raise
            raise ValidationFailed(f"{err.message} (rule {place} of {len(rules)})") from None


# --------------------------------------------------------------------------- text formats


def _min_length(check: _Check) -> str | None:
    required = _int_option(check, "minLength", required=True)
    if _text_length(check.value) < required:
        return f"shorter than the required {required} characters"
    return None


def _regex(check: _Check) -> str | None:
    pattern = check.rule.get("pattern")
    if not isinstance(pattern, str):
        raise InvalidSpec(f"key {quote_name(check.key)}: validate format regex needs a pattern")
    try:
        compiled = compile_pattern(pattern)
    except PatternInvalid:
        raise InvalidSpec(
            f"key {quote_name(check.key)}: validate pattern is not a valid regular expression"
        ) from None
    text = _utf8(check.value)
    if text is None:
        return "not UTF-8 text"
    try:
        if not matches(compiled, text, full=True):
            return "does not match the pattern (the whole value must match)"
    except PatternTooSlow:
        return "the pattern takes too long to match (catastrophic backtracking); simplify it"
    return None


def _base64(check: _Check) -> str | None:
    decoded = strict_b64decode(check.value)
    if decoded is None or not check.value:
        return "not valid base64"
    return _decoded_length(check, decoded)


def _hex(check: _Check) -> str | None:
    if not check.value or len(check.value) % 2 or not all(c in _HEX_DIGITS for c in check.value):
        return "not an even number of hexadecimal digits"
    return _decoded_length(check, bytes.fromhex(check.value.decode("ascii")))


def _json(check: _Check) -> str | None:
    try:
        json.loads(check.value)
    except ValueError:
        return "not valid JSON"
    return None


def _url(check: _Check) -> str | None:
    text = _utf8(check.value)
    if text is None or any(c.isspace() or not c.isprintable() for c in text):
        return "not a URL (it holds whitespace, control characters or non-UTF-8 bytes)"
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        return "not a valid URL"
    if not parts.scheme or not parts.netloc:
        return "not an absolute URL with a scheme and a host"
    return None


# --------------------------------------------------------------------------- keys and certificates


def _pem_private_key(check: _Check) -> str | None:
    key_or_problem = _load_private_key(check.value)
    if isinstance(key_or_problem, str):
        return key_or_problem
    return None


def _pem_public_key(check: _Check) -> str | None:
    try:
        serialization.load_pem_public_key(check.value)
    except (ValueError, TypeError):
        return "not a PEM public key"
    except Exception:  # cryptography may raise its own errors for unsupported algorithms
        return "not a supported PEM public key"
    return None


def _pem_certificate(check: _Check) -> str | None:
    certificates = _load_certificates(check.value)
    if isinstance(certificates, str):
        return certificates
    return _expiry_problem(check, certificates)


def _certificate_matches_key(check: _Check) -> str | None:
    other = check.rule.get("key")
    if not isinstance(other, str) or not other:
        raise InvalidSpec(
            f"key {quote_name(check.key)}: validate format certificate-matches-key needs key, "
            "the Secret key that holds the private key"
        )
    certificates = _load_certificates(check.value)
    if isinstance(certificates, str):
        return certificates
    if other not in check.all_values:
        return f"key {quote_name(other)} is not in the Secret"
    private_key = _load_private_key(check.all_values[other])
    if isinstance(private_key, str):
        return f"key {quote_name(other)} is {private_key}"
    if _spki(certificates[0].public_key()) != _spki(private_key.public_key()):
        return f"the certificate's public key does not match the private key in {quote_name(other)}"
    return _expiry_problem(check, certificates)


# --------------------------------------------------------------------------- symmetric keys


def _fernet_key(check: _Check) -> str | None:
    value = check.value
    if len(value) != 44 or not value.endswith(b"=") or b"+" in value or b"/" in value:
        return "not 32 bytes in URL-safe base64 (44 characters, as Fernet.generate_key() makes)"
    decoded = strict_b64decode(value)
    if decoded is None or len(decoded) != FERNET_KEY_BYTES:
        return "not 32 bytes in URL-safe base64 (44 characters, as Fernet.generate_key() makes)"
    return None


def _jwt_hs256_key(check: _Check) -> str | None:
    if len(check.value) < JWT_HS256_MIN_BYTES:
        return f"shorter than the required {JWT_HS256_MIN_BYTES} bytes"
    return None


FORMATS: dict[str, _Checker] = {
    "min-length": _min_length,
    "regex": _regex,
    "base64": _base64,
    "hex": _hex,
    "json": _json,
    "url": _url,
    "pem-private-key": _pem_private_key,
    "pem-public-key": _pem_public_key,
    "pem-certificate": _pem_certificate,
    "certificate-matches-key": _certificate_matches_key,
    "fernet-key": _fernet_key,
    "jwt-hs256-key": _jwt_hs256_key,
}


# --------------------------------------------------------------------------- shared pieces

_HEX_DIGITS = frozenset(string.hexdigits.encode("ascii"))

_PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


def _load_private_key(value: bytes) -> _PrivateKey | str:
    """The key, or what is wrong with it."""
    try:
        key = serialization.load_pem_private_key(value, password=None)
    except TypeError:
        return "an encrypted private key; an unencrypted one is required"
    except ValueError:
        return "not a PEM private key (PKCS#1, PKCS#8 or SEC1)"
    except Exception:  # cryptography may raise its own errors for unsupported algorithms
        return "not a supported PEM private key"
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < MIN_RSA_BITS:
            return f"an RSA key smaller than the required {MIN_RSA_BITS} bits"
        return key
    if isinstance(key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
        return key
    return "a private key of a type that is not accepted (use RSA, EC or Ed25519)"


def _load_certificates(value: bytes) -> list[x509.Certificate] | str:
    try:
        certificates = x509.load_pem_x509_certificates(value)
    except ValueError:
        return "not PEM certificates"
    except Exception:  # cryptography may raise its own errors for unsupported content
        return "not supported PEM certificates"
    if not certificates:
        return "not PEM certificates"
    return certificates


def _expiry_problem(check: _Check, certificates: list[x509.Certificate]) -> str | None:
    within_text = check.rule.get("notExpiredWithin")
    if within_text is None:
        return None
    if not isinstance(within_text, str):
        raise InvalidSpec(f"key {quote_name(check.key)}: notExpiredWithin must be a duration like 72h")
    within = _parse_duration(within_text, key=check.key)
    deadline = check.now + within
    for index, certificate in enumerate(certificates, start=1):
        not_after = certificate.not_valid_after_utc
        if not_after <= check.now:
            return f"certificate {index} of {len(certificates)} expired at {not_after.isoformat()}"
        if not_after < deadline:
            return (
                f"certificate {index} of {len(certificates)} expires at {not_after.isoformat()}, "
                f"within {within_text}"
            )
    return None


def _spki(public_key: Any) -> bytes:
    return bytes(
        public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def _decoded_length(check: _Check, decoded: bytes) -> str | None:
    if "bytes" not in check.rule:
        return None
    required = _int_option(check, "bytes", required=True)
    if len(decoded) != required:
        return f"does not decode to exactly {required} bytes"
    return None


def _int_option(check: _Check, name: str, *, required: bool) -> int:
    option = check.rule.get(name)
    if isinstance(option, bool) or not isinstance(option, int) or option < 0:
        if required:
            raise InvalidSpec(
                f"key {quote_name(check.key)}: validate format {check.rule.get('format')} "
                f"needs {name} as a whole number of at least 0"
            )
        return 0
    return option


def _text_length(value: bytes) -> int:
    text = _utf8(value)
    return len(value) if text is None else len(text)


def _utf8(value: bytes) -> str | None:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return None


@functools.lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except re.error:
        return None


def _compile_pattern(pattern: str, key: str) -> re.Pattern[str]:
    compiled = _compiled(pattern)
    if compiled is None:
        raise InvalidSpec(f"key {quote_name(key)}: validate pattern is not a valid regular expression")
    return compiled


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_DURATION_UNITS = {
    "ms": timedelta(milliseconds=1),
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
}


def _parse_duration(text: str, *, key: str) -> timedelta:
    """``72h``, ``30m``, ``1h30m``, ``10s``, ``3d``, ``1.5h``. (Private: the API package owns the
    shared parser; this one only serves ``notExpiredWithin``.)"""
    position, total = 0, timedelta()
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        position = match.end()
    if not text or position != len(text):
        raise InvalidSpec(
            f"key {quote_name(key)}: notExpiredWithin {quote_name(text)} is not a duration like 72h or 1h30m"
        )
    return total

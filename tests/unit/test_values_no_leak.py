"""No secret value ever appears in an error raised by the value pipeline (DESIGN §7)."""

from __future__ import annotations

import string
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from rotor.values import (
    TooLarge,
    ValueFailure,
    check_secret_size,
    decode,
    extract_property,
    flatten_map,
    render_templates,
    validate_value,
)
from rotor.values.errors import TemplateError
from rotor.values.template import _TYPE_NAMES

NOW = datetime(2030, 1, 1, tzinfo=UTC)

#: Secrets start with a mark no message text contains, so one found in a message was leaked, not
#: spelled by chance ("Property" is a fine random string, and also a word of a message).
MARK = "\u00a7"
secrets = st.text(
    alphabet=string.ascii_letters + string.digits + "!@#$%^&*()-_=+[]{};:,.<>/?|~ '\"\\",
    min_size=8,
    max_size=40,
).map(lambda text: MARK + text)
binary_secrets = st.binary(min_size=8, max_size=40).map(lambda raw: MARK.encode() + raw)

RULES: list[dict[str, Any]] = [
    {"format": "min-length", "minLength": 1000},
    {"format": "regex", "pattern": "[0-9]{1000}"},
    {"format": "base64", "bytes": 7},
    {"format": "hex"},
    {"format": "json"},
    {"format": "url"},
    {"format": "pem-private-key"},
    {"format": "pem-public-key"},
    {"format": "pem-certificate", "notExpiredWithin": "72h"},
    {"format": "certificate-matches-key", "key": "other"},
    {"format": "fernet-key"},
    {"format": "jwt-hs256-key"},
]

#: templates that fail at run time in many different ways, most of them touching the value
FAILING_TEMPLATES = [
    "{{ values[secret] }}",
    "{{ values[secret[1:]] }}",
    "{{ secret.nope }}",
    "{{ secret + 1 }}",
    "{{ secret | int + [] }}",
    "{{ (secret ~ '}') | fromjson }}",
    "{{ (secret ~ '!') | b64dec }}",
    "{{ (secret ~ 'é').encode('ascii') }}",
    "{{ secret.decode() }}",
    "{{ ('%q' ~ secret) % () }}",
    "{{ (secret ~ '{9}').format() }}",
    "{{ secret.index('\x00') }}",
    "{{ {secret: 1}[secret ~ 'x'] }}",
    "{{ secret | attr(secret ~ '!') }}",
    "{{ (secret | list)[0].__class__ }}",
    "{{ undefined_name ~ secret }}",
    "{{ secret * 10000000 }}",
    "{{ [secret][1] }}",
    "{{ secret.split(secret[:3]) | batch(0) }}",
    "{{ dict(a=secret) }}",
    "{{ range(secret) }}",
    "{{ secret.__len__ }}",
    "{{ secret | int(base=secret) + secret }}",
]


def _assert_no_leak(failure: ValueFailure, *values: str | bytes) -> None:
    """No value, nor its escaped form, in the message, ``str()`` or ``repr()`` of ``failure``."""
    for shown in (failure.message, str(failure), repr(failure)):
        for value in values:
            text = value if isinstance(value, str) else value.decode("utf-8", errors="replace")
            assert text not in shown
            assert repr(text)[1:-1] not in shown
            if isinstance(value, bytes):
                assert repr(value)[2:-1] not in shown


def _raised(call: Any) -> ValueFailure | None:
    try:
        call()
    except ValueFailure as failure:
        assert str(failure) == failure.message
        return failure
    return None


@given(secret=binary_secrets)
def test_decode_failures_do_not_contain_the_value(secret: bytes) -> None:
    failure = _raised(lambda: decode(b"!" + secret, "Base64", key="k"))
    assert failure is not None
    _assert_no_leak(failure, secret)


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=60)
@given(secret=st.one_of(secrets.map(str.encode), binary_secrets), other=binary_secrets)
def test_validation_failures_do_not_contain_the_value(secret: bytes, other: bytes) -> None:
    for rule in RULES:
        failure = _raised(
            lambda rule=rule: validate_value(
                "k", secret, rule, all_values={"k": secret, "other": other}, now=NOW
            )
        )
        if failure is not None:
            _assert_no_leak(failure, secret, other)


@given(secret=secrets, prop=st.text(alphabet=string.ascii_lowercase, min_size=1, max_size=5))
def test_property_failures_do_not_contain_the_value(secret: str, prop: str) -> None:
    data = {"present": secret, "nested": {"x": secret}}
    for call in (
        lambda: extract_property(data, None, f"missing{prop}", key="apps/db"),
        lambda: extract_property(None, secret.encode(), prop, key="apps/db"),
        lambda: flatten_map(None, secret.encode(), key="apps/db"),
    ):
        failure = _raised(call)
        assert failure is not None
        _assert_no_leak(failure, secret)


@given(secret=binary_secrets)
def test_size_failures_do_not_contain_the_value(secret: bytes) -> None:
    failure = _raised(lambda: check_secret_size({"k": secret}, limit=4))
    assert isinstance(failure, TooLarge)
    _assert_no_leak(failure, secret)


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=40)
@given(secret=secrets, other=secrets)
def test_template_failures_do_not_contain_any_value(secret: str, other: str) -> None:
    values = {"secret": secret.encode(), "other": other.encode()}
    for source in FAILING_TEMPLATES:
        failure = _raised(lambda source=source: render_templates({"out": source}, values))
        assert isinstance(failure, TemplateError), source
        _assert_no_leak(failure, secret, other)


@settings(max_examples=40)
@given(secret=secrets)
def test_template_failures_never_quote_what_the_template_does_not_contain(secret: str) -> None:
    """Even a part of a value, quoted by an error, is scrubbed."""
    source = "{{ values[secret[2:6]] }}"
    failure = _raised(lambda: render_templates({"out": source}, {"secret": secret.encode()}))
    assert failure is not None
    part = secret[2:6]
    assume(part not in _TYPE_NAMES)  # type names ('str', 'dict', ...) are kept on purpose
    if part not in source:
        assert f"'{part}'" not in failure.message
        assert f'"{part}"' not in failure.message

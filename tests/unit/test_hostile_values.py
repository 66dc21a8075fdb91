"""Hostile values through the whole value pipeline (issue 8): generated ManagedSecret specs and
remote values (binary, invalid UTF-8, exotic Unicode, nested JSON, key names a Secret cannot hold,
huge values, template bombs) go through ``rotor.sync.assemble.assemble``. Whatever comes in:

- the only exception is ValueFailure, with a documented Ready reason;
- its message never holds a value (every secret value carries a mark no name or template has);
- what comes out is a valid Secret: legal key names, bytes, within the size limit.
"""

from __future__ import annotations

import json
import string
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from rotor.api.managedsecret import ManagedSecretSpec
from rotor.providers.base import RemoteRef, RemoteSecret
from rotor.sync.assemble import assemble
from rotor.values import (
    SECRET_SIZE_LIMIT,
    ValueFailure,
    decode,
    extract_property,
    flatten_map,
    render_templates,
    require_secret_key,
    sanitize_secret_key,
    secret_data_size,
    secret_key_is_valid,
)

NOW = datetime(2030, 1, 1, tzinfo=UTC)
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

#: every secret value starts with this mark; names and templates never contain it
MARK = "\u00a7"
MARK_FORMS = (
    MARK,
    MARK.encode().decode("latin-1"),
    "\\u00a7",
    "\\xa7",
    "\\xc2\\xa7",
    "wqc",
)  # "wqc": base64 of §
REMOTE_KEYS = ["apps/a", "apps/b", "apps/c"]

# ---------------------------------------------------------------------------------------------- strategies
_NAME_CHARS = string.ascii_letters + string.digits + "-._/ \\:\u00e9\u4e2d\U0001f511\u202e\x00\n"
names = st.one_of(
    st.sampled_from(
        [
            "password",
            "username",
            "a/b",
            "..",
            ".",
            "",
            "a.b",
            "0",
            "x" * 300,
            "-",
            "ключ",
            "a..b",
            "db.password",
            "__class__",
            "values",
        ]
    ),
    st.text(alphabet=_NAME_CHARS, min_size=0, max_size=12),
)
secret_keys = st.one_of(
    st.sampled_from(["password", "username", "token", "x.y", "-_.", "a" * 253]),
    st.text(alphabet=string.ascii_letters + string.digits + "-._", min_size=1, max_size=20),
)
text_values = st.text(min_size=4, max_size=40).map(lambda t: MARK + t)
binary_values = st.binary(min_size=4, max_size=40).map(lambda b: MARK.encode() + b)
invalid_utf8 = st.binary(min_size=2, max_size=20).map(lambda b: MARK.encode() + b"\xff\xfe" + b + b"\xc3\x28")
leaves = st.one_of(text_values, st.integers(), st.floats(allow_nan=True), st.booleans(), st.none())
json_values = st.recursive(
    leaves,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(names, inner, max_size=4)),
    max_leaves=12,
)
maps = st.dictionaries(names, json_values, max_size=6)


@st.composite
def remote_secrets(draw: st.DrawFn, key: str) -> RemoteSecret:
    kind = draw(
        st.sampled_from(
            ["map", "json-raw", "text-raw", "binary-raw", "invalid-utf8", "huge", "empty", "nested"]
        )
    )
    if kind == "map":
        return RemoteSecret(key=key, version="1", data=draw(maps))
    if kind == "json-raw":
        return RemoteSecret(
            key=key, version="1", raw=json.dumps(draw(maps), ensure_ascii=draw(st.booleans())).encode()
        )
    if kind == "text-raw":
        return RemoteSecret(key=key, version="1", raw=draw(text_values).encode())
    if kind == "binary-raw":
        return RemoteSecret(key=key, version="1", raw=draw(binary_values))
    if kind == "invalid-utf8":
        return RemoteSecret(key=key, version="1", raw=draw(invalid_utf8))
    if kind == "huge":
        size = draw(st.sampled_from([SECRET_SIZE_LIMIT // 2, SECRET_SIZE_LIMIT + 1]))
        return RemoteSecret(key=key, version="1", data={"big": MARK + "h" * size, "small": draw(text_values)})
    if kind == "nested":
        depth = draw(st.integers(1, 150))
        node: Any = draw(text_values)
        for _ in range(depth):
            node = {"a": node}
        return RemoteSecret(key=key, version="1", raw=json.dumps(node).encode())
    return RemoteSecret(key=key, version="1", data={})


TEMPLATES = [
    "{{ password }}",
    "{{ values['a/b'] }}",
    "{{ username ~ ':' ~ password }}",
    "{{ password | b64enc }}",
    "{{ password | b64dec }}",
    "{{ password | fromjson }}",
    "{{ password | urlencode }}",
    "{{ password | int }}",
    "{{ ''.__class__.__mro__ }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ password.__class__ }}",
    "{% for i in range(10000) %}{% for j in range(10000) %}x{% endfor %}{% endfor %}",
    "{{ 'x' * 100000000 }}",
    "{{ password * 10000000 }}",
    "{{ password | center(100000000) }}",
    "{% set x = 'x' * 1000 %}{% for i in range(10000) %}{{ x }}{% endfor %}",
    "{{ password ",
    "{{ nope }}",
    "{% include 'x' %}",
    "{{ values | tojson }}",
    "{{ values.items() | list }}",
]
RULES: list[dict[str, Any]] = [
    {"format": "min-length", "minLength": 24},
    {"format": "regex", "pattern": "^[a-z]+$"},
    {"format": "base64", "bytes": 32},
    {"format": "hex"},
    {"format": "json"},
    {"format": "url"},
    {"format": "pem-private-key"},
    {"format": "pem-certificate", "notExpiredWithin": "72h"},
    {"format": "certificate-matches-key", "key": "username"},
    {"format": "fernet-key"},
    {"format": "jwt-hs256-key"},
]


@st.composite
def specs(draw: st.DrawFn) -> dict[str, Any]:
    spec: dict[str, Any] = {"storeRef": {"name": "vault"}}
    data = []
    for secret_key in draw(st.lists(secret_keys, max_size=4, unique=True)):
        ref: dict[str, Any] = {"key": draw(st.sampled_from(REMOTE_KEYS))}
        if draw(st.booleans()):
            ref["property"] = draw(names.filter(bool))
        item: dict[str, Any] = {
            "secretKey": secret_key,
            "remoteRef": ref,
            "decode": draw(st.sampled_from(["None", "Base64", "Auto"])),
        }
        if draw(st.integers(0, 3)) == 0:
            item["validate"] = draw(st.sampled_from(RULES))
        data.append(item)
    if data:
        spec["data"] = data
    extracts = draw(st.lists(st.sampled_from(REMOTE_KEYS), max_size=2, unique=True))
    if extracts or not data:
        spec["dataFrom"] = [{"extract": {"key": k}} for k in extracts or REMOTE_KEYS[:1]]
    if draw(st.booleans()):
        spec["template"] = {
            "data": draw(st.dictionaries(secret_keys, st.sampled_from(TEMPLATES), min_size=1, max_size=3))
        }
    return spec


def _assert_no_value(failure: ValueFailure) -> None:
    for shown in (failure.message, str(failure), repr(failure)):
        for form in MARK_FORMS:
            assert form not in shown, f"a value reached the message: {shown!r}"


def _assert_valid_secret(data: dict[str, bytes]) -> None:
    for name, value in data.items():
        assert secret_key_is_valid(name), name
        assert isinstance(value, bytes)
    assert secret_data_size(data) <= SECRET_SIZE_LIMIT


# ---------------------------------------------------------------------------------------------- assemble
@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
@given(raw_spec=specs(), data=st.data())
def test_assemble_raises_only_value_failures_without_values(
    raw_spec: dict[str, Any], data: st.DataObject
) -> None:
    try:
        spec = ManagedSecretSpec.model_validate(raw_spec)
    except ValidationError:
        assume(False)  # refused by the schema: never reaches the pipeline
        return
    fetched = {RemoteRef(k): data.draw(remote_secrets(k)) for k in REMOTE_KEYS}
    found = data.draw(
        st.dictionaries(names.filter(bool), st.builds(lambda s: s, remote_secrets("found")), max_size=3)
    )
    try:
        out = assemble(spec, fetched, {0: found}, {}, now=NOW)
    except ValueFailure as failure:
        event(failure.reason)
        assert failure.reason in DOCUMENTED, failure
        assert failure.message
        _assert_no_value(failure)
    else:
        event("assembled")
        _assert_valid_secret(out)


# ---------------------------------------------------------------------------------------------- the parts
@settings(max_examples=200, deadline=None)
@given(
    value=st.one_of(binary_values, invalid_utf8, text_values.map(str.encode)),
    mode=st.sampled_from(["None", "Base64", "Auto"]),
)
def test_decode_never_raises_anything_else(value: bytes, mode: str) -> None:
    try:
        out = decode(value, mode, key="k")
    except ValueFailure as failure:
        assert failure.reason in DOCUMENTED
        _assert_no_value(failure)
    else:
        assert isinstance(out, bytes)


@settings(max_examples=200, deadline=None)
@given(secret=remote_secrets("apps/x"), prop=st.one_of(st.none(), names.filter(bool)))
def test_extract_and_flatten_never_raise_anything_else(secret: RemoteSecret, prop: str | None) -> None:
    for call in (
        lambda: extract_property(secret.data, secret.raw, prop, key=secret.key),
        lambda: flatten_map(secret.data, secret.raw, key=secret.key),
    ):
        try:
            out = call()
        except ValueFailure as failure:
            assert failure.reason in DOCUMENTED
            _assert_no_value(failure)
        else:
            assert isinstance(out, bytes | dict)


@settings(max_examples=300, deadline=None)
@given(name=st.text(max_size=300))
def test_key_names_are_made_legal_or_refused(name: str) -> None:
    cleaned = sanitize_secret_key(name)
    assert secret_key_is_valid(cleaned)
    if secret_key_is_valid(name):
        assert cleaned == name and require_secret_key(name, source="test") == name
    else:
        with pytest.raises(ValueFailure) as refused:
            require_secret_key(name, source="test")
        assert refused.value.reason == "InvalidSpec"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    template=st.one_of(st.sampled_from(TEMPLATES), st.text(alphabet=string.printable, max_size=60)),
    password=st.one_of(text_values.map(str.encode), binary_values, invalid_utf8),
)
def test_templates_fail_only_as_template_errors(template: str, password: bytes) -> None:
    assume(MARK not in template)
    try:
        out = render_templates({"out": template}, {"password": password, "username": b"app", "a/b": password})
    except ValueFailure as failure:
        assert failure.reason == "TemplateError", failure
        _assert_no_value(failure)
    else:
        assert set(out) == {"out"} and len(out["out"]) <= SECRET_SIZE_LIMIT


# ---------------------------------------------------------------------------------------------- nested JSON
@pytest.mark.parametrize("prop", [None, "a"])
def test_deeply_nested_json_is_a_value_failure(prop: str | None) -> None:
    raw = ('{"a":' * 5000 + '"' + MARK + 'x"' + "}" * 5000).encode()
    spec = ManagedSecretSpec.model_validate(
        {"storeRef": {"name": "vault"}, "dataFrom": [{"extract": {"key": "apps/a"}}]}
        if prop is None
        else {
            "storeRef": {"name": "vault"},
            "data": [{"secretKey": "k", "remoteRef": {"key": "apps/a", "property": prop}}],
        }
    )
    try:
        assemble(
            spec, {RemoteRef("apps/a"): RemoteSecret(key="apps/a", version="1", raw=raw)}, {}, {}, now=NOW
        )
    except ValueFailure as failure:
        assert failure.reason in DOCUMENTED
        _assert_no_value(failure)

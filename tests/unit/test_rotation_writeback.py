"""Write-back to the source (pure): which properties a rotation writes, the merge that keeps the
others, and the keyed digest that recognises Rotor's own write after a restart."""

from __future__ import annotations

import json

import pytest

from rotor.rotation.errors import RotationError
from rotor.rotation.writeback import (
    MAX_PATHS,
    Target,
    decode_digests,
    digest,
    digest_length,
    encode_digests,
    merged_value,
    rotated_keys,
    rotated_view,
    same_digest,
    value_view,
    written_properties,
)

KEY = b"test-hash-key"


@pytest.mark.parametrize(
    ("kind", "target", "expected"),
    [
        ("password", Target("password", "app", "pw"), {"password": "pw"}),
        ("rsaKeyPair", Target("signing", "app", "key"), {"signing": "key", "signing.pub": "key.pub"}),
        (
            "selfSignedCertificate",
            Target("tls.crt", "app", "tls.crt"),
            {"tls.crt": "tls.crt", "tls.key": "tls.key"},
        ),
        ("vaultPKI", Target("cert", "app", "cert"), {"cert": "cert", "cert.key": "cert.key"}),
        ("apiKey", Target("token", "app", None), {"token": None}),
    ],
)
def test_written_properties(kind, target, expected):
    assert written_properties(kind, target) == expected


def test_a_key_pair_cannot_be_a_whole_value():
    with pytest.raises(RotationError, match=r"signing\.pub"):
        written_properties("ed25519KeyPair", Target("signing", "app", None))


def test_rotated_keys_add_companions_once():
    assert rotated_keys("ecKeyPair", ["a", "b"]) == ["a", "a.pub", "b", "b.pub"]
    assert rotated_keys("selfSignedCertificate", ["tls.crt"]) == ["tls.crt", "tls.key"]
    assert rotated_keys("password", ["password"]) == ["password"]


def test_merge_keeps_other_properties():
    value = merged_value(
        "password",
        [Target("password", "app", "password")],
        {"password": b"new"},
        {"password": "old", "user": "app"},
        None,
    )
    assert value == {"password": "new", "user": "app"}


def test_merge_into_json_text_and_whole_values():
    raw = json.dumps({"password": "old", "user": "app"}).encode()
    assert merged_value("password", [Target("password", "s", "password")], {"password": b"n"}, None, raw) == {
        "password": "n",
        "user": "app",
    }
    assert merged_value("apiKey", [Target("token", "s", None)], {"token": b"sk_1"}, None, b"old") == "sk_1"
    assert (
        merged_value("randomBytes", [Target("t", "s", None)], {"t": b"\xff\x00"}, None, b"old") == b"\xff\x00"
    )


def test_merge_refuses_a_property_in_a_plain_value():
    with pytest.raises(RotationError, match="plain value"):
        merged_value("password", [Target("password", "s", "password")], {"password": b"n"}, None, b"not json")


def test_merge_refuses_a_whole_value_shared_with_another_key():
    targets = [Target("a", "s", None), Target("b", "s", "b")]
    with pytest.raises(RotationError, match="used whole"):
        merged_value("password", targets, {"a": b"1", "b": b"2"}, {}, None)


def test_digest_recognises_the_written_value_only():
    targets = [Target("signing", "app", "key")]
    written = merged_value(
        "ecKeyPair", targets, {"signing": b"PRIV", "signing.pub": b"PUB"}, {"other": "x"}, None
    )
    recorded = digest(KEY, value_view("ecKeyPair", targets, written))
    # read back later, with other properties changed by someone else: still ours
    assert same_digest(
        digest(KEY, rotated_view("ecKeyPair", targets, {**written, "other": "y"}, None)), recorded
    )
    # a different value, or the same value under another hash key: not ours
    assert not same_digest(
        digest(KEY, rotated_view("ecKeyPair", targets, {**written, "key": "P2"}, None)), recorded
    )
    assert not same_digest(digest(b"other-key", value_view("ecKeyPair", targets, written)), recorded)
    assert "PRIV" not in recorded and len(recorded) == 16


def test_digests_round_trip_per_path_and_fit_the_status_field():
    paths = ["b", "a"]
    encoded = encode_digests(paths, {"a": "1111", "b": "2222"})
    assert encoded == "hmac:1111,2222"
    assert decode_digests(paths, encoded) == {"a": "1111", "b": "2222"}
    assert decode_digests(["a"], encoded) == {}, "different paths: nothing recorded for them"
    assert decode_digests(paths, "7,8") == {}, "written versions are not digests"
    many = [f"p{i}" for i in range(MAX_PATHS)]
    length = digest_length(len(many))
    assert len(encode_digests(many, {p: "f" * length for p in many})) <= 256
    assert not same_digest("", "")

"""Keyed digests of Secret data."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rotor.values import consumer_digest, data_hash

KEY = b"operator-hash-key"
DATA = {"username": b"app", "password": b"hunter2"}


def test_the_digest_is_labelled_and_hex() -> None:
    digest = data_hash(DATA, key=KEY)
    assert digest.startswith("hmac-sha256:")
    assert len(digest.removeprefix("hmac-sha256:")) == 64
    int(digest.removeprefix("hmac-sha256:"), 16)


def test_the_digest_does_not_depend_on_key_order() -> None:
    assert data_hash(dict(reversed(list(DATA.items()))), key=KEY) == data_hash(DATA, key=KEY)


@pytest.mark.parametrize(
    "changed",
    [
        {"username": b"app", "password": b"hunter3"},
        {"username": b"app"},
        {"username": b"app", "password": b"hunter2", "extra": b""},
        {"user": b"app", "password": b"hunter2"},
    ],
)
def test_any_change_of_data_changes_the_digest(changed: dict[str, bytes]) -> None:
    assert data_hash(changed, key=KEY) != data_hash(DATA, key=KEY)


def test_type_metadata_and_key_change_the_digest() -> None:
    base = data_hash(DATA, key=KEY)
    assert data_hash(DATA, key=KEY, secret_type="kubernetes.io/basic-auth") != base
    assert data_hash(DATA, key=KEY, extra={"rotor.dev/managed-by": "db"}) != base
    assert data_hash(DATA, key=b"another-key") != base


def test_the_encoding_is_unambiguous() -> None:
    # naive concatenation would make these equal
    assert data_hash({"ab": b"c"}, key=KEY) != data_hash({"a": b"bc"}, key=KEY)
    assert data_hash({"a": b"", "b": b""}, key=KEY) != data_hash({"a": b"b"}, key=KEY)


def test_the_digest_never_contains_the_values() -> None:
    digest = data_hash({"password": b"0123456789abcdef"}, key=KEY)
    assert "0123456789abcdef" not in digest


def test_an_empty_key_is_refused() -> None:
    with pytest.raises(ValueError):
        data_hash(DATA, key=b"")


@given(
    st.dictionaries(st.text(min_size=1, max_size=8), st.binary(max_size=16), max_size=4),
    st.dictionaries(st.text(min_size=1, max_size=8), st.binary(max_size=16), max_size=4),
)
def test_equal_digests_mean_equal_data(one: dict[str, bytes], other: dict[str, bytes]) -> None:
    assert (data_hash(one, key=KEY) == data_hash(other, key=KEY)) == (one == other)


def test_consumer_digest_sees_only_the_consumed_keys() -> None:
    before = consumer_digest(DATA, ["username"], key=KEY)
    after = consumer_digest({**DATA, "password": b"rotated"}, ["username"], key=KEY)
    assert before == after
    assert consumer_digest({**DATA, "username": b"app2"}, ["username"], key=KEY) != before


def test_consumer_digest_tells_missing_from_empty() -> None:
    assert consumer_digest({}, ["token"], key=KEY) != consumer_digest({"token": b""}, ["token"], key=KEY)


def test_consumer_digest_ignores_the_order_and_repeats_of_keys() -> None:
    assert consumer_digest(DATA, ["password", "username", "password"], key=KEY) == consumer_digest(
        DATA, ["username", "password"], key=KEY
    )

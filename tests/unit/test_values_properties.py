"""Picking properties out of remote secrets, and Secret key names."""

import json

import pytest

from rotor.values import (
    InvalidSpec,
    PropertyNotFound,
    ValidationFailed,
    extract_property,
    flatten_map,
    require_secret_key,
    sanitize_secret_key,
    secret_key_is_valid,
)


def test_a_string_property_is_returned_as_utf8() -> None:
    assert extract_property({"password": "pä55"}, None, "password", key="apps/db") == "pä55".encode()


def test_bytes_stay_bytes_and_other_types_are_json() -> None:
    data = {"blob": b"\xff\x00", "port": 5432, "tls": True, "nested": {"b": 1, "a": [1, "x"]}, "none": None}
    assert extract_property(data, None, "blob", key="k") == b"\xff\x00"
    assert extract_property(data, None, "port", key="k") == b"5432"
    assert extract_property(data, None, "tls", key="k") == b"true"
    assert json.loads(extract_property(data, None, "nested", key="k")) == {"a": [1, "x"], "b": 1}
    assert extract_property(data, None, "none", key="k") == b"null"


def test_a_dotted_property_walks_nested_maps() -> None:
    data = {"db": {"primary": {"password": "s1"}}}
    assert extract_property(data, None, "db.primary.password", key="k") == b"s1"


def test_a_key_containing_dots_wins_over_the_walk() -> None:
    data = {"db.password": "exact", "db": {"password": "nested"}}
    assert extract_property(data, None, "db.password", key="k") == b"exact"


def test_a_mixed_path_with_a_dotted_key_inside_is_found() -> None:
    data = {"tls": {"ca.crt": "CA"}}
    assert extract_property(data, None, "tls.ca.crt", key="k") == b"CA"


def test_list_items_are_addressed_by_index() -> None:
    assert extract_property({"hosts": ["a", "b"]}, None, "hosts.1", key="k") == b"b"


def test_a_raw_json_object_is_read_as_a_map() -> None:
    assert extract_property(None, b'{"user": "app"}', "user", key="k") == b"app"


def test_no_property_gives_the_raw_value_or_the_whole_map() -> None:
    assert extract_property(None, b"\x00raw", None, key="k") == b"\x00raw"
    assert json.loads(extract_property({"a": "1"}, None, None, key="k")) == {"a": "1"}


def test_a_missing_property_names_the_property_and_the_remote_key() -> None:
    with pytest.raises(PropertyNotFound) as caught:
        extract_property({"user": "app"}, None, "password", key="apps/db")
    assert caught.value.reason == "KeyNotFound"
    assert "'password'" in caught.value.message
    assert "'apps/db'" in caught.value.message


def test_a_property_of_a_raw_non_json_value_is_not_found() -> None:
    with pytest.raises(PropertyNotFound) as caught:
        extract_property(None, b"plain", "password", key="apps/db")
    assert "not a JSON object" in caught.value.message


def test_a_missing_value_is_not_found() -> None:
    with pytest.raises(PropertyNotFound):
        extract_property(None, None, None, key="apps/db")


def test_flatten_gives_every_top_level_property() -> None:
    flat = flatten_map({"user": "app", "port": 5432, "opts": {"ssl": True}}, None, key="k")
    assert flat == {"user": b"app", "port": b"5432", "opts": b'{"ssl":true}'}
    assert flatten_map(None, b'{"a": "b"}', key="k") == {"a": b"b"}


def test_flatten_refuses_a_value_that_is_not_a_map() -> None:
    with pytest.raises(ValidationFailed) as caught:
        flatten_map(None, b"[1, 2]", key="apps/list")
    assert "'apps/list'" in caught.value.message


@pytest.mark.parametrize("name", ["password", "tls.crt", "a-b_c.D9", ".hidden", "x" * 253])
def test_legal_secret_keys(name: str) -> None:
    assert secret_key_is_valid(name)
    assert sanitize_secret_key(name) == name
    assert require_secret_key(name, source="data") == name


@pytest.mark.parametrize("name", ["", ".", "..", "..x", "a/b", "a b", "ключ", "x" * 254])
def test_illegal_secret_keys_are_refused_or_sanitized(name: str) -> None:
    assert not secret_key_is_valid(name)
    assert secret_key_is_valid(sanitize_secret_key(name))
    with pytest.raises(InvalidSpec) as caught:
        require_secret_key(name, source="dataFrom.extract apps/db")
    assert caught.value.reason == "InvalidSpec"
    assert "dataFrom.extract apps/db" in caught.value.message


def test_sanitizing_replaces_illegal_characters() -> None:
    assert sanitize_secret_key("db/password 1") == "db_password_1"

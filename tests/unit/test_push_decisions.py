"""The pure decisions of a PushSecret (rotor.sync.push) and its spec's rules."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from rotor.api.pushsecret import PushSecretSpec
from rotor.sync.push import (
    PushProblem,
    decide,
    desired_value,
    holds,
    push_hash,
    remaining_after_delete,
    targets,
)


def _spec(*data: tuple[str, str, str | None], **extra: object) -> PushSecretSpec:
    items = [{"secretKey": k, "remoteRef": {"key": r, **({"property": p} if p else {})}} for k, r, p in data]
    return PushSecretSpec.model_validate(
        {"storeRef": {"name": "s"}, "selector": {"secret": {"name": "src"}}, "data": items, **extra}
    )


def test_defaults_and_rules() -> None:
    spec = _spec(("a", "apps/x", "a"))
    assert (spec.update_policy, spec.deletion_policy, spec.refresh.interval) == ("Replace", "None", "1h")
    with pytest.raises(ValidationError, match="pushed whole"):
        _spec(("a", "apps/x", None), ("b", "apps/x", "b"))
    with pytest.raises(ValidationError, match="same remoteRef"):
        _spec(("a", "apps/x", "p"), ("b", "apps/x", "p"))
    with pytest.raises(ValidationError, match="listed twice"):
        _spec(("a", "apps/x", "p"), ("a", "apps/y", "p"))
    with pytest.raises(ValidationError):
        _spec(("a", "apps/x", "p"), updatePolicy="Sometimes")


def test_vault_takes_a_whole_value_as_the_property_named_like_the_key() -> None:
    spec = _spec(("api-key", "apps/x", None))
    assert targets(spec, maps_only=True)["apps/x"][0].property == "api-key"
    assert targets(spec, maps_only=False)["apps/x"][0].property is None


def test_hash_is_keyed_and_names_the_destination() -> None:
    data = {"a": b"v"}
    one = targets(_spec(("a", "apps/x", "a")), maps_only=False)
    other = targets(_spec(("a", "apps/y", "a")), maps_only=False)
    assert push_hash(one, data, key=b"k1") != push_hash(one, data, key=b"k2")
    assert push_hash(one, data, key=b"k") != push_hash(other, data, key=b"k")
    assert push_hash(one, data, key=b"k") == push_hash(one, {"a": b"v"}, key=b"k")


def test_properties_are_merged_and_compared() -> None:
    group = targets(_spec(("a", "apps/x", "a")), maps_only=True)["apps/x"]
    assert desired_value(group, {"a": b"new"}, ({"other": "kept", "a": "old"}, None)) == {
        "other": "kept",
        "a": "new",
    }
    assert desired_value(group, {"a": b"new"}, None) == {"a": "new"}
    assert holds(group, {"a": b"new"}, ({"a": "new", "x": "y"}, None))
    assert not holds(group, {"a": b"new"}, ({"a": "old"}, None))
    assert not holds(group, {"a": b"new"}, None)
    with pytest.raises(PushProblem) as err:
        desired_value(group, {"a": b"new"}, (None, b"plain text"))
    assert err.value.reason == "RemoteConflict"


def test_whole_values() -> None:
    group = targets(_spec(("a", "k", None)), maps_only=False)["k"]
    assert desired_value(group, {"a": b"text"}, None) == "text"
    assert desired_value(group, {"a": b"\xff\x00"}, None) == b"\xff\x00"
    assert holds(group, {"a": b"text"}, (None, b"text"))
    assert not holds(group, {"a": b"text"}, (None, b"other"))


@pytest.mark.parametrize(
    ("policy", "exists", "current", "recorded", "in_sync", "action", "overwrites"),
    [
        ("Replace", False, None, None, False, "write", None),
        ("IfNotExists", False, None, None, False, "write", None),
        ("Replace", True, "3", "3", True, "none", None),
        ("IfNotExists", True, "3", None, True, "none", None),
        ("Replace", True, "3", "3", False, "write", None),
        ("Replace", True, "4", "3", False, "write", "4"),
        ("Replace", True, "4", None, False, "write", None),
        ("IfNotExists", True, "4", "3", False, "conflict", None),
        ("IfNotExists", True, "3", "3", False, "conflict", None),
        ("IfNotExists", True, "1", None, False, "conflict", None),
    ],
)
def test_decide(
    policy: str,
    exists: bool,
    current: str | None,
    recorded: str | None,
    in_sync: bool,
    action: str,
    overwrites: str | None,
) -> None:
    d = decide(
        "k", policy, exists=exists, current_version=current, recorded_version=recorded, in_sync=in_sync
    )
    assert d.action == action
    assert d.overwrites == overwrites
    if action == "write":
        assert d.create == (not exists)
        assert d.cas == (current if exists else None)
    if action == "conflict":
        assert "IfNotExists" in d.message


def test_delete_removes_only_the_pushed_properties() -> None:
    group = targets(_spec(("a", "k", "a")), maps_only=True)["k"]
    assert remaining_after_delete(group, ({"a": "1", "b": "2"}, None)) == {"b": "2"}
    assert remaining_after_delete(group, ({"a": "1"}, None)) is None
    whole = targets(_spec(("a", "k", None)), maps_only=False)["k"]
    assert remaining_after_delete(whole, (None, b"x")) is None

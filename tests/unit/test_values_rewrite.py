"""dataFrom[].rewrite (pure): ordered rewrites, $-groups, invalid and colliding keys, time bound."""

from __future__ import annotations

import datetime as dt

import pytest
from pydantic import ValidationError

from rotor.api.managedsecret import DataFromItem, ManagedSecretSpec
from rotor.providers.base import RemoteRef, RemoteSecret
from rotor.sync.assemble import assemble
from rotor.values.errors import InvalidKey, InvalidSpec
from rotor.values.rewrite import RewriteRule, rewrite_keys, rewrite_name

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
SECRET = b"s3cr3t-value"


@pytest.mark.parametrize(
    ("name", "rules", "expected"),
    [
        ("apps/db", [("^apps/(.*)$", "$1")], "db"),
        ("apps/db", [("^apps/(.*)$", "${1}")], "db"),
        ("apps/db", [("^apps/(?P<rest>.*)$", "x-${rest}")], "x-db"),
        ("a/b/c", [("/", "_")], "a_b_c"),  # every match is replaced
        ("db", [("^", "$$")], "$db"),
        ("DB_PASSWORD", [("_", "-"), ("^DB-", "")], "PASSWORD"),  # in order
        ("untouched", [("^nomatch$", "x")], "untouched"),
    ],
)
def test_rewrite_name(name: str, rules: list[tuple[str, str]], expected: str) -> None:
    assert rewrite_name(name, [RewriteRule(s, t) for s, t in rules], where="w") == expected


def test_collision_names_both_remote_names_and_the_key() -> None:
    with pytest.raises(InvalidKey) as err:
        rewrite_keys({"a-x": SECRET, "b-x": SECRET}, [RewriteRule("^.-", "")], where="spec.dataFrom[0]")
    assert err.value.reason == "InvalidKey"
    assert "'a-x'" in err.value.message and "'b-x'" in err.value.message and "'x'" in err.value.message
    assert SECRET.decode() not in err.value.message


def test_invalid_result_names_the_keys() -> None:
    with pytest.raises(InvalidKey) as err:
        rewrite_keys(
            {"apps/db": SECRET, "ok": SECRET}, [RewriteRule("^ok$", "fine")], where="spec.dataFrom[1]"
        )
    assert "'apps/db'" in err.value.message and "spec.dataFrom[1]" in err.value.message
    assert SECRET.decode() not in err.value.message


def test_empty_result_is_invalid() -> None:
    with pytest.raises(InvalidKey):
        rewrite_keys({"x": SECRET}, [RewriteRule("^x$", "")], where="w")


def test_unknown_group_is_invalid_spec() -> None:
    with pytest.raises(InvalidSpec):
        rewrite_name("abc", [RewriteRule("^(a)", "$2")], where="w")


def test_catastrophic_pattern_is_bounded() -> None:
    with pytest.raises(InvalidSpec, match="too long"):
        rewrite_name("a" * 40 + "!", [RewriteRule("^(a|a)+$", "x")], where="w")


def _spec(data_from: list[dict[str, object]]) -> ManagedSecretSpec:
    return ManagedSecretSpec.model_validate({"storeRef": {"name": "s"}, "dataFrom": data_from})


def test_assemble_rewrites_each_entry_by_its_own_rules() -> None:
    spec = _spec(
        [
            {"extract": {"key": "apps/db"}, "rewrite": [{"regexp": {"source": "^(.*)$", "target": "DB_$1"}}]},
            {"find": {"path": "apps/"}, "rewrite": [{"regexp": {"source": "/", "target": "."}}]},
            {"find": {"path": "other/"}},
        ]
    )
    fetched = {
        RemoteRef("apps/db"): RemoteSecret(key="apps/db", version="1", data={"user": "u", "pass": "p"})
    }
    found = {
        1: {"web/token": RemoteSecret(key="apps/web/token", version="1", raw=b"t")},
        2: {"a/b": RemoteSecret(key="other/a/b", version="1", raw=b"ab")},
    }
    out = assemble(spec, fetched, found, {}, now=NOW)
    assert out == {"DB_user": b"u", "DB_pass": b"p", "web.token": b"t", "a_b": b"ab"}


def test_assemble_find_rewrite_to_invalid_key_is_invalid_key() -> None:
    spec = _spec([{"find": {"path": "apps/"}, "rewrite": [{"regexp": {"source": "^web", "target": "w"}}]}])
    found = {0: {"web/token": RemoteSecret(key="apps/web/token", version="1", raw=SECRET)}}
    with pytest.raises(InvalidKey, match="'web/token'"):
        assemble(spec, {}, found, {}, now=NOW)


def test_rewrite_only_with_extract_or_find() -> None:
    with pytest.raises(ValidationError, match="rewrite is used only with extract or find"):
        DataFromItem.model_validate(
            {
                "vaultDatabase": {"mount": "m", "role": "r"},
                "rewrite": [{"regexp": {"source": "a", "target": "b"}}],
            }
        )

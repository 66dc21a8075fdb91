"""Remote keys are checked against allowedKeys as written, so only canonical spellings pass: a key
a backend could decode or normalise into another path is refused before any read."""

from __future__ import annotations

import pytest

from rotor.tenancy import key_allowed, key_problem

ALLOWED = ["{namespace}/*"]


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("team-a/../admin/x", "'.' or '..'"),
        ("team-a/./x", "'.' or '..'"),
        ("../team-b/x", "'.' or '..'"),
        ("team-a/..", "'.' or '..'"),
        ("team-a%2F..%2Fadmin", "percent-escape"),
        ("team-a/%2e%2e/admin", "percent-escape"),
        ("team-a/x%2fy", "percent-escape"),
        ("team-a//x", "empty path segment"),
        ("//team-a/x", "empty path segment"),
        ("team-a\\..\\admin", "backslash"),
        ("team-a/x\x00", "control character"),
        ("team-a/x\ny", "control character"),
    ],
)
def test_non_canonical_keys_are_refused_with_the_reason(key: str, problem: str) -> None:
    found = key_problem(key)
    assert found is not None and problem in found
    # never allowed, whatever allowedKeys says (absent allows every canonical key)
    assert not key_allowed(ALLOWED, key, "team-a")
    assert not key_allowed(["*"], key, "team-a")
    assert not key_allowed(None, key, "team-a")


@pytest.mark.parametrize(
    "key",
    ["team-a/db", "/team-a/db/password", "team-a/db.v2", "team-a/...x", "team-a/100%", "team-a/a%zz"],
)
def test_canonical_keys_pass_and_are_judged_by_allowed_keys(key: str) -> None:
    assert key_problem(key) is None
    assert key_allowed(ALLOWED, key, "team-a")
    assert not key_allowed(ALLOWED, key, "team-b")

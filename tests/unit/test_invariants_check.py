"""The conflicting-writers invariants (tests/support/invariants.py) catch what they promise to:
an empty key, a previous value that is not the one the rotation replaced (a hand edit, an older
one, one beside a value no rotation wrote), a missing previous during grace, and a source with
more or fewer new versions than requests; and they pass the good histories."""

from __future__ import annotations

from support.invariants import SecretVersion, final_violations, history_violations, version_violations

CHAIN = [b"v0", b"v1", b"v2"]
MANAGED = ["password", "user"]


def seen(data: dict[str, bytes], rv: str = "1", event: str = "MODIFIED") -> SecretVersion:
    return SecretVersion(event, rv, "Opaque", data)


def check(data: dict[str, bytes]) -> list[str]:
    return version_violations(seen(data), managed=MANAGED, rotated="password", chain=CHAIN)


def test_good_versions_pass() -> None:
    assert check({"password": b"v0", "user": b"app"}) == []
    assert check({"password": b"v1", "user": b"app", "password_previous": b"v0"}) == []
    assert check({"password": b"v2", "user": b"app", "password_previous": b"v1"}) == []
    assert (
        version_violations(seen({}, event="DELETED"), managed=MANAGED, rotated="password", chain=CHAIN) == []
    )


def test_an_empty_or_missing_key_is_a_violation() -> None:
    assert check({"password": b"v0", "user": b""}) == ["Secret version 1: key 'user' is missing or empty"]
    assert len(check({"user": b"app"})) == 1


def test_a_previous_that_is_not_the_replaced_value_is_a_violation() -> None:
    assert (
        "not the value rotation 2 replaced"
        in check({"password": b"v2", "user": b"app", "password_previous": b"v0"})[0]
    )
    assert check({"password": b"v2", "user": b"app", "password_previous": b"hand-edit"})
    assert "no rotation wrote" in check({"password": b"v0", "user": b"app", "password_previous": b"v1"})[0]
    assert check({"password": b"edited", "user": b"app", "password_previous": b"v1"})


def test_messages_name_no_value() -> None:
    problems = check({"password": b"v2", "user": b"", "password_previous": b"hand-edit"})
    assert problems and not any(v in p for p in problems for v in ("v0", "v1", "v2", "hand-edit"))


def test_the_test_s_own_writes_are_left_out() -> None:
    history = [seen({"password": b"edited", "user": b"app", "password_previous": b"x"}, rv="7")]
    assert history_violations(history, managed=MANAGED, rotated="password", chain=CHAIN, ignore=["7"]) == []
    assert history_violations(history, managed=MANAGED, rotated="password", chain=CHAIN)


def test_the_settled_state() -> None:
    good = {"password": b"v2", "user": b"app", "password_previous": b"v1"}
    expected = {"password": b"v2", "user": b"app"}
    assert final_violations(good, expected=expected, rotated="password", chain=CHAIN, requests=2) == []
    assert final_violations(good, expected=expected, rotated="password", chain=CHAIN, requests=1) == [
        "the source has 2 new versions for 1 rotation requests"
    ]
    lost = {"password": b"v2", "user": b"app"}
    assert final_violations(lost, expected=expected, rotated="password", chain=CHAIN, requests=2) == [
        "'password_previous' is not the value the last rotation replaced"
    ]
    stale = {"password": b"v1", "user": b"app", "password_previous": b"v0"}
    assert final_violations(stale, expected=expected, rotated="password", chain=CHAIN, requests=2)
    assert final_violations(None, expected=expected, rotated="password", chain=CHAIN, requests=2)

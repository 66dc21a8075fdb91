"""The in-memory provider keeps the promises of the protocol and of the capabilities it claims."""

from __future__ import annotations

import pytest

from rotor.providers.base import (
    AccessDenied,
    BatchReader,
    ChangeLister,
    KeyNotFound,
    Provider,
    RemoteRef,
    RollingBack,
    SelfCounting,
    StagedWriter,
    Unreachable,
    WriteChecker,
    WriteConflict,
)
from rotor.providers.fake import BatchingFakeProvider, FakeProvider


def test_claims_exactly_the_capabilities_it_implements() -> None:
    fake = FakeProvider()
    assert isinstance(fake, Provider)
    assert isinstance(fake, StagedWriter) and isinstance(fake, RollingBack) and isinstance(fake, WriteChecker)
    assert not isinstance(fake, BatchReader) and not isinstance(fake, SelfCounting)
    assert not isinstance(fake, ChangeLister)
    batching = BatchingFakeProvider()
    assert isinstance(batching, BatchReader) and isinstance(batching, SelfCounting)


def test_versions_and_check_and_set() -> None:
    fake = FakeProvider()
    first = fake.put("app/db", {"password": "one"})
    second = fake.write("app/db", {"password": "two"}, cas=first).version
    assert fake.read(RemoteRef("app/db")).data == {"password": "two"}
    assert fake.read(RemoteRef("app/db", first)).data == {"password": "one"}
    assert fake.read(RemoteRef("app/db", "AWSPREVIOUS")).version == first
    with pytest.raises(WriteConflict):
        fake.write("app/db", {"password": "three"}, cas=first)
    assert fake.describe("app/db").current_version == second
    assert fake.describe("app/db").versions == {first: ["AWSPREVIOUS"], second: ["AWSCURRENT"]}


def test_staged_write_verify_promote_is_idempotent() -> None:
    fake = FakeProvider()
    fake.put("k", "old")
    token = "9b3c1a52-0000-4000-8000-000000000001"
    assert fake.stage("k", "new", token) == token
    assert fake.stage("k", "other", token) == token  # resumed: the first staged value stays
    assert fake.read(RemoteRef("k")).raw == b"old"
    assert fake.verify("k", token, "new") and not fake.verify("k", token, "other")
    fake.promote("k", token)
    fake.promote("k", token)
    assert fake.read(RemoteRef("k")).raw == b"new"
    assert fake.read(RemoteRef("k", "AWSPREVIOUS")).raw == b"old"


def test_rollback_moves_current_back_and_says_which_versions() -> None:
    fake = FakeProvider()
    one = fake.put("k", {"v": "1"})
    two = fake.write("k", {"v": "2"}, cas=None).version
    result = fake.rollback("k")
    assert (result.before, result.restored, result.version) == (two, one, one)
    assert fake.value("k") == {"v": "1"}
    assert fake.rollback("k").version == two  # a second rollback undoes the first
    with pytest.raises(KeyNotFound):
        FakeProvider().rollback("absent")


def test_find_matches_under_the_path() -> None:
    fake = FakeProvider()
    for key in ("apps/a/db", "apps/b/db", "apps/b/cache", "other/db"):
        fake.put(key, {"x": "y"})
    assert fake.find("apps/", None) == ["apps/a/db", "apps/b/cache", "apps/b/db"]
    assert fake.find("apps/", "db$") == ["apps/a/db", "apps/b/db"]


@pytest.mark.parametrize("error", [KeyNotFound("gone"), AccessDenied("no"), Unreachable("down")])
def test_settable_failures(error) -> None:
    fake = FakeProvider()
    fake.put("a", {"v": "1"})
    fake.put("b", {"v": "2"})
    fake.fail(error, key="a", operations={"read"}, times=1)
    with pytest.raises(type(error)):
        fake.read(RemoteRef("a"))
    assert fake.read(RemoteRef("a")).data == {"v": "1"}  # only once
    fake.fail(error)
    with pytest.raises(type(error)):
        fake.validate()
    with pytest.raises(type(error)):
        fake.read(RemoteRef("b"))
    fake.heal()
    assert fake.read(RemoteRef("b")).data == {"v": "2"}
    assert fake.calls["read"] == 4


def test_read_many_returns_errors_per_ref() -> None:
    fake = FakeProvider()
    fake.put("a", "x")
    out = fake.read_many([RemoteRef("a"), RemoteRef("missing")])
    assert out[RemoteRef("a")].raw == b"x"  # type: ignore[union-attr]
    assert isinstance(out[RemoteRef("missing")], KeyNotFound)


def test_values_never_in_repr() -> None:
    fake = FakeProvider()
    fake.put("k", {"password": "hunter2-secret"})
    assert "hunter2" not in repr(fake.read(RemoteRef("k")))

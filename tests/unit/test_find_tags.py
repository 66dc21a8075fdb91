"""``dataFrom.find.tags``: the spec's bounds, what the sync asks for, the tag match every provider
shares, and the refusal (InvalidSpec) on stores whose provider has no tags or labels."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from rotor.api.managedsecret import FindRef, ManagedSecretSpec
from rotor.providers.base import InvalidSpec, TagFinder
from rotor.providers.fake import FakeProvider
from rotor.providers.find import has_tags
from rotor.services.backend import Backend
from rotor.sync.sources import sources_of


def test_a_secret_matches_when_it_carries_every_wanted_tag_exactly() -> None:
    assert has_tags({"team": "a", "env": "prod"}, {"team": "a"})
    assert has_tags({"team": "a"}, None) and has_tags(None, {})
    assert not has_tags({"team": "a"}, {"team": "A"})
    assert not has_tags({"team": "a"}, {"team": "a", "env": "prod"})
    assert not has_tags(None, {"team": "a"})
    assert has_tags({"flag": ""}, {"flag": ""}) and not has_tags({}, {"flag": ""})


@pytest.mark.parametrize(
    ("tags", "why"),
    [
        ({}, "at least 1"),
        ({"": "v"}, "1-256 characters"),
        ({"k" * 257: "v"}, "1-256 characters"),
        ({"k": "v" * 257}, "at most 256"),
        ({str(i): "v" for i in range(17)}, "at most 16"),
    ],
)
def test_the_spec_bounds_tags(tags: dict[str, str], why: str) -> None:
    with pytest.raises(ValidationError, match=why):
        FindRef.model_validate({"path": "app-", "tags": tags})


def test_the_sync_asks_for_the_tags_of_each_find() -> None:
    spec = ManagedSecretSpec.model_validate(
        {
            "storeRef": {"name": "s"},
            "dataFrom": [
                {"find": {"path": "app-", "tags": {"team": "a", "env": "prod"}}},
                {"find": {"path": "db-", "name": {"regexp": "^db-"}}},
            ],
        }
    )
    assert sources_of(spec).finds == (
        (0, "app-", None, (("env", "prod"), ("team", "a"))),
        (1, "db-", "^db-", ()),
    )


class TaggedFake(FakeProvider):
    def __init__(self) -> None:
        super().__init__()
        self.tags: dict[str, dict[str, str]] = {}
        self.asked: list[Any] = []

    def find_tagged(self, path: str, name_regexp: str | None, tags: dict[str, str]) -> list[str]:
        self.asked.append((path, name_regexp, tags))
        return [k for k in self.find(path, name_regexp) if has_tags(self.tags.get(k), tags)]


@pytest.mark.asyncio(loop_scope="function")
async def test_a_provider_with_tags_finds_by_them() -> None:
    fake = TaggedFake()
    assert isinstance(fake, TagFinder)
    fake.put("app-a", "1")
    fake.put("app-b", "2")
    fake.tags["app-b"] = {"team": "a"}
    backend = Backend(fake, store="SecretStore/ns/s")
    assert await backend.find("app-", None, {"team": "a"}) == ["app-b"]
    assert await backend.find("app-", None) == ["app-a", "app-b"]  # no tags: the plain find
    assert fake.asked == [("app-", None, {"team": "a"})]


@pytest.mark.asyncio(loop_scope="function")
async def test_a_provider_without_tags_refuses_them_with_what_to_do() -> None:
    plain = FakeProvider()
    assert not isinstance(plain, TagFinder)
    backend = Backend(plain, store="SecretStore/ns/vault")
    with pytest.raises(InvalidSpec, match=r"has no tags or labels to match; remove find\.tags") as err:
        await backend.find("app-", None, {"team": "a"})
    assert "SecretStore/ns/vault" in err.value.message and err.value.reason == "InvalidSpec"


def test_which_providers_find_by_tags() -> None:
    from rotor.providers.aws.provider import ParameterStoreProvider, SecretsManagerProvider
    from rotor.providers.azure import AzureKeyVaultProvider
    from rotor.providers.gcp.provider import GcpSecretManagerProvider
    from rotor.providers.vault.provider import VaultProvider

    for tagged in (AzureKeyVaultProvider, GcpSecretManagerProvider, SecretsManagerProvider):
        assert issubclass(tagged, TagFinder), tagged
    for plain in (VaultProvider, ParameterStoreProvider):
        assert not issubclass(plain, TagFinder), plain

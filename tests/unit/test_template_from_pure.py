"""template.from.configMap (pure): the text a ConfigMap key holds, TemplateMissing naming what is
missing (never a value), how it adds to inline template.data, and the index that holds only the
ConfigMaps some ManagedSecret uses."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from pydantic import ValidationError

from rotor.api.managedsecret import ManagedSecretSpec
from rotor.controller.index import Index
from rotor.providers.base import RemoteRef, RemoteSecret
from rotor.sync.assemble import assemble
from rotor.sync.sources import declared_keys
from rotor.sync.template_from import config_map_ref, config_map_template, template_sources
from rotor.values import TemplateError, TemplateMissing

NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


def _spec(template: dict[str, Any], **extra: Any) -> ManagedSecretSpec:
    return ManagedSecretSpec.model_validate(
        {
            "storeRef": {"name": "vault"},
            "data": [{"secretKey": "password", "remoteRef": {"key": "apps/db", "property": "password"}}],
            "template": template,
            **extra,
        }
    )


def _cm(data: dict[str, str] | None = None, binary: dict[str, str] | None = None, rv: str = "1") -> dict:
    body: dict[str, Any] = {"metadata": {"namespace": "ns", "name": "tpl", "resourceVersion": rv}}
    if data is not None:
        body["data"] = data
    if binary is not None:
        body["binaryData"] = binary
    return body


FROM = {"configMap": {"name": "tpl", "key": "dsn"}}


def test_the_key_text_is_the_template() -> None:
    spec = _spec({"from": FROM})
    ref = config_map_ref(spec)
    assert ref is not None and ref.target == "dsn"
    text = config_map_template(ref, "ns", _cm({"dsn": "db://{{ password }}"}))
    assert template_sources(spec, text) == {"dsn": "db://{{ password }}"}
    fetched = {RemoteRef("apps/db"): RemoteSecret(key="apps/db", version="1", data={"password": "pw"})}
    assert assemble(spec, fetched, {}, {}, now=NOW, shared_template=text) == {
        "password": b"pw",
        "dsn": b"db://pw",
    }
    with pytest.raises(TemplateError):
        assemble(spec, fetched, {}, {}, now=NOW, shared_template="{{ nope }")


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (None, ["'tpl'", "'ns'", "does not exist"]),
        (_cm({"other": "VALUE-1", "more": "VALUE-2"}), ["no key 'dsn'", "'more', 'other'"]),
        (_cm({}, {"dsn": "VkFMVUU="}), ["binaryData"]),
        (_cm(), ["its keys: none"]),
    ],
)
def test_a_missing_configmap_or_key_is_template_missing(body: dict | None, words: list[str]) -> None:
    ref = config_map_ref(_spec({"from": FROM}))
    assert ref is not None
    with pytest.raises(TemplateMissing) as err:
        config_map_template(ref, "ns", body)
    assert err.value.reason == "TemplateMissing"
    for word in words:
        assert word in err.value.message
    assert "VALUE" not in err.value.message and "VkFMVUU" not in err.value.message


def test_from_adds_to_inline_data_under_its_secret_key() -> None:
    spec = _spec(
        {"data": {"url": "{{ password }}"}, "from": {"configMap": {**FROM["configMap"], "secretKey": "DSN"}}}
    )
    assert template_sources(spec, "t") == {"url": "{{ password }}", "DSN": "t"}
    assert declared_keys(spec) == {"password", "url", "DSN"}
    with pytest.raises(TemplateMissing):
        template_sources(spec, None)


def test_one_key_rendered_twice_or_no_template_at_all_is_refused() -> None:
    with pytest.raises(
        ValidationError, match=r"template\.from renders a key that template\.data renders too"
    ):
        _spec({"data": {"dsn": "x"}, "from": FROM})
    with pytest.raises(ValidationError, match="template sets data, from or both"):
        _spec({})
    # Replace with rotation: the rotated key may be the one from renders
    rotation = {"policyRef": {"name": "p"}, "keys": ["dsn"]}
    _spec({"from": FROM, "mergePolicy": "Replace"}, rotation=rotation)
    with pytest.raises(ValidationError, match=r"every key in rotation\.keys"):
        _spec({"from": FROM, "mergePolicy": "Replace"}, rotation={**rotation, "keys": ["password"]})


def _ms(name: str, config_map: str | None) -> dict[str, Any]:
    spec: dict[str, Any] = {"storeRef": {"name": "vault"}}
    if config_map:
        spec["template"] = {"from": {"configMap": {"name": config_map, "key": "dsn"}}}
    return {"metadata": {"namespace": "ns", "name": name, "resourceVersion": "1"}, "spec": spec}


def test_the_index_holds_only_used_configmaps() -> None:
    index = Index()
    assert not index.put_config_map(_cm({"dsn": "a"}))  # nobody uses it: not held
    index.put_managed(("ns", "a"), _ms("a", "tpl"))
    index.put_managed(("ns", "b"), _ms("b", "tpl"))
    assert index.config_map_users(("ns", "tpl")) == {("ns", "a"), ("ns", "b")}
    assert index.put_config_map(_cm({"dsn": "a"}, rv="5"))
    assert not index.put_config_map(_cm({"dsn": "old"}, rv="4")), "an older event is ignored"
    assert not index.put_config_map(_cm({"dsn": "a"}, rv="5")), "the same version twice"
    assert index.config_map("ns", "tpl") is not None
    index.put_managed(("ns", "a"), _ms("a", None))
    assert index.config_map("ns", "tpl") is not None, "b still uses it"
    index.drop_managed(("ns", "b"))
    assert index.config_map_users(("ns", "tpl")) == set()
    assert index.config_map("ns", "tpl") is None, "unused: dropped"


async def test_a_configmap_edit_requeues_its_users_only() -> None:
    import asyncio
    from types import SimpleNamespace

    from rotor.clock import Clock
    from rotor.controller.core import Controller, Settings

    controller = Controller(SimpleNamespace(), Clock(), Settings())  # type: ignore[arg-type]
    for name, cm in (("a", "tpl"), ("b", None)):
        body = _ms(name, cm)
        body["metadata"]["generation"] = 1
        body["status"] = {"observedGeneration": 1}
        controller.observe(body, None)
    controller.queue.clear()
    controller.observe_config_map(
        {"metadata": {"namespace": "ns", "name": "unused", "resourceVersion": "1"}}, "ADDED"
    )
    assert controller.queue.depth == 0
    controller.observe_config_map(_cm({"dsn": "1"}, rv="2"), "ADDED")
    assert await asyncio.wait_for(controller.queue.get(), timeout=1) == ("ns", "a")
    controller.queue.done(("ns", "a"))
    assert controller.queue.depth == 0
    relabelled = _cm({"dsn": "1"}, rv="3")
    relabelled["metadata"]["labels"] = {"team": "x"}
    controller.observe_config_map(relabelled, "MODIFIED")
    assert controller.queue.depth == 0, "labels only: nothing to render again"
    controller.observe_config_map(_cm({"dsn": "2"}, rv="4"), "MODIFIED")
    assert await asyncio.wait_for(controller.queue.get(), timeout=1) == ("ns", "a")
    controller.queue.done(("ns", "a"))
    controller.observe_config_map(_cm({"dsn": "2"}, rv="4"), "DELETED")
    assert await asyncio.wait_for(controller.queue.get(), timeout=1) == ("ns", "a")
    assert controller.index.config_map("ns", "tpl") is None


async def test_the_reader_uses_the_cache_reads_a_miss_once_and_explains_a_refusal() -> None:
    from rotor.kube.gateway import KubeError
    from rotor.services.templates import TemplateReader

    class Gateway:
        def __init__(self, answer: dict[str, Any] | KubeError | None) -> None:
            self.answer, self.gets = answer, 0

        async def get_config_map(self, namespace: str, name: str) -> dict[str, Any] | None:
            self.gets += 1
            if isinstance(self.answer, KubeError):
                raise self.answer
            return self.answer

    index = Index()
    index.put_managed(("ns", "a"), _ms("a", "tpl"))
    spec = _spec({"from": FROM})
    gateway = Gateway(_cm({"dsn": "read"}))
    reader = TemplateReader(gateway, index)  # type: ignore[arg-type]
    assert await reader.shared_template(spec, "ns") == "read"
    assert await reader.shared_template(spec, "ns") == "read"
    assert gateway.gets == 1, "the second sync is served by the cache"
    assert await reader.shared_template(_spec({"data": {"x": "y"}}), "ns") is None
    refused = TemplateReader(Gateway(KubeError(403, "forbidden")), Index())  # type: ignore[arg-type]
    with pytest.raises(TemplateMissing, match="get configmaps is refused"):
        await refused.shared_template(spec, "ns")
    missing = TemplateReader(Gateway(None), Index())  # type: ignore[arg-type]
    with pytest.raises(TemplateMissing, match="does not exist"):
        await missing.shared_template(spec, "ns")

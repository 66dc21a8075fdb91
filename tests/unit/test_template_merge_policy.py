"""template.mergePolicy: Merge adds the rendered keys to the fetched ones; Replace keeps only the
rendered keys (a kubernetes.io/dockerconfigjson Secret holding just .dockerconfigjson)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

from rotor.api.managedsecret import ManagedSecretSpec
from rotor.providers.base import RemoteRef, RemoteSecret
from rotor.sync.assemble import assemble
from rotor.sync.sources import declared_keys

NOW = datetime(2026, 12, 3, tzinfo=UTC)
DOCKERCONFIG = (
    '{"auths": {"registry.example.com": {"username": {{ username | tojson }}, '
    '"password": {{ password | tojson }}, "auth": "{{ (username ~ \':\' ~ password) | b64enc }}"}}}'
)


def _spec(merge_policy: str | None) -> ManagedSecretSpec:
    template: dict[str, object] = {"data": {".dockerconfigjson": DOCKERCONFIG}}
    if merge_policy is not None:
        template["mergePolicy"] = merge_policy
    return ManagedSecretSpec.model_validate(
        {
            "storeRef": {"name": "vault"},
            "target": {"type": "kubernetes.io/dockerconfigjson"},
            "dataFrom": [{"extract": {"key": "apps/registry"}}],
            "template": template,
        }
    )


FETCHED = {
    RemoteRef("apps/registry"): RemoteSecret(
        key="apps/registry", version="3", data={"username": "robot", "password": 'p"w:1'}
    )
}


def test_replace_keeps_only_the_rendered_keys() -> None:
    out = assemble(_spec("Replace"), FETCHED, {}, {}, now=NOW)
    assert set(out) == {".dockerconfigjson"}
    config = json.loads(out[".dockerconfigjson"])["auths"]["registry.example.com"]
    assert config["password"] == 'p"w:1'
    assert base64.b64decode(config["auth"]) == b'robot:p"w:1'


def test_merge_is_the_default_and_keeps_the_fetched_keys() -> None:
    for policy in (None, "Merge"):
        out = assemble(_spec(policy), FETCHED, {}, {}, now=NOW)
        assert set(out) == {".dockerconfigjson", "username", "password"}


def test_the_keys_a_replace_sync_writes_are_the_rendered_ones() -> None:
    # what the rotation's Secret check judges before it writes the source
    assert declared_keys(_spec("Replace")) == {".dockerconfigjson"}
    assert declared_keys(_spec("Merge")) == {".dockerconfigjson"}  # dataFrom keys come from the source

"""sync/plan.plan on its own: the desired Secret against the one in the cluster -> create, patch,
recreate, noop or conflict, as a table."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from rotor.api.names import DATA_HASH_ANNOTATION, MANAGED_BY_LABEL, MANAGED_KEYS_ANNOTATION
from rotor.sync.plan import Desired, plan

OWNER = {"apiVersion": "rotor.dev/v1alpha1", "kind": "ManagedSecret", "name": "app", "uid": "u1"}


def desired(
    policy: str = "Owner", type_: str = "Opaque", data: dict[str, bytes] | None = None, hash_: str = "h1"
) -> Desired:
    data = {"password": b"p1"} if data is None else data
    return Desired(
        namespace="ns",
        name="app",
        type=type_,
        data=data,
        data_hash=hash_,
        labels={"team": "a"},
        annotations={},
        creation_policy=policy,
        owner=OWNER,
        managed_by="app",
    )


def b64(value: bytes) -> str:
    return base64.b64encode(value).decode()


def secret(
    *,
    label: str | None = "app",
    type_: str = "Opaque",
    data: dict[str, bytes] | None = None,
    hash_: str | None = "h1",
    owner_uid: str | None = "u1",
    extra_annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    labels = {"team": "a"}
    if label is not None:
        labels[MANAGED_BY_LABEL] = label
    meta: dict[str, Any] = {
        "name": "app",
        "namespace": "ns",
        "labels": labels,
        "annotations": {**({DATA_HASH_ANNOTATION: hash_} if hash_ else {}), **(extra_annotations or {})},
    }
    if owner_uid is not None:
        meta["ownerReferences"] = [{"uid": owner_uid, "controller": True}]
    data = {"password": b"p1"} if data is None else data
    return {"metadata": meta, "type": type_, "data": {k: b64(v) for k, v in data.items()}}


CASES = [
    # (what, desired, actual, action, restored, message part)
    ("nothing there: create", desired(), None, "create", False, ""),
    ("the same Secret: noop", desired(), secret(), "noop", False, ""),
    (
        "the source changed: patch",
        desired(data={"password": b"p2"}, hash_="h2"),
        secret(),
        "patch",
        False,
        "",
    ),
    ("a hand edit: patch, restored", desired(), secret(data={"password": b"edited"}), "patch", True, ""),
    (
        "someone else's Secret",
        desired(),
        secret(label=None, owner_uid=None),
        "conflict",
        False,
        "not managed",
    ),
    ("Rotor's label removed", desired(), secret(label=None), "conflict", False, "not managed"),
    (
        "labelled, controlled by another",
        desired(),
        secret(owner_uid="other"),
        "conflict",
        False,
        "not managed",
    ),
    ("the type changes: recreate", desired(type_="kubernetes.io/tls"), secret(), "recreate", False, "type"),
    (
        "a forbidden type",
        desired(type_="kubernetes.io/service-account-token"),
        None,
        "conflict",
        False,
        "type",
    ),
    ("Merge into nothing", desired("Merge"), None, "conflict", False, "does not exist"),
    (
        "Merge, keys already there",
        desired("Merge"),
        secret(
            label=None,
            owner_uid=None,
            hash_=None,
            extra_annotations={
                "rotor.dev/managed-keys.app": "password",
                "rotor.dev/data-hash.app": "h1",
            },
        ),
        "noop",
        False,
        "",
    ),
    (
        "Merge, before per-writer keys: migrated",
        desired("Merge"),
        secret(label=None, owner_uid=None, extra_annotations={MANAGED_KEYS_ANNOTATION: "password"}),
        "patch",
        False,
        "",
    ),
    ("Merge into a foreign Secret", desired("Merge"), secret(label=None, owner_uid=None), "patch", False, ""),
]


@pytest.mark.parametrize(
    ("what", "want", "actual", "action", "restored", "message"), CASES, ids=[c[0] for c in CASES]
)
def test_plan(what: str, want: Desired, actual: Any, action: str, restored: bool, message: str) -> None:
    decision = plan(want, actual)
    assert decision.action == action, what
    assert decision.restored is restored, what
    assert message in decision.message, what


def test_a_patch_removes_keys_the_source_no_longer_has_and_keeps_the_labels() -> None:
    decision = plan(desired(), secret(data={"password": b"p1", "stale": b"x"}))
    assert decision.action == "patch"
    assert decision.body["data"] == {"password": b64(b"p1"), "stale": None}
    assert decision.body["metadata"]["labels"][MANAGED_BY_LABEL] == "app"


def test_a_create_carries_owner_label_hash_and_data() -> None:
    body = plan(desired(), None).body
    assert body["metadata"]["ownerReferences"][0]["uid"] == "u1"
    assert body["metadata"]["labels"] == {"team": "a", MANAGED_BY_LABEL: "app"}
    assert body["metadata"]["annotations"][DATA_HASH_ANNOTATION] == "h1"
    assert body["data"] == {"password": b64(b"p1")} and body["type"] == "Opaque"


def test_merge_removes_only_its_own_stale_keys() -> None:
    actual = secret(
        label=None,
        owner_uid=None,
        data={"password": b"p1", "old": b"x", "theirs": b"t"},
        extra_annotations={"rotor.dev/managed-keys.app": "old,password"},
    )
    decision = plan(desired("Merge"), actual)
    assert decision.action == "patch"
    assert decision.body["data"] == {"password": b64(b"p1"), "old": None}
    assert decision.body["metadata"]["annotations"]["rotor.dev/managed-keys.app"] == "password"

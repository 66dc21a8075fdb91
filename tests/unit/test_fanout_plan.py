"""ClusterManagedSecret decisions (rotor.sync.fanout): selection, the copy, the plan and the status,
with no servers."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from pydantic import ValidationError

from rotor.api.clustermanagedsecret import ClusterManagedSecretSpec
from rotor.api.names import CLUSTER_MANAGED_BY_LABEL, TEMPLATE_HASH_ANNOTATION
from rotor.sync.fanout import (
    NamespaceView,
    covers,
    desired_spec,
    fanout_status,
    plan_fanout,
    select_namespaces,
    template_hash,
)

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
TEMPLATE = {
    "storeRef": {"name": "shared", "kind": "ClusterSecretStore"},
    "data": [{"secretKey": "password", "remoteRef": {"key": "tenants/{namespace}/db", "property": "pw"}}],
    "dataFrom": [{"extract": {"key": "tenants/{namespace}/extra"}}, {"find": {"path": "apps/{namespace}/"}}],
    "template": {"data": {"url": "{{ .password }}-{namespace}"}},
}


def cms(**spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "app-db", "uid": "u-1", "generation": 3},
        "spec": {"template": TEMPLATE, **spec},
    }


def views(**labels: dict[str, str]) -> dict[str, NamespaceView]:
    return {name: NamespaceView(name, lab) for name, lab in labels.items()}


def test_selector_and_list_are_a_union_and_missing_names_are_reported() -> None:
    spaces = views(a={"team": "pay"}, b={"team": "web"}, c={"team": "pay"})
    spaces["d"] = NamespaceView("d", {"team": "pay"}, terminating=True)
    selected, missing = select_namespaces(
        {"namespaceSelector": {"matchLabels": {"team": "pay"}}, "namespaces": ["b", "zz"]}, spaces
    )
    assert selected == ["a", "b", "c"] and missing == ["zz"]


def test_namespace_expands_in_remote_keys_only() -> None:
    spec = desired_spec(cms(namespaces=["a"]), "team-a")
    assert spec["data"][0]["remoteRef"]["key"] == "tenants/team-a/db"
    assert spec["dataFrom"][0]["extract"]["key"] == "tenants/team-a/extra"
    assert spec["dataFrom"][1]["find"]["path"] == "apps/team-a/"
    assert spec["template"]["data"]["url"] == "{{ .password }}-{namespace}"
    assert TEMPLATE["data"][0]["remoteRef"]["key"] == "tenants/{namespace}/db", "template mutated"


def test_plan_creates_updates_conflicts_and_deletes() -> None:
    obj = cms(namespaces=["a", "b", "c", "d"])
    spaces = views(a={}, b={}, c={}, d={}, e={})
    current = desired_spec(obj, "c")
    stored_c = {
        "metadata": {
            "name": "app-db",
            "namespace": "c",
            "labels": {CLUSTER_MANAGED_BY_LABEL: "app-db"},
            "annotations": {TEMPLATE_HASH_ANNOTATION: template_hash(current)},
            "ownerReferences": [{"kind": "ClusterManagedSecret", "uid": "u-1"}],
        },
        # the API server's defaults added to what was written
        "spec": {**current, "refresh": {"interval": "1h"}},
    }
    stale_d = {
        "metadata": {
            **stored_c["metadata"],
            "namespace": "d",
            "annotations": {TEMPLATE_HASH_ANNOTATION: "x"},
        },
        "spec": current,
    }
    foreign_b = {"metadata": {"name": "app-db", "namespace": "b"}, "spec": {}}
    stray_e = {"metadata": {**stored_c["metadata"], "namespace": "e"}, "spec": current}
    existing = {
        ("b", "app-db"): foreign_b,
        ("c", "app-db"): stored_c,
        ("d", "app-db"): stale_d,
        ("e", "app-db"): stray_e,
    }
    plan = plan_fanout(obj, spaces, lambda ns, n: existing.get((ns, n)), [stored_c, stale_d, stray_e])
    kinds = {(type(w).__name__, w.namespace) for w in plan.writes}
    assert kinds == {("Create", "a"), ("Update", "d")}, "c is current: no write"
    assert set(plan.conflicts) == {"b"}
    assert [(d.namespace, d.name) for d in plan.deletes] == [("e", "app-db")]
    created = next(w for w in plan.writes if w.namespace == "a").body
    assert created["metadata"]["labels"] == {CLUSTER_MANAGED_BY_LABEL: "app-db"}
    assert created["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    assert created["spec"]["data"][0]["remoteRef"]["key"] == "tenants/a/db"


def test_a_hand_edit_of_a_field_the_template_sets_is_put_back() -> None:
    obj = cms(namespaces=["a"])
    spec = desired_spec(obj, "a")
    edited = {**spec, "storeRef": {"name": "other", "kind": "ClusterSecretStore"}}
    assert not covers(edited, spec)
    body = {
        "metadata": {
            "name": "app-db",
            "namespace": "a",
            "labels": {CLUSTER_MANAGED_BY_LABEL: "app-db"},
            "annotations": {TEMPLATE_HASH_ANNOTATION: template_hash(spec)},
            "ownerReferences": [{"kind": "ClusterManagedSecret", "uid": "u-1"}],
        },
        "spec": edited,
    }
    plan = plan_fanout(obj, views(a={}), lambda ns, n: body, [body])
    assert [type(w).__name__ for w in plan.writes] == ["Update"]


def _copy(ready: str, reason: str, generation: int = 1, stalled: str = "False") -> dict[str, Any]:
    return {
        "metadata": {"generation": generation},
        "status": {
            "conditions": [
                {"type": "Ready", "status": ready, "reason": reason, "message": "m", "observedGeneration": 1},
                {"type": "Stalled", "status": stalled, "reason": reason, "observedGeneration": 1},
            ]
        },
    }


def test_status_counts_and_lists_failures_in_order() -> None:
    obj = cms(namespaces=["a", "b", "c", "d", "gone"])
    plan = plan_fanout(obj, views(a={}, b={}, c={}, d={}), lambda ns, n: None, [])
    plan.conflicts["d"] = "taken"
    copies = {
        "a": _copy("True", "Synced"),
        "b": _copy("False", "Forbidden", stalled="True"),
        "c": _copy("True", "Synced", generation=2),  # not yet synced for its new spec: pending
    }
    status = fanout_status(obj, plan, copies, {}, NOW)
    assert status["namespaces"] == {"selected": 5, "ready": 1, "failed": 3}
    assert [(f["namespace"], f["reason"]) for f in status["failedNamespaces"]] == [
        ("b", "Forbidden"),
        ("d", "NameConflict"),
        ("gone", "NamespaceNotFound"),
    ]
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"], ready["observedGeneration"]) == ("False", "NamespacesFailed", 3)
    assert next(c for c in status["conditions"] if c["type"] == "Stalled")["status"] == "True"


def test_status_ready_when_every_copy_is_ready_and_lists_at_most_20() -> None:
    names = [f"n{i:02d}" for i in range(30)]
    obj = cms(namespaces=names)
    plan = plan_fanout(obj, views(**{n: {} for n in names}), lambda ns, n: None, [])
    ok = fanout_status(obj, plan, {n: _copy("True", "Synced") for n in names}, {}, NOW)
    ready = next(c for c in ok["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True" and ok["namespaces"]["ready"] == 30 and ok["failedNamespaces"] == []
    bad = fanout_status(obj, plan, {n: _copy("False", "KeyNotFound") for n in names}, {}, NOW)
    assert len(bad["failedNamespaces"]) == 20 and bad["namespaces"]["failed"] == 30
    cond = next(c for c in bad["conditions"] if c["type"] == "Reconciling")
    assert cond["status"] == "True", "KeyNotFound alone is transient"


def test_spec_rules() -> None:
    with pytest.raises(ValidationError, match="namespaceSelector, namespaces or both"):
        ClusterManagedSecretSpec.model_validate({"template": TEMPLATE})
    with pytest.raises(ValidationError, match="must be ClusterSecretStore"):
        ClusterManagedSecretSpec.model_validate(
            {"namespaces": ["a"], "template": {**TEMPLATE, "storeRef": {"name": "v"}}}
        )
    ClusterManagedSecretSpec.model_validate({"namespaces": ["a"], "template": TEMPLATE})

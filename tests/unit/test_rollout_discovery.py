"""Which workloads read a Secret, and which of its keys (DESIGN §2, Rollout of consumers)."""

from __future__ import annotations

from typing import Any

import pytest

from rotor.rollout.discovery import Consumer, Ref, consumer_of, consumers, explicit, missing

SECRET = "app-db"


def workload(
    name: str,
    kind: str = "Deployment",
    *,
    containers: list[dict[str, Any]] | None = None,
    init: list[dict[str, Any]] | None = None,
    volumes: list[dict[str, Any]] | None = None,
    deleting: bool = False,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if deleting:
        meta["deletionTimestamp"] = "2024-05-01T10:00:00Z"
    pod: dict[str, Any] = {"containers": containers or [{"name": "app", "image": "app"}]}
    if init:
        pod["initContainers"] = init
    if volumes:
        pod["volumes"] = volumes
    return {"kind": kind, "metadata": meta, "spec": {"template": {"spec": pod}}}


def env_key(key: str, secret: str = SECRET, optional: bool | None = None) -> dict[str, Any]:
    ref: dict[str, Any] = {"name": secret, "key": key}
    if optional is not None:
        ref["optional"] = optional
    return {"name": "app", "image": "app", "env": [{"name": key.upper(), "valueFrom": {"secretKeyRef": ref}}]}


def env_from(secret: str = SECRET) -> dict[str, Any]:
    return {"name": "app", "image": "app", "envFrom": [{"secretRef": {"name": secret}}]}


def keys_of(w: dict[str, Any]) -> frozenset[str] | None:
    found = consumer_of(w, SECRET)
    assert found is not None
    return found.keys


@pytest.mark.parametrize(
    ("w", "keys"),
    [
        (workload("a", containers=[env_key("password")]), frozenset({"password"})),
        (workload("a", containers=[env_key("password", optional=True)]), frozenset({"password"})),
        (workload("a", containers=[env_from()]), None),
        (
            workload("a", init=[env_key("username")], containers=[env_key("password")]),
            frozenset({"username", "password"}),
        ),
        (workload("a", init=[env_from()], containers=[env_key("password")]), None),
        (workload("a", volumes=[{"name": "v", "secret": {"secretName": SECRET}}]), None),
        (
            workload(
                "a",
                volumes=[
                    {
                        "name": "v",
                        "secret": {
                            "secretName": SECRET,
                            "optional": True,
                            "items": [{"key": "tls.crt", "path": "crt"}],
                        },
                    }
                ],
            ),
            frozenset({"tls.crt"}),
        ),
        (
            workload(
                "a",
                volumes=[
                    {
                        "name": "v",
                        "projected": {
                            "sources": [
                                {"configMap": {"name": SECRET}},
                                {"secret": {"name": SECRET, "items": [{"key": "ca.crt", "path": "ca"}]}},
                            ]
                        },
                    }
                ],
            ),
            frozenset({"ca.crt"}),
        ),
        (
            workload("a", volumes=[{"name": "v", "projected": {"sources": [{"secret": {"name": SECRET}}]}}]),
            None,
        ),
        (workload("a", kind="StatefulSet", containers=[env_key("password")]), frozenset({"password"})),
        (workload("a", kind="DaemonSet", containers=[env_from()]), None),
    ],
    ids=[
        "env",
        "env-optional",
        "envFrom",
        "init-and-main",
        "envFrom-wins",
        "volume",
        "volume-items",
        "projected-items",
        "projected-all",
        "statefulset",
        "daemonset",
    ],
)
def test_keys_read_through_each_kind_of_reference(w: dict[str, Any], keys: frozenset[str] | None) -> None:
    assert keys_of(w) == keys


@pytest.mark.parametrize(
    "w",
    [
        workload("a"),
        workload("a", containers=[env_key("password", secret="other")]),
        workload("a", containers=[env_from(secret="other")]),
        workload(
            "a",
            volumes=[
                {"name": "v", "secret": {"secretName": "other"}},
                {"name": "c", "configMap": {"name": SECRET}},
            ],
        ),
        workload("a", volumes=[{"name": "v", "projected": {"sources": [{"configMap": {"name": SECRET}}]}}]),
        {"kind": "Job", **{k: v for k, v in workload("a", containers=[env_from()]).items() if k != "kind"}},
    ],
    ids=["none", "env-other", "envFrom-other", "volume-other-and-configmap", "projected-configmap", "job"],
)
def test_workloads_that_do_not_read_the_secret_are_not_consumers(w: dict[str, Any]) -> None:
    assert consumer_of(w, SECRET) is None


def test_auto_lists_consumers_in_a_stable_order_and_skips_deleting_ones() -> None:
    workloads = [
        workload("web", kind="DaemonSet", containers=[env_from()]),
        workload("worker", containers=[env_key("password")]),
        workload("api", containers=[env_from()]),
        workload("idle"),
        workload("old", containers=[env_from()], deleting=True),
        workload("db", kind="StatefulSet", volumes=[{"name": "v", "secret": {"secretName": SECRET}}]),
    ]
    assert consumers(workloads, SECRET) == [
        Consumer("Deployment", "api", None),
        Consumer("Deployment", "worker", frozenset({"password"})),
        Consumer("StatefulSet", "db", None),
        Consumer("DaemonSet", "web", None),
    ]


def test_explicit_targets_read_every_key_and_missing_ones_are_named() -> None:
    workloads = [workload("api"), workload("db", kind="StatefulSet", containers=[env_key("password")])]
    targets = [Ref("StatefulSet", "db"), Ref("Deployment", "gone"), Ref("Deployment", "api")]
    assert explicit(targets, workloads) == [
        Consumer("StatefulSet", "db", None),
        Consumer("Deployment", "api", None),
    ]
    assert missing(targets, workloads) == ["Deployment/gone"]


def test_explicit_matches_kind_as_well_as_name() -> None:
    assert explicit([Ref("StatefulSet", "api")], [workload("api")]) == []
    assert Consumer("StatefulSet", "api", None).ref == "StatefulSet/api"

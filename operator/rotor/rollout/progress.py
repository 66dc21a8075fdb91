"""Whether a restarted workload's rollout has finished, judged like ``kubectl rollout status``.

A restart stays "in progress" (and holds one of the namespace's ``--restart-limit`` slots) until
its controller has observed the new generation and replaced the old pods. Update strategies that
never replace pods by themselves (``OnDelete``) finish as soon as the new generation is observed.
A Deployment past its progress deadline has finished, badly: holding its slot would block the rest.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def finished(workload: Mapping[str, Any]) -> bool:
    meta = workload.get("metadata") or {}
    spec = workload.get("spec") or {}
    status = workload.get("status") or {}
    if int(status.get("observedGeneration") or 0) < int(meta.get("generation") or 0):
        return False
    kind = workload.get("kind")
    if kind == "Deployment":
        return _deployment(spec, status)
    if kind == "StatefulSet":
        return _statefulset(spec, status)
    if kind == "DaemonSet":
        return _daemonset(spec, status)
    return True


def _n(status: Mapping[str, Any], field: str) -> int:
    return int(status.get(field) or 0)


def _replicas(spec: Mapping[str, Any]) -> int:
    value = spec.get("replicas")
    return 1 if value is None else int(value)


def _deployment(spec: Mapping[str, Any], status: Mapping[str, Any]) -> bool:
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
            return True
    replicas = _replicas(spec)
    updated = _n(status, "updatedReplicas")
    old_pods_gone = _n(status, "replicas") <= updated
    return updated >= replicas and old_pods_gone and _n(status, "availableReplicas") >= updated


def _statefulset(spec: Mapping[str, Any], status: Mapping[str, Any]) -> bool:
    strategy = spec.get("updateStrategy") or {}
    if strategy.get("type") == "OnDelete":
        return True
    replicas = _replicas(spec)
    partition = int(((strategy.get("rollingUpdate") or {}).get("partition")) or 0)
    if _n(status, "updatedReplicas") < replicas - partition or _n(status, "readyReplicas") < replicas:
        return False
    current, update = status.get("currentRevision"), status.get("updateRevision")
    return partition > 0 or not (current and update) or current == update


def _daemonset(spec: Mapping[str, Any], status: Mapping[str, Any]) -> bool:
    if (spec.get("updateStrategy") or {}).get("type") == "OnDelete":
        return True
    desired = _n(status, "desiredNumberScheduled")
    return _n(status, "updatedNumberScheduled") >= desired and _n(status, "numberAvailable") >= desired

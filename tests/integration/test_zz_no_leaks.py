"""Runs last (file name): every secret value the suite used must be absent from everything Rotor
showed anyone: operator logs, Events, the status of every Rotor object, the metrics, and the CLI
output the tests captured (DESIGN §7)."""

from __future__ import annotations

import json

import pytest

from support.cluster import Cluster

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_no_secret_value_reaches_logs_events_status_metrics_or_cli(
    cluster: Cluster, env, leaks
) -> None:
    assert len(leaks.values) >= 10, "the suite registered too few values for this scan to mean anything"
    sources: list[tuple[str, str]] = []
    sources.append(("operator log", env.operator.log_text()))
    for extra in sorted(env.workdir.glob("logs/*.log")):
        if extra.name.startswith(("operator", "rollout", "rotor")) or "op-" in extra.name:
            sources.append((f"log {extra.name}", extra.read_text(errors="replace")))
    sources.append(("metrics", env.operator.metrics()))
    # raw JSON: the client's events.k8s.io model refuses Events without eventTime, which is how
    # Kubernetes' own controllers (kube-controller-manager, in test_rollout_budgets.py) post them
    raw = await cluster.events.list_event_for_all_namespaces(_preload_content=False)
    events = json.loads(await raw.read())["items"]
    sources.append(("events", "\n".join(f"{e.get('reason')} {e.get('note')}" for e in events)))
    core_events = await cluster.core.list_event_for_all_namespaces()
    sources.append(("core events", "\n".join(f"{e.reason} {e.message}" for e in core_events.items)))
    for plural in ("managedsecrets", "secretstores", "rotationpolicies", "pushsecrets"):
        objs = await cluster.custom.list_cluster_custom_object("rotor.dev", "v1alpha1", plural)
        sources.append((plural, json.dumps([o.get("status") for o in objs.get("items", [])])))
    for plural in ("clustersecretstores", "clusterrotationpolicies", "clustermanagedsecrets"):
        objs = await cluster.custom.list_cluster_custom_object("rotor.dev", "v1alpha1", plural)
        sources.append((plural, json.dumps([o.get("status") for o in objs.get("items", [])])))
    sources.extend(leaks.outputs)
    found = {what: leaks.find(text) for what, text in sources}
    leaked = {what: [v[:4] + "…" for v in values] for what, values in found.items() if values}
    assert not leaked, f"secret values found in: {leaked}"
    # the scan really looked at something
    assert sum(len(text) for _, text in sources) > 10_000

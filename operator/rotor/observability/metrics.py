"""Prometheus metrics (DESIGN §5).

Counters and histograms are process-wide. Per-object series (ready, expiry, ...) are NOT kept as
labelled gauges: a collector computes them at scrape time from the controller's current index, so
a deleted ManagedSecret leaves no stale series.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from prometheus_client import (
    PLATFORM_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from rotor import __version__

# No `_created` series: they double every counter's series and Rotor's dashboards and alerts use
# rate()/increase(), which do not need them.
disable_created_metrics()
REGISTRY = CollectorRegistry(auto_describe=True)
# process_* (CPU, memory, open files, start time) and python_info, as every Python exporter has
ProcessCollector(registry=REGISTRY)
REGISTRY.register(PLATFORM_COLLECTOR)

SYNC_TOTAL = Counter("rotor_sync_total", "ManagedSecret syncs by result", ["result"], registry=REGISTRY)
SYNC_DURATION = Histogram(
    "rotor_sync_duration_seconds",
    "Time to sync one ManagedSecret",
    registry=REGISTRY,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
ROTATION_TOTAL = Counter(
    "rotor_rotation_total", "Rotations by strategy and result", ["strategy", "result"], registry=REGISTRY
)
ROTATION_DURATION = Histogram(
    "rotor_rotation_duration_seconds",
    "Time from the start of a rotation to its completion",
    registry=REGISTRY,
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
ROTATION_CLAIMS_LOST = Counter(
    "rotor_rotation_claims_lost_total",
    "Rotation phases this operator could not claim because another writer had advanced the rotation "
    "(a second operator serving the same objects), by the phase it tried to record",
    ["phase"],
    registry=REGISTRY,
)
PROVIDER_REQUESTS = Counter(
    "rotor_provider_requests_total",
    "Backend calls by store, provider, operation and result",
    ["store", "provider", "operation", "result"],
    registry=REGISTRY,
)
PROVIDER_DURATION = Histogram(
    "rotor_provider_request_duration_seconds",
    "Backend call latency",
    ["provider", "operation"],
    registry=REGISTRY,
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15),
)
PROVIDER_CACHE_HITS = Counter(
    "rotor_provider_cache_hits_total", "Backend reads served from the shared read cache", registry=REGISTRY
)
NOTIFICATIONS = Counter(
    "rotor_notifications_total",
    "Change notifications by source (http, sqs) and result (queued, coalesced, no_readers, "
    "unauthorized, too_large, invalid, unknown_store, rate_limited, not_leader, unavailable, "
    "ignored, error)",
    ["source", "result"],
    registry=REGISTRY,
)
ROLLOUT_RESTARTS = Counter(
    "rotor_rollout_restarts_total",
    "Workload restarts by kind and result",
    ["kind", "result"],
    registry=REGISTRY,
)
ROLLOUT_WAITING = Gauge(
    "rotor_rollout_restarts_waiting",
    "Workload restarts decided and not started yet, by what they wait for: interval (the workload's "
    "--restart-min-interval) or limit (a slot of --restart-limit or --restart-limit-cluster)",
    ["reason"],
    registry=REGISTRY,
)
ROLLOUT_IN_PROGRESS = Gauge(
    "rotor_rollout_restarts_in_progress",
    "Workload restarts patched whose rollout has not finished yet (the slots held)",
    registry=REGISTRY,
)
ROLLOUT_NOTIFICATIONS = Counter(
    "rotor_rollout_notifications_total",
    "Workloads told of a change to data they use, without a restart (rollout strategy Notify), by kind",
    ["kind"],
    registry=REGISTRY,
)
for _reason in ("interval", "limit"):
    ROLLOUT_WAITING.labels(_reason).set(0)
# the controller: its work queue (values read at scrape time), leadership, apiserver errors
WORKQUEUE_DEPTH = Gauge("rotor_workqueue_depth", "ManagedSecrets waiting for a worker", registry=REGISTRY)
WORKQUEUE_IN_FLIGHT = Gauge(
    "rotor_workqueue_in_flight", "ManagedSecrets being synced right now", registry=REGISTRY
)
WORKQUEUE_OLDEST = Gauge(
    "rotor_workqueue_oldest_seconds",
    "How long the longest-waiting ManagedSecret in the work queue has waited",
    registry=REGISTRY,
)
LEADER = Gauge(
    "rotor_leader",
    "1 while this replica holds its shard's Lease (does the work)",
    ["shard"],
    registry=REGISTRY,
)
APISERVER_ERRORS = Counter(
    "rotor_apiserver_errors_total",
    "Syncs that failed on an unavailable apiserver, by kind (connection, timeout, throttled, server)",
    ["kind"],
    registry=REGISTRY,
)
FANOUT_PASSES = Counter(
    "rotor_clustermanagedsecret_passes_total",
    "ClusterManagedSecret reconciles, by result (unchanged: nothing written, not even status)",
    ["clustermanagedsecret", "result"],
    registry=REGISTRY,
)
BUILD_INFO = Gauge("rotor_build_info", "Rotor build", ["version"], registry=REGISTRY)
BUILD_INFO.labels(version=__version__).set(1)


def store_label(kind: str, namespace: str, name: str) -> str:
    """The ``store`` label of every store series: ``Kind/namespace/name``, or ``Kind/name`` for a
    ClusterSecretStore, the same string on ``rotor_provider_requests_total`` and
    ``rotor_secretstore_ready`` so the two join ``on (store)``."""
    return f"{kind}/{namespace}/{name}" if namespace else f"{kind}/{name}"


@dataclass(frozen=True)
class ObjectSample:
    """What the scrape-time collector needs of one ManagedSecret."""

    namespace: str
    name: str
    ready: bool
    expiry: float | None
    renewal: float | None
    last_sync: float | None
    last_rotation: float | None
    next_rotation: float | None


@dataclass(frozen=True)
class StoreSample:
    namespace: str
    name: str
    kind: str
    ready: bool


class StateCollector(Collector):
    """Per-object series, computed from current state at each scrape."""

    def __init__(
        self,
        objects: Callable[[], Iterable[ObjectSample]],
        stores: Callable[[], Iterable[StoreSample]],
    ) -> None:
        self._objects = objects
        self._stores = stores

    def describe(self) -> list[GaugeMetricFamily]:
        return []

    def collect(self) -> Iterator[GaugeMetricFamily]:
        labels = ["namespace", "name"]
        ready = GaugeMetricFamily(
            "rotor_managedsecret_ready", "1 when the Secret matches its source", labels=labels
        )
        families = {
            "expiry": GaugeMetricFamily(
                "rotor_managedsecret_expiry_timestamp_seconds", "status.expiry.notAfter", labels=labels
            ),
            "renewal": GaugeMetricFamily(
                "rotor_managedsecret_renewal_timestamp_seconds", "status.expiry.renewalTime", labels=labels
            ),
            "last_sync": GaugeMetricFamily(
                "rotor_managedsecret_last_sync_timestamp_seconds", "status.lastSyncTime", labels=labels
            ),
            "last_rotation": GaugeMetricFamily(
                "rotor_managedsecret_last_rotation_timestamp_seconds",
                "status.rotation.lastRotationTime",
                labels=labels,
            ),
            "next_rotation": GaugeMetricFamily(
                "rotor_managedsecret_next_rotation_timestamp_seconds",
                "status.rotation.nextRotationTime",
                labels=labels,
            ),
        }
        for sample in self._objects():
            key = [sample.namespace, sample.name]
            ready.add_metric(key, 1.0 if sample.ready else 0.0)
            for attr, family in families.items():
                value = getattr(sample, attr)
                if value is not None:
                    family.add_metric(key, value)
        yield ready
        yield from families.values()
        stores = GaugeMetricFamily(
            "rotor_secretstore_ready",
            "1 when the store validated",
            labels=["namespace", "name", "kind", "store"],
        )
        for store in self._stores():
            stores.add_metric(
                [
                    store.namespace,
                    store.name,
                    store.kind,
                    store_label(store.kind, store.namespace, store.name),
                ],
                1.0 if store.ready else 0.0,
            )
        yield stores

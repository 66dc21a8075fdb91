"""The one composition root of the services: each gets only what it uses (the gateway, the clock,
the hash key, settings values, and the ports to the index and the work queue)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from rotor.clock import Clock
from rotor.kube.gateway import KubeGateway
from rotor.services.change_events import ChangeEventService
from rotor.services.cpu import CpuPool
from rotor.services.notifications import NotificationService
from rotor.services.policies import PolicyStatusService
from rotor.services.ports import ConfigMapCache, ObjectIndex, PolicyKey, SecretLedger, WorkScheduler
from rotor.services.rollout import DEFAULT_MIN_INTERVAL, DEFAULT_RESTART_TIMEOUT, RolloutService
from rotor.services.rotation import RotationService
from rotor.services.stores import StoreService
from rotor.services.sync import SyncService


@dataclass(frozen=True)
class ServiceOptions:
    hash_key: bytes
    restart_limit: int = 2
    restart_limit_cluster: int = 0  # 0: no cluster-wide limit
    restart_min_interval: float = DEFAULT_MIN_INTERVAL
    restart_debounce: float = 30.0
    restart_timeout: float = DEFAULT_RESTART_TIMEOUT
    #: worker processes for template rendering and key generation (0: in-line, unit tests only)
    cpu_workers: int = 2
    rotation: bool = True
    rollout: bool = True
    #: change notifications: the per-store rate of the receiver, and the SQS consumers
    notify_rate: float = 10.0
    notify_burst: int = 100
    change_events: bool = True


@dataclass
class Services:
    stores: StoreService
    sync: SyncService
    rotation: RotationService | None
    rollout: RolloutService | None
    policy_status: PolicyStatusService | None
    cpu: CpuPool
    index: ObjectIndex
    scheduler: WorkScheduler
    notifications: NotificationService
    change_events: ChangeEventService | None = None

    def policy_changed(self, key: PolicyKey) -> None:
        """A policy's spec changed (or it came or went): the ManagedSecrets using it re-evaluate."""
        for user in self.index.policy_users(key):
            self.scheduler.requeue(user, urgent=False)

    def start(self) -> None:
        """Start the background parts (needs a running loop)."""
        if self.policy_status is not None:
            self.policy_status.start()
        if self.change_events is not None:
            self.change_events.start()

    async def aclose(self) -> None:
        if self.change_events is not None:
            await self.change_events.stop()
        self.notifications.close()
        if self.policy_status is not None:
            await self.policy_status.stop()
        if self.rollout is not None:
            await self.rollout.stop()
        with contextlib.suppress(Exception):
            await self.cpu.aclose()


def build_services(
    gateway: KubeGateway,
    clock: Clock,
    index: ObjectIndex,
    scheduler: WorkScheduler,
    options: ServiceOptions,
    *,
    ledger: SecretLedger,
    stores: StoreService | None = None,
    config_maps: ConfigMapCache | None = None,
) -> Services:
    """Build every service. ``ledger`` is told about Rotor's own Secret writes (usually the index
    itself); ``stores`` lets a caller that already built the store service share it;
    ``config_maps`` holds the ``template.from`` ConfigMaps the watch delivered (usually the index)."""
    stores = stores if stores is not None else StoreService(gateway, clock)
    cpu = CpuPool(options.cpu_workers)
    rotation = (
        RotationService(gateway, clock, index, hash_key=options.hash_key, cpu=cpu)
        if options.rotation
        else None
    )
    rollout = (
        RolloutService(
            gateway,
            clock,
            index,
            hash_key=options.hash_key,
            restart_limit=options.restart_limit,
            restart_limit_cluster=options.restart_limit_cluster,
            restart_min_interval=options.restart_min_interval,
            restart_debounce=options.restart_debounce,
            restart_timeout=options.restart_timeout,
        )
        if options.rollout
        else None
    )
    sync = SyncService(
        gateway,
        stores,
        clock,
        index,
        ledger,
        hash_key=options.hash_key,
        rotation=rotation,
        rollout=rollout,
        cpu=cpu,
        config_maps=config_maps,
    )
    policy_status = (
        PolicyStatusService(gateway, clock, index, leading=lambda: scheduler.leading)
        if rotation is not None
        else None
    )
    notifications = NotificationService(
        index, scheduler, stores, sync.reads, rate=options.notify_rate, burst=options.notify_burst
    )
    change_events = ChangeEventService(stores, notifications, scheduler) if options.change_events else None
    return Services(
        notifications=notifications,
        change_events=change_events,
        stores=stores,
        sync=sync,
        rotation=rotation,
        rollout=rollout,
        policy_status=policy_status,
        cpu=cpu,
        index=index,
        scheduler=scheduler,
    )

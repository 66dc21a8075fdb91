"""``rotor rollback NAME``: restore the previous version of a ManagedSecret's source as the new
current one, at the source, then sync the Secret and wait.

Per backend:
- Vault KV v2: the previous (not deleted) version is written again as a new version, with
  check-and-set on the version that was current: a concurrent writer makes it fail, not lost.
- AWS Secrets Manager: AWSCURRENT moves back to the AWSPREVIOUS version (AWS then labels the
  version it leaves AWSPREVIOUS, so a second rollback undoes the first). The move names the
  version it takes the label from, so it fails if AWSCURRENT moved meanwhile.
- SSM Parameter Store: the previous version's value is put again as a new version.
- Vault KV v1 keeps no versions: nothing to roll back to.

A rollback is refused while a rotation is in progress. The source is reached exactly as the
operator reaches it (the store in the cluster says where and how). Nothing prints a value.

Exit codes: 0 done, 1 failed (or refused), 2 the operator did not answer before ``--timeout``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from rotor.api.managedsecret import ManagedSecretSpec
from rotor.api.names import FORCE_SYNC_ANNOTATION
from rotor.cli.actions import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_TIMEOUT,
    POLL_SECONDS,
    SYNC,
    TERMINAL_PHASES,
    _timeout,
    handled_request,
    outcome,
    progress,
    request_value,
)
from rotor.cli.output import CliError, add_connection_flags, connect, namespace_of, run_command
from rotor.clock import Clock
from rotor.kube.gateway import KubeGateway
from rotor.providers.base import ProviderError
from rotor.services.backend import Backend
from rotor.services.stores import StoreProblem, StoreService


@dataclass(frozen=True)
class Restored:
    key: str
    before: str | None  # the version that was current
    restored: str | None  # the version whose value is current again
    now: str | None  # the version now current


def rollback_keys(spec: ManagedSecretSpec) -> list[str]:
    """The remote keys to roll back: those behind the rotated keys when the ManagedSecret has
    rotation keys, else every remote key it reads whole or by property (not pinned versions)."""
    pinned = {i.remote_ref.key for i in spec.data if i.remote_ref.version}
    keys: list[str] = []
    if spec.rotation is not None and spec.rotation.keys:
        extract = next((s.extract.key for s in spec.data_from if s.extract is not None), None)
        for key in spec.rotation.keys:
            item = next((d for d in spec.data if d.secret_key == key), None)
            remote = item.remote_ref.key if item is not None else extract
            if remote is not None and remote not in keys:
                keys.append(remote)
    else:
        for item in spec.data:
            if not item.remote_ref.version and item.remote_ref.key not in keys:
                keys.append(item.remote_ref.key)
        for source in spec.data_from:
            if source.extract is not None and not source.extract.version and source.extract.key not in keys:
                keys.append(source.extract.key)
    return [k for k in keys if k not in pinned]


def _say(line: str) -> None:
    print(line, flush=True)


async def _restore(backend: Backend, key: str) -> Restored:
    """Roll ``key`` back at the source; the provider says which versions were involved (a store
    whose provider cannot roll back fails with the reason Unsupported gives)."""
    result = await backend.rollback(key)
    return Restored(key, result.before, result.restored, result.version)


def _describe(r: Restored) -> str:
    if r.now == r.restored:
        return f"'{r.key}': version {r.restored} is current again (was {r.before})"
    return f"'{r.key}': version {r.now} now holds the value of version {r.restored} (was {r.before})"


async def run_rollback(gateway: KubeGateway, namespace: str, name: str, wait_seconds: float) -> int:
    ms = await gateway.get_object("ManagedSecret", name, namespace)
    if ms is None:
        raise CliError(f"ManagedSecret {namespace}/{name} not found")
    try:
        spec = ManagedSecretSpec.model_validate(ms.get("spec") or {})
    except ValidationError:
        raise CliError(f"ManagedSecret {namespace}/{name} has an invalid spec; fix it first") from None
    phase = ((ms.get("status") or {}).get("rotation") or {}).get("phase")
    if phase and phase not in TERMINAL_PHASES:
        raise CliError(
            f"a rotation of {namespace}/{name} is in progress (phase {phase}); roll back once it has finished"
        )
    keys = rollback_keys(spec)
    if not keys:
        raise CliError(
            f"ManagedSecret {namespace}/{name} reads no remote key that can be rolled back "
            "(dataFrom.find and vaultDatabase sources have no previous version to restore)"
        )
    stores = StoreService(gateway, Clock())
    try:
        handle = await stores.resolve(namespace, spec.store_ref.kind, spec.store_ref.name)
        stores.check_keys(handle, namespace, keys)
    except StoreProblem as err:
        raise CliError(f"{err.reason}: {err.message}") from None
    try:
        assert handle.backend is not None  # resolve() returns ready handles only
        done: list[Restored] = []
        for key in keys:
            _say(f"rolling back '{key}' in {handle.id} ({handle.backend.provider.name})...")
            try:
                restored = await _restore(handle.backend, key)
            except ProviderError as err:
                raise CliError(
                    f"rollback of '{key}' failed: {err.reason}: {err.message}"
                    + (f" (already rolled back: {', '.join(r.key for r in done)})" if done else "")
                ) from None
            done.append(restored)
            _say(f"restored {_describe(restored)}")
    finally:
        await stores.forget(handle.key)
    return await _sync_and_wait(gateway, namespace, name, done, wait_seconds)


async def _sync_and_wait(
    gateway: KubeGateway, namespace: str, name: str, done: list[Restored], wait_seconds: float
) -> int:
    value = request_value(dt.datetime.now(dt.UTC))
    await gateway.patch_object(
        "ManagedSecret", name, namespace, {"metadata": {"annotations": {FORCE_SYNC_ANNOTATION: value}}}
    )
    _say(f"requested sync of {namespace}/{name} ({FORCE_SYNC_ANNOTATION}={value})")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_seconds
    last_line = ""
    summary = "; ".join(_describe(r) for r in done)
    while True:
        ms: dict[str, Any] | None = await gateway.get_object("ManagedSecret", name, namespace)
        if ms is None:
            raise CliError(f"ManagedSecret {namespace}/{name} was deleted while waiting")
        result = outcome(ms, SYNC, value)
        if result is not None:
            if result.ok:
                secret = (ms.get("status") or {}).get("secretName") or name
                _say(f"✔ rolled back {namespace}/{name}: {summary}; Secret {secret} holds it")
                return EXIT_OK
            print(
                f"✘ rolled back at the source ({summary}), but the sync failed: "
                f"{result.line.split(': ', 1)[-1]}",
                file=sys.stderr,
                flush=True,
            )
            return EXIT_FAILED
        line = progress(ms, SYNC)
        if line != last_line:
            _say(line)
            last_line = line
        if loop.time() >= deadline:
            handled = handled_request(ms, SYNC) or "none"
            print(
                f"✘ rolled back at the source ({summary}), but the operator has not synced it within "
                f"{wait_seconds:g}s (last sync request answered: {handled}). Is the operator running and "
                f"watching namespace {namespace}?",
                file=sys.stderr,
                flush=True,
            )
            return EXIT_TIMEOUT
        await asyncio.sleep(POLL_SECONDS)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "rollback",
        help="restore the previous version of a ManagedSecret's source as the current one, and sync",
        description="Restores the previous version at the source (Vault KV v2: written again as a new "
        "version, check-and-set; AWS Secrets Manager: AWSCURRENT moves back to AWSPREVIOUS; SSM: the "
        "previous value is put again), then sets rotor.dev/force-sync and waits until the Secret holds it. "
        "Refused while a rotation is in progress. Exit 0: done; 1: failed; 2: usage error; 4: timed out.",
    )
    p.add_argument("name", help="the ManagedSecret")
    add_connection_flags(p, all_namespaces=False)
    p.add_argument(
        "--timeout",
        type=_timeout,
        default=_timeout("120s"),
        help="how long to wait for the operator to sync (default 120s)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    async def command() -> int:
        async with connect(args) as gateway:
            return await run_rollback(gateway, namespace_of(args), args.name, args.timeout)

    return run_command(command)


__all__ = ["EXIT_TIMEOUT", "Restored", "rollback_keys", "run_rollback"]

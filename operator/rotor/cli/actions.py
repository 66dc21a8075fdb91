"""``rotor sync NAME`` and ``rotor rotate NAME``: ask the operator through an annotation, then
wait for its answer to THAT request, showing progress.

- sync sets ``rotor.dev/force-sync``; it is answered when ``status.lastForceSync`` holds the value
  and the Ready condition says how the sync went.
- rotate sets ``rotor.dev/rotate``; it is answered when ``status.rotation.lastRotateRequest``
  holds the value and ``status.rotation.phase`` is Completed or Failed.

Before and while waiting, ``rotate`` reads the store's Ready condition and the ManagedSecret's
Ready condition: a store that is not Ready, or a sync refused as Forbidden/StoreNotReady/
StoreNotFound, ends the command at once (exit 3) with the store's reason and message. A request the
person gave up on (Ctrl-C, timeout, refusal) is withdrawn, if the operator has not taken it yet, so
it does not fire minutes later; ``--no-wait`` is the explicit "fire and forget".

Exit codes (docs/cli.md): 0 done, 1 failed (the operator answered with a failure, or an error),
2 usage error (argparse), 3 refused (it cannot happen now: no rotation, Observe, store not Ready,
Forbidden), 4 no answer before ``--timeout``, 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import secrets
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rotor.api.duration import parse_duration
from rotor.api.names import FORCE_SYNC_ANNOTATION, ROTATE_ANNOTATION
from rotor.cli.output import (
    CliError,
    add_connection_flags,
    connect,
    namespace_of,
    not_found,
    one_line,
    run_command,
)
from rotor.conditions import get_condition
from rotor.kube.gateway import KubeError, KubeGateway

POLL_SECONDS = 0.5
TERMINAL_PHASES = ("Completed", "Failed")
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_REFUSED, EXIT_TIMEOUT, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130
#: Ready reasons of a ManagedSecret whose store cannot be used: a rotation cannot proceed either.
BLOCKING_REASONS = ("Forbidden", "StoreNotReady", "StoreNotFound")
WITHDRAW_SECONDS = 10.0


@dataclass(frozen=True)
class Action:
    verb: str
    annotation: str
    default_timeout: str
    help: str


SYNC = Action("sync", FORCE_SYNC_ANNOTATION, "60s", "refresh a ManagedSecret from its source now, and wait")
ROTATE = Action("rotate", ROTATE_ANNOTATION, "120s", "rotate a ManagedSecret now under its policy, and wait")


@dataclass(frozen=True)
class Outcome:
    ok: bool
    line: str


def request_value(now: dt.datetime) -> str:
    """A new, unique annotation value: the UTC time and a random suffix."""
    return f"{now.astimezone(dt.UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


# --------------------------------------------------------------------------- reading the answer (pure)


def _status(ms: Mapping[str, Any]) -> Mapping[str, Any]:
    return ms.get("status") or {}


def _rotation(ms: Mapping[str, Any]) -> Mapping[str, Any]:
    return _status(ms).get("rotation") or {}


def _condition(ms: Mapping[str, Any], type_: str) -> Mapping[str, Any] | None:
    return get_condition(_status(ms).get("conditions"), type_)


def handled_request(ms: Mapping[str, Any], action: Action) -> str | None:
    """The last request of this kind the operator has answered."""
    if action is SYNC:
        return _status(ms).get("lastForceSync")
    return _rotation(ms).get("lastRotateRequest") or _status(ms).get("lastRotateRequest")


def _summary(cond: Mapping[str, Any] | None, type_: str) -> str:
    if cond is None:
        return f"{type_}=Unknown"
    return f"{type_}={cond.get('status')} {cond.get('reason') or ''}".rstrip()


def versions_note(ms: Mapping[str, Any]) -> str:
    versions = {str(k): str(v) for k, v in (_status(ms).get("sourceVersions") or {}).items()}
    distinct = sorted(set(versions.values()))
    if not distinct:
        return ""
    if len(distinct) == 1:
        return f" (version {distinct[0]})"
    return " (versions " + ", ".join(f"{k}={v}" for k, v in sorted(versions.items())) + ")"


def progress(ms: Mapping[str, Any], action: Action) -> str:
    """One line on where things stand; printed each time it changes."""
    ready = _summary(_condition(ms, "Ready"), "Ready")
    if action is SYNC:
        return f"waiting for the operator... {ready}"
    rotation = _rotation(ms)
    phase = rotation.get("phase")
    if phase and phase not in TERMINAL_PHASES:
        line = f"rotation phase {phase}, {_summary(_condition(ms, 'Rotating'), 'Rotating')}"
        failed = int(rotation.get("failedAttempts") or 0)
        return line + (f", {failed} failed attempt(s) so far" if failed else "")
    return f"waiting for the operator... {ready}"


def _failure(cond: Mapping[str, Any] | None) -> str:
    if cond is None:
        return "Unknown: no condition reported"
    return f"{cond.get('reason') or 'Unknown'}: {one_line(cond.get('message') or '') or 'no message'}"


def outcome(ms: Mapping[str, Any], action: Action, value: str) -> Outcome | None:
    """The answer to request ``value``, or None while the operator has not given it."""
    name = (ms.get("metadata") or {}).get("name")
    if handled_request(ms, action) != value:
        return None
    ready = _condition(ms, "Ready")
    if action is SYNC:
        if ready is None:
            return None
        if ready.get("status") == "True":
            return Outcome(True, f"✔ synced {name}: {ready.get('message') or 'Ready'}{versions_note(ms)}")
        return Outcome(False, f"✘ sync of {name} failed: {_failure(ready)}")
    phase = _rotation(ms).get("phase")
    if phase not in TERMINAL_PHASES:
        return None
    if phase == "Completed":
        message = (ready or {}).get("message") or "the new value is in place"
        return Outcome(True, f"✔ rotated {name}: {message}{versions_note(ms)}")
    rotating = _condition(ms, "Rotating")
    failed = rotating if rotating is not None and rotating.get("status") == "False" else ready
    return Outcome(False, f"✘ rotation of {name} failed: {_failure(failed)}")


def accepted(ms: Mapping[str, Any], action: Action, value: str) -> bool:
    """Whether the operator has taken request ``value`` (it then finishes it, whatever happens)."""
    return handled_request(ms, action) == value


def blocked(ms: Mapping[str, Any], store: Mapping[str, Any] | None, store_id: str) -> str | None:
    """Why a rotation cannot proceed now, from the store's Ready condition and the ManagedSecret's
    Ready condition; None when nothing says so (an object not looked at yet is not a refusal)."""
    if store is None:
        return f"{store_id} does not exist"
    store_ready = _condition(store, "Ready")
    if store_ready is not None and store_ready.get("status") == "False":
        return f"{store_id} is not Ready: {_failure(store_ready)}"
    ready = _condition(ms, "Ready")
    generation = (ms.get("metadata") or {}).get("generation")
    if (
        ready is not None
        and ready.get("status") == "False"
        and ready.get("reason") in BLOCKING_REASONS
        and ready.get("observedGeneration") in (None, generation)
    ):
        return f"ManagedSecret cannot use {store_id}: {_failure(ready)}"
    return None


# --------------------------------------------------------------------------- talking to the cluster


async def _refuse_rotation(gateway: KubeGateway, ms: Mapping[str, Any], namespace: str) -> None:
    """Say now, rather than after a timeout, why the operator would not rotate."""
    name = ms["metadata"]["name"]
    policy_ref = ((ms.get("spec") or {}).get("rotation") or {}).get("policyRef")
    if not policy_ref:
        raise CliError(
            f"ManagedSecret {namespace}/{name} has no spec.rotation: there is nothing to rotate", EXIT_REFUSED
        )
    kind = policy_ref.get("kind") or "RotationPolicy"
    scope = None if kind.startswith("Cluster") else namespace
    policy = await gateway.get_object(kind, policy_ref["name"], scope)
    if policy is not None and (policy.get("spec") or {}).get("strategy") == "Observe":
        raise CliError(
            f"{kind} '{policy_ref['name']}' uses strategy Observe: Rotor only tracks age and expiry, "
            "and never rotates",
            EXIT_REFUSED,
        )


def _store_ref(ms: Mapping[str, Any], namespace: str) -> tuple[str, str, str | None, str]:
    """(kind, name, namespace or None, "Kind ns/name") of the ManagedSecret's store."""
    ref = (ms.get("spec") or {}).get("storeRef") or {}
    kind = str(ref.get("kind") or "SecretStore")
    name = str(ref.get("name") or "")
    if kind.startswith("Cluster"):
        return kind, name, None, f"{kind} '{name}'"
    return kind, name, namespace, f"{kind} '{name}'"


async def _blocked_now(gateway: KubeGateway, ms: Mapping[str, Any], namespace: str) -> str | None:
    kind, name, scope, store_id = _store_ref(ms, namespace)
    return blocked(ms, await gateway.get_object(kind, name, scope), store_id)


async def withdraw(gateway: KubeGateway, namespace: str, name: str, action: Action, value: str) -> str:
    """Take back request ``value`` unless the operator has already taken it; says what happened.

    The annotation is removed only while it still holds ``value`` (someone may have asked again
    since): the removal carries the resourceVersion it was checked at, so a change in between
    makes it fail (409) and the check is made again."""
    for _ in range(5):
        ms = await gateway.get_object("ManagedSecret", name, namespace)
        if ms is None:
            return "the ManagedSecret is gone"
        if accepted(ms, action, value):
            return f"the operator had already taken {action.annotation}={value}: it will finish it"
        annotations = (ms.get("metadata") or {}).get("annotations") or {}
        if annotations.get(action.annotation) != value:
            return f"{action.annotation} no longer holds {value}: left as it is"
        patch = {
            "metadata": {
                "resourceVersion": ms["metadata"]["resourceVersion"],
                "annotations": {action.annotation: None},
            }
        }
        try:
            await gateway.patch_object("ManagedSecret", name, namespace, patch)
        except KubeError as err:
            if err.status == 409:
                continue
            raise
        return f"withdrew {action.annotation}={value}: nothing will {action.verb} later"
    return f"could not withdraw {action.annotation}={value} (the object kept changing)"


async def _withdraw_quietly(
    gateway: KubeGateway, namespace: str, name: str, action: Action, value: str
) -> None:
    try:
        note = await asyncio.wait_for(withdraw(gateway, namespace, name, action, value), WITHDRAW_SECONDS)
    except (KubeError, OSError, TimeoutError) as err:
        note = f"could not withdraw {action.annotation}={value}: {err}; remove it with kubectl annotate"
    print(note, file=sys.stderr, flush=True)


async def request_and_wait(
    gateway: KubeGateway,
    namespace: str,
    name: str,
    action: Action,
    wait_seconds: float,
    *,
    wait: bool = True,
) -> int:
    ms = await gateway.get_object("ManagedSecret", name, namespace)
    if ms is None:
        raise await not_found(gateway, "ManagedSecret", namespace, name)
    if action is ROTATE:
        await _refuse_rotation(gateway, ms, namespace)
        why = await _blocked_now(gateway, ms, namespace)
        if why is not None and wait:
            raise CliError(f"cannot rotate {namespace}/{name} now: {why}", EXIT_REFUSED)
        if why is not None:
            print(f"warning: {why}; the rotation will run once that is fixed", file=sys.stderr, flush=True)
    value = request_value(dt.datetime.now(dt.UTC))
    patch = {"metadata": {"annotations": {action.annotation: value}}}
    await gateway.patch_object("ManagedSecret", name, namespace, patch)
    print(f"requested {action.verb} of {namespace}/{name} ({action.annotation}={value})", flush=True)
    if not wait:
        print(
            f"not waiting (--no-wait): the operator will {action.verb} when it can; "
            f"follow it with: rotor status -n {namespace}",
            flush=True,
        )
        return EXIT_OK
    try:
        code = await _wait(gateway, namespace, name, action, value, wait_seconds)
    except asyncio.CancelledError:  # Ctrl-C: asyncio.run cancels the command
        print(f"interrupted: stopping the wait for {namespace}/{name}", file=sys.stderr, flush=True)
        if action is ROTATE:
            await _withdraw_quietly(gateway, namespace, name, action, value)
        raise
    if code in (EXIT_REFUSED, EXIT_TIMEOUT) and action is ROTATE:
        await _withdraw_quietly(gateway, namespace, name, action, value)
    return code


async def _wait(
    gateway: KubeGateway, namespace: str, name: str, action: Action, value: str, wait_seconds: float
) -> int:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_seconds
    last_line = ""
    while True:
        ms = await gateway.get_object("ManagedSecret", name, namespace)
        if ms is None:
            raise CliError(f"ManagedSecret {namespace}/{name} was deleted while waiting")
        result = outcome(ms, action, value)
        if result is not None:
            print(result.line, file=sys.stdout if result.ok else sys.stderr, flush=True)
            return EXIT_OK if result.ok else EXIT_FAILED
        line = progress(ms, action)
        if line != last_line:
            print(line, flush=True)
            last_line = line
        if action is ROTATE and not accepted(ms, action, value):
            why = await _blocked_now(gateway, ms, namespace)
            if why is not None:
                print(f"✘ cannot rotate {name} now: {why}", file=sys.stderr, flush=True)
                return EXIT_REFUSED
        if loop.time() >= deadline:
            handled = handled_request(ms, action) or "none"
            seen = line.removeprefix("waiting for the operator... ")
            print(
                f"✘ timed out after {wait_seconds:g}s: the operator has not answered "
                f"{action.annotation}={value} (last seen: {seen}; last request answered: {handled}). "
                f"Is the operator running and watching namespace {namespace}?",
                file=sys.stderr,
                flush=True,
            )
            return EXIT_TIMEOUT
        await asyncio.sleep(POLL_SECONDS)


# --------------------------------------------------------------------------- commands


def _timeout(text: str) -> float:
    try:
        seconds = parse_duration(text).total_seconds()
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError("the timeout must be more than 0")
    return seconds


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    for action in (SYNC, ROTATE):
        description = (
            f"{action.help}. Sets {action.annotation} to a new value and waits until the operator has "
            "answered that request. Exit 0: done; 1: failed; 2: usage error; 3: refused (it cannot "
            "happen now); 4: timed out; 130: interrupted."
        )
        if action is ROTATE:
            description += (
                " A rotation the store cannot serve is refused at once. When the wait ends without an "
                "answer (Ctrl-C, timeout, refusal), the request is withdrawn unless the operator has "
                "taken it: use --no-wait to leave it for later."
            )
        p = sub.add_parser(action.verb, help=action.help, description=description)
        p.add_argument("name", help="the ManagedSecret")
        add_connection_flags(p, all_namespaces=False)
        p.add_argument(
            "--timeout",
            type=_timeout,
            default=_timeout(action.default_timeout),
            help=f"how long to wait for the operator (default {action.default_timeout})",
        )
        p.add_argument(
            "--no-wait",
            action="store_true",
            help=f"set {action.annotation} and exit at once; the operator acts when it can, "
            "even much later (fire and forget)",
        )
        p.set_defaults(func=_runner(action))


def _runner(action: Action) -> Any:
    def run(args: argparse.Namespace) -> int:
        async def command() -> int:
            async with connect(args) as gateway:
                namespace = namespace_of(args)
                return await request_and_wait(
                    gateway, namespace, args.name, action, args.timeout, wait=not args.no_wait
                )

        return run_command(command)

    return run

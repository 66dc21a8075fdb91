"""``rotor run``: the operator."""

from __future__ import annotations

import argparse
import os
import random

from rotor.observability.logging import configure_logging


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("run", help="run the operator against the current kubeconfig or in-cluster")
    p.add_argument(
        "--namespace",
        "-n",
        action="append",
        default=[],
        help="serve only these namespaces (globs; '!pattern' excludes); repeatable. Default: all",
    )
    p.add_argument(
        "--log-level",
        default=os.environ.get("ROTOR_LOG_LEVEL", "info"),
        choices=["debug", "info", "warning", "error"],
    )
    p.add_argument(
        "--log-format", default=os.environ.get("ROTOR_LOG_FORMAT", "json"), choices=["json", "text"]
    )
    p.add_argument(
        "--metrics-addr",
        default=os.environ.get("ROTOR_METRICS_ADDR", "0.0.0.0:8080"),
        help="serve /metrics, /healthz and /readyz here",
    )
    p.add_argument(
        "--concurrency",
        type=int,
        default=int(os.environ.get("ROTOR_CONCURRENCY", "8")),
        help="ManagedSecrets synced at once",
    )
    p.add_argument("--backend-threads", type=int, default=16, help="threads for blocking backend calls")
    p.add_argument(
        "--restart-limit", type=int, default=2, help="workload restarts in progress at once per namespace"
    )
    p.add_argument(
        "--restart-debounce",
        default="30s",
        help="wait this long after a change before restarting consumers (coalesces flapping)",
    )
    peering = p.add_mutually_exclusive_group()
    peering.add_argument(
        "--peering",
        default=None,
        help="kopf peering name: active/standby replicas (needs the kopf peering CRDs)",
    )
    peering.add_argument("--standalone", action="store_true", help="no peering (one replica)")
    p.add_argument(
        "--priority",
        type=int,
        default=0,
        help="peering priority (higher wins; default: random, so replicas never tie)",
    )
    p.add_argument(
        "--peering-lifetime",
        type=int,
        default=60,
        help="seconds a silent peer counts as alive: failover takes about this long",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import kopf

    from rotor.api.duration import parse_duration

    configure_logging(args.log_level, args.log_format)
    import rotor.handlers.rotationpolicy
    import rotor.handlers.secretstore
    import rotor.handlers.settings  # noqa: F401

    standalone = args.standalone or not args.peering
    # kopf pauses every replica that sees a peer of the same priority: give each one its own
    priority = args.priority or (0 if standalone else random.SystemRandom().randint(1, 1_000_000))
    options = {
        "concurrency": args.concurrency,
        "backend_threads": args.backend_threads,
        "restart_limit": args.restart_limit,
        "restart_debounce": parse_duration(args.restart_debounce).total_seconds(),
        "metrics_addr": args.metrics_addr,
        "peering": args.peering,
        "standalone": standalone,
        "priority": priority,
    }
    namespaces = namespace_patterns(args.namespace)
    identity = os.environ.get("POD_ID") or f"rotor-{os.uname().nodename}-{os.getpid()}"
    options["identity"] = identity
    options["namespaces"] = namespaces
    options["peering_lifetime"] = args.peering_lifetime
    kopf.run(
        standalone=standalone,
        peering_name=None if standalone else args.peering,
        priority=priority,
        clusterwide=not namespaces,
        namespaces=namespaces,
        memo=kopf.Memo(options=options),
        identity=identity,  # type: ignore[arg-type]  # kopf's Identity is a NewType of str
    )
    return 0


def namespace_patterns(values: list[str]) -> list[str]:
    """kopf serves a namespace matching ANY of its patterns, and in one pattern the first glob is
    decisive. So every exclusion is appended to every inclusion ("team-*,!team-legacy"); only
    exclusions give one pattern ("!kube-*,!rotor-system": everything else)."""
    globs = [g.strip() for value in values for g in value.split(",") if g.strip()]
    include = [g for g in globs if not g.startswith("!")]
    exclude = [g for g in globs if g.startswith("!")]
    if not include:
        return [",".join(exclude)] if exclude else []
    return [",".join([g, *exclude]) for g in include]

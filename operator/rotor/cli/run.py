"""``rotor run``: the operator."""

from __future__ import annotations

import argparse
import os
import sys

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
        "--restart-limit-cluster",
        type=int,
        default=0,
        help="workload restarts in progress at once in the whole cluster (0: no cluster-wide limit)",
    )
    p.add_argument(
        "--restart-min-interval",
        default="10m",
        help="restart a workload at most this often; changes within it merge into one restart at its "
        "end (0: no minimum)",
    )
    p.add_argument(
        "--restart-debounce",
        default="30s",
        help="wait this long after a change before restarting consumers (coalesces flapping)",
    )
    notify = p.add_argument_group(
        "change notifications",
        "A signed HTTP receiver that refreshes the ManagedSecrets reading the keys a notification "
        "names, instead of waiting for their refresh interval (docs/notifications.md).",
    )
    notify.add_argument(
        "--notify-addr",
        default=os.environ.get("ROTOR_NOTIFY_ADDR") or None,
        help="serve POST /v1/notify here, e.g. 0.0.0.0:8082 (default: off)",
    )
    notify.add_argument(
        "--notify-secret",
        default=os.environ.get("ROTOR_NOTIFY_SECRET") or None,
        metavar="NAMESPACE/NAME",
        help="the Secret whose key hmac-key signs notifications (required with --notify-addr)",
    )
    notify.add_argument(
        "--notify-rate", type=float, default=10.0, help="notifications accepted per second per store"
    )
    notify.add_argument(
        "--notify-burst", type=int, default=100, help="notifications accepted at once per store"
    )
    election = p.add_argument_group(
        "leader election",
        "Replicas of one shard elect a leader with a coordination.k8s.io Lease; only the leader "
        "works and writes, the others keep their index warm and take over when it is gone.",
    )
    election.add_argument(
        "--leader-elect",
        action=argparse.BooleanOptionalAction,
        default=os.environ.get("ROTOR_LEADER_ELECT", "true").lower() not in ("0", "false", "no"),
        help="elect a leader among the replicas (default: on, since any Deployment may be scaled "
        "up); --no-leader-elect runs a single replica without a Lease",
    )
    election.add_argument(
        "--lease-name",
        default=os.environ.get("ROTOR_LEASE_NAME", "rotor"),
        help="the shard's Lease (give every shard its own; the chart uses the release name)",
    )
    election.add_argument(
        "--lease-namespace",
        default=os.environ.get("POD_NAMESPACE") or None,
        help="where the Lease lives (default: $POD_NAMESPACE, else the kubeconfig's namespace)",
    )
    election.add_argument(
        "--lease-duration", default="15s", help="a standby takes over this long after the last renewal"
    )
    election.add_argument(
        "--renew-deadline", default="10s", help="the leader steps down when it could not renew for this long"
    )
    election.add_argument("--retry-period", default="2s", help="how often to renew or try to acquire")
    for removed in ("--peering", "--priority", "--peering-lifetime"):
        p.add_argument(removed, dest=f"removed_{removed[2:].replace('-', '_')}", help=argparse.SUPPRESS)
    p.add_argument("--standalone", dest="removed_standalone", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=run)


REMOVED = (
    "{flag} was removed: kopf peering is replaced by leader election with a Lease "
    "(on by default; --lease-name names the shard's Lease). "
    "For one replica without a Lease, use --no-leader-elect."
)


def identity() -> str:
    """This replica's name in the Lease: the pod's name, else host and process."""
    return os.environ.get("POD_NAME") or os.environ.get("POD_ID") or f"{os.uname().nodename}-{os.getpid()}"


def run(args: argparse.Namespace) -> int:
    import kopf

    from rotor.api.duration import parse_duration
    from rotor.kube.lease import LeaseConfig

    for flag in ("standalone", "peering", "priority", "peering_lifetime"):
        if getattr(args, f"removed_{flag}", None):
            print(f"rotor run: error: {REMOVED.format(flag='--' + flag.replace('_', '-'))}", file=sys.stderr)
            return 2
    lease: LeaseConfig | None = None
    if args.leader_elect:
        try:
            lease = LeaseConfig(
                name=args.lease_name,
                namespace=args.lease_namespace or "",  # "": the kubeconfig's, found at startup
                identity=identity(),
                lease_duration=parse_duration(args.lease_duration).total_seconds(),
                renew_deadline=parse_duration(args.renew_deadline).total_seconds(),
                retry_period=parse_duration(args.retry_period).total_seconds(),
            )
        except ValueError as err:
            print(f"rotor run: error: {err}", file=sys.stderr)
            return 2

    notify_secret: tuple[str, str] | None = None
    if args.notify_addr:
        namespace, _, name = (args.notify_secret or "").partition("/")
        if not namespace or not name or "/" in name:
            print(
                "rotor run: error: --notify-addr needs --notify-secret NAMESPACE/NAME (a Secret with "
                "key hmac-key)",
                file=sys.stderr,
            )
            return 2
        notify_secret = (namespace, name)
        if args.notify_rate <= 0 or args.notify_burst < 1:
            print("rotor run: error: --notify-rate must be > 0 and --notify-burst >= 1", file=sys.stderr)
            return 2
    try:
        restart_min_interval = parse_duration(args.restart_min_interval).total_seconds()
    except ValueError as err:
        print(f"rotor run: error: --restart-min-interval: {err}", file=sys.stderr)
        return 2
    if args.restart_limit_cluster < 0:
        print("rotor run: error: --restart-limit-cluster must be 0 (no limit) or more", file=sys.stderr)
        return 2

    configure_logging(args.log_level, args.log_format)
    import rotor.handlers.settings  # noqa: F401

    options = {
        "concurrency": args.concurrency,
        "backend_threads": args.backend_threads,
        "restart_limit": args.restart_limit,
        "restart_limit_cluster": args.restart_limit_cluster,
        "restart_min_interval": restart_min_interval,
        "restart_debounce": parse_duration(args.restart_debounce).total_seconds(),
        "metrics_addr": args.metrics_addr,
        "namespaces": namespace_patterns(args.namespace),
        "lease": lease,
        "notify_addr": args.notify_addr,
        "notify_secret": notify_secret,
        "notify_rate": args.notify_rate,
        "notify_burst": args.notify_burst,
    }
    # kopf only hosts the process: no handlers, no peering; Rotor's informers apply the patterns
    kopf.run(standalone=True, clusterwide=True, memo=kopf.Memo(options=options))
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

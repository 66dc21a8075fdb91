"""The restart budget: how many restarts may run at once, and how often one workload may restart.

- **Slots.** A restart holds a slot from its patch until its rollout has finished (``progress``).
  At most ``namespace_limit`` slots per namespace (``--restart-limit``) and ``cluster_limit`` in all
  (``--restart-limit-cluster``; 0: no cluster-wide limit) are held at once. ``next_to_start`` picks
  the restart that may take a free slot: the longest-waiting one whose namespace has room, so a
  namespace at its limit never holds up the others.
- **Minimum interval.** A workload is restarted at most once per ``min_interval``
  (``--restart-min-interval``; 0: no minimum), counted from the ``rotor.dev/restarted-at`` that the
  last restart wrote into its pod template. The time lives on the workload, so it survives a restart
  of the operator. A change within the interval waits for its end; later changes merge into that one
  restart, which records the digests of the latest data.

Pure functions of their inputs; the clock is a parameter.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rotor.clock import parse_time
from rotor.rollout.decisions import RESTARTED_AT


@dataclass(frozen=True)
class Budget:
    namespace_limit: int = 2
    cluster_limit: int = 0  # 0: none
    min_interval: float = 600.0  # seconds; 0: none

    def __post_init__(self) -> None:
        if self.namespace_limit < 1:
            raise ValueError("the restart limit per namespace must be at least 1")
        if self.cluster_limit < 0:
            raise ValueError("the cluster-wide restart limit must be 0 (none) or more")
        if self.min_interval < 0:
            raise ValueError("the minimum restart interval cannot be negative")


def next_to_start(waiting: Sequence[str], running: Mapping[str, int], budget: Budget) -> int | None:
    """``waiting``: the namespaces of the restarts waiting for a slot, longest-waiting first;
    ``running``: slots held per namespace. The index in ``waiting`` of the restart that may start
    now, or None when none may."""
    if budget.cluster_limit and sum(running.values()) >= budget.cluster_limit:
        return None
    for i, namespace in enumerate(waiting):
        if running.get(namespace, 0) < budget.namespace_limit:
            return i
    return None


def last_restart(workload: Mapping[str, Any]) -> dt.datetime | None:
    """When Rotor last restarted the workload: ``rotor.dev/restarted-at`` in its pod template."""
    template = ((workload.get("spec") or {}).get("template") or {}).get("metadata") or {}
    value = (template.get("annotations") or {}).get(RESTARTED_AT)
    return parse_time(str(value)) if value else None


def restart_wait(last: dt.datetime | None, now: dt.datetime, budget: Budget) -> float:
    """Seconds until the workload may restart again (0: now). A last restart in the future (the
    clock moved back) counts as now, so the wait is never longer than the interval."""
    if last is None or budget.min_interval <= 0:
        return 0.0
    since = max(0.0, (now - last).total_seconds())
    return max(0.0, budget.min_interval - since)

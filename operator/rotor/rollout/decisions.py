"""Whether a consumer restarts, and the patches that do it.

A restart happens only when the data the workload reads has changed. What it read is recorded on
the workload itself, in the annotation ``rotor.dev/secret-digest.<secret>`` of the workload's
``metadata`` (not of its pod template, so recording never starts a rollout). The value is
``consumer_digest`` of the consumed keys: a keyed HMAC, never a value.

The restart patch sets ``rotor.dev/restarted-at`` in the pod template and the new digest in one
merge patch, so one restart is one rollout.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from rotor.clock import parse_time

RESTARTED_AT = "rotor.dev/restarted-at"
DIGEST_PREFIX = "rotor.dev/secret-digest."
_NAME_PART = "secret-digest."
_NAME_MAX = 63  # an annotation key's name part (after "rotor.dev/")
_TAG = 16

Action = Literal["restart", "record", "none"]


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str


@dataclass(frozen=True)
class WriteInfo:
    """What the API server says about the write being rolled out.

    ``created``: the write created the Secret, so no workload can have read older data.
    ``at``: when the API server applied it (the server's clock, like workloads' creationTimestamp).
    """

    created: bool
    at: dt.datetime | None


def digest_annotation(secret_name: str) -> str:
    """``rotor.dev/secret-digest.<secret>``; a name too long for an annotation key (63 characters
    after the prefix) is shortened to its head plus a hash of the whole name."""
    if len(_NAME_PART) + len(secret_name) <= _NAME_MAX:
        return DIGEST_PREFIX + secret_name
    tag = hashlib.sha256(secret_name.encode()).hexdigest()[:_TAG]
    head = secret_name[: _NAME_MAX - len(_NAME_PART) - 1 - _TAG].rstrip("-.")
    return f"{DIGEST_PREFIX}{head}-{tag}"


def recorded_digest(workload: Mapping[str, Any], secret_name: str) -> str | None:
    annotations = (workload.get("metadata") or {}).get("annotations") or {}
    value = annotations.get(digest_annotation(secret_name))
    return str(value) if value else None


def write_info(secret: Mapping[str, Any] | None) -> WriteInfo:
    """Read from the written Secret: its latest ``managedFields`` time is when the write landed; a
    write in the second the Secret was created is its creation. Unknown stays unknown (not created,
    no time), which leans toward restarting."""
    meta = (secret or {}).get("metadata") or {}
    created = parse_time(_text(meta.get("creationTimestamp")))
    times = [t for t in (parse_time(_text(f.get("time"))) for f in meta.get("managedFields") or []) if t]
    at = max(times) if times else None
    return WriteInfo(created=created is not None and at is not None and at <= created, at=at)


def is_fresh(workload: Mapping[str, Any], write: WriteInfo) -> bool:
    """The workload cannot have read data older than this write: the write created the Secret, or
    the workload was created after it."""
    if write.created:
        return True
    created = parse_time(_text((workload.get("metadata") or {}).get("creationTimestamp")))
    return write.at is not None and created is not None and created > write.at


def decide(recorded: str | None, current: str, *, fresh: bool, resume: bool = False) -> Decision:
    """``recorded``: the digest on the workload; ``current``: the digest of the keys it reads, in the
    data just written; ``fresh``: see ``is_fresh``. ``resume``: nothing was written (the first sync
    of the Secret by this operator process): only a workload Rotor recorded, with other data than
    the current, restarts (its restart was decided by an earlier process, which stopped first)."""
    if recorded == current:
        return Decision("none", "the keys it reads are unchanged")
    if fresh:
        return Decision("record", "it already reads the current data")
    if resume and recorded is None:
        return Decision("none", "not recorded, and nothing was written: the next change decides")
    if resume:
        return Decision("restart", "it reads older data: a restart decided before the operator restarted")
    if recorded is None:
        return Decision("restart", "first seen, and started before the data changed")
    return Decision("restart", "the keys it reads changed")


def record_patch(digests: Mapping[str, str]) -> dict[str, Any]:
    """Record digests (secret name -> digest) on the workload without restarting it."""
    return {"metadata": {"annotations": {digest_annotation(s): d for s, d in sorted(digests.items())}}}


def restart_patch(digests: Mapping[str, str], now: dt.datetime) -> dict[str, Any]:
    """Restart the workload (one rollout) and record the digests it will read."""
    patch = record_patch(digests)
    patch["spec"] = {"template": {"metadata": {"annotations": {RESTARTED_AT: restart_time(now)}}}}
    return patch


def restart_time(now: dt.datetime) -> str:
    """RFC 3339 in UTC with milliseconds, so two restarts in one second still differ."""
    return now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return str(value)

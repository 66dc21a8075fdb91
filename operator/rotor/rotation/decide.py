"""What a rotation does in this reconcile (pure): from what was gathered (the policy or why it is
unusable, status.rotation, the rotate request, the store's capabilities, whether the rotation's
keys can be written back, whether the Secret can be written, now) to one action. The service
then executes it: records the phase before each source action, and acts.

The checks run in order; the first that applies decides:

1. the policy cannot be used -> Refuse (cause Policy)
2. the due-date chain (rotor.rotation.checks.rotation_due) fails -> Refuse (cause Policy)
3. strategy Observe -> Refuse a manual request (cause Spec), else Nothing
4. nothing is due, or a back-off or window holds it -> Nothing
5. the Secret cannot be written -> WaitForSecret (cause SecretConflict): no source action at all,
   the request is not answered, a started rotation keeps its phase
6. a started rotation -> Resume (the phase decides the next step)
7. the store cannot write (its credentials are read-only, or, where the store judges write access
   per path, a path the rotation writes is not writable) -> Refuse (cause ReadOnlyStore); the keys
   cannot be written back -> Refuse (cause Spec); both count as failed attempts and back off
8. -> Start

A remote key the rotation writes that does not exist at the source (``missing``) starts a rotation
with trigger Missing only under ``createIfMissing`` (rotor.rotation.checks.missing_at_source); the
store must be able to create without overwriting (``create_problem`` says why it cannot) -> else
Refuse (cause Spec). The sync then reports the missing key (KeyNotFound, or Forbidden when the
credentials cannot write).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from rotor.api.status import FailureCause, RotationPhase
from rotor.rotation.checks import MISSING, RotationInputs, rotation_due
from rotor.rotation.errors import RotationError
from rotor.rotation.expiry import Expiry
from rotor.rotation.phases import in_progress, parse_phase
from rotor.rotation.presets import EffectivePolicy


class Action(enum.StrEnum):
    NOTHING = "Nothing"
    REFUSE = "Refuse"
    WAIT_FOR_SECRET = "WaitForSecret"
    RESUME = "Resume"
    START = "Start"


@dataclass(frozen=True)
class RotationObserved:
    """Everything the decision looks at."""

    now: datetime
    policy: EffectivePolicy | None
    #: why the policy cannot be used (missing, invalid); None when ``policy`` is set
    policy_problem: str | None
    policy_id: str
    phase: str | None
    last_rotation: datetime | None
    last_rotate_request: str | None
    rotate_annotation: str | None
    due_at_in_progress: datetime | None
    failed_attempts: int
    last_failure_time: datetime | None
    created: datetime
    expiry: Expiry | None
    seed: str
    store_id: str
    read_only_store: bool
    #: why the rotation's keys cannot be written back (Generate); None when they can
    targets_problem: str | None
    #: why the Secret cannot be written (its plan is a conflict); None when it can
    secret_blocked: str | None
    #: which of the rotation's paths the credentials cannot write, and why (stores that judge write
    #: access per path, asked only when a rotation is about to start); None when all can be written
    write_denied: str | None = None
    #: remote keys the rotation writes that do not exist at the source
    missing: tuple[str, ...] = ()
    #: why the store cannot create a missing key without overwriting (no such capability, Vault KV
    #: v1); None when it can
    create_problem: str | None = None


@dataclass(frozen=True)
class RotationPlan:
    action: Action
    cause: FailureCause | None = None
    message: str | None = None
    #: a refusal that counts as a failed attempt (failedAttempts + 1, back-off)
    counts_as_failure: bool = False
    #: the rotate request is answered by this plan (lastRotateRequest is recorded)
    answers_request: bool = False
    trigger: str | None = None
    due_at: datetime | None = None
    defer_until: datetime | None = None


def new_request(observed: RotationObserved) -> bool:
    annotation = observed.rotate_annotation
    return bool(annotation) and annotation != observed.last_rotate_request


def decide(observed: RotationObserved) -> RotationPlan:
    asked = new_request(observed)

    def refuse(cause: FailureCause, message: str, *, due: bool = False) -> RotationPlan:
        return RotationPlan(
            Action.REFUSE, cause, message, counts_as_failure=due or asked, answers_request=asked
        )

    policy = observed.policy
    if policy is None:
        return refuse(FailureCause.POLICY, observed.policy_problem or f"{observed.policy_id} cannot be used")
    phase = parse_phase(observed.phase)
    inputs = RotationInputs(
        policy=policy,
        now=observed.now,
        last_rotation=observed.last_rotation,
        created=observed.created,
        expiry=observed.expiry,
        rotate_annotation=observed.rotate_annotation,
        last_rotate_request=observed.last_rotate_request,
        phase=phase if phase != RotationPhase.FAILED else None,
        due_at_in_progress=observed.due_at_in_progress,
        failed_attempts=observed.failed_attempts,
        last_failure_time=observed.last_failure_time,
        backoff_seed=observed.seed,
        missing=observed.missing,
    )
    try:
        due = rotation_due(inputs)
    except RotationError as err:
        return refuse(FailureCause.POLICY, f"{observed.policy_id}: {err.message}")
    if policy.strategy == "Observe":
        if asked:
            return refuse(
                FailureCause.SPEC,
                f"{observed.policy_id} uses strategy Observe: Rotor never writes to the source",
            )
        return RotationPlan(Action.NOTHING, defer_until=due.defer_until)
    if not due.act_now:
        return RotationPlan(Action.NOTHING, defer_until=due.defer_until)
    if observed.secret_blocked is not None:
        return RotationPlan(
            Action.WAIT_FOR_SECRET,
            FailureCause.SECRET_CONFLICT,
            f"the rotation waits: {observed.secret_blocked}. Nothing was written to the source; the "
            "rotation runs once the Secret can be written",
            defer_until=due.defer_until,
        )
    if due.resume:
        # a manual request during a rotation is answered by that rotation
        return RotationPlan(
            Action.RESUME,
            answers_request=asked and in_progress(phase),
            due_at=due.due_at,
            defer_until=due.defer_until,
        )
    if observed.read_only_store:
        return refuse(
            FailureCause.READ_ONLY_STORE,
            f"the store {observed.store_id} has read-only credentials: rotation needs write access to the "
            "source (grant create and update on the path)",
            due=True,
        )
    if observed.write_denied is not None:
        return refuse(
            FailureCause.READ_ONLY_STORE,
            f"the store {observed.store_id} has read-only credentials for this rotation: rotation needs "
            f"write access to the source ({observed.write_denied})",
            due=True,
        )
    if observed.targets_problem is not None:
        return refuse(FailureCause.SPEC, observed.targets_problem, due=True)
    if due.trigger == MISSING and observed.create_problem is not None:
        return refuse(FailureCause.SPEC, observed.create_problem, due=True)
    return RotationPlan(
        Action.START,
        answers_request=asked,
        trigger=due.trigger,
        due_at=due.due_at or observed.now,
        defer_until=due.defer_until,
    )

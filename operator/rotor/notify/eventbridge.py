"""Secrets Manager events as EventBridge delivers them to an SQS queue (the message body is the
event), or wrapped once more by SNS (``{"Type": "Notification", "Message": "<event>"}``).

Secrets Manager reaches EventBridge through CloudTrail:

- ``PutSecretValue`` and ``UpdateSecret`` are ``"detail-type": "AWS API Call via CloudTrail"``;
  the secret is ``detail.requestParameters.secretId`` (a name or an ARN, as the caller gave it),
  and ``detail.responseElements.arn`` when the call succeeded.
- ``RotationSucceeded`` is ``"detail-type": "AWS Service Event via CloudTrail"``; the secret is
  ``detail.additionalEventData.SecretId`` (an ARN).

Other events (other services, other Secrets Manager calls, failed calls) change nothing Rotor
reads and are ignored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

#: the Secrets Manager events after which the current value may have changed
CHANGE_EVENTS = frozenset({"PutSecretValue", "UpdateSecret", "RotationSucceeded", "UpdateSecretVersionStage"})


@dataclass(frozen=True)
class SecretChange:
    event: str
    #: every identifier the event gives for the secret (name or ARN)
    secret_ids: tuple[str, ...]


def _event_of(body: str) -> dict[str, Any] | None:
    try:
        doc: Any = json.loads(body)
    except (TypeError, ValueError):
        return None
    if isinstance(doc, dict) and doc.get("Type") == "Notification" and isinstance(doc.get("Message"), str):
        try:
            doc = json.loads(doc["Message"])
        except ValueError:
            return None
    return doc if isinstance(doc, dict) else None


def parse_change(body: str) -> SecretChange | None:
    """The secret a queued event says changed, or None when the message is no such event."""
    event = _event_of(body)
    if event is None or event.get("source") != "aws.secretsmanager":
        return None
    detail = event.get("detail")
    if not isinstance(detail, dict):
        return None
    name = detail.get("eventName")
    if name not in CHANGE_EVENTS or detail.get("errorCode"):
        return None
    ids: list[str] = []
    for section, field in (
        ("requestParameters", "secretId"),
        ("additionalEventData", "SecretId"),
        ("responseElements", "arn"),
        ("responseElements", "aRN"),
    ):
        part = detail.get(section)
        value = part.get(field) if isinstance(part, dict) else None
        if isinstance(value, str) and value and value not in ids:
            ids.append(value)
    if not ids:
        return None
    return SecretChange(str(name), tuple(ids))

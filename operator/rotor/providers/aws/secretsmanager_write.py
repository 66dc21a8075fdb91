"""Secrets Manager writes, as the standard staged rotation: stage under AWSPENDING, verify,
promote to AWSCURRENT (AWS then labels the old version AWSPREVIOUS).

Each step is idempotent and keyed by the ClientRequestToken the caller chose (a UUID, which
becomes the new VersionId), so a rotation interrupted anywhere resumes by calling the same step
again with the same token.
"""

from __future__ import annotations

import uuid

from rotor.providers.aws.client import AwsClient
from rotor.providers.aws.payload import Value, same_value, secretsmanager_value_params
from rotor.providers.aws.secretsmanager_metadata import current_version
from rotor.providers.aws.secretsmanager_read import CURRENT, PENDING, is_version_id
from rotor.providers.base import InvalidConfig, KeyNotFound, ProviderError, WriteConflict, WriteResult


def version_stages(client: AwsClient, key: str) -> dict[str, list[str]]:
    """VersionIdsToStages of a secret (DescribeSecret); KeyNotFound when it does not exist."""
    response = client.call("DescribeSecret", key, SecretId=key)
    return {v: list(s) for v, s in (response.get("VersionIdsToStages") or {}).items()}


def _check_token(token: str) -> None:
    if not is_version_id(token):
        raise InvalidConfig(
            "AWS Secrets Manager: the ClientRequestToken must be a UUID (it becomes the VersionId)"
        )


def stage(client: AwsClient, key: str, value: Value, token: str) -> str:
    """PutSecretValue under AWSPENDING; returns the new VersionId (= ``token``).

    If a version with this token already exists (a resumed rotation), it is kept as it is and
    its id returned: the value it holds is the one staged first, which may differ from
    ``value``. The caller reads it back with ``read(RemoteRef(key, version_id))``.
    """
    _check_token(token)
    if token in version_stages(client, key):
        return token
    response = client.call(
        "PutSecretValue",
        key,
        write=True,
        SecretId=key,
        ClientRequestToken=token,
        VersionStages=[PENDING],
        **secretsmanager_value_params(value),
    )
    return str(response.get("VersionId") or token)


def verify(client: AwsClient, key: str, version_id: str, expected: Value) -> bool:
    """Does the version hold ``expected``? (GetSecretValue by VersionId)"""
    response = client.call("GetSecretValue", key, SecretId=key, VersionId=version_id)
    binary = response.get("SecretBinary")
    return same_value(expected, response.get("SecretString"), bytes(binary) if binary is not None else None)


def promote(client: AwsClient, key: str, version_id: str) -> None:
    """Move AWSCURRENT to ``version_id`` (the old current becomes AWSPREVIOUS), then take
    AWSPENDING off it. Does nothing that is already done."""
    stages = version_stages(client, key)
    if version_id not in stages:
        raise KeyNotFound(
            f"AWS Secrets Manager promote on '{key}': version {version_id} not found; stage it first"
        )
    current = current_version(stages)
    if current != version_id:
        params = {"RemoveFromVersionId": current} if current else {}
        client.call(
            "UpdateSecretVersionStage",
            key,
            write=True,
            SecretId=key,
            VersionStage=CURRENT,
            MoveToVersionId=version_id,
            **params,
        )
    if PENDING in stages[version_id]:
        client.call(
            "UpdateSecretVersionStage",
            key,
            write=True,
            SecretId=key,
            VersionStage=PENDING,
            RemoveFromVersionId=version_id,
        )


def create(client: AwsClient, key: str, value: Value, token: str) -> WriteResult:
    """CreateSecret: the first version is AWSCURRENT (``rotor import``)."""
    _check_token(token)
    response = client.call(
        "CreateSecret",
        key,
        write=True,
        Name=key,
        ClientRequestToken=token,
        **secretsmanager_value_params(value),
    )
    return WriteResult(key=key, version=str(response.get("VersionId") or token))


def write(client: AwsClient, key: str, value: Value, cas: str | None) -> WriteResult:
    """A whole staged write with a fresh token; creates the secret when it does not exist.

    ``cas`` is the AWSCURRENT version id the caller read; if AWSCURRENT has moved since, nothing
    is written and WriteConflict is raised. (Secrets Manager has no conditional write, so a
    concurrent writer between the check and the promotion is not detected.)
    """
    token = str(uuid.uuid4())
    try:
        stages = version_stages(client, key)
    except KeyNotFound:
        if cas is not None:
            raise WriteConflict(
                f"AWS Secrets Manager write on '{key}': expected version {cas}, but the secret does not exist"
            ) from None
        return create(client, key, value, token)
    current = current_version(stages)
    if cas is not None and cas != current:
        raise WriteConflict(
            f"AWS Secrets Manager write on '{key}': AWSCURRENT is version {current}, not {cas}; "
            "read it again and retry"
        )
    version_id = stage(client, key, value, token)
    if not verify(client, key, version_id, value):
        raise ProviderError(
            f"AWS Secrets Manager write on '{key}': version {version_id} does not read back as written; "
            "it was left under AWSPENDING and not promoted"
        )
    promote(client, key, version_id)
    return WriteResult(key=key, version=version_id)


def delete(client: AwsClient, key: str) -> None:
    """DeleteSecret without a recovery window (a PushSecret's deletionPolicy Delete); gone is fine."""
    try:
        client.call("DeleteSecret", key, write=True, SecretId=key, ForceDeleteWithoutRecovery=True)
    except KeyNotFound:
        return

"""Secrets Manager's own rotation (RotateSecret, for the Provider strategy) and rollback."""

from __future__ import annotations

from rotor.providers.aws.client import AwsClient
from rotor.providers.aws.secretsmanager_metadata import current_version
from rotor.providers.aws.secretsmanager_read import CURRENT, PREVIOUS
from rotor.providers.aws.secretsmanager_write import version_stages
from rotor.providers.base import KeyNotFound, RolledBack


def rotate(client: AwsClient, key: str, token: str | None = None) -> str | None:
    """Start the rotation function configured on the secret, now (RotateImmediately).

    Returns the VersionId AWS creates (labelled AWSPENDING until the function finishes), to be
    polled with describe() until it carries AWSCURRENT. ``token`` (a UUID) makes a retried call
    start no second rotation. A secret without a rotation function fails with a ProviderError
    naming InvalidRequestException.
    """
    params = {"ClientRequestToken": token} if token else {}
    response = client.call("RotateSecret", key, write=True, SecretId=key, RotateImmediately=True, **params)
    version = response.get("VersionId")
    return str(version) if version else None


def rollback(client: AwsClient, key: str) -> RolledBack:
    """Move AWSCURRENT back to the AWSPREVIOUS version; AWS labels the version it leaves
    AWSPREVIOUS, so a second rollback undoes the first."""
    stages = version_stages(client, key)
    current = current_version(stages)
    previous = next((v for v, s in stages.items() if PREVIOUS in s), None)
    if previous is None:
        raise KeyNotFound(f"AWS Secrets Manager rollback on '{key}': no AWSPREVIOUS version to restore")
    params = {"RemoveFromVersionId": current} if current else {}
    client.call(
        "UpdateSecretVersionStage",
        key,
        write=True,
        SecretId=key,
        VersionStage=CURRENT,
        MoveToVersionId=previous,
        **params,
    )
    return RolledBack(key=key, version=previous, before=current, restored=previous)

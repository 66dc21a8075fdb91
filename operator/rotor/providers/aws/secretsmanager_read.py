"""Secrets Manager reads: GetSecretValue (always naming a stage or a version id), and
BatchGetSecretValue 20 secrets per call for current values."""

from __future__ import annotations

import logging
import re
from typing import Any

from rotor.providers.aws.client import AwsClient
from rotor.providers.aws.errors import UNSUPPORTED_CODES, aws_code, error_from_code
from rotor.providers.aws.payload import json_object
from rotor.providers.base import (
    AccessDenied,
    InvalidConfig,
    KeyNotFound,
    ProviderError,
    RemoteRef,
    RemoteSecret,
)

log = logging.getLogger(__name__)

CURRENT = "AWSCURRENT"
PREVIOUS = "AWSPREVIOUS"
PENDING = "AWSPENDING"
BATCH_SIZE = 20  # BatchGetSecretValue's SecretIdList maximum

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def is_version_id(version: str) -> bool:
    """Version ids are UUIDs (Rotor always stages with UUID tokens); anything else is a stage."""
    return bool(_UUID.match(version))


def version_selector(version: str | None) -> dict[str, Any]:
    """GetSecretValue's version parameter: never left to AWS's default."""
    if version is None:
        return {"VersionStage": CURRENT}
    if is_version_id(version):
        return {"VersionId": version}
    return {"VersionStage": version}


def to_remote_secret(key: str, response: dict[str, Any]) -> RemoteSecret:
    """A GetSecretValue (or BatchGetSecretValue item) response as a RemoteSecret."""
    secret = RemoteSecret(
        key=key,
        version=response.get("VersionId"),
        created=response.get("CreatedDate"),
        metadata={"stages": list(response.get("VersionStages") or [])},
    )
    text = response.get("SecretString")
    if text is not None:
        secret.raw = text.encode("utf-8")
        secret.data = json_object(text)
    elif response.get("SecretBinary") is not None:
        secret.raw = bytes(response["SecretBinary"])
    return secret


def read_secret(client: AwsClient, ref: RemoteRef) -> RemoteSecret:
    response = client.call("GetSecretValue", ref.key, SecretId=ref.key, **version_selector(ref.version))
    return to_remote_secret(ref.key, response)


def read_version(client: AwsClient, key: str, version: str) -> RemoteSecret:
    """Exactly the version with VersionId ``version`` (``VersionReader``): always by VersionId,
    whatever the id looks like (a ClientRequestToken chosen by another tool need not be a UUID).
    After a rotation the version it replaced is AWSPREVIOUS; a version AWS no longer keeps is
    KeyNotFound."""
    response = client.call("GetSecretValue", key, SecretId=key, VersionId=version)
    secret = to_remote_secret(key, response)
    if secret.version != version:
        raise KeyNotFound(
            f"AWS Secrets Manager '{key}': version {version} was asked for, {secret.version} answered"
        )
    return secret


class BatchReader:
    """read_many for Secrets Manager. Current values of up to 20 secrets per BatchGetSecretValue;
    other versions, and anything the batch does not answer cleanly, fall back to GetSecretValue.

    When the endpoint does not implement BatchGetSecretValue, or the credentials may not call it,
    that is noticed once and every later read_many goes straight to GetSecretValue.
    """

    def __init__(self, client: AwsClient) -> None:
        self._client = client
        self.batch_supported = True

    def read_many(self, refs: list[RemoteRef]) -> dict[RemoteRef, RemoteSecret | ProviderError]:
        results: dict[RemoteRef, RemoteSecret | ProviderError] = {}
        current = [r for r in dict.fromkeys(refs) if r.version in (None, CURRENT)]
        others = [r for r in dict.fromkeys(refs) if r.version not in (None, CURRENT)]
        keys = list(dict.fromkeys(r.key for r in current))
        by_key: dict[str, RemoteSecret | ProviderError] = {}
        for start in range(0, len(keys), BATCH_SIZE):
            group = keys[start : start + BATCH_SIZE]
            if self.batch_supported:
                by_key.update(self._batch(group))
            for key in group:
                if key not in by_key:
                    by_key[key] = self._read_one(RemoteRef(key))
        for ref in current:
            results[ref] = by_key[ref.key]
        for ref in others:
            results[ref] = self._read_one(ref)
        return results

    def _read_one(self, ref: RemoteRef) -> RemoteSecret | ProviderError:
        try:
            return read_secret(self._client, ref)
        except ProviderError as error:
            return error

    def _batch(self, keys: list[str]) -> dict[str, RemoteSecret | ProviderError]:
        """What one batch answered; keys it left unanswered are absent (read one by one)."""
        answered: dict[str, RemoteSecret | ProviderError] = {}
        wanted = set(keys)
        try:
            for page in self._pages(keys):
                for item in page.get("SecretValues") or []:
                    key = _match_key(item, wanted)
                    # A value without AWSCURRENT is not the current one (seen on emulators
                    # after a stage move): read it by stage instead.
                    if key is not None and CURRENT in (item.get("VersionStages") or []):
                        answered[key] = to_remote_secret(key, item)
                for error in page.get("Errors") or []:
                    key = error.get("SecretId")
                    if key in wanted:
                        answered[key] = error_from_code(
                            self._client.label,
                            "BatchGetSecretValue",
                            key,
                            str(error.get("ErrorCode") or "Unknown"),
                        )
        except (AccessDenied, InvalidConfig) as error:
            if isinstance(error, InvalidConfig) and aws_code(error) not in UNSUPPORTED_CODES:
                return {}  # e.g. a malformed id: GetSecretValue reports it against its own key
            log.info(
                "AWS Secrets Manager: BatchGetSecretValue unavailable (%s); reading secrets one by one",
                error.reason,
            )
            self.batch_supported = False
            return {}
        except ProviderError as error:
            return dict.fromkeys(keys, error)
        return answered

    def _pages(self, keys: list[str]) -> list[dict[str, Any]]:
        pages: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            params: dict[str, Any] = {"SecretIdList": keys}
            if token:
                params["NextToken"] = token
            page = self._client.call("BatchGetSecretValue", None, **params)
            pages.append(page)
            token = page.get("NextToken")
            if not token:
                return pages


def _match_key(item: dict[str, Any], wanted: set[str]) -> str | None:
    """The requested id (name, full ARN or partial ARN) a batch item answers."""
    name, arn = item.get("Name"), item.get("ARN")
    if name in wanted:
        return str(name)
    if arn in wanted:
        return str(arn)
    if arn:
        for key in wanted:
            if key.startswith("arn:") and arn.startswith(key + "-"):
                return key
    return None

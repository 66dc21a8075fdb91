"""The two AWS providers behind Rotor's provider protocol, and their factory.

Capabilities: AWS has no dry-run write, and probing write access with a real write (or with
iam:SimulatePrincipalPolicy, which needs its own permission) is not worth it. So validate()
proves authentication and read access with one list call, and reports ReadWrite unless the store
is declared read-only (``AwsConfig.read_only``) or a write has been denied since: then it
reports ReadOnly, and the denied write raised AccessDenied ("the store's AWS credentials cannot
write (secretsmanager:PutSecretValue denied); grant write access to rotate"). A later successful
write reports ReadWrite again.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from rotor.providers.aws import (
    parameterstore_read,
    parameterstore_write,
    secretsmanager_metadata,
    secretsmanager_read,
    secretsmanager_rotation,
    secretsmanager_write,
)
from rotor.providers.aws.change_events import ChangeQueue
from rotor.providers.aws.client import AwsClient
from rotor.providers.aws.config import AwsConfig
from rotor.providers.aws.errors import PARAMETER_STORE, SECRETS_MANAGER
from rotor.providers.aws.payload import Value
from rotor.providers.base import (
    CallObserver,
    Capabilities,
    InvalidConfig,
    Provider,
    ProviderError,
    QueuedChange,
    RemoteRef,
    RemoteSecret,
    RolledBack,
    SecretMetadata,
    WriteResult,
)


class _AwsProvider:
    name = "aws"

    def __init__(self, client: AwsClient, config: AwsConfig) -> None:
        self.config = config
        #: the provider's one botocore client, wrapped (counters, error translation)
        self.client = client

    @property
    def calls(self) -> Counter[str]:
        """API calls made, per AWS operation name."""
        return self.client.calls

    @property
    def results(self) -> Counter[tuple[str, str]]:
        """API calls made, per (operation, "success" or error reason)."""
        return self.client.results

    @property
    def read_only(self) -> bool:
        return self.config.read_only or self.client.read_only

    def _capabilities(self) -> Capabilities:
        return Capabilities.READ_ONLY if self.read_only else Capabilities.READ_WRITE

    def observe_calls(self, observer: CallObserver) -> None:
        """Every real AWS API call is reported to ``observer`` (a batch of 20 reads is one call)."""
        self.client.observe(observer)

    def close(self) -> None:
        self.client.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(store={self.config.store_id!r}, region={self.config.region!r})"


class SecretsManagerProvider(_AwsProvider):
    """AWS Secrets Manager. Reads always name a stage or a VersionId; current values are read
    20 per BatchGetSecretValue; writes follow the AWSPENDING -> AWSCURRENT staged rotation."""

    name = "aws-secretsmanager"
    batch_size = secretsmanager_read.BATCH_SIZE

    def __init__(self, config: AwsConfig, observer: CallObserver | None = None) -> None:
        client = AwsClient(config, "secretsmanager", SECRETS_MANAGER, "secretsmanager", observer)
        super().__init__(client, config)
        self._batch = secretsmanager_read.BatchReader(self.client)
        self._queue = ChangeQueue(config, observer) if config.change_events_queue else None

    def observe_calls(self, observer: CallObserver) -> None:
        super().observe_calls(observer)
        if self._queue is not None:
            self._queue.observe(observer)

    @property
    def has_change_events(self) -> bool:
        return self._queue is not None

    def receive_changes(self, wait_seconds: int) -> list[QueuedChange]:
        """Long-poll ``changeEvents.sqsQueueURL`` (at most 10 messages per call)."""
        if self._queue is None:
            raise InvalidConfig("the store names no changeEvents.sqsQueueURL")
        return self._queue.receive(wait_seconds)

    def delete_changes(self, receipts: list[str]) -> None:
        if self._queue is not None and receipts:
            self._queue.delete(receipts)

    def close(self) -> None:
        if self._queue is not None:
            self._queue.close()
        super().close()

    def validate(self) -> Capabilities:
        self.client.call("ListSecrets", None, MaxResults=1)
        return self._capabilities()

    def read(self, ref: RemoteRef) -> RemoteSecret:
        return secretsmanager_read.read_secret(self.client, ref)

    def read_many(self, refs: list[RemoteRef]) -> dict[RemoteRef, RemoteSecret | ProviderError]:
        return self._batch.read_many(refs)

    def read_version(self, key: str, version: str) -> RemoteSecret:
        """A version by VersionId (the one a rotation replaced is AWSPREVIOUS)."""
        return secretsmanager_read.read_version(self.client, key, version)

    def find(self, path: str, name_regexp: str | None) -> list[str]:
        return secretsmanager_metadata.find(self.client, path, name_regexp)

    def find_tagged(self, path: str, name_regexp: str | None, tags: dict[str, str]) -> list[str]:
        return secretsmanager_metadata.find(self.client, path, name_regexp, tags)

    def describe(self, key: str) -> SecretMetadata:
        return secretsmanager_metadata.describe(self.client, key)

    def list_changes(self, keys: list[str]) -> dict[str, str]:
        """Current (AWSCURRENT) version id per existing key, from ListSecrets: no values read."""
        return secretsmanager_metadata.list_changes(self.client, keys)

    def write(self, key: str, value: dict[str, Any] | bytes | str, cas: str | None) -> WriteResult:
        """Stage + verify + promote with a fresh token; CreateSecret when the secret is new."""
        return secretsmanager_write.write(self.client, key, value, cas)

    def create(self, key: str, value: dict[str, Any] | bytes | str, token: str) -> WriteResult:
        """createIfMissing: CreateSecret with ``token`` as ClientRequestToken (the VersionId); a
        secret that exists refuses it (ResourceExistsException, ``WriteConflict``)."""
        return secretsmanager_write.create(self.client, key, value, token)

    def stage(self, key: str, value: Value, token: str) -> str:
        return secretsmanager_write.stage(self.client, key, value, token)

    def verify(self, key: str, version_id: str, expected: Value) -> bool:
        return secretsmanager_write.verify(self.client, key, version_id, expected)

    def promote(self, key: str, version_id: str) -> None:
        secretsmanager_write.promote(self.client, key, version_id)

    def rotate(self, key: str, token: str | None = None) -> str | None:
        return secretsmanager_rotation.rotate(self.client, key, token)

    def delete_secret(self, key: str) -> None:
        secretsmanager_write.delete(self.client, key)

    def rollback(self, key: str) -> RolledBack:
        return secretsmanager_rotation.rollback(self.client, key)


class ParameterStoreProvider(_AwsProvider):
    """AWS SSM Parameter Store. Versions are numbers, labels select versions, SecureStrings are
    decrypted on read; a write is a new version of the parameter."""

    name = "aws-parameterstore"
    batch_size = parameterstore_read.BATCH_SIZE

    def __init__(self, config: AwsConfig, observer: CallObserver | None = None) -> None:
        super().__init__(AwsClient(config, "ssm", PARAMETER_STORE, "ssm", observer), config)

    def validate(self) -> Capabilities:
        self.client.call("DescribeParameters", None, MaxResults=1)
        return self._capabilities()

    def read(self, ref: RemoteRef) -> RemoteSecret:
        return parameterstore_read.read_parameter(self.client, ref)

    def read_many(self, refs: list[RemoteRef]) -> dict[RemoteRef, RemoteSecret | ProviderError]:
        return parameterstore_read.read_many(self.client, refs)

    def read_version(self, key: str, version: str) -> RemoteSecret:
        """A version by number (the one a rotation replaced is n-1)."""
        return parameterstore_read.read_version(self.client, key, version)

    def find(self, path: str, name_regexp: str | None) -> list[str]:
        return parameterstore_read.find(self.client, path, name_regexp)

    def read_path(self, path: str) -> dict[str, bytes]:
        """dataFrom.extract on a key ending in "/": every parameter below it, by relative name."""
        return parameterstore_read.read_path(self.client, path)

    def describe(self, key: str) -> SecretMetadata:
        return parameterstore_read.describe(self.client, key)

    def write(self, key: str, value: dict[str, Any] | bytes | str, cas: str | None) -> WriteResult:
        return parameterstore_write.write(self.client, key, value, cas)

    def create(self, key: str, value: dict[str, Any] | bytes | str, token: str) -> WriteResult:
        """createIfMissing: PutParameter without Overwrite (``token`` is not needed)."""
        return parameterstore_write.create(self.client, key, value)

    def rollback(self, key: str) -> RolledBack:
        return parameterstore_write.rollback(self.client, key)

    def delete_secret(self, key: str) -> None:
        parameterstore_write.delete(self.client, key)


def make_aws_provider(config: AwsConfig, observer: CallObserver | None = None) -> Provider:
    """The provider for ``config.service``. Builds clients only; no network call is made."""
    if config.service == "SecretsManager":
        return SecretsManagerProvider(config, observer)
    if config.service == "ParameterStore":
        return ParameterStoreProvider(config, observer)
    raise InvalidConfig(
        f"AWS store: unknown service {config.service!r}; use SecretsManager or ParameterStore"
    )


def create(config: AwsConfig) -> Provider:
    """The registry's ``create``: the provider without an observer (the backend hands it one)."""
    return make_aws_provider(config)

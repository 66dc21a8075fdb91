"""botocore failures become ProviderErrors with actionable messages that never carry a value."""

from __future__ import annotations

import traceback
import uuid
from typing import Any

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ParamValidationError,
    ReadTimeoutError,
)
from botocore.stub import Stubber
from hypothesis import given
from hypothesis import strategies as st

from rotor.providers.aws import AwsConfig, SecretsManagerProvider, make_aws_provider
from rotor.providers.aws.auth import role_session_name, sts_endpoint
from rotor.providers.aws.errors import (
    PARAMETER_STORE,
    SECRETS_MANAGER,
    error_from_code,
    to_provider_error,
)
from rotor.providers.aws.payload import json_object, same_value
from rotor.providers.aws.secretsmanager_read import version_selector
from rotor.providers.base import (
    AccessDenied,
    AuthFailed,
    Capabilities,
    InvalidConfig,
    KeyNotFound,
    Provider,
    ProviderError,
    RemoteRef,
    Unreachable,
    WriteConflict,
)

SECRET = "val-hunter2-7b1c0f"


def client_error(
    code: str, message: str = "", status: int = 400, operation: str = "GetSecretValue"
) -> ClientError:
    response: Any = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, operation)


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("ResourceNotFoundException", 400, KeyNotFound),
        ("ParameterNotFound", 400, KeyNotFound),
        ("ParameterVersionNotFound", 400, KeyNotFound),
        ("AccessDeniedException", 400, AccessDenied),
        ("UnrecognizedClientException", 400, AuthFailed),
        ("InvalidSignatureException", 400, AuthFailed),
        ("ExpiredTokenException", 400, AuthFailed),
        ("ThrottlingException", 400, Unreachable),
        ("InternalServiceError", 500, Unreachable),
        ("SomethingNew", 503, Unreachable),
        ("SomethingNew", 403, AccessDenied),
        ("ValidationException", 400, InvalidConfig),
        ("InvalidParameterException", 400, InvalidConfig),
        ("ResourceExistsException", 400, WriteConflict),
        ("DecryptionFailure", 400, ProviderError),
        ("InvalidRequestException", 400, ProviderError),
    ],
)
def test_codes_map_to_reasons(code: str, status: int, expected: type[ProviderError]) -> None:
    error = to_provider_error(
        SECRETS_MANAGER, "GetSecretValue", "apps/db", client_error(code, SECRET, status)
    )
    assert type(error) is expected
    assert code in error.message and "'apps/db'" in error.message
    assert SECRET not in error.message


def test_not_found_message_is_actionable() -> None:
    error = to_provider_error(
        SECRETS_MANAGER, "GetSecretValue", "apps/db", client_error("ResourceNotFoundException")
    )
    assert error.message == (
        "AWS Secrets Manager GetSecretValue on 'apps/db': ResourceNotFoundException (secret not found); "
        "check the key and region"
    )
    assert error.reason == "KeyNotFound"


def test_access_denied_names_the_iam_action() -> None:
    sm = error_from_code(SECRETS_MANAGER, "BatchGetSecretValue", None, "AccessDeniedException")
    ssm = error_from_code(PARAMETER_STORE, "GetParameter", "/db", "AccessDeniedException")
    assert "grant secretsmanager:BatchGetSecretValue" in sm.message
    assert "grant ssm:GetParameter" in ssm.message
    assert sm.reason == "Forbidden"


@pytest.mark.parametrize(
    "exc",
    [
        EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
        ConnectTimeoutError(endpoint_url="http://127.0.0.1:1"),
        ReadTimeoutError(endpoint_url="http://127.0.0.1:1"),
    ],
)
def test_network_failures_are_unreachable(exc: Exception) -> None:
    error = to_provider_error(SECRETS_MANAGER, "ListSecrets", None, exc)
    assert isinstance(error, Unreachable) and error.retryable
    assert type(exc).__name__ in error.message


def test_missing_credentials_are_auth_failed() -> None:
    error = to_provider_error(SECRETS_MANAGER, "ListSecrets", None, NoCredentialsError())
    assert isinstance(error, AuthFailed)
    assert "IRSA" in error.message


def test_assume_role_failure_is_auth_failed() -> None:
    exc = client_error("AccessDenied", "not authorized", 403, operation="AssumeRole")
    error = to_provider_error(SECRETS_MANAGER, "GetSecretValue", "apps/db", exc)
    assert isinstance(error, AuthFailed)
    assert "STS AssumeRole failed with AccessDenied" in error.message


def test_param_validation_report_is_never_copied() -> None:
    exc = ParamValidationError(report=f"Invalid length for parameter SecretString, value: {SECRET}")
    error = to_provider_error(SECRETS_MANAGER, "PutSecretValue", "apps/db", exc)
    assert isinstance(error, InvalidConfig)
    assert SECRET not in error.message


@given(
    code=st.sampled_from(
        [
            "ValidationException",
            "AccessDeniedException",
            "ResourceExistsException",
            "Weird",
            "ParameterNotFound",
        ]
    ),
    status=st.sampled_from([400, 403, 404, 500]),
    secret=st.text(min_size=1, max_size=40),
    operation=st.sampled_from(["PutSecretValue", "PutParameter", "CreateSecret"]),
)
def test_botocore_messages_never_reach_ours(code: str, status: int, secret: str, operation: str) -> None:
    marker = f"SECRET<{secret}>"
    exc = client_error(
        code, f"1 validation error detected: Value '{marker}' at 'secretString'", status, operation
    )
    error = to_provider_error(SECRETS_MANAGER, operation, "apps/db", exc)
    assert marker not in error.message and marker not in repr(error)


def test_provider_drops_the_botocore_exception_from_the_traceback() -> None:
    provider = _stubbed_secretsmanager()
    stub = Stubber(provider.client.botocore_client)
    stub.add_client_error("get_secret_value", "DecryptionFailure", f"cannot decrypt {SECRET}")
    with stub, pytest.raises(ProviderError) as info:
        provider.read(RemoteRef("apps/db"))
    assert info.value.__cause__ is None and info.value.__suppress_context__
    assert SECRET not in "".join(traceback.format_exception(info.value))


# --------------------------------------------------------------------------- read-only marking


def _stubbed_secretsmanager() -> SecretsManagerProvider:
    provider = make_aws_provider(
        AwsConfig(
            service="SecretsManager",
            region="eu-west-1",
            access_key_id="AKIAUNITTEST",
            secret_access_key="unit-test",
            store_id="ns/aws",
        )
    )
    assert isinstance(provider, SecretsManagerProvider)
    return provider


def test_denied_write_marks_the_store_read_only() -> None:
    provider = _stubbed_secretsmanager()
    current = str(uuid.uuid4())
    stub = Stubber(provider.client.botocore_client)
    stub.add_response("describe_secret", {"Name": "apps/db", "VersionIdsToStages": {current: ["AWSCURRENT"]}})
    stub.add_response("describe_secret", {"Name": "apps/db", "VersionIdsToStages": {current: ["AWSCURRENT"]}})
    stub.add_client_error("put_secret_value", "AccessDeniedException", f"denied for {SECRET}", 400)
    stub.add_response("list_secrets", {"SecretList": []})
    with stub:
        with pytest.raises(AccessDenied) as info:
            provider.write("apps/db", SECRET, current)
        assert provider.validate() is Capabilities.READ_ONLY
    assert info.value.message == (
        "the store's AWS credentials cannot write (secretsmanager:PutSecretValue denied); "
        "grant write access to rotate"
    )
    assert provider.read_only


def test_denied_batch_falls_back_to_single_reads_once_and_for_all() -> None:
    provider = _stubbed_secretsmanager()
    assert isinstance(provider, Provider)
    version = str(uuid.uuid4())
    answer = {"Name": "a", "VersionId": version, "VersionStages": ["AWSCURRENT"], "SecretString": "x"}
    stub = Stubber(provider.client.botocore_client)
    stub.add_client_error("batch_get_secret_value", "AccessDeniedException", "denied", 400)
    stub.add_response("get_secret_value", answer)
    stub.add_response("get_secret_value", answer)
    with stub:
        first = provider.read_many([RemoteRef("a")])
        second = provider.read_many([RemoteRef("a")])
    assert [r.version for r in (*first.values(), *second.values()) if not isinstance(r, ProviderError)] == [
        version,
        version,
    ]
    assert provider.calls["BatchGetSecretValue"] == 1 and provider.calls["GetSecretValue"] == 2


def test_denied_read_does_not_mark_read_only() -> None:
    provider = _stubbed_secretsmanager()
    stub = Stubber(provider.client.botocore_client)
    stub.add_client_error("get_secret_value", "AccessDeniedException", "denied", 400)
    with stub, pytest.raises(AccessDenied):
        provider.read(RemoteRef("apps/db"))
    assert not provider.read_only


def test_calls_are_counted_with_their_result() -> None:
    reported: list[tuple[str, str]] = []
    provider = make_aws_provider(
        AwsConfig(service="SecretsManager", region="eu-west-1", access_key_id="A", secret_access_key="B"),
        observer=lambda op, result, seconds: reported.append((op, result)),
    )
    assert isinstance(provider, SecretsManagerProvider)
    stub = Stubber(provider.client.botocore_client)
    stub.add_client_error("get_secret_value", "ResourceNotFoundException", "", 400)
    with stub, pytest.raises(KeyNotFound):
        provider.read(RemoteRef("apps/db"))
    assert provider.calls["GetSecretValue"] == 1
    assert reported == [("GetSecretValue", "KeyNotFound")]


# --------------------------------------------------------------------------- small pure pieces


def test_version_selector_always_names_a_stage_or_id() -> None:
    version = str(uuid.uuid4())
    assert version_selector(None) == {"VersionStage": "AWSCURRENT"}
    assert version_selector("AWSPREVIOUS") == {"VersionStage": "AWSPREVIOUS"}
    assert version_selector("blue") == {"VersionStage": "blue"}
    assert version_selector(version) == {"VersionId": version}


def test_role_session_name_fits_sts_rules() -> None:
    assert role_session_name("team-a/aws") == "rotor-team-a-aws"
    assert len(role_session_name("x" * 100)) == 64


def test_sts_goes_to_emulators_but_not_to_vpc_endpoints() -> None:
    def cfg(endpoint: str | None) -> AwsConfig:
        return AwsConfig(service="SecretsManager", region="eu-west-1", endpoint=endpoint)

    assert sts_endpoint(cfg("http://127.0.0.1:5000")) == "http://127.0.0.1:5000"
    assert sts_endpoint(cfg("https://vpce-1.secretsmanager.eu-west-1.vpce.amazonaws.com")) is None
    assert sts_endpoint(cfg(None)) is None


def test_json_objects_and_comparisons() -> None:
    assert json_object('{"a": 1}') == {"a": 1}
    assert json_object("[1]") is None and json_object("{nope") is None and json_object("x") is None
    assert same_value({"a": 1}, '{"a":1}', None)
    assert same_value(b"\x00", None, b"\x00") and not same_value("a", "b", None)


def test_config_never_shows_keys() -> None:
    config = AwsConfig(service="SecretsManager", region="r", access_key_id="AKIA", secret_access_key=SECRET)
    assert SECRET not in repr(config)

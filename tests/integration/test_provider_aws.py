"""The AWS providers against the AWS emulator (moto in server mode), over real HTTP."""

from __future__ import annotations

import logging
import socket
import traceback
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import boto3
import pytest
from moto.server import ThreadedMotoServer

from rotor.providers.aws import AwsConfig, ParameterStoreProvider, SecretsManagerProvider, make_aws_provider
from rotor.providers.base import (
    Capabilities,
    InvalidConfig,
    KeyNotFound,
    ProviderError,
    RemoteRef,
    RemoteSecret,
    Unreachable,
    WriteConflict,
)

pytestmark = pytest.mark.integration

REGION = "eu-west-1"
KEYS = {"access_key_id": "AKIAROTORTESTING0001", "secret_access_key": "rotor-test-secret-key"}
ROLE_ARN = "arn:aws:iam::123456789012:role/rotor-reader"

# Every value the suite stores, every error it sees and every log line of rotor's loggers;
# test_no_value_leaks (last in this file) checks none of the values shows up anywhere.
VALUES: set[str] = set()
ERRORS: list[BaseException] = []
LOG_LINES: list[str] = []

E = TypeVar("E", bound=BaseException)


def secret_value(label: str = "v") -> str:
    value = f"val-{label}-{uuid.uuid4().hex}"
    VALUES.add(value)
    return value


def expect_error(error_type: type[E], fn: Callable[..., Any], *args: Any) -> E:
    with pytest.raises(error_type) as info:
        fn(*args)
    ERRORS.append(info.value)
    return info.value


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def aws_endpoint() -> Iterator[str]:
    """The AWS emulator's URL (moto server, any credentials accepted)."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


class _Collect(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        LOG_LINES.append(self.format(record))


@pytest.fixture(autouse=True)
def collect_rotor_logs() -> Iterator[None]:
    handler = _Collect(level=logging.DEBUG)
    logger = logging.getLogger("rotor")
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield
    logger.removeHandler(handler)
    logger.setLevel(previous)


@pytest.fixture
def prefix() -> str:
    return f"t-{uuid.uuid4().hex[:12]}/"


def config(aws_endpoint: str, service: str, **overrides: Any) -> AwsConfig:
    settings: dict[str, Any] = {
        "service": service,
        "region": REGION,
        "endpoint": aws_endpoint,
        "store_id": "test/aws",
        **KEYS,
    }
    settings.update(overrides)
    return AwsConfig(**settings)


@pytest.fixture
def sm(aws_endpoint: str) -> Iterator[SecretsManagerProvider]:
    provider = make_aws_provider(config(aws_endpoint, "SecretsManager"))
    assert isinstance(provider, SecretsManagerProvider)
    yield provider
    provider.close()


@pytest.fixture
def ssm(aws_endpoint: str) -> Iterator[ParameterStoreProvider]:
    provider = make_aws_provider(config(aws_endpoint, "ParameterStore"))
    assert isinstance(provider, ParameterStoreProvider)
    yield provider
    provider.close()


@pytest.fixture
def sm_source(aws_endpoint: str) -> Any:
    """A plain boto3 client to set up and inspect Secrets Manager behind the provider's back."""
    return boto3.client(
        "secretsmanager",
        region_name=REGION,
        endpoint_url=aws_endpoint,
        aws_access_key_id=KEYS["access_key_id"],
        aws_secret_access_key=KEYS["secret_access_key"],
    )


@pytest.fixture
def ssm_source(aws_endpoint: str) -> Any:
    return boto3.client(
        "ssm",
        region_name=REGION,
        endpoint_url=aws_endpoint,
        aws_access_key_id=KEYS["access_key_id"],
        aws_secret_access_key=KEYS["secret_access_key"],
    )


def stages_at_source(sm_source: Any, key: str) -> dict[str, list[str]]:
    return dict(sm_source.describe_secret(SecretId=key)["VersionIdsToStages"])


def value(result: RemoteSecret | ProviderError) -> RemoteSecret:
    if isinstance(result, ProviderError):
        ERRORS.append(result)
        raise AssertionError(f"expected a value, got {result!r}")
    return result


# --------------------------------------------------------------------------- Secrets Manager reads


def test_read_plain_string_json_object_and_binary(
    sm: SecretsManagerProvider, sm_source: Any, prefix: str
) -> None:
    plain, password, blob = secret_value("plain"), secret_value("pw"), secret_value("bin").encode()
    sm_source.create_secret(Name=f"{prefix}plain", SecretString=plain)
    sm_source.create_secret(Name=f"{prefix}json", SecretString=f'{{"user": "app", "password": "{password}"}}')
    sm_source.create_secret(Name=f"{prefix}bin", SecretBinary=b"\x00\xff" + blob)

    got_plain = sm.read(RemoteRef(f"{prefix}plain"))
    assert got_plain.raw == plain.encode() and got_plain.data is None
    assert got_plain.metadata["stages"] == ["AWSCURRENT"] and got_plain.created is not None

    got_json = sm.read(RemoteRef(f"{prefix}json"))
    assert got_json.data == {"user": "app", "password": password}

    got_bin = sm.read(RemoteRef(f"{prefix}bin"))
    assert got_bin.raw == b"\x00\xff" + blob and got_bin.data is None
    assert password not in repr(got_json) and password not in str(got_json)


def test_read_by_stage_and_by_version_id(sm: SecretsManagerProvider, sm_source: Any, prefix: str) -> None:
    old, new = secret_value("old"), secret_value("new")
    first = sm_source.create_secret(Name=f"{prefix}db", SecretString=old)["VersionId"]
    second = sm_source.put_secret_value(SecretId=f"{prefix}db", SecretString=new)["VersionId"]

    assert sm.read(RemoteRef(f"{prefix}db")).raw == new.encode()
    current = sm.read(RemoteRef(f"{prefix}db", "AWSCURRENT"))
    assert (current.raw, current.version) == (new.encode(), second)
    previous = sm.read(RemoteRef(f"{prefix}db", "AWSPREVIOUS"))
    assert (previous.raw, previous.version) == (old.encode(), first)
    assert previous.metadata["stages"] == ["AWSPREVIOUS"]
    assert sm.read(RemoteRef(f"{prefix}db", first)).raw == old.encode()
    assert sm.calls["GetSecretValue"] == 4


def test_read_many_batches_twenty_per_call(sm: SecretsManagerProvider, sm_source: Any, prefix: str) -> None:
    values = {f"{prefix}s{i:02d}": secret_value(f"s{i}") for i in range(45)}
    for key, text in values.items():
        sm_source.create_secret(Name=key, SecretString=text)
    refs = [RemoteRef(key) for key in values]

    results = sm.read_many(refs)

    assert {ref.key: value(r).raw for ref, r in results.items()} == {k: v.encode() for k, v in values.items()}
    assert sm.calls["BatchGetSecretValue"] == 3
    assert sm.calls["GetSecretValue"] == 0


def test_read_many_reports_errors_per_ref_and_reads_other_stages_alone(
    sm: SecretsManagerProvider, sm_source: Any, prefix: str
) -> None:
    old, new = secret_value("old"), secret_value("new")
    sm_source.create_secret(Name=f"{prefix}a", SecretString=old)
    sm_source.put_secret_value(SecretId=f"{prefix}a", SecretString=new)
    refs = [RemoteRef(f"{prefix}a"), RemoteRef(f"{prefix}a", "AWSPREVIOUS"), RemoteRef(f"{prefix}missing")]

    results = sm.read_many(refs)

    assert value(results[refs[0]]).raw == new.encode()
    assert value(results[refs[1]]).raw == old.encode()
    missing = results[refs[2]]
    assert isinstance(missing, KeyNotFound)
    ERRORS.append(missing)
    assert f"'{prefix}missing'" in missing.message and "ResourceNotFoundException" in missing.message
    assert sm.calls["BatchGetSecretValue"] == 1


def test_missing_secret_raises_key_not_found(sm: SecretsManagerProvider, prefix: str) -> None:
    error = expect_error(KeyNotFound, sm.read, RemoteRef(f"{prefix}nope"))
    assert error.message == (
        f"AWS Secrets Manager GetSecretValue on '{prefix}nope': ResourceNotFoundException "
        "(secret not found); check the key and region"
    )
    assert error.reason == "KeyNotFound" and not error.retryable


def test_unknown_stage_raises_key_not_found(sm: SecretsManagerProvider, sm_source: Any, prefix: str) -> None:
    sm_source.create_secret(Name=f"{prefix}one", SecretString=secret_value())
    expect_error(KeyNotFound, sm.read, RemoteRef(f"{prefix}one", "AWSPREVIOUS"))


def test_unreachable_endpoint_raises_unreachable() -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    provider = make_aws_provider(config(closed, "SecretsManager", max_attempts=1, connect_timeout=1.0))
    error = expect_error(Unreachable, provider.read, RemoteRef("apps/db"))
    assert "EndpointConnectionError" in error.message and error.retryable
    expect_error(Unreachable, provider.validate)


@pytest.mark.skip(
    reason="moto accepts any credentials; wrong-key mapping is covered in tests/unit/test_aws_errors.py"
)
def test_wrong_credentials_raise_auth_failed() -> None:
    raise AssertionError("unreachable")


# --------------------------------------------------------------------------- Secrets Manager metadata


def test_validate_reports_read_write_unless_declared_read_only(aws_endpoint: str) -> None:
    for service in ("SecretsManager", "ParameterStore"):
        provider = make_aws_provider(config(aws_endpoint, service))
        assert provider.validate() is Capabilities.READ_WRITE
        read_only = make_aws_provider(config(aws_endpoint, service, read_only=True))
        assert read_only.validate() is Capabilities.READ_ONLY


def test_find_filters_by_prefix_then_regexp(sm: SecretsManagerProvider, sm_source: Any, prefix: str) -> None:
    for name in ("apps/db-main", "apps/db-replica", "apps/cache", "other/db-x"):
        sm_source.create_secret(Name=f"{prefix}{name}", SecretString=secret_value())

    assert sm.find(f"{prefix}apps/", r"/db-") == [f"{prefix}apps/db-main", f"{prefix}apps/db-replica"]
    assert len(sm.find(f"{prefix}apps/", None)) == 3
    expect_error(InvalidConfig, sm.find, prefix, "(")


def test_find_by_tags_from_the_listing(sm: SecretsManagerProvider, sm_source: Any, prefix: str) -> None:
    tags = {
        "a": [("team", "pay"), ("env", "prod")],
        "b": [("team", "pay")],
        "c": [("team", "search")],
        "d": [],
    }
    for name, pairs in tags.items():
        sm_source.create_secret(
            Name=f"{prefix}t/{name}",
            SecretString=secret_value(),
            Tags=[{"Key": k, "Value": v} for k, v in pairs],
        )
    listed = sm.calls["ListSecrets"]
    assert sm.find_tagged(f"{prefix}t/", None, {"team": "pay"}) == [f"{prefix}t/a", f"{prefix}t/b"]
    assert sm.find_tagged(f"{prefix}t/", None, {"team": "pay", "env": "prod"}) == [f"{prefix}t/a"]
    assert sm.find_tagged(f"{prefix}t/", "/[bc]$", {"team": "pay"}) == [f"{prefix}t/b"]
    assert sm.find_tagged(f"{prefix}t/", None, {"team": "nobody"}) == []
    # the tags come with the listing: one ListSecrets page per find, no DescribeSecret
    assert sm.calls["ListSecrets"] - listed == 4 and sm.calls["DescribeSecret"] == 0


def test_describe_gives_stages_and_dates(sm: SecretsManagerProvider, sm_source: Any, prefix: str) -> None:
    first = sm_source.create_secret(Name=f"{prefix}d", SecretString=secret_value())["VersionId"]
    second = sm_source.put_secret_value(SecretId=f"{prefix}d", SecretString=secret_value())["VersionId"]

    meta = sm.describe(f"{prefix}d")

    assert meta.current_version == second
    assert meta.versions == {first: ["AWSPREVIOUS"], second: ["AWSCURRENT"]}
    assert meta.created is not None and meta.updated is not None
    expect_error(KeyNotFound, sm.describe, f"{prefix}absent")


@pytest.mark.parametrize("count", [3, 12])
def test_list_changes_detects_a_changed_secret_without_reading_values(
    sm: SecretsManagerProvider, sm_source: Any, prefix: str, count: int
) -> None:
    keys = [f"{prefix}c{i:02d}" for i in range(count)]
    for key in keys:
        sm_source.create_secret(Name=key, SecretString=secret_value())
    before = sm.list_changes([*keys, f"{prefix}gone"])
    sm_source.put_secret_value(SecretId=keys[1], SecretString=secret_value())

    after = sm.list_changes([*keys, f"{prefix}gone"])

    assert set(before) == set(keys)  # a missing secret is simply absent
    assert [k for k in keys if before[k] != after[k]] == [keys[1]]
    current = [v for v, s in stages_at_source(sm_source, keys[1]).items() if "AWSCURRENT" in s]
    assert after[keys[1]] == current[0]
    assert sm.calls["GetSecretValue"] == sm.calls["BatchGetSecretValue"] == 0


# --------------------------------------------------------------------------- Secrets Manager writes


def test_stage_verify_promote_moves_the_stages_at_the_source(
    sm: SecretsManagerProvider, sm_source: Any, prefix: str
) -> None:
    key = f"{prefix}rot"
    old, new, other = secret_value("old"), secret_value("new"), secret_value("other")
    old_version = sm_source.create_secret(Name=key, SecretString=old)["VersionId"]
    token = str(uuid.uuid4())

    version = sm.stage(key, {"password": new}, token)
    assert version == token
    assert stages_at_source(sm_source, key) == {old_version: ["AWSCURRENT"], version: ["AWSPENDING"]}
    assert sm.read(RemoteRef(key)).raw == old.encode()  # consumers still see the old value

    # A crash before "Staged" was recorded: staging again with the same token is a no-op,
    # even with another value, and the staged value is kept.
    assert sm.stage(key, {"password": other}, token) == version
    assert sm.calls["PutSecretValue"] == 1
    assert sm.verify(key, version, {"password": new})
    assert not sm.verify(key, version, {"password": other})

    sm.promote(key, version)
    assert stages_at_source(sm_source, key) == {old_version: ["AWSPREVIOUS"], version: ["AWSCURRENT"]}
    assert sm.read(RemoteRef(key)).data == {"password": new}
    assert sm.read(RemoteRef(key, "AWSPREVIOUS")).raw == old.encode()

    moves = sm.calls["UpdateSecretVersionStage"]
    sm.promote(key, version)  # resumed after "Promoted" was lost: nothing to do
    assert sm.calls["UpdateSecretVersionStage"] == moves
    assert stages_at_source(sm_source, key) == {old_version: ["AWSPREVIOUS"], version: ["AWSCURRENT"]}


def test_stage_refuses_a_token_that_is_not_a_uuid(
    sm: SecretsManagerProvider, sm_source: Any, prefix: str
) -> None:
    sm_source.create_secret(Name=f"{prefix}t", SecretString=secret_value())
    expect_error(InvalidConfig, sm.stage, f"{prefix}t", secret_value(), "not-a-uuid-but-32-characters-long")


def test_promote_of_an_unknown_version_raises_key_not_found(
    sm: SecretsManagerProvider, sm_source: Any, prefix: str
) -> None:
    sm_source.create_secret(Name=f"{prefix}p", SecretString=secret_value())
    expect_error(KeyNotFound, sm.promote, f"{prefix}p", str(uuid.uuid4()))


def test_write_creates_then_rotates_with_check_and_set(
    sm: SecretsManagerProvider, sm_source: Any, prefix: str
) -> None:
    key = f"{prefix}w"
    first, second, third = secret_value("1"), secret_value("2"), secret_value("3")

    created = sm.write(key, first, None)
    assert sm.read(RemoteRef(key)).raw == first.encode()
    rotated = sm.write(key, {"token": second}, created.version)
    assert stages_at_source(sm_source, key) == {
        created.version: ["AWSPREVIOUS"],
        rotated.version: ["AWSCURRENT"],
    }

    expect_error(WriteConflict, sm.write, key, third, created.version)  # stale cas
    assert sm.read(RemoteRef(key)).data == {"token": second}
    binary = sm.write(key, b"\x01" + third.encode(), rotated.version)
    assert sm.read(RemoteRef(key, binary.version)).raw == b"\x01" + third.encode()


def test_rollback_moves_current_back_to_previous(
    sm: SecretsManagerProvider, sm_source: Any, prefix: str
) -> None:
    key = f"{prefix}rb"
    old, new = secret_value("old"), secret_value("new")
    first = sm.write(key, old, None)
    second = sm.write(key, new, first.version)

    restored = sm.rollback(key)

    assert restored.version == first.version
    assert (restored.before, restored.restored) == (second.version, first.version)
    assert stages_at_source(sm_source, key) == {
        first.version: ["AWSCURRENT"],
        second.version: ["AWSPREVIOUS"],
    }
    assert sm.read(RemoteRef(key)).raw == old.encode()
    expect_error(KeyNotFound, sm.rollback, sm.write(f"{prefix}single", old, None).key)


def test_rotate_secret_is_accepted(sm: SecretsManagerProvider, sm_source: Any, prefix: str) -> None:
    """moto accepts RotateSecret without a rotation Lambda: it adds a version WITHOUT a value
    and makes it AWSCURRENT at once (real AWS refuses a secret with no rotation function)."""
    key = f"{prefix}prov"
    old_version = sm_source.create_secret(Name=key, SecretString=secret_value())["VersionId"]

    version = sm.rotate(key, str(uuid.uuid4()))

    assert version is not None and version != old_version
    meta = sm.describe(key)
    assert meta.versions[version] == ["AWSCURRENT"] and meta.versions[old_version] == ["AWSPREVIOUS"]
    assert meta.last_rotated is not None
    expect_error(KeyNotFound, sm.rotate, f"{prefix}absent")


# --------------------------------------------------------------------------- auth


def test_default_credential_chain_from_environment(
    aws_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAROTORFROMENV0001")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "from-env")
    provider = make_aws_provider(AwsConfig(service="SecretsManager", region=REGION, endpoint=aws_endpoint))
    assert provider.validate() is Capabilities.READ_WRITE


def test_assume_role_once_for_many_calls(aws_endpoint: str, sm_source: Any, prefix: str) -> None:
    sm_source.create_secret(Name=f"{prefix}r", SecretString=secret_value())
    provider = make_aws_provider(
        config(aws_endpoint, "SecretsManager", role_arn=ROLE_ARN, external_id="rotor-ext-id")
    )
    assert isinstance(provider, SecretsManagerProvider)

    for _ in range(3):
        provider.read(RemoteRef(f"{prefix}r"))

    assert provider.calls["AssumeRole"] == 1
    assert provider.calls["GetSecretValue"] == 3


def test_half_given_static_keys_are_invalid(aws_endpoint: str) -> None:
    expect_error(
        InvalidConfig,
        make_aws_provider,
        AwsConfig(service="SecretsManager", region=REGION, endpoint=aws_endpoint, access_key_id="AKIAONLY"),
    )


# --------------------------------------------------------------------------- Parameter Store


def test_ssm_read_by_version_and_label(ssm: ParameterStoreProvider, ssm_source: Any, prefix: str) -> None:
    name = f"/{prefix}db/password"
    v1, v2 = secret_value("v1"), secret_value("v2")
    ssm_source.put_parameter(Name=name, Value=v1, Type="SecureString")
    ssm_source.put_parameter(Name=name, Value=v2, Type="SecureString", Overwrite=True)
    ssm_source.label_parameter_version(Name=name, ParameterVersion=1, Labels=["stable"])

    latest = ssm.read(RemoteRef(name))
    assert (latest.raw, latest.version, latest.metadata["type"]) == (v2.encode(), "2", "SecureString")
    assert ssm.read(RemoteRef(name, "1")).raw == v1.encode()
    by_label = ssm.read(RemoteRef(name, "stable"))
    assert (by_label.raw, by_label.version, by_label.metadata["labels"]) == (v1.encode(), "1", ["stable"])
    expect_error(KeyNotFound, ssm.read, RemoteRef(name, "7"))
    expect_error(KeyNotFound, ssm.read, RemoteRef(name, "nolabel"))
    expect_error(KeyNotFound, ssm.read, RemoteRef(f"/{prefix}absent"))


def test_ssm_secure_string_is_decrypted_and_json_parsed(
    ssm: ParameterStoreProvider, ssm_source: Any, prefix: str
) -> None:
    name = f"/{prefix}json"
    password = secret_value()
    ssm_source.put_parameter(Name=name, Value=f'{{"password": "{password}"}}', Type="SecureString")
    encrypted = ssm_source.get_parameter(Name=name, WithDecryption=False)["Parameter"]["Value"]
    assert encrypted != f'{{"password": "{password}"}}'  # so reading it needs decryption

    got = ssm.read(RemoteRef(name))

    assert got.data == {"password": password}


def test_ssm_read_many_ten_per_call(ssm: ParameterStoreProvider, ssm_source: Any, prefix: str) -> None:
    values = {f"/{prefix}p{i:02d}": secret_value() for i in range(12)}
    for name, text in values.items():
        ssm_source.put_parameter(Name=name, Value=text, Type="SecureString")
    refs = [RemoteRef(n) for n in values] + [RemoteRef(f"/{prefix}missing"), RemoteRef(f"/{prefix}p00", "1")]

    results = ssm.read_many(refs)

    assert {r.key: value(results[r]).raw for r in refs[:12]} == {k: v.encode() for k, v in values.items()}
    assert value(results[refs[-1]]).raw == values[f"/{prefix}p00"].encode()
    missing = results[refs[-2]]
    assert isinstance(missing, KeyNotFound)
    ERRORS.append(missing)
    assert ssm.calls["GetParameters"] == 2 and ssm.calls["GetParameter"] == 1


def test_ssm_find_and_read_path(ssm: ParameterStoreProvider, ssm_source: Any, prefix: str) -> None:
    root = f"/{prefix}app"
    user, password, key = secret_value(), secret_value(), secret_value()
    ssm_source.put_parameter(Name=f"{root}/db/user", Value=user, Type="String")
    ssm_source.put_parameter(Name=f"{root}/db/password", Value=password, Type="SecureString")
    ssm_source.put_parameter(Name=f"{root}/tls/key", Value=key, Type="SecureString")
    ssm_source.put_parameter(Name=f"{root}x/other", Value=secret_value(), Type="String")

    assert ssm.find(f"{root}/", None) == [f"{root}/db/password", f"{root}/db/user", f"{root}/tls/key"]
    assert ssm.find(f"{root}/", r"pass") == [f"{root}/db/password"]
    assert ssm.read_path(f"{root}/") == {
        "db/user": user.encode(),
        "db/password": password.encode(),
        "tls/key": key.encode(),
    }


def test_ssm_write_keeps_history_and_checks_cas(
    ssm: ParameterStoreProvider, ssm_source: Any, prefix: str
) -> None:
    name = f"/{prefix}w"
    first, second, third = secret_value(), secret_value(), secret_value()

    assert ssm.write(name, first, None).version == "1"
    assert ssm_source.get_parameter(Name=name)["Parameter"]["Type"] == "SecureString"
    assert ssm.write(name, {"k": second}, "1").version == "2"
    expect_error(WriteConflict, ssm.write, name, third, "1")

    meta = ssm.describe(name)
    assert (meta.current_version, sorted(meta.versions)) == ("2", ["1", "2"])
    assert ssm.read(RemoteRef(name)).data == {"k": second}
    assert ssm.read(RemoteRef(name, "1")).raw == first.encode()
    expect_error(InvalidConfig, ssm.write, name, b"\xff\xfe" + third.encode(), None)


def test_ssm_write_keeps_the_existing_type(ssm: ParameterStoreProvider, ssm_source: Any, prefix: str) -> None:
    name = f"/{prefix}plain"
    ssm_source.put_parameter(Name=name, Value=secret_value(), Type="String")
    ssm.write(name, secret_value(), None)
    assert ssm_source.get_parameter(Name=name)["Parameter"]["Type"] == "String"


def test_ssm_rollback_restores_the_previous_value(ssm: ParameterStoreProvider, prefix: str) -> None:
    name = f"/{prefix}rb"
    old, new = secret_value(), secret_value()
    ssm.write(name, old, None)
    ssm.write(name, new, "1")

    restored = ssm.rollback(name)

    assert restored.version == "3"
    assert (restored.before, restored.restored) == ("2", "1")
    assert ssm.read(RemoteRef(name)).raw == old.encode()
    assert sorted(ssm.describe(name).versions) == ["1", "2", "3"]
    ssm.write(f"/{prefix}single", old, None)
    expect_error(KeyNotFound, ssm.rollback, f"/{prefix}single")
    expect_error(KeyNotFound, ssm.rollback, f"/{prefix}absent")


# --------------------------------------------------------------------------- security (keep last)


def test_calls_are_counted_per_operation_and_result(sm: SecretsManagerProvider, prefix: str) -> None:
    expect_error(KeyNotFound, sm.read, RemoteRef(f"{prefix}x"))
    sm.validate()
    assert sm.results[("GetSecretValue", "KeyNotFound")] == 1
    assert sm.results[("ListSecrets", "success")] == 1


def test_no_value_leaks_in_errors_or_logs() -> None:
    """Every error seen in this file, with its traceback, and every rotor log line, checked for
    every value this file stored."""
    if not ERRORS:
        pytest.skip("nothing to check: run it with the rest of this file")
    texts = [repr(e) + str(e) + "".join(traceback.format_exception(e)) for e in ERRORS] + LOG_LINES
    leaks = [text for text in texts for v in VALUES if v in text]
    assert not leaks

"""The pure part of change notifications: the HMAC signature, the receiver's body, the Secrets
Manager events an SQS queue carries, name matching (names and ARNs) and the token bucket."""

from __future__ import annotations

import json

import pytest

from rotor.notify.bucket import TokenBucket
from rotor.notify.eventbridge import parse_change
from rotor.notify.message import MAX_KEYS, InvalidNotification, names_match, parse_notification
from rotor.notify.signature import sign, verify

KEY = b"k" * 32
BODY = b'{"store": {"namespace": "a", "name": "vault"}, "keys": ["app/db"]}'


# ---------------------------------------------------------------------- signature
def test_a_signature_made_with_the_key_verifies() -> None:
    header = sign(KEY, BODY)
    assert header.startswith("sha256=") and len(header) == 7 + 64
    assert verify(KEY, BODY, header)
    assert verify(KEY, BODY, header.upper().replace("SHA256=", "sha256="))  # hex case does not matter


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "sha256=",
        "sha1=" + "0" * 40,
        sign(b"another key", BODY),
        sign(KEY, BODY + b" "),  # a signature of another body
        sign(KEY, BODY)[:-2],  # truncated
        sign(KEY, BODY)[7:],  # no prefix
        "sha256=" + "zz" * 32,
    ],
)
def test_a_wrong_missing_or_malformed_signature_does_not_verify(header: str | None) -> None:
    assert not verify(KEY, BODY, header)


def test_an_empty_key_authenticates_nobody() -> None:
    assert not verify(b"", BODY, sign(b"", BODY))


def test_a_changed_body_does_not_verify() -> None:
    header = sign(KEY, BODY)
    assert not verify(KEY, BODY.replace(b"app/db", b"app/xx"), header)


# ---------------------------------------------------------------------- the body
def test_a_notification_names_a_store_and_keys() -> None:
    n = parse_notification(BODY)
    assert n.store == ("SecretStore", "a", "vault")
    assert n.keys == ("app/db",)


def test_a_cluster_store_has_no_namespace_and_keys_are_deduplicated() -> None:
    body = json.dumps({"store": {"kind": "ClusterSecretStore", "name": "s"}, "keys": ["x", "y", "x"]})
    n = parse_notification(body.encode())
    assert n.store == ("ClusterSecretStore", "", "s")
    assert n.keys == ("x", "y")


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"not json", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[]", "store"),
        (json.dumps({"store": {"namespace": "a", "name": "v"}}).encode(), "keys"),
        (json.dumps({"store": {"namespace": "a", "name": "v"}, "keys": []}).encode(), "keys"),
        (json.dumps({"store": {"name": "v"}, "keys": ["k"]}).encode(), "namespace is required"),
        (
            json.dumps(
                {"store": {"kind": "ClusterSecretStore", "namespace": "a", "name": "v"}, "keys": ["k"]}
            ).encode(),
            "no namespace",
        ),
        (json.dumps({"store": {"kind": "Vault", "name": "v"}, "keys": ["k"]}).encode(), "kind"),
        (json.dumps({"store": {"namespace": "a", "name": "v"}, "keys": ["k"], "x": 1}).encode(), "x"),
        (
            json.dumps(
                {"store": {"namespace": "a", "name": "v"}, "keys": [f"k{i}" for i in range(MAX_KEYS + 1)]}
            ).encode(),
            "keys",
        ),
    ],
)
def test_a_body_that_is_no_notification_says_what_is_wrong(body: bytes, says: str) -> None:
    with pytest.raises(InvalidNotification) as info:
        parse_notification(body)
    assert says in str(info.value)


# ---------------------------------------------------------------------- names and ARNs
ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:app/db-AbC123"


@pytest.mark.parametrize(
    ("notified", "key", "match"),
    [
        ("app/db", "app/db", True),
        (ARN, "app/db", True),  # an event names the ARN, the ManagedSecret the name
        ("app/db", ARN, True),
        (ARN, ARN, True),
        (ARN, "app/db-AbC123", True),
        ("app/db2", "app/db", False),
        ("app", "app/db", False),
        ("app/db-AbC123", "app/db", False),  # a name is a name: only ARNs carry the suffix
        (ARN, ARN.replace("AbC123", "XyZ789"), False),  # two ARNs: two secrets
        ("arn:aws:secretsmanager:eu-west-1:123456789012:secret:other-AbC123", "app/db", False),
    ],
)
def test_names_match(notified: str, key: str, match: bool) -> None:
    assert names_match(notified, key) is match


# ---------------------------------------------------------------------- EventBridge events
def _api_call(name: str, secret_id: str, **detail: object) -> str:
    return json.dumps(
        {
            "version": "0",
            "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
            "detail-type": "AWS API Call via CloudTrail",
            "source": "aws.secretsmanager",
            "account": "123456789012",
            "region": "eu-west-1",
            "detail": {
                "eventSource": "secretsmanager.amazonaws.com",
                "eventName": name,
                "requestParameters": {"secretId": secret_id, "clientRequestToken": "t"},
                "responseElements": {"arn": ARN} if not detail.get("errorCode") else None,
                **detail,
            },
        }
    )


ROTATION_SUCCEEDED = json.dumps(
    {
        "version": "0",
        "detail-type": "AWS Service Event via CloudTrail",
        "source": "aws.secretsmanager",
        "detail": {
            "eventSource": "secretsmanager.amazonaws.com",
            "eventName": "RotationSucceeded",
            "requestParameters": None,
            "responseElements": None,
            "additionalEventData": {"SecretId": ARN},
            "eventType": "AwsServiceEvent",
        },
    }
)


@pytest.mark.parametrize("name", ["PutSecretValue", "UpdateSecret"])
def test_api_call_events_name_the_secret_as_given_and_its_arn(name: str) -> None:
    change = parse_change(_api_call(name, "app/db"))
    assert change is not None
    assert change.event == name
    assert change.secret_ids == ("app/db", ARN)


def test_rotation_succeeded_names_the_secret_in_additional_event_data() -> None:
    change = parse_change(ROTATION_SUCCEEDED)
    assert change is not None and change.secret_ids == (ARN,)


def test_an_event_wrapped_by_sns_is_unwrapped() -> None:
    wrapped = json.dumps({"Type": "Notification", "Message": _api_call("PutSecretValue", "app/db")})
    change = parse_change(wrapped)
    assert change is not None and "app/db" in change.secret_ids


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        "[]",
        json.dumps({"source": "aws.s3", "detail": {"eventName": "PutObject"}}),
        _api_call("GetSecretValue", "app/db"),  # reads change nothing
        _api_call("TagResource", "app/db"),
        _api_call("PutSecretValue", "app/db", errorCode="AccessDeniedException"),  # a failed call
        json.dumps({"source": "aws.secretsmanager", "detail": {"eventName": "PutSecretValue"}}),
        json.dumps({"Type": "Notification", "Message": "not json"}),
    ],
)
def test_other_messages_are_no_change(body: str) -> None:
    assert parse_change(body) is None


# ---------------------------------------------------------------------- the bucket
def test_the_bucket_answers_at_once_and_refills_at_its_rate() -> None:
    now = [0.0]
    bucket = TokenBucket(2.0, 3, clock=lambda: now[0])
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    now[0] = 0.5  # one token back
    assert bucket.take() and not bucket.take()
    now[0] = 100.0  # never more than the burst
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]


# ---------------------------------------------------------------------- rotor run flags
@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--notify-addr", "0.0.0.0:8082"], "--notify-secret NAMESPACE/NAME"),
        (
            ["--notify-addr", "0.0.0.0:8082", "--notify-secret", "just-a-name"],
            "--notify-secret NAMESPACE/NAME",
        ),
        (["--notify-addr", ":8082", "--notify-secret", "a/b/c"], "--notify-secret NAMESPACE/NAME"),
        (["--notify-addr", ":8082", "--notify-secret", "a/b", "--notify-rate", "0"], "--notify-rate"),
    ],
)
def test_rotor_run_refuses_a_receiver_without_its_key(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from rotor.cli.main import main

    assert main(["run", "--no-leader-elect", *argv]) == 2
    assert says in capsys.readouterr().err


def test_the_receiver_is_off_by_default() -> None:
    from rotor.cli.main import build_parser

    args = build_parser().parse_args(["run"])
    assert args.notify_addr is None and args.notify_secret is None

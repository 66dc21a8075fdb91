"""Change notifications (DESIGN §11): with a refresh interval of 1 h, a change reaches the Secret
through a signed POST, or through a Secrets Manager event on an SQS queue (moto), without waiting
for the interval. Bad requests get their answer and refresh nothing; a burst of 1,000
notifications for one key causes one backend read per share window. Backend reads are counted on
the operator's own metrics, with an operator of its own (one namespace) so the counts are only
this test's."""

from __future__ import annotations

import asyncio
import base64
import json
import math
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest
import pytest_asyncio
from prometheus_client.parser import text_string_to_metric_families

from rotor.api.names import NOTIFY_PATH, NOTIFY_SIGNATURE_HEADER
from rotor.devenv.aws import REGION
from rotor.devenv.process import free_port
from rotor.notify.signature import sign
from support.cluster import Cluster, wait_for
from support.operator import OperatorProcess

pytestmark = pytest.mark.asyncio(loop_scope="session")

#: the share window of a store's reads (rotor.services.backend.Backend's default)
SHARE_WINDOW = 5.0


def metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


@dataclass
class Notify:
    ns: str
    op: OperatorProcess
    url: str
    key: bytes

    def reads(self, store: str, operation: str = "read") -> float:
        return metric(self.op.metrics(), "rotor_provider_requests_total", store=store, operation=operation)

    def notifications(self, source: str, result: str) -> float:
        return metric(self.op.metrics(), "rotor_notifications_total", source=source, result=result)

    def syncs(self) -> float:
        return metric(self.op.metrics(), "rotor_sync_total")

    async def post(
        self, session: aiohttp.ClientSession, body: bytes, *, signature: str | None = "sign"
    ) -> tuple[int, dict]:
        headers = {"Content-Type": "application/json"}
        if signature == "sign":
            signature = sign(self.key, body)
        if signature is not None:
            headers[NOTIFY_SIGNATURE_HEADER] = signature
        async with session.post(self.url, data=body, headers=headers) as resp:
            text = await resp.text()
            return resp.status, (json.loads(text) if text.startswith("{") else {"text": text})


def _body(ns: str, keys: list[str], store: str = "vault") -> bytes:
    return json.dumps(
        {"store": {"kind": "SecretStore", "namespace": ns, "name": store}, "keys": keys}
    ).encode()


@pytest_asyncio.fixture(loop_scope="session")
async def notify(cluster: Cluster, env, leaks) -> AsyncIterator[Notify]:
    ns = f"iso-notify-{secrets.token_hex(3)}"
    await cluster.create_namespace(ns)
    key = secrets.token_hex(32).encode()
    leaks.add(key)
    await cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "rotor-notify", "namespace": ns},
            "data": {"hmac-key": base64.b64encode(key).decode()},
        },
        ns,
    )
    port = free_port()
    op = OperatorProcess(
        str(env.kubeconfig),
        env.workdir / "logs",
        name=f"op-{ns}",
        namespaces=[ns],
        env=env.aws_env(),
        extra_args=[
            "--notify-addr",
            f"127.0.0.1:{port}",
            "--notify-secret",
            f"{ns}/rotor-notify",
            # the burst test measures coalescing, not the per-store rate limit (a unit test does)
            "--notify-rate",
            "5000",
            "--notify-burst",
            "5000",
        ],
    )
    op.start()
    yield Notify(ns, op, f"http://127.0.0.1:{port}{NOTIFY_PATH}", key)
    op.stop()
    await cluster.delete_namespace(ns)


def _ms(name: str, store: str, key: str, prop: str = "v") -> dict:
    return {
        "apiVersion": "rotor.dev/v1alpha1",
        "kind": "ManagedSecret",
        "metadata": {"name": name},
        "spec": {
            "storeRef": {"name": store},
            "refresh": {"interval": "1h"},
            "data": [{"secretKey": "value", "remoteRef": {"key": key, "property": prop}}],
        },
    }


async def _vault_reader(cluster: Cluster, env, leaks, n: Notify, name: str) -> tuple[str, str]:
    """A ManagedSecret reading ``<ns>/<name>`` from Vault, synced; returns (key, its value)."""
    key = f"{n.ns}/{name}"
    value = secrets.token_hex(16)
    leaks.add(value)
    env.vault_client().secrets.kv.v2.create_or_update_secret(
        path=key, secret={"v": value}, mount_point="secret"
    )
    if await cluster.get("SecretStore", "vault", n.ns) is None:
        for doc in env.vault_token_store(n.ns):
            await cluster.apply(doc, n.ns)
    await cluster.apply(_ms(name, "vault", key), n.ns)
    await cluster.ready(name, n.ns)
    return key, value


def _change_vault(env, leaks, key: str) -> str:
    value = secrets.token_hex(16)
    leaks.add(value)
    env.vault_client().secrets.kv.v2.create_or_update_secret(
        path=key, secret={"v": value}, mount_point="secret"
    )
    return value


async def _has(cluster: Cluster, ns: str, name: str, value: str) -> bool:
    data = await cluster.secret_data(ns, name)
    return data is not None and data.get("value") == value.encode()


async def test_a_signed_notification_brings_a_vault_change_long_before_the_interval(
    cluster: Cluster, env, leaks, notify: Notify
) -> None:
    n = notify
    key, old = await _vault_reader(cluster, env, leaks, n, "app")
    await _vault_reader(cluster, env, leaks, n, "bystander")  # reads another key: not refreshed
    store = f"SecretStore/{n.ns}/vault"
    new = _change_vault(env, leaks, key)
    assert await _has(cluster, n.ns, "app", old)  # the 1 h interval would not see it for an hour
    reads0 = n.reads(store)
    async with aiohttp.ClientSession() as session:
        status, answer = await n.post(session, _body(n.ns, [key]))
    assert status == 202, answer
    assert answer["queued"] == 1  # exactly the one reader of that key
    await wait_for(lambda: _has(cluster, n.ns, "app", new), timeout=30, what="the new value via notification")
    assert n.reads(store) - reads0 == 1
    assert n.notifications("http", "queued") >= 1
    ms = await cluster.get("ManagedSecret", "app", n.ns)
    assert ms is not None and ms["status"]["conditions"][0]["status"] == "True"


async def test_bad_signature_oversized_body_and_unknown_store_get_their_answer_and_refresh_nothing(
    cluster: Cluster, env, leaks, notify: Notify
) -> None:
    n = notify
    key, old = await _vault_reader(cluster, env, leaks, n, "guarded")
    store = f"SecretStore/{n.ns}/vault"
    new = _change_vault(env, leaks, key)
    body = _body(n.ns, [key])
    reads0, syncs0 = n.reads(store), n.syncs()
    async with aiohttp.ClientSession() as session:
        answers = [
            await n.post(session, body, signature=None),
            await n.post(session, body, signature=sign(b"not the key", body)),
            await n.post(session, body + b" ", signature=sign(n.key, body)),
            await n.post(session, b'{"keys": ["' + b"x" * 70_000 + b'"]}'),
            await n.post(session, _body(n.ns, [key], store="no-such-store")),
            await n.post(session, _body("elsewhere", [key])),
        ]
        assert [status for status, _ in answers] == [401, 401, 401, 413, 404, 404], answers
        # nothing is refreshed: no sync, no read, the old value stays (checked a while after)
        await asyncio.sleep(3)
        assert n.reads(store) == reads0
        assert n.syncs() == syncs0
        assert await _has(cluster, n.ns, "guarded", old)
        assert n.notifications("http", "unauthorized") >= 3
        assert n.notifications("http", "too_large") >= 1
        assert n.notifications("http", "unknown_store") >= 2
        audit = [
            json.loads(line)
            for line in n.op.log_text().splitlines()
            if line.startswith("{") and '"audit"' in line and "unauthorized" in line
        ]
        assert len(audit) >= 3 and all(a.get("verb") == "notify" for a in audit)
        # the same notification, signed, does refresh (so the silence above was the refusals')
        status, _ = await n.post(session, body)
        assert status == 202
    await wait_for(lambda: _has(cluster, n.ns, "guarded", new), timeout=30, what="the new value")
    assert n.key.decode() not in n.op.log_text()


async def test_a_burst_of_1000_notifications_for_one_key_reads_once_per_share_window(
    cluster: Cluster, env, leaks, notify: Notify
) -> None:
    n = notify
    key, _ = await _vault_reader(cluster, env, leaks, n, "hot")
    store = f"SecretStore/{n.ns}/vault"
    reads0 = n.reads(store)
    body = _body(n.ns, [key])
    limit = asyncio.Semaphore(20)
    statuses: list[int] = []
    latest = ""

    async def one(session: aiohttp.ClientSession, i: int) -> None:
        nonlocal latest
        async with limit:
            if i % 100 == 99:  # the value keeps changing during the burst
                latest = _change_vault(env, leaks, key)
            status, _ = await n.post(session, body)
            statuses.append(status)

    started = time.monotonic()
    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(one(session, i) for i in range(1000)))
    elapsed = time.monotonic() - started
    assert statuses.count(202) == 1000, {s: statuses.count(s) for s in set(statuses)}
    # the last change of the burst arrives through the coalesced refresh at the window's end
    await wait_for(lambda: _has(cluster, n.ns, "hot", latest), timeout=30, what="the burst's last value")
    await asyncio.sleep(SHARE_WINDOW + 1)  # any refresh still owed has happened
    reads = n.reads(store) - reads0
    windows = math.ceil(elapsed / SHARE_WINDOW) + 1  # the windows the burst touched, and the trailing one
    print(f"1000 notifications in {elapsed:.1f} s: {reads:.0f} backend reads ({windows} windows)")
    assert 1 <= reads <= windows, (reads, elapsed)
    assert n.notifications("http", "coalesced") >= 900


async def test_an_sqs_event_brings_an_aws_change_and_is_deleted(
    cluster: Cluster, env, leaks, notify: Notify
) -> None:
    n = notify
    sqs = env.boto("sqs")
    queue_url = sqs.create_queue(QueueName=f"rotor-{n.ns}", Attributes={"VisibilityTimeout": "5"})["QueueUrl"]
    sm = env.boto("secretsmanager")
    name = f"{n.ns}/aws-app"
    value = secrets.token_hex(16)
    leaks.add(value)
    arn = sm.create_secret(Name=name, SecretString=json.dumps({"v": value}))["ARN"]
    for doc in env.aws_store(n.ns):
        if doc["kind"] == "SecretStore":
            doc["spec"]["provider"]["aws"]["changeEvents"] = {"sqsQueueURL": queue_url}
        await cluster.apply(doc, n.ns)
    await cluster.apply(_ms("aws-app", "aws", name), n.ns)
    await cluster.apply(_ms("aws-other", "aws", f"{n.ns}/unrelated"), n.ns)
    sm.create_secret(Name=f"{n.ns}/unrelated", SecretString=json.dumps({"v": secrets.token_hex(16)}))
    await cluster.ready("aws-app", n.ns, timeout=60)
    store = f"SecretStore/{n.ns}/aws"

    new = secrets.token_hex(16)
    leaks.add(new)
    sm.put_secret_value(SecretId=name, SecretString=json.dumps({"v": new}))
    assert not await _has(cluster, n.ns, "aws-app", new)
    reads0 = n.reads(store, "BatchGetSecretValue") + n.reads(store, "GetSecretValue")
    # a message that is no change event is deleted as ignored; the change event refreshes
    sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps({"source": "aws.s3", "detail": {}}))
    sqs.send_message(
        QueueUrl=queue_url,
        MessageBody=json.dumps(
            {
                "version": "0",
                "id": secrets.token_hex(8),
                "detail-type": "AWS API Call via CloudTrail",
                "source": "aws.secretsmanager",
                "account": "123456789012",
                "region": REGION,
                "detail": {
                    "eventSource": "secretsmanager.amazonaws.com",
                    "eventName": "PutSecretValue",
                    "requestParameters": {"secretId": arn},
                    "responseElements": {"arn": arn},
                },
            }
        ),
    )
    await wait_for(lambda: _has(cluster, n.ns, "aws-app", new), timeout=60, what="the new value via SQS")
    reads = n.reads(store, "BatchGetSecretValue") + n.reads(store, "GetSecretValue") - reads0
    assert reads == 1

    async def queue_empty() -> bool:
        attrs = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
        return (
            attrs["ApproximateNumberOfMessages"] == "0"
            and attrs["ApproximateNumberOfMessagesNotVisible"] == "0"
        )

    await wait_for(queue_empty, timeout=30, what="both messages deleted")
    assert n.notifications("sqs", "queued") >= 1
    assert n.notifications("sqs", "ignored") >= 1

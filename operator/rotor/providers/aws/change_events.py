"""Secrets Manager change events from SQS (``changeEvents.sqsQueueURL``): long-poll receive and
batch delete, with the store's own credentials. The client's read timeout outlasts the long poll."""

from __future__ import annotations

import dataclasses
import threading

from rotor.providers.aws.client import AwsClient
from rotor.providers.aws.config import AwsConfig
from rotor.providers.base import CallObserver, InvalidConfig, QueuedChange

SQS = "AWS SQS"
#: the most SQS returns per ReceiveMessage / deletes per DeleteMessageBatch
BATCH = 10


class ChangeQueue:
    def __init__(self, config: AwsConfig, observer: CallObserver | None = None) -> None:
        if not config.change_events_queue:
            raise InvalidConfig("the store names no changeEvents.sqsQueueURL")
        self.url = config.change_events_queue
        self._config = config
        self._observer = observer
        self._client: AwsClient | None = None
        self._lock = threading.Lock()

    def observe(self, observer: CallObserver | None) -> None:
        self._observer = observer
        if self._client is not None:
            self._client.observe(observer)

    def _sqs(self, wait_seconds: int) -> AwsClient:
        with self._lock:
            if self._client is None:
                config = dataclasses.replace(self._config, read_timeout=float(max(wait_seconds, 20) + 10))
                self._client = AwsClient(config, "sqs", SQS, "sqs", self._observer)
            return self._client

    def receive(self, wait_seconds: int) -> list[QueuedChange]:
        answer = self._sqs(wait_seconds).call(
            "ReceiveMessage",
            self.url,
            QueueUrl=self.url,
            MaxNumberOfMessages=BATCH,
            WaitTimeSeconds=wait_seconds,
        )
        return [
            QueuedChange(m["ReceiptHandle"], m.get("Body") or "")
            for m in answer.get("Messages") or []
            if m.get("ReceiptHandle")
        ]

    def delete(self, receipts: list[str]) -> None:
        client = self._sqs(20)
        for start in range(0, len(receipts), BATCH):
            chunk = receipts[start : start + BATCH]
            client.call(
                "DeleteMessageBatch",
                self.url,
                QueueUrl=self.url,
                Entries=[{"Id": str(i), "ReceiptHandle": r} for i, r in enumerate(chunk)],
            )

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

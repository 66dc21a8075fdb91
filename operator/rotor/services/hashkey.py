"""The key of the keyed data hash (status.dataHash, the rotor.dev/data-hash annotation).

A keyed hash means the status never lets anyone test guesses of a low-entropy value. The key
must be stable across restarts and replicas: from ROTOR_HASH_KEY_FILE or ROTOR_HASH_KEY, else a
Secret ``rotor-hash-key`` in the operator's namespace (created once)."""

from __future__ import annotations

import base64
import logging
import os
import secrets
from pathlib import Path

from rotor.kube.gateway import KubeError, KubeGateway

log = logging.getLogger("rotor")
SECRET_NAME = "rotor-hash-key"


async def load_hash_key(gateway: KubeGateway) -> bytes:
    path = os.environ.get("ROTOR_HASH_KEY_FILE")
    if path:
        return Path(path).read_bytes().strip()  # noqa: ASYNC240 - once, at startup
    inline = os.environ.get("ROTOR_HASH_KEY")
    if inline:
        return inline.encode()
    namespace = os.environ.get("POD_NAMESPACE") or os.environ.get("ROTOR_NAMESPACE") or "rotor-system"
    try:
        existing = await gateway.get_secret(namespace, SECRET_NAME)
        if existing is not None and (existing.get("data") or {}).get("key"):
            return base64.b64decode(existing["data"]["key"])
        key = secrets.token_bytes(32)
        await gateway.create_secret(
            namespace,
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": SECRET_NAME, "labels": {"app.kubernetes.io/part-of": "rotor"}},
                "data": {"key": base64.b64encode(key).decode()},
            },
        )
        return key
    except KubeError as exc:
        if exc.status == 409:
            again = await gateway.get_secret(namespace, SECRET_NAME)
            if again is not None:
                return base64.b64decode(again["data"]["key"])
        log.warning(
            "cannot keep the data-hash key in Secret %s/%s (%s); using a per-process key, so every Secret is "
            "rewritten once after a restart",
            namespace,
            SECRET_NAME,
            exc,
        )
        return secrets.token_bytes(32)

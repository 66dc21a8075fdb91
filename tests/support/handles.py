"""A ready Vault token store over a fake KV for unit tests of the services (one copy of the setup
the sync, rotation and cleanup tests share)."""

from __future__ import annotations

from typing import Any

from rotor.api.secretstore import SecretStoreSpec
from rotor.providers.base import Capabilities
from rotor.services.backend import Backend
from rotor.services.stores import StoreHandle


def vault_token_handle(kv: Any, namespace: str) -> StoreHandle:
    """The handle of a ready, writable SecretStore ``vault`` in ``namespace`` whose backend is ``kv``."""
    store = SecretStoreSpec.model_validate(
        {
            "provider": {
                "vault": {
                    "server": "http://vault",
                    "auth": {"token": {"secretRef": {"name": "t", "key": "t"}}},
                }
            }
        }
    )
    return StoreHandle(
        ("SecretStore", namespace, "vault"),
        1,
        "",
        store,
        backend=Backend(kv, store="vault"),
        ready=True,
        capabilities=Capabilities.READ_WRITE,
    )

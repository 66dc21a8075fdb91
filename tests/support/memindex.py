"""A plain dict-backed ObjectIndex (and SecretLedger) for unit tests;
the controller keeps its own informer-fed index (rotor.controller.index). Reverse maps are computed by scanning,
which is fine at test sizes; the controller's index keeps them incrementally."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from rotor.services.ports import Body, ObjKey, PolicyKey, StoreKey, policy_key_of, store_key_of


class MemoryIndex:
    def __init__(
        self,
        managed_secrets: dict[ObjKey, dict[str, Any]] | None = None,
        secrets: dict[tuple[str, str], dict[str, Any]] | None = None,
        policies: dict[PolicyKey, dict[str, Any]] | None = None,
    ) -> None:
        # the dicts are shared, not copied: whoever feeds them (a test, the controller) keeps them
        self.managed: dict[ObjKey, dict[str, Any]] = managed_secrets if managed_secrets is not None else {}
        self.secrets: dict[tuple[str, str], dict[str, Any]] = secrets if secrets is not None else {}
        self.policy_bodies: dict[PolicyKey, dict[str, Any]] = policies if policies is not None else {}

    # ------------------------------------------------------------------ feeding (tests)
    def put(self, body: dict[str, Any]) -> None:
        """Add or replace an object of any kind the index holds."""
        kind = body.get("kind") or "ManagedSecret"
        meta = body["metadata"]
        if kind == "ManagedSecret":
            self.managed[(meta["namespace"], meta["name"])] = body
        elif kind == "Secret":
            self.secrets[(meta["namespace"], meta["name"])] = body
        elif kind in ("RotationPolicy", "ClusterRotationPolicy"):
            cluster = kind == "ClusterRotationPolicy"
            self.policy_bodies[(kind, "" if cluster else meta.get("namespace") or "", meta["name"])] = body
        else:
            raise ValueError(f"MemoryIndex does not hold {kind}")

    # ------------------------------------------------------------------ ObjectIndex
    def managed_secret(self, key: ObjKey) -> Body | None:
        return self.managed.get(key)

    def managed_secrets(self) -> Iterable[tuple[ObjKey, Body]]:
        return list(self.managed.items())

    def secret(self, namespace: str, name: str) -> Body | None:
        return self.secrets.get((namespace, name))

    def policy(self, key: PolicyKey) -> Body | None:
        return self.policy_bodies.get(key)

    def policies(self) -> Iterable[tuple[PolicyKey, Body]]:
        return list(self.policy_bodies.items())

    def policy_users(self, key: PolicyKey) -> set[ObjKey]:
        out: set[ObjKey] = set()
        for ms_key, body in self.managed.items():
            ref = ((body.get("spec") or {}).get("rotation") or {}).get("policyRef") or {}
            if ref.get("name") and policy_key_of(ms_key[0], ref.get("kind"), ref["name"]) == key:
                out.add(ms_key)
        return out

    def store_users(self, key: StoreKey) -> set[ObjKey]:
        out: set[ObjKey] = set()
        for ms_key, body in self.managed.items():
            ref = (body.get("spec") or {}).get("storeRef") or {}
            if store_key_of(ms_key[0], ref.get("kind"), ref.get("name")) == key:
                out.add(ms_key)
        return out

    # ------------------------------------------------------------------ SecretLedger
    def wrote_secret(self, body: Mapping[str, Any]) -> None:
        meta = body["metadata"]
        self.secrets[(meta["namespace"], meta["name"])] = dict(body)

    def released_secret(self, namespace: str, name: str) -> None:
        self.secrets.pop((namespace, name), None)

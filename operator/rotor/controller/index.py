"""The one in-memory index every informer feeds: ManagedSecrets, the Secrets Rotor manages, stores
and rotation policies, with the reverse maps store → users and policy → users.

ConfigMaps (``template.from``) are held only while a ManagedSecret uses them, with the reverse
map ConfigMap → users, so that an edit re-renders exactly those.

The reverse maps are kept up to date on each event, from what the event changes (a ManagedSecret
remembers which store and policy it named last), so no event scans every object. The index is a
``Mapping`` of the ManagedSecrets (``index[key]``, ``index.items()``) and implements
``rotor.services.ports.ObjectIndex`` for the services, and the ledger of the Secrets they write
(``wrote_secret``, ``released_secret``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from rotor.services.ports import ObjKey, PolicyKey, StoreKey, policy_key_of, store_key_of

Body = dict[str, Any]
#: (kind, namespace or "", name) of a store or a policy
Key = tuple[str, str, str]


def older(incoming: Mapping[str, Any], known: Mapping[str, Any]) -> bool:
    """``incoming`` has a lower resourceVersion than ``known`` (an echo already absorbed)."""
    try:
        return int(incoming["metadata"]["resourceVersion"]) < int(known["metadata"]["resourceVersion"])
    except (KeyError, TypeError, ValueError):
        return False


def _version(body: Mapping[str, Any]) -> str | None:
    return (body.get("metadata") or {}).get("resourceVersion")


def key_of(kind: str, body: Mapping[str, Any]) -> Key:
    meta = body["metadata"]
    return (kind, meta.get("namespace") or "", meta["name"])


def config_map_of(key: ObjKey, body: Mapping[str, Any]) -> ObjKey | None:
    """The (namespace, name) of the ConfigMap a ManagedSecret's ``template.from`` names, if any."""
    template = (body.get("spec") or {}).get("template") or {}
    name = ((template.get("from") or {}).get("configMap") or {}).get("name")
    return (key[0], str(name)) if name else None


def refs_of(key: ObjKey, body: Mapping[str, Any]) -> tuple[StoreKey, PolicyKey | None]:
    """The store and the policy (if any) a ManagedSecret names."""
    spec = body.get("spec") or {}
    store_ref = spec.get("storeRef") or {}
    store = store_key_of(key[0], store_ref.get("kind"), store_ref.get("name"))
    policy_ref = (spec.get("rotation") or {}).get("policyRef") or {}
    name = policy_ref.get("name")
    policy = policy_key_of(key[0], policy_ref.get("kind"), name) if name else None
    return store, policy


class Index(Mapping[ObjKey, Body]):
    def __init__(self) -> None:
        self._managed: dict[ObjKey, Body] = {}
        #: managed Secrets by (namespace, name); shared with the sync service as its Secret cache
        self.secrets: dict[tuple[str, str], Body] = {}
        self._stores: dict[StoreKey, Body] = {}
        self._policies: dict[PolicyKey, Body] = {}
        self._refs: dict[ObjKey, tuple[StoreKey, PolicyKey | None]] = {}
        self._store_users: dict[StoreKey, set[ObjKey]] = {}
        self._policy_users: dict[PolicyKey, set[ObjKey]] = {}
        #: template.from: ManagedSecret -> ConfigMap, ConfigMap -> users, and the ConfigMaps used
        self._templates: dict[ObjKey, ObjKey] = {}
        self._config_map_users: dict[ObjKey, set[ObjKey]] = {}
        self._config_maps: dict[ObjKey, Body] = {}

    # ------------------------------------------------------------------ Mapping (ManagedSecrets)
    def __getitem__(self, key: ObjKey) -> Body:
        return self._managed[key]

    def __iter__(self) -> Iterator[ObjKey]:
        return iter(self._managed)

    def __len__(self) -> int:
        return len(self._managed)

    # ------------------------------------------------------------------ ManagedSecrets
    def put_managed(self, key: ObjKey, body: Body) -> None:
        self._managed[key] = body
        self._link_config_map(key, config_map_of(key, body))
        refs = refs_of(key, body)
        before = self._refs.get(key)
        if before == refs:
            return
        self._unlink(key, before)
        self._refs[key] = refs
        store, policy = refs
        self._store_users.setdefault(store, set()).add(key)
        if policy is not None:
            self._policy_users.setdefault(policy, set()).add(key)

    def drop_managed(self, key: ObjKey) -> None:
        self._managed.pop(key, None)
        self._unlink(key, self._refs.pop(key, None))
        self._link_config_map(key, None)

    def _link_config_map(self, key: ObjKey, config_map: ObjKey | None) -> None:
        before = self._templates.get(key)
        if before == config_map:
            return
        if before is not None:
            users = self._config_map_users.get(before)
            if users is not None:
                users.discard(key)
                if not users:  # nobody uses it any more: not held
                    del self._config_map_users[before]
                    self._config_maps.pop(before, None)
            del self._templates[key]
        if config_map is not None:
            self._templates[key] = config_map
            self._config_map_users.setdefault(config_map, set()).add(key)

    def _unlink(self, key: ObjKey, refs: tuple[StoreKey, PolicyKey | None] | None) -> None:
        if refs is None:
            return
        store, policy = refs
        users = self._store_users.get(store)
        if users is not None:
            users.discard(key)
            if not users:
                del self._store_users[store]
        if policy is not None:
            users = self._policy_users.get(policy)
            if users is not None:
                users.discard(key)
                if not users:
                    del self._policy_users[policy]

    # ------------------------------------------------------------------ stores and policies
    def put_store(self, key: StoreKey, body: Body) -> None:
        self._stores[key] = body

    def drop_store(self, key: StoreKey) -> None:
        self._stores.pop(key, None)

    def store(self, key: StoreKey) -> Body | None:
        return self._stores.get(key)

    def stores(self) -> Iterable[tuple[StoreKey, Body]]:
        return list(self._stores.items())

    def put_policy(self, key: PolicyKey, body: Body) -> None:
        self._policies[key] = body

    def drop_policy(self, key: PolicyKey) -> None:
        self._policies.pop(key, None)

    # ------------------------------------------------------------------ ConfigMaps (template.from)
    def config_map_users(self, key: ObjKey) -> set[ObjKey]:
        """ManagedSecrets whose ``template.from`` names this ConfigMap."""
        return set(self._config_map_users.get(key, ()))

    def put_config_map(self, body: Body) -> bool:
        """Hold a ConfigMap the watch delivered, if it is used; False when it is not used, or is
        an echo no newer than what is held."""
        meta = body["metadata"]
        key = (meta["namespace"], meta["name"])
        if key not in self._config_map_users:
            return False
        known = self._config_maps.get(key)
        if known is not None and (older(body, known) or _version(known) == _version(body)):
            return False
        self._config_maps[key] = body
        return True

    def drop_config_map(self, key: ObjKey) -> None:
        self._config_maps.pop(key, None)

    def config_map(self, namespace: str, name: str) -> Body | None:
        return self._config_maps.get((namespace, name))

    def remember_config_map(self, body: Mapping[str, Any]) -> None:
        self.put_config_map(dict(body))

    # ------------------------------------------------------------------ ObjectIndex
    def managed_secret(self, key: ObjKey) -> Body | None:
        return self._managed.get(key)

    def managed_secrets(self) -> Iterable[tuple[ObjKey, Body]]:
        return list(self._managed.items())

    def secret(self, namespace: str, name: str) -> Body | None:
        return self.secrets.get((namespace, name))

    def policy(self, key: PolicyKey) -> Body | None:
        return self._policies.get(key)

    def policies(self) -> Iterable[tuple[PolicyKey, Body]]:
        return list(self._policies.items())

    def policy_users(self, key: PolicyKey) -> set[ObjKey]:
        return set(self._policy_users.get(key, ()))

    def store_users(self, key: StoreKey) -> set[ObjKey]:
        return set(self._store_users.get(key, ()))

    # ------------------------------------------------------------------ what the services wrote
    def wrote_secret(self, body: Mapping[str, Any]) -> None:
        """A Secret the services have just written: its watch echo is then recognised as ours."""
        meta = body["metadata"]
        self.secrets[(meta["namespace"], meta["name"])] = dict(body)

    def released_secret(self, namespace: str, name: str) -> None:
        """A Secret the services no longer manage (deleted or released)."""
        self.secrets.pop((namespace, name), None)

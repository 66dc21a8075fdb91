"""The Vault provider: KV v1/v2 reads, find, metadata, check-and-set writes, database static
roles and PKI. One hvac client and one token per store; the token is renewed at about 2/3 of its
TTL and a login never happens per read. Blocking: called from Rotor's worker threads only."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import tempfile
import threading
import time
from collections import Counter
from typing import Any

import hvac
import hvac.exceptions as vexc
import requests
import requests.adapters
import requests.utils

from rotor.providers.base import (
    AccessDenied,
    AuthFailed,
    Capabilities,
    InvalidConfig,
    KeyNotFound,
    ProviderError,
    RemoteRef,
    RemoteSecret,
    SecretMetadata,
    WriteResult,
)
from rotor.providers.find import compile_name_regexp
from rotor.providers.vault.config import VaultConfig
from rotor.providers.vault.errors import mapped


def _parse_time(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    value = value.rstrip("Z")
    if "." in value:
        head, frac = value.split(".", 1)
        value = f"{head}.{frac[:6]}"
    try:
        return dt.datetime.fromisoformat(value).replace(tzinfo=dt.UTC)
    except ValueError:
        return None


def _session(server: str, verify: bool | str) -> requests.Session:
    """One HTTP session per store. The environment (proxies, a CA bundle) is read here, once:
    with requests' default ``trust_env`` every request re-reads ~/.netrc and the proxy variables,
    which was a measurable share of a cold start's CPU. The pool holds a connection per backend
    thread."""
    session = requests.Session()
    session.trust_env = False
    session.proxies = requests.utils.get_environ_proxies(server)
    # hvac takes TLS verification from a given session (over its own ``verify`` argument)
    if verify is True:
        verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    session.verify = verify
    adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=32)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


class VaultProvider:
    name = "vault"

    def __init__(self, config: VaultConfig) -> None:
        if config.auth_method == "none":
            raise InvalidConfig("Vault store has no auth method (token, appRole or kubernetes)")
        self.config = config
        self.calls: Counter[str] = Counter()
        self.logins = 0
        self._lock = threading.RLock()
        self._token_expires: float | None = None  # monotonic deadline for renewal; None = no TTL
        self._ca_file: str | None = None
        verify: bool | str = True
        if config.ca_pem:
            fd, self._ca_file = tempfile.mkstemp(prefix="rotor-vault-ca-", suffix=".pem")
            with os.fdopen(fd, "wb") as fh:
                fh.write(config.ca_pem)
            verify = self._ca_file
        self.client = hvac.Client(
            url=config.server,
            namespace=config.namespace,
            verify=verify,
            timeout=config.timeout,
            session=_session(config.server, verify),
        )
        self._logged_in = False

    # ------------------------------------------------------------------ auth
    def _login(self) -> None:
        try:
            self._do_login()
        except AccessDenied as err:
            # at login, "permission denied" means Vault rejected the credentials themselves
            raise AuthFailed(
                f"Vault rejected the store's {self.config.auth_method} credentials ({err.message}); "
                "check the token, role or secret_id"
            ) from None

    def _do_login(self) -> None:
        cfg = self.config
        self.logins += 1
        with mapped("login", cfg.auth_method, cfg.server):
            if cfg.token is not None:
                self.client.token = cfg.token
                info = self.client.auth.token.lookup_self()["data"]
                ttl = int(info.get("ttl") or 0)
            elif cfg.approle_role_id is not None:
                resp = self.client.auth.approle.login(
                    role_id=cfg.approle_role_id,
                    secret_id=cfg.approle_secret_id,
                    mount_point=cfg.approle_mount,
                    use_token=True,
                )
                ttl = int(resp["auth"].get("lease_duration") or 0)
            else:
                assert cfg.kubernetes_jwt is not None and cfg.kubernetes_role is not None
                jwt = cfg.kubernetes_jwt()
                resp = self.client.auth.kubernetes.login(
                    role=cfg.kubernetes_role, jwt=jwt, mount_point=cfg.kubernetes_mount, use_token=True
                )
                ttl = int(resp["auth"].get("lease_duration") or 0)
        self.calls["login"] += 1
        self._logged_in = True
        self._token_expires = time.monotonic() + ttl * 2 / 3 if ttl > 0 else None

    def _ensure_token(self) -> None:
        with self._lock:
            if not self._logged_in:
                self._login()
                return
            if self._token_expires is not None and time.monotonic() >= self._token_expires:
                self._renew_or_login()

    def _renew_or_login(self) -> None:
        try:
            resp = self.client.auth.token.renew_self()
            self.calls["renew"] += 1
            ttl = int(resp["auth"].get("lease_duration") or 0)
            self._token_expires = time.monotonic() + ttl * 2 / 3 if ttl > 0 else None
        except (vexc.VaultError, ValueError):
            if self.config.token is not None:
                raise AuthFailed(
                    "Vault token could not be renewed and has expired; supply a new token"
                ) from None
            self._login()

    def _call(self, _operation: str, _where: str, _fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        """Run one Vault call with a valid token; on a revoked/expired token, log in once more."""
        self._ensure_token()
        for attempt in (1, 2):
            try:
                with mapped(_operation, _where, self.config.server):
                    self.calls[_operation] += 1
                    return _fn(*args, **kwargs)
            except ProviderError as err:
                token_gone = err.reason == "Forbidden" and self.config.token is None and attempt == 1
                if token_gone and not self._token_valid():
                    with self._lock:
                        self._login()
                    continue
                raise
        raise AssertionError("unreachable")

    def _token_valid(self) -> bool:
        try:
            self.client.auth.token.lookup_self()
            return True
        except vexc.VaultError:
            return False

    # ------------------------------------------------------------------ protocol
    def validate(self) -> Capabilities:
        self._ensure_token()
        mount = self.config.kv_mount
        probe = f"{mount}/data/rotor-probe" if self.config.kv_version == 2 else f"{mount}/rotor-probe"
        resp = self._call(
            "capabilities",
            probe,
            self.client.adapter.post,
            "/v1/sys/capabilities-self",
            json={"paths": [probe]},
        )
        data = resp.get("data", resp) if isinstance(resp, dict) else {}
        caps = set(data.get(probe) or data.get("capabilities") or [])
        if "deny" in caps and len(caps) == 1:
            # still usable if the policy grants narrower paths; reads will say so
            return Capabilities.READ_ONLY
        if caps & {"create", "update", "root"}:
            return Capabilities.READ_WRITE
        return Capabilities.READ_ONLY

    def read(self, ref: RemoteRef) -> RemoteSecret:
        cfg = self.config
        path = ref.key.strip("/")
        if cfg.kv_version == 2:
            version = int(ref.version) if ref.version and ref.version.isdigit() else None
            if ref.version and version is None:
                raise InvalidConfig(f"Vault KV v2 version for '{path}' must be a number")
            resp = self._call(
                "read",
                path,
                self.client.secrets.kv.v2.read_secret_version,
                path=path,
                version=version,
                mount_point=cfg.kv_mount,
                raise_on_deleted_version=True,
            )
            meta = resp["data"]["metadata"] or {}
            data = resp["data"]["data"]
            if data is None:
                raise KeyNotFound(f"Vault read '{path}': the version is deleted or destroyed")
            return RemoteSecret(
                key=path,
                version=str(meta.get("version")) if meta.get("version") is not None else None,
                data=dict(data),
                created=_parse_time(meta.get("created_time")),
                metadata={"custom": meta.get("custom_metadata")},
            )
        resp = self._call(
            "read", path, self.client.secrets.kv.v1.read_secret, path=path, mount_point=cfg.kv_mount
        )
        return RemoteSecret(key=path, version=None, data=dict(resp.get("data") or {}))

    def read_many(self, refs: list[RemoteRef]) -> dict[RemoteRef, RemoteSecret | ProviderError]:
        out: dict[RemoteRef, RemoteSecret | ProviderError] = {}
        for ref in refs:
            try:
                out[ref] = self.read(ref)
            except ProviderError as err:
                out[ref] = err
        return out

    def _list(self, path: str) -> list[str]:
        cfg = self.config
        lister = (
            self.client.secrets.kv.v2.list_secrets
            if cfg.kv_version == 2
            else self.client.secrets.kv.v1.list_secrets
        )
        try:
            resp = self._call("list", path or "/", lister, path=path, mount_point=cfg.kv_mount)
        except KeyNotFound:
            return []
        return list(resp.get("data", {}).get("keys", []))

    def find(self, path: str, name_regexp: str | None) -> list[str]:
        pattern = compile_name_regexp(name_regexp)
        prefix = path.strip("/")
        found: list[str] = []
        pending = [prefix + "/" if prefix else ""]
        while pending and len(found) < 10_000:
            folder = pending.pop()
            for entry in self._list(folder.rstrip("/")):
                full = f"{folder}{entry}"
                if entry.endswith("/"):
                    pending.append(full)
                elif (
                    pattern is None or pattern.search(full[len(prefix) :].lstrip("/")) or pattern.search(full)
                ):
                    found.append(full)
        return sorted(found)

    def describe(self, key: str) -> SecretMetadata:
        path = key.strip("/")
        if self.config.kv_version != 2:
            self.read(RemoteRef(path))
            return SecretMetadata(key=path, current_version=None)
        resp = self._call(
            "metadata",
            path,
            self.client.secrets.kv.v2.read_secret_metadata,
            path=path,
            mount_point=self.config.kv_mount,
        )
        data = resp["data"]
        versions = {
            str(v): (
                ["destroyed"] if info.get("destroyed") else ["deleted"] if info.get("deletion_time") else []
            )
            for v, info in (data.get("versions") or {}).items()
        }
        current = data.get("current_version")
        current_info = (data.get("versions") or {}).get(str(current), {})
        return SecretMetadata(
            key=path,
            current_version=str(current) if current is not None else None,
            created=_parse_time(data.get("created_time")),
            updated=_parse_time(current_info.get("created_time") or data.get("updated_time")),
            versions=versions,
        )

    def write(self, key: str, value: dict[str, Any] | bytes | str, cas: str | None) -> WriteResult:
        path = key.strip("/")
        if not isinstance(value, dict):
            raise InvalidConfig(f"Vault write '{path}': Vault KV stores maps of properties")
        if self.config.kv_version == 2:
            resp = self._call(
                "write",
                path,
                self.client.secrets.kv.v2.create_or_update_secret,
                path=path,
                secret=value,
                cas=int(cas) if cas is not None else None,
                mount_point=self.config.kv_mount,
            )
            return WriteResult(key=path, version=str(resp["data"]["version"]))
        self._call(
            "write",
            path,
            self.client.secrets.kv.v1.create_or_update_secret,
            path=path,
            secret=value,
            mount_point=self.config.kv_mount,
        )
        return WriteResult(key=path, version=None)

    def close(self) -> None:
        if self._ca_file:
            with contextlib.suppress(OSError):
                os.unlink(self._ca_file)
        if self._logged_in and self.config.token is None:
            with contextlib.suppress(Exception):
                self.client.auth.token.revoke_self()
        self.client.adapter.close()

    # ------------------------------------------------------------------ beyond KV
    def read_database_credentials(self, mount: str, role: str) -> RemoteSecret:
        path = f"{mount}/static-creds/{role}"
        resp = self._call("read", path, self.client.adapter.get, f"/v1/{path}")
        data = resp.get("data", {})
        last = _parse_time(data.get("last_vault_rotation"))
        return RemoteSecret(
            key=path,
            version=data.get("last_vault_rotation"),
            data={"username": data.get("username"), "password": data.get("password")},
            created=last,
            metadata={"ttl": data.get("ttl"), "rotation_period": data.get("rotation_period")},
        )

    def rotate_database_role(self, mount: str, role: str) -> None:
        path = f"{mount}/rotate-role/{role}"
        self._call("rotate", path, self.client.adapter.post, f"/v1/{path}")

    def issue_certificate(
        self, mount: str, role: str, common_name: str, alt_names: list[str], ttl: str | None
    ) -> dict[str, str]:
        params: dict[str, Any] = {}
        if alt_names:
            params["alt_names"] = ",".join(alt_names)
        if ttl:
            params["ttl"] = ttl
        resp = self._call(
            "issue",
            f"{mount}/issue/{role}",
            self.client.secrets.pki.generate_certificate,
            name=role,
            common_name=common_name,
            extra_params=params,
            mount_point=mount,
        )
        data = resp["data"]
        chain = data.get("ca_chain") or [data.get("issuing_ca", "")]
        return {
            "certificate": data["certificate"],
            "private_key": data["private_key"],
            "ca": "\n".join(c for c in chain if c),
        }

    def rollback(self, key: str) -> WriteResult:
        """Make the previous KV v2 version the new current one (a new version, CAS-protected)."""
        meta = self.describe(key)
        if meta.current_version is None or int(meta.current_version) < 2:
            raise KeyNotFound(f"Vault '{key}': no previous version to roll back to")
        current = int(meta.current_version)
        previous = current - 1
        while previous > 0 and meta.versions.get(str(previous)):
            previous -= 1
        if previous < 1:
            raise KeyNotFound(f"Vault '{key}': every earlier version is deleted or destroyed")
        old = self.read(RemoteRef(key, str(previous)))
        return self.write(key, old.data or {}, cas=str(current))

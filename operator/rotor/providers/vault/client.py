"""One store's connection to Vault: one hvac client, one HTTP session and one token, renewed at
about 2/3 of its TTL by the same rule as dynamic credentials (``rotor.leasing``); a token whose
renewal was capped at its max TTL is replaced by a new login that long before it ends, for auth
methods that log in (a login never happens per read). ``VaultClient.call`` runs one Vault call
with a valid token and Rotor's error mapping; every verb module goes through it. Blocking: called
from Rotor's worker threads only."""

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

from rotor.leasing import TOKEN_RENEW_PERCENT, extendable, renewal_lead
from rotor.providers.base import AccessDenied, AuthFailed, InvalidConfig, ProviderError
from rotor.providers.vault.config import VaultConfig
from rotor.providers.vault.errors import mapped


def parse_time(value: str | None) -> dt.datetime | None:
    """Vault's RFC 3339 times (nanoseconds, ``Z``) as aware datetimes; None when absent or odd."""
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


def session(server: str, verify: bool | str) -> requests.Session:
    """One HTTP session per store. The environment (proxies, a CA bundle) is read here, once:
    with requests' default ``trust_env`` every request re-reads ~/.netrc and the proxy variables,
    which was a measurable share of a cold start's CPU. The pool holds a connection per backend
    thread."""
    s = requests.Session()
    s.trust_env = False
    s.proxies = requests.utils.get_environ_proxies(server)
    # hvac takes TLS verification from a given session (over its own ``verify`` argument)
    if verify is True:
        verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    s.verify = verify
    adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=32)
    s.mount("https://", adapter)
    s.mount("http://", adapter)
    return s


class VaultClient:
    def __init__(self, config: VaultConfig) -> None:
        if config.auth is None:
            raise InvalidConfig("Vault store has no auth method (token, appRole or kubernetes)")
        self.config = config
        self.auth = config.auth
        self.calls: Counter[str] = Counter()
        self.logins = 0
        self._lock = threading.RLock()
        self._token_expires: float | None = None  # monotonic deadline for renewal; None = no TTL
        self._token_ttl = 0  # seconds granted at login: what each renewal asks for
        self._token_final = False  # a renewal was capped at the max TTL: log in anew next time
        self.ca_file: str | None = None
        verify: bool | str = True
        if config.ca_pem:
            fd, self.ca_file = tempfile.mkstemp(prefix="rotor-vault-ca-", suffix=".pem")
            with os.fdopen(fd, "wb") as fh:
                fh.write(config.ca_pem)
            verify = self.ca_file
        self.hvac = hvac.Client(
            url=config.server,
            namespace=config.namespace,
            verify=verify,
            timeout=config.timeout,
            session=session(config.server, verify),
        )
        self._logged_in = False

    # ------------------------------------------------------------------ token
    def login(self) -> None:
        try:
            self._do_login()
        except AccessDenied as err:
            # at login, "permission denied" means Vault rejected the credentials themselves
            raise AuthFailed(
                f"Vault rejected the store's {self.auth.name} credentials ({err.message}); "
                "check the token, role or secret_id"
            ) from None

    def _do_login(self) -> None:
        self.logins += 1
        with mapped("login", self.auth.name, self.config.server):
            ttl = self.auth.login(self.hvac)
        self.calls["login"] += 1
        self._logged_in = True
        self._token_ttl, self._token_final = ttl, False
        self._token_expires = self._renew_deadline(ttl)

    def _renew_deadline(self, granted: int) -> float | None:
        if granted <= 0:
            return None
        if self._token_final and not self.auth.issues_tokens:
            # a static token cannot be replaced: keep renewing what is left until Vault refuses
            return time.monotonic() + granted * TOKEN_RENEW_PERCENT / 100
        return time.monotonic() + granted - renewal_lead(self._token_ttl or granted, TOKEN_RENEW_PERCENT)

    def ensure_token(self) -> None:
        with self._lock:
            if not self._logged_in:
                self.login()
                return
            if self._token_expires is not None and time.monotonic() >= self._token_expires:
                self._renew_or_login()

    def _renew_or_login(self) -> None:
        if self._token_final and self.auth.issues_tokens:
            self.login()  # capped at its max TTL: a new token before this one ends
            return
        try:
            resp = self.hvac.auth.token.renew_self()
            self.calls["renew"] += 1
            ttl = int(resp["auth"].get("lease_duration") or 0)
            self._token_final = not extendable(ttl, self._token_ttl)
            self._token_expires = self._renew_deadline(ttl)
        except (vexc.VaultError, ValueError):
            if not self.auth.issues_tokens:
                raise AuthFailed(
                    "Vault token could not be renewed and has expired; supply a new token"
                ) from None
            self.login()

    def _token_valid(self) -> bool:
        try:
            self.hvac.auth.token.lookup_self()
            return True
        except vexc.VaultError:
            return False

    # ------------------------------------------------------------------ calls
    def call(self, _operation: str, _where: str, _fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        """Run one Vault call with a valid token; on a revoked/expired token, log in once more."""
        self.ensure_token()
        for attempt in (1, 2):
            try:
                with mapped(_operation, _where, self.config.server):
                    self.calls[_operation] += 1
                    return _fn(*args, **kwargs)
            except ProviderError as err:
                token_gone = err.reason == "Forbidden" and self.auth.issues_tokens and attempt == 1
                if token_gone and not self._token_valid():
                    with self._lock:
                        self.login()
                    continue
                raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.ca_file:
            with contextlib.suppress(OSError):
                os.unlink(self.ca_file)
        if self._logged_in and self.auth.issues_tokens:
            with contextlib.suppress(Exception):
                self.hvac.auth.token.revoke_self()
        self.hvac.adapter.close()

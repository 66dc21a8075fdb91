"""A test server that speaks Azure Key Vault's secrets REST API and the Microsoft Entra token
endpoint, over HTTPS, keeping state as the services do. The official SDKs (azure-keyvault-secrets,
azure-identity) drive it unchanged: no emulator for Key Vault can be installed here.

What it implements, as documented by Microsoft (REST API 7.x and the 2025+ date versions):

- the bearer challenge: a request without a valid token gets 401 with
  ``WWW-Authenticate: Bearer authorization="<authority>/<tenant>", resource="https://vault.azure.net"``;
  a token is only valid for the scope ``https://vault.azure.net/.default`` of this tenant;
- tokens: ``POST /<tenant>/oauth2/v2.0/token`` with ``client_credentials`` and either a client
  secret or a client assertion (a Kubernetes ServiceAccount JWT, verified against the cluster's
  public key, its issuer, the audience ``api://AzureADTokenExchange`` and the federated subject),
  with AADSTS error codes; ``/<tenant>/v2.0/.well-known/openid-configuration`` for MSAL;
- secrets: PUT (a new version), GET current or by version, PATCH a version's attributes and tags,
  DELETE (soft delete: the name is then 404, and a PUT on it 409 until purged), list secrets and
  list versions with ``nextLink`` paging and ``maxresults``; names are case-insensitive;
- a disabled version cannot be read (403 Forbidden, inner error ``SecretDisabled``); the
  current version is the newest one, enabled or not;
- RBAC: each client id has a role: "Key Vault Secrets User" (get and list) or "Key Vault
  Secrets Officer" (also set, update, delete); anything else is 403 ``ForbiddenByRbac``;
- ``api-version`` is required and must be one the service knows;
- ``throttle(n)`` answers the next n vault requests with 429 and ``Retry-After``.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, urlparse

import jwt

from support.tls import TestCA

RESOURCE = "https://vault.azure.net"
SCOPE = f"{RESOURCE}/.default"
EXCHANGE_AUDIENCE = "api://AzureADTokenExchange"
API_VERSIONS = {"7.0", "7.1", "7.2", "7.3", "7.4", "7.5", "7.6", "2025-07-01", "2026-04-01"}
READER = "Key Vault Secrets User"
OFFICER = "Key Vault Secrets Officer"
_WRITE = {"PUT", "PATCH", "DELETE"}


@dataclass
class Version:
    id: str
    value: str
    created: int
    updated: int
    enabled: bool = True
    exp: int | None = None
    nbf: int | None = None
    content_type: str | None = None
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class Secret:
    name: str
    versions: list[Version] = field(default_factory=list)  # oldest first
    deleted: bool = False


@dataclass
class App:
    """An app registration (service principal) or a user-assigned identity."""

    client_id: str
    role: str | None
    client_secret: str | None = None
    #: federated credential subjects, e.g. "system:serviceaccount:ns:name"
    subjects: set[str] = field(default_factory=set)


@dataclass
class Token:
    client_id: str
    scope: str
    expires: float


class KeyVaultServer:
    """Start with ``start()``; ``url`` is both the vault URL and the authority host."""

    def __init__(self, ca: TestCA, tenant_id: str | None = None) -> None:
        self.ca = ca
        self.tenant_id = tenant_id or "72f988bf-0000-4000-8000-" + secrets.token_hex(6)
        self.apps: dict[str, App] = {}
        self.secrets: dict[str, Secret] = {}
        self.tokens: dict[str, Token] = {}
        #: trusted ServiceAccount token issuers (a cluster's OIDC issuer) -> public key, for assertions
        self.issuers: dict[str, bytes] = {}
        self.requests: list[tuple[str, str]] = []  # (method, path) of every vault request
        self.token_requests = 0
        self._throttle = 0
        self._lock = threading.RLock()
        self._clock: Callable[[], float] = time.time
        self._server: ThreadingHTTPServer | None = None

    # ------------------------------------------------------------------ lifecycle
    @property
    def url(self) -> str:
        assert self._server is not None
        return f"https://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> KeyVaultServer:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        server.daemon_threads = True
        server.socket = self.ca.server_context().wrap_socket(server.socket, server_side=True)
        self._server = server
        threading.Thread(target=server.serve_forever, name="keyvault-test-server", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    # ------------------------------------------------------------------ administration (tests)
    def add_app(
        self,
        role: str | None,
        *,
        client_secret: str | None = None,
        subject: str | None = None,
        client_id: str | None = None,
    ) -> App:
        app = App(
            client_id=client_id or secrets.token_hex(4) + "-0000-4000-8000-" + secrets.token_hex(6),
            role=role,
            client_secret=client_secret,
            subjects={subject} if subject else set(),
        )
        with self._lock:
            self.apps[app.client_id] = app
        return app

    def trust_issuer(self, issuer: str, public_key_pem: bytes) -> None:
        with self._lock:
            self.issuers[issuer] = public_key_pem

    def throttle(self, n: int) -> None:
        with self._lock:
            self._throttle = n

    def put(self, name: str, value: str, **attributes: Any) -> Version:
        """Seed a version as an admin would (``az keyvault secret set``)."""
        with self._lock:
            return self._set(name, {"value": value, **attributes})

    def version(self, name: str, version: str | None = None) -> Version:
        with self._lock:
            secret = self.secrets[name.lower()]
            return (
                secret.versions[-1]
                if version is None
                else next(v for v in secret.versions if v.id == version)
            )

    # ------------------------------------------------------------------ state changes
    def _set(self, name: str, body: dict[str, Any]) -> Version:
        now = int(self._clock())
        secret = self.secrets.setdefault(name.lower(), Secret(name))
        attrs = body.get("attributes") or {}
        version = Version(
            id=secrets.token_hex(16),
            value=str(body["value"]),
            created=now,
            updated=now,
            enabled=bool(attrs.get("enabled", True)),
            exp=attrs.get("exp", body.get("exp")),
            nbf=attrs.get("nbf"),
            content_type=body.get("contentType"),
            tags=dict(body.get("tags") or {}),
        )
        secret.versions.append(version)
        return version

    # ------------------------------------------------------------------ JSON shapes
    def _attributes(self, v: Version) -> dict[str, Any]:
        attrs: dict[str, Any] = {
            "enabled": v.enabled,
            "created": v.created,
            "updated": v.updated,
            "recoveryLevel": "Recoverable+Purgeable",
            "recoverableDays": 90,
        }
        if v.exp is not None:
            attrs["exp"] = v.exp
        if v.nbf is not None:
            attrs["nbf"] = v.nbf
        return attrs

    def _bundle(self, s: Secret, v: Version, *, value: bool) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": f"{self.url}/secrets/{s.name}/{v.id}",
            "attributes": self._attributes(v),
            "tags": dict(v.tags),
        }
        if value:
            out["value"] = v.value
        if v.content_type is not None:
            out["contentType"] = v.content_type
        return out

    def _item(self, s: Secret) -> dict[str, Any]:
        current = s.versions[-1]
        out = {
            "id": f"{self.url}/secrets/{s.name}",
            "attributes": self._attributes(current),
            "tags": dict(current.tags),
        }
        if current.content_type is not None:
            out["contentType"] = current.content_type
        return out


class _Reply(Exception):
    def __init__(
        self, status: int, body: dict[str, Any] | None = None, headers: dict[str, str] | None = None
    ):
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}


def _kv_error(status: int, code: str, message: str, inner: str | None = None) -> _Reply:
    error: dict[str, Any] = {"code": code, "message": message}
    if inner:
        error["innererror"] = {"code": inner}
    return _Reply(status, {"error": error})


def _aad_error(status: int, error: str, code: int, description: str) -> _Reply:
    return _Reply(
        status,
        {
            "error": error,
            "error_description": f"AADSTS{code}: {description}",
            "error_codes": [code],
            "timestamp": time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime()),
        },
    )


def _handler(kv: KeyVaultServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _send(self, reply: _Reply) -> None:
            data = json.dumps(reply.body).encode() if reply.body is not None else b""
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for k, v in reply.headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _dispatch(self) -> None:
            url = urlparse(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            body = self._body()
            try:
                parts = [p for p in url.path.split("/") if p]
                if parts and parts[0] not in ("secrets", "deletedsecrets"):
                    reply = self._identity(parts, body)
                else:
                    reply = self._vault(parts, query, body)
            except _Reply as r:
                reply = r
            self._send(reply)

        do_GET = do_PUT = do_POST = do_PATCH = do_DELETE = _dispatch

        # -------------------------------------------------------------- Microsoft Entra
        def _identity(self, parts: list[str], body: bytes) -> _Reply:
            tenant = parts[0]
            if tenant != kv.tenant_id:
                raise _aad_error(400, "invalid_request", 90002, f"Tenant '{tenant}' not found.")
            if parts[1:] == ["v2.0", ".well-known", "openid-configuration"]:
                base = f"{kv.url}/{tenant}"
                return _Reply(
                    200,
                    {
                        "token_endpoint": f"{base}/oauth2/v2.0/token",
                        "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                        "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                        "issuer": f"{base}/v2.0",
                        "jwks_uri": f"{base}/discovery/v2.0/keys",
                        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt"],
                    },
                )
            if parts[1:] != ["oauth2", "v2.0", "token"] or self.command != "POST":
                raise _Reply(404, {"error": "not_found"})
            form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
            with kv._lock:
                kv.token_requests += 1
                app = kv.apps.get(form.get("client_id", ""))
            if form.get("grant_type") != "client_credentials":
                raise _aad_error(
                    400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type."
                )
            if app is None:
                raise _aad_error(
                    400,
                    "unauthorized_client",
                    700016,
                    f"Application with identifier '{form.get('client_id')}' was not found.",
                )
            if "client_assertion" in form:
                self._check_assertion(app, form)
            elif not app.client_secret or not secrets.compare_digest(
                form.get("client_secret", ""), app.client_secret
            ):
                raise _aad_error(401, "invalid_client", 7000215, "Invalid client secret provided.")
            scope = form.get("scope", "")
            if SCOPE not in scope.split():
                raise _aad_error(
                    400, "invalid_scope", 70011, f"The provided value for scope {scope} is not valid."
                )
            token = secrets.token_urlsafe(32)
            with kv._lock:
                kv.tokens[token] = Token(app.client_id, SCOPE, kv._clock() + 3600)
            return _Reply(
                200,
                {"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token},
            )

        def _check_assertion(self, app: App, form: dict[str, str]) -> None:
            if form.get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer":
                raise _aad_error(400, "invalid_request", 50027, "Invalid client_assertion_type.")
            assertion = form.get("client_assertion", "")
            try:
                issuer = str(jwt.decode(assertion, options={"verify_signature": False}).get("iss"))
            except jwt.PyJWTError:
                raise _aad_error(400, "invalid_client", 50027, "Invalid JWT token.") from None
            key = kv.issuers.get(issuer)
            if key is None:
                raise _aad_error(
                    400,
                    "invalid_client",
                    700211,
                    "No matching federated identity record found for presented assertion issuer.",
                )
            try:
                claims = jwt.decode(assertion, key, algorithms=["RS256"], options={"verify_aud": False})
            except jwt.PyJWTError as exc:
                raise _aad_error(
                    400,
                    "invalid_client",
                    50013,
                    f"Assertion failed signature validation ({type(exc).__name__}).",
                ) from None
            audiences = claims.get("aud") or []
            audiences = [audiences] if isinstance(audiences, str) else audiences
            if EXCHANGE_AUDIENCE not in audiences:
                raise _aad_error(
                    400,
                    "invalid_client",
                    700212,
                    "No matching federated identity record found for presented assertion audience.",
                )
            if claims.get("sub") not in app.subjects:
                raise _aad_error(
                    400,
                    "invalid_client",
                    70021,
                    "No matching federated identity record found for presented assertion.",
                )

        # -------------------------------------------------------------- the vault
        def _challenge(self) -> _Reply:
            return _Reply(
                401,
                {
                    "error": {
                        "code": "Unauthorized",
                        "message": "AKV10000: Request is missing a Bearer or PoP token.",
                    }
                },
                {
                    "WWW-Authenticate": f'Bearer authorization="{kv.url}/{kv.tenant_id}", resource="{RESOURCE}"'
                },
            )

        def _caller(self) -> App:
            header = self.headers.get("Authorization") or ""
            if not header.startswith("Bearer "):
                raise self._challenge()
            with kv._lock:
                token = kv.tokens.get(header[len("Bearer ") :])
                if token is None or token.expires < kv._clock() or token.scope != SCOPE:
                    reply = self._challenge()
                    reply.body = {
                        "error": {"code": "Unauthorized", "message": "AKV10032: Invalid issuer or token."}
                    }
                    raise reply
                return kv.apps[token.client_id]

        def _vault(self, parts: list[str], query: dict[str, str], body: bytes) -> _Reply:
            with kv._lock:
                kv.requests.append((self.command, "/" + "/".join(parts)))
            version = query.get("api-version")
            if version not in API_VERSIONS:
                raise _kv_error(400, "BadParameter", f"The specified version ({version}) is not recognized.")
            app = self._caller()
            with kv._lock:
                if kv._throttle > 0:
                    kv._throttle -= 1
                    raise _Reply(
                        429,
                        {
                            "error": {
                                "code": "Throttled",
                                "message": "Request was not processed because too many requests were received.",
                            }
                        },
                        {"Retry-After": "0"},
                    )
            if parts and parts[0] == "deletedsecrets" and len(parts) == 2:
                if app.role != OFFICER:
                    raise _kv_error(
                        403,
                        "Forbidden",
                        "Caller is not authorized to read deleted secrets.",
                        "ForbiddenByRbac",
                    )
                with kv._lock:
                    return self._deleted(parts[1])
            if not parts or parts[0] != "secrets":
                raise _kv_error(404, "NotFound", "The requested resource was not found.")
            write = self.command in _WRITE
            if app.role not in (READER, OFFICER) or (write and app.role != OFFICER):
                action = "secrets/setSecret/action" if write else "secrets/getSecret/action"
                raise _kv_error(
                    403,
                    "Forbidden",
                    f"Caller is not authorized to perform action on resource. Action: 'Microsoft.KeyVault/vaults/{action}'",
                    "ForbiddenByRbac",
                )
            with kv._lock:
                return self._secrets(parts[1:], query, json.loads(body) if body else {})

        def _secrets(self, rest: list[str], query: dict[str, str], body: dict[str, Any]) -> _Reply:
            method = self.command
            if not rest:
                if method != "GET":
                    raise _kv_error(405, "MethodNotAllowed", "Method not allowed.")
                items = [
                    kv._item(s)
                    for s in sorted(kv.secrets.values(), key=lambda s: s.name.lower())
                    if not s.deleted
                ]
                return self._page(items, query, "/secrets")
            name = rest[0]
            secret = kv.secrets.get(name.lower())
            live = secret is not None and not secret.deleted
            if method == "PUT" and len(rest) == 1:
                if secret is not None and secret.deleted:
                    raise _kv_error(
                        409,
                        "Conflict",
                        f"Secret {name} is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the secret can only be recovered or purged.",
                        "ObjectIsDeletedButRecoverable",
                    )
                if "value" not in body:
                    raise _kv_error(400, "BadParameter", "Property value is required.")
                v = kv._set(name, body)
                return _Reply(200, kv._bundle(kv.secrets[name.lower()], v, value=True))
            if not live:
                raise _kv_error(
                    404, "SecretNotFound", f"A secret with (name/id) {name} was not found in this key vault."
                )
            assert secret is not None
            if method == "DELETE" and len(rest) == 1:
                secret.deleted = True
                return _Reply(
                    200,
                    {
                        **kv._bundle(secret, secret.versions[-1], value=False),
                        "recoveryId": f"{kv.url}/deletedsecrets/{secret.name}",
                    },
                )
            if len(rest) == 2 and rest[1] == "versions" and method == "GET":
                items = [
                    {k: b for k, b in kv._bundle(secret, v, value=False).items()} for v in secret.versions
                ]
                return self._page(items, query, f"/secrets/{secret.name}/versions")
            version_id = rest[1] if len(rest) == 2 else ""
            if version_id:
                v = next((x for x in secret.versions if x.id == version_id.lower()), None)
                if v is None:
                    raise _kv_error(
                        404,
                        "SecretNotFound",
                        f"A secret with (name/id) {name}/{version_id} was not found in this key vault.",
                    )
            else:
                v = secret.versions[-1]
            if method == "GET" and len(rest) <= 2:
                if not v.enabled:
                    raise _kv_error(
                        403,
                        "Forbidden",
                        "Operation get is not allowed on a disabled secret.",
                        "SecretDisabled",
                    )
                return _Reply(200, kv._bundle(secret, v, value=True))
            if method == "PATCH" and len(rest) <= 2:
                attrs = body.get("attributes") or {}
                if "enabled" in attrs:
                    v.enabled = bool(attrs["enabled"])
                for key in ("exp", "nbf"):
                    if key in attrs:
                        setattr(v, key, attrs[key])
                if "contentType" in body:
                    v.content_type = body["contentType"]
                if "tags" in body:
                    v.tags = dict(body["tags"] or {})
                v.updated = int(kv._clock())
                return _Reply(200, kv._bundle(secret, v, value=False))
            raise _kv_error(405, "MethodNotAllowed", "Method not allowed.")

        def _deleted(self, name: str) -> _Reply:
            """GET (the delete poller) and DELETE (purge) of a soft-deleted secret."""
            secret = kv.secrets.get(name.lower())
            if secret is None or not secret.deleted:
                raise _kv_error(404, "SecretNotFound", f"Deleted Secret not found: {name}")
            if self.command == "DELETE":
                del kv.secrets[name.lower()]
                return _Reply(204, None)
            return _Reply(200, kv._bundle(secret, secret.versions[-1], value=False))

        def _page(self, items: list[dict[str, Any]], query: dict[str, str], path: str) -> _Reply:
            size = max(1, min(25, int(query.get("maxresults") or 25)))
            start = (
                int(base64.urlsafe_b64decode(query["$skiptoken"]).decode()) if "$skiptoken" in query else 0
            )
            page = items[start : start + size]
            out: dict[str, Any] = {"value": page, "nextLink": None}
            if start + size < len(items):
                token = base64.urlsafe_b64encode(str(start + size).encode()).decode()
                out["nextLink"] = (
                    f"{kv.url}{path}?api-version={query['api-version']}&$skiptoken={quote(token)}&maxresults={size}"
                )
            return _Reply(200, out)

    return Handler

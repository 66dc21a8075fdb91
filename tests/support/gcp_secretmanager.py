"""A test server that speaks Google Secret Manager's gRPC API (from the SDK's own protobuf
types, google.cloud.secretmanager.v1.SecretManagerService) over TLS, and Google's token
endpoints over HTTPS, keeping state as the services do. The official SDKs
(google-cloud-secret-manager, google-auth) drive it unchanged: no emulator can be installed here.

What it implements, as Google documents it:

- tokens: a service account's self-signed JWT (AIP-4111: what the SDK sends for a key; signed
  by the key its ``kid`` names, with the cloud-platform scope), the OAuth 2.0 JWT bearer grant
  of a key (signature, issuer, key id, audience https://oauth2.googleapis.com/token), and the Security Token Service token
  exchange of workload identity federation (the Kubernetes ServiceAccount JWT's signature,
  issuer, and audience = the provider's default ``https://iam.googleapis.com/...``, for a
  registered pool provider); every RPC needs ``authorization: Bearer <token>`` (UNAUTHENTICATED);
- IAM at the project: each principal has roles (secretAccessor, viewer, secretVersionAdder,
  secretVersionManager, admin); a missing permission is PERMISSION_DENIED naming it;
- secrets with labels, annotations, version aliases, expire_time and etags (UpdateSecret and
  DeleteSecret check the etag when given: FAILED_PRECONDITION on a mismatch);
- versions numbered from 1, ``latest`` = the most recently created version whatever its state,
  aliases resolve to their version; ENABLED / DISABLED / DESTROYED, with etags checked by
  Enable/Disable/Destroy; reading a DISABLED or DESTROYED version is FAILED_PRECONDITION; a
  DESTROYED version cannot be enabled again;
- List paging with page_size / page_token;
- ``throttle(n)``: the next n RPCs get RESOURCE_EXHAUSTED.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import threading
import time
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import grpc
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.cloud.secretmanager_v1.types import resources, service
from google.protobuf import empty_pb2

from support.tls import TestCA

SERVICE = "google.cloud.secretmanager.v1.SecretManagerService"
ACCESSOR = "roles/secretmanager.secretAccessor"
VIEWER = "roles/secretmanager.viewer"
VERSION_ADDER = "roles/secretmanager.secretVersionAdder"
VERSION_MANAGER = "roles/secretmanager.secretVersionManager"
ADMIN = "roles/secretmanager.admin"
ROLES: dict[str, set[str]] = {
    ACCESSOR: {"versions.access"},
    VIEWER: {"secrets.list", "secrets.get", "versions.list", "versions.get"},
    VERSION_ADDER: {"versions.add"},
    VERSION_MANAGER: {
        "versions.add",
        "versions.enable",
        "versions.disable",
        "versions.destroy",
        "versions.get",
        "versions.list",
        "secrets.get",
    },
    ADMIN: {
        "secrets.list",
        "secrets.get",
        "secrets.create",
        "secrets.update",
        "secrets.delete",
        "versions.list",
        "versions.get",
        "versions.access",
        "versions.add",
        "versions.enable",
        "versions.disable",
        "versions.destroy",
    },
}
State = resources.SecretVersion.State
CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
API_AUDIENCE = "https://secretmanager.googleapis.com/"
OAUTH_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"  # what a key's grant assertion names


@dataclass
class Version:
    number: int
    data: bytes
    created: dt.datetime
    state: int = State.ENABLED
    etag: str = ""
    destroyed: dt.datetime | None = None


@dataclass
class SecretRecord:
    name: str
    created: dt.datetime
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    aliases: dict[str, int] = field(default_factory=dict)
    expire_time: dt.datetime | None = None
    etag: str = ""
    versions: list[Version] = field(default_factory=list)


@dataclass
class ServiceAccount:
    email: str
    key_id: str
    private_key_pem: str
    public_key_pem: bytes


@dataclass
class PoolProvider:
    audience: (
        str  # //iam.googleapis.com/projects/<n>/locations/global/workloadIdentityPools/<p>/providers/<q>
    )

    @property
    def allowed_audience(self) -> str:
        return "https:" + self.audience

    def principal(self, subject: str) -> str:
        pool = self.audience.removeprefix("//").split("/providers/")[0]
        return f"principal://{pool}/subject/{subject}"


def _etag() -> str:
    return f'"{secrets.token_hex(8)}"'


class SecretManagerServer:
    def __init__(
        self, ca: TestCA, project_id: str = "rotor-test", project_number: str = "123456789012"
    ) -> None:
        self.ca = ca
        self.project_id = project_id
        self.project_number = project_number
        self.secrets: dict[str, SecretRecord] = {}  # by full name
        self.accounts: dict[str, ServiceAccount] = {}
        self.providers: dict[str, PoolProvider] = {}
        self.iam: dict[str, set[str]] = {}  # principal -> roles
        self.tokens: dict[str, tuple[str, float]] = {}  # token -> (principal, expiry)
        #: trusted ServiceAccount token issuers (a cluster's OIDC issuer) -> public key
        self.issuers: dict[str, bytes] = {}
        self.rpcs: list[str] = []
        self.token_requests = 0
        self._throttle = 0
        self._lock = threading.RLock()
        self._clock: Callable[[], float] = time.time
        self._grpc: grpc.Server | None = None
        self._http: ThreadingHTTPServer | None = None
        self.grpc_port = 0

    # ------------------------------------------------------------------ lifecycle
    @property
    def endpoint(self) -> str:
        """The API's host:port, for ``client_options.api_endpoint`` and the store's ``endpoint``."""
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def token_base(self) -> str:
        assert self._http is not None
        return f"https://127.0.0.1:{self._http.server_address[1]}"

    @property
    def token_uri(self) -> str:
        return f"{self.token_base}/token"

    @property
    def sts_url(self) -> str:
        return f"{self.token_base}/v1/token"

    def start(self) -> SecretManagerServer:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, _handlers(self)),))
        pki = self.ca.pki
        creds = grpc.ssl_server_credentials([(pki.serving_key.read_bytes(), pki.serving_crt.read_bytes())])
        self.grpc_port = server.add_secure_port("127.0.0.1:0", creds)
        server.start()
        self._grpc = server
        http = ThreadingHTTPServer(("127.0.0.1", 0), _token_handler(self))
        http.daemon_threads = True
        http.socket = self.ca.server_context().wrap_socket(http.socket, server_side=True)
        self._http = http
        threading.Thread(target=http.serve_forever, name="gcp-token-test-server", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._grpc is not None:
            self._grpc.stop(grace=None)
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()

    # ------------------------------------------------------------------ administration (tests)
    def add_service_account(self, name: str, *roles: str) -> dict[str, str]:
        """A service account with ``roles``; returns its key file (as ``keys create`` writes it)."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        email = f"{name}@{self.project_id}.iam.gserviceaccount.com"
        account = ServiceAccount(
            email,
            secrets.token_hex(20),
            pem,
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
        )
        with self._lock:
            self.accounts[email] = account
            self.iam[f"serviceAccount:{email}"] = set(roles)
        return {
            "type": "service_account",
            "project_id": self.project_id,
            "private_key_id": account.key_id,
            "private_key": pem,
            "client_email": email,
            "client_id": str(secrets.randbelow(10**20)),
            "auth_uri": f"{self.token_base}/auth",
            "token_uri": self.token_uri,
            "universe_domain": "googleapis.com",
        }

    def add_pool_provider(self, pool: str, provider: str) -> PoolProvider:
        audience = (
            f"//iam.googleapis.com/projects/{self.project_number}/locations/global/"
            f"workloadIdentityPools/{pool}/providers/{provider}"
        )
        with self._lock:
            self.providers[audience] = PoolProvider(audience)
        return self.providers[audience]

    def grant(self, principal: str, *roles: str) -> None:
        with self._lock:
            self.iam.setdefault(principal, set()).update(roles)

    def trust_issuer(self, issuer: str, public_key_pem: bytes) -> None:
        with self._lock:
            self.issuers[issuer] = public_key_pem

    def throttle(self, n: int) -> None:
        with self._lock:
            self._throttle = n

    def secret_name(self, secret_id: str) -> str:
        return f"projects/{self.project_id}/secrets/{secret_id}"

    def put(self, secret_id: str, data: bytes | str, **labels: str) -> int:
        """Seed a version as an admin would (``gcloud secrets versions add``); returns its number."""
        with self._lock:
            name = self.secret_name(secret_id)
            record = self.secrets.get(name)
            if record is None:
                record = self.secrets[name] = SecretRecord(name, self._now(), labels=labels, etag=_etag())
            return self._add(record, data.encode() if isinstance(data, str) else data).number

    def record(self, secret_id: str) -> SecretRecord:
        with self._lock:
            return self.secrets[self.secret_name(secret_id)]

    def _now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self._clock(), dt.UTC)

    def _add(self, record: SecretRecord, data: bytes) -> Version:
        version = Version(len(record.versions) + 1, data, self._now(), etag=_etag())
        record.versions.append(version)
        return version


class _Abort(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def _handlers(sm: SecretManagerServer) -> dict[str, grpc.RpcMethodHandler]:
    def self_signed(token: str) -> str | None:
        """A service account's self-signed JWT (AIP-4111, what the SDK sends for a key): signed by
        one of its keys, with the cloud-platform scope or the API's audience, not expired."""
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            claims = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            return None
        account = sm.accounts.get(str(claims.get("iss")))
        if account is None or kid != account.key_id:
            return None
        try:
            claims = jwt.decode(
                token, account.public_key_pem, algorithms=["RS256"], options={"verify_aud": False}
            )
        except jwt.PyJWTError:
            return None
        scopes = str(claims.get("scope") or "").split()
        if CLOUD_PLATFORM not in scopes and claims.get("aud") != API_AUDIENCE:
            return None
        return f"serviceAccount:{account.email}"

    def caller(context: grpc.ServicerContext) -> str:
        metadata = dict(context.invocation_metadata())
        header = str(metadata.get("authorization") or "")
        token = header.removeprefix("Bearer ") if header.startswith("Bearer ") else ""
        if token.count(".") == 2 and not token.startswith("ya29."):
            principal = self_signed(token)
            if principal is not None:
                return principal
        with sm._lock:
            entry = sm.tokens.get(token) if token else None
            if entry is None or entry[1] < sm._clock():
                raise _Abort(
                    grpc.StatusCode.UNAUTHENTICATED,
                    "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie "
                    "or other valid authentication credential.",
                )
            return entry[0]

    def need(principal: str, permission: str, resource: str) -> None:
        granted = set().union(*(ROLES.get(r, set()) for r in sm.iam.get(principal, set())))
        if permission not in granted:
            raise _Abort(
                grpc.StatusCode.PERMISSION_DENIED,
                f"Permission 'secretmanager.{permission}' denied for resource '{resource}' (or it may not exist).",
            )

    def secret_of(name: str) -> SecretRecord:
        parts = name.split("/")
        if len(parts) < 4 or parts[0] != "projects" or parts[2] != "secrets":
            raise _Abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"Invalid resource field value in the request: {name}"
            )
        if parts[1] not in (sm.project_id, sm.project_number):
            raise _Abort(grpc.StatusCode.NOT_FOUND, f"Secret [{name}] not found or has no versions.")
        record = sm.secrets.get(f"projects/{sm.project_id}/secrets/{parts[3]}")
        if record is None:
            raise _Abort(
                grpc.StatusCode.NOT_FOUND, f"Secret [{'/'.join(parts[:4])}] not found or has no versions."
            )
        return record

    def version_of(name: str) -> tuple[SecretRecord, Version]:
        record = secret_of(name)
        segment = name.split("/")[-1]
        if segment == "latest":
            if not record.versions:
                raise _Abort(
                    grpc.StatusCode.NOT_FOUND, f"Secret [{record.name}] not found or has no versions."
                )
            return record, record.versions[-1]
        number = int(segment) if segment.isdigit() else record.aliases.get(segment)
        if number is None or not 1 <= number <= len(record.versions):
            raise _Abort(grpc.StatusCode.NOT_FOUND, f"Secret Version [{name}] not found.")
        return record, record.versions[number - 1]

    def to_secret(r: SecretRecord) -> resources.Secret:
        secret = resources.Secret(
            name=r.name,
            replication=resources.Replication(automatic=resources.Replication.Automatic()),
            create_time=r.created,
            labels=r.labels,
            annotations=r.annotations,
            version_aliases=r.aliases,
            etag=r.etag,
        )
        if r.expire_time is not None:
            secret.expire_time = r.expire_time
        return secret

    def to_version(r: SecretRecord, v: Version) -> resources.SecretVersion:
        out = resources.SecretVersion(
            name=f"{r.name}/versions/{v.number}",
            create_time=v.created,
            state=v.state,
            etag=v.etag,
            client_specified_payload_checksum=False,
        )
        if v.destroyed is not None:
            out.destroy_time = v.destroyed
        return out

    def check_etag(given: str, current: str, what: str) -> None:
        if given and given != current:
            raise _Abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"The etag provided for {what} does not match the current etag.",
            )

    def page(items: list[Any], size: int, token: str) -> tuple[list[Any], str]:
        size = size if 0 < size <= 25000 else 25000
        start = int(token) if token else 0
        chunk = items[start : start + size]
        return chunk, (str(start + size) if start + size < len(items) else "")

    # -------------------------------------------------------------------- the RPCs
    def list_secrets(req: service.ListSecretsRequest, who: str) -> service.ListSecretsResponse:
        need(who, "secrets.list", req.parent)
        prefix = f"projects/{sm.project_id}/secrets/"
        items = [to_secret(r) for n, r in sorted(sm.secrets.items()) if n.startswith(prefix)]
        chunk, token = page(items, req.page_size, req.page_token)
        return service.ListSecretsResponse(secrets=chunk, next_page_token=token, total_size=len(items))

    def create_secret(req: service.CreateSecretRequest, who: str) -> resources.Secret:
        need(who, "secrets.create", req.parent)
        name = f"projects/{sm.project_id}/secrets/{req.secret_id}"
        if name in sm.secrets:
            raise _Abort(grpc.StatusCode.ALREADY_EXISTS, f"Secret [{name}] already exists.")
        if "replication" not in req.secret:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "Secret.replication is required.")
        record = SecretRecord(name, sm._now(), labels=dict(req.secret.labels), etag=_etag())
        sm.secrets[name] = record
        return to_secret(record)

    def add_version(req: service.AddSecretVersionRequest, who: str) -> resources.SecretVersion:
        need(who, "versions.add", req.parent)
        record = secret_of(req.parent)
        return to_version(record, sm._add(record, bytes(req.payload.data)))

    def get_secret(req: service.GetSecretRequest, who: str) -> resources.Secret:
        need(who, "secrets.get", req.name)
        return to_secret(secret_of(req.name))

    def update_secret(req: service.UpdateSecretRequest, who: str) -> resources.Secret:
        need(who, "secrets.update", req.secret.name)
        record = secret_of(req.secret.name)
        check_etag(req.secret.etag, record.etag, f"secret [{record.name}]")
        for path in req.update_mask.paths:
            if path == "labels":
                record.labels = dict(req.secret.labels)
            elif path == "annotations":
                record.annotations = dict(req.secret.annotations)
            elif path == "version_aliases":
                aliases = dict(req.secret.version_aliases)
                if any(n > len(record.versions) or n < 1 for n in aliases.values()):
                    raise _Abort(
                        grpc.StatusCode.INVALID_ARGUMENT, "An alias points to a version that does not exist."
                    )
                record.aliases = aliases
            elif path == "expire_time":
                record.expire_time = req.secret.expire_time if "expire_time" in req.secret else None
            else:
                raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, f"Unsupported update_mask path: {path}")
        record.etag = _etag()
        return to_secret(record)

    def delete_secret(req: service.DeleteSecretRequest, who: str) -> empty_pb2.Empty:
        need(who, "secrets.delete", req.name)
        record = secret_of(req.name)
        check_etag(req.etag, record.etag, f"secret [{record.name}]")
        del sm.secrets[record.name]
        return empty_pb2.Empty()

    def list_versions(req: service.ListSecretVersionsRequest, who: str) -> service.ListSecretVersionsResponse:
        need(who, "versions.list", req.parent)
        record = secret_of(req.parent)
        items = [to_version(record, v) for v in reversed(record.versions)]  # newest first, as the service
        chunk, token = page(items, req.page_size, req.page_token)
        return service.ListSecretVersionsResponse(
            versions=chunk, next_page_token=token, total_size=len(items)
        )

    def get_version(req: service.GetSecretVersionRequest, who: str) -> resources.SecretVersion:
        need(who, "versions.get", req.name)
        return to_version(*version_of(req.name))

    def access_version(
        req: service.AccessSecretVersionRequest, who: str
    ) -> service.AccessSecretVersionResponse:
        need(who, "versions.access", req.name)
        record, v = version_of(req.name)
        if v.state != State.ENABLED:
            state = State(v.state).name
            raise _Abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"Secret Version [{record.name}/versions/{v.number}] is in {state} state.",
            )
        return service.AccessSecretVersionResponse(
            name=f"{record.name}/versions/{v.number}", payload=resources.SecretPayload(data=v.data)
        )

    def set_state(permission: str, state: int) -> Callable[[Any, str], resources.SecretVersion]:
        def change(req: Any, who: str) -> resources.SecretVersion:
            need(who, permission, req.name)
            record, v = version_of(req.name)
            check_etag(req.etag, v.etag, f"secret version [{record.name}/versions/{v.number}]")
            if v.state == State.DESTROYED:
                raise _Abort(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"Secret Version [{record.name}/versions/{v.number}] is in DESTROYED state.",
                )
            v.state = state
            if state == State.DESTROYED:
                v.data, v.destroyed = b"", sm._now()
            v.etag = _etag()
            return to_version(record, v)

        return change

    methods: dict[str, tuple[Callable[[Any, str], Any], Any, Any]] = {
        "ListSecrets": (list_secrets, service.ListSecretsRequest, service.ListSecretsResponse),
        "CreateSecret": (create_secret, service.CreateSecretRequest, resources.Secret),
        "AddSecretVersion": (add_version, service.AddSecretVersionRequest, resources.SecretVersion),
        "GetSecret": (get_secret, service.GetSecretRequest, resources.Secret),
        "UpdateSecret": (update_secret, service.UpdateSecretRequest, resources.Secret),
        "DeleteSecret": (delete_secret, service.DeleteSecretRequest, None),
        "ListSecretVersions": (
            list_versions,
            service.ListSecretVersionsRequest,
            service.ListSecretVersionsResponse,
        ),
        "GetSecretVersion": (get_version, service.GetSecretVersionRequest, resources.SecretVersion),
        "AccessSecretVersion": (
            access_version,
            service.AccessSecretVersionRequest,
            service.AccessSecretVersionResponse,
        ),
        "EnableSecretVersion": (
            set_state("versions.enable", State.ENABLED),
            service.EnableSecretVersionRequest,
            resources.SecretVersion,
        ),
        "DisableSecretVersion": (
            set_state("versions.disable", State.DISABLED),
            service.DisableSecretVersionRequest,
            resources.SecretVersion,
        ),
        "DestroySecretVersion": (
            set_state("versions.destroy", State.DESTROYED),
            service.DestroySecretVersionRequest,
            resources.SecretVersion,
        ),
    }

    def wrap(method: str, fn: Callable[[Any, str], Any]) -> Callable[[Any, grpc.ServicerContext], Any]:
        def handle(request: Any, context: grpc.ServicerContext) -> Any:
            try:
                with sm._lock:
                    sm.rpcs.append(method)
                who = caller(context)
                with sm._lock:
                    if sm._throttle > 0:
                        sm._throttle -= 1
                        raise _Abort(
                            grpc.StatusCode.RESOURCE_EXHAUSTED,
                            "Quota exceeded for quota metric 'Access requests' and limit 'Access requests per minute'.",
                        )
                    return fn(request, who)
            except _Abort as abort:
                context.abort(abort.code, abort.message)

        return handle

    handlers: dict[str, grpc.RpcMethodHandler] = {}
    for method, (fn, request_type, response_type) in methods.items():
        serialize = (
            response_type.serialize if response_type is not None else empty_pb2.Empty.SerializeToString
        )
        handlers[method] = grpc.unary_unary_rpc_method_handler(
            wrap(method, fn), request_deserializer=request_type.deserialize, response_serializer=serialize
        )
    return handlers


def _token_handler(sm: SecretManagerServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode() if length else ""
            content_type = self.headers.get("Content-Type") or ""
            form = (
                {k: str(v) for k, v in json.loads(raw).items()}
                if "json" in content_type
                else {k: v[0] for k, v in parse_qs(raw).items()}
            )
            with sm._lock:
                sm.token_requests += 1
            if self.path == "/token":
                status, body = self._jwt_bearer(form)
            elif self.path == "/v1/token":
                status, body = self._token_exchange(form)
            else:
                status, body = 404, {"error": "not_found"}
            self._send(status, body)

        def _issue(self, principal: str) -> str:
            token = "ya29." + secrets.token_urlsafe(32)
            with sm._lock:
                sm.tokens[token] = (principal, sm._clock() + 3600)
            return token

        def _jwt_bearer(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
            if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
                return 400, {"error": "unsupported_grant_type", "error_description": "Invalid grant_type."}
            assertion = form.get("assertion", "")
            try:
                unverified = jwt.decode(assertion, options={"verify_signature": False})
                header = jwt.get_unverified_header(assertion)
            except jwt.PyJWTError:
                return 400, {"error": "invalid_grant", "error_description": "Invalid JWT."}
            account = sm.accounts.get(str(unverified.get("iss")))
            if account is None:
                return 400, {
                    "error": "invalid_grant",
                    "error_description": "Invalid grant: account not found",
                }
            if header.get("kid") != account.key_id:
                return 400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
            try:
                jwt.decode(
                    assertion, account.public_key_pem, algorithms=["RS256"], audience=OAUTH_TOKEN_AUDIENCE
                )
            except jwt.InvalidAudienceError:
                return 400, {
                    "error": "invalid_grant",
                    "error_description": "Invalid JWT: Token must be a short-lived token and in a reasonable timeframe.",
                }
            except jwt.PyJWTError:
                return 400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
            token = self._issue(f"serviceAccount:{account.email}")
            return 200, {"access_token": token, "expires_in": 3599, "token_type": "Bearer"}

        def _token_exchange(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
            if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:token-exchange":
                return 400, {
                    "error": "invalid_request",
                    "error_description": 'Invalid value for "grant_type".',
                }
            provider = sm.providers.get(form.get("audience", ""))
            if provider is None:
                return 400, {
                    "error": "invalid_target",
                    "error_description": 'The target service indicated by the "audience" parameters is invalid.',
                }
            subject = form.get("subject_token", "")
            try:
                issuer = str(jwt.decode(subject, options={"verify_signature": False}).get("iss"))
            except jwt.PyJWTError:
                return 400, {"error": "invalid_grant", "error_description": "The subject token is not a JWT."}
            key = sm.issuers.get(issuer)
            if key is None:
                return 400, {
                    "error": "invalid_grant",
                    "error_description": "The issuer of the subject token is not trusted.",
                }
            try:
                claims = jwt.decode(subject, key, algorithms=["RS256"], audience=provider.allowed_audience)
            except jwt.InvalidAudienceError:
                return 400, {
                    "error": "invalid_grant",
                    "error_description": f"The audience in ID Token does not match the expected audience {provider.allowed_audience}.",
                }
            except jwt.PyJWTError as exc:
                return 400, {
                    "error": "invalid_grant",
                    "error_description": f"The subject token is invalid ({type(exc).__name__}).",
                }
            token = self._issue(provider.principal(str(claims.get("sub"))))
            return 200, {
                "access_token": token,
                "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
                "token_type": "Bearer",
                "expires_in": 3599,
            }

    return Handler

"""Every Kubernetes read and write Rotor makes, in one place (kubernetes_asyncio).

Nothing else imports a Kubernetes client. Methods return plain dicts (the API's JSON) and raise
``KubeError`` with the HTTP status, so callers map failures to condition reasons.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import logging
import os
import ssl
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from rotor.api.names import GROUP, VERSION

log = logging.getLogger("rotor.kube")

PLURALS = {
    "ManagedSecret": "managedsecrets",
    "SecretStore": "secretstores",
    "ClusterSecretStore": "clustersecretstores",
    "RotationPolicy": "rotationpolicies",
    "ClusterRotationPolicy": "clusterrotationpolicies",
    "PushSecret": "pushsecrets",
    "ClusterManagedSecret": "clustermanagedsecrets",
}
MERGE_PATCH = "application/merge-patch+json"
WORKLOAD_KINDS = {"Deployment": "deployments", "StatefulSet": "statefulsets", "DaemonSet": "daemonsets"}


class KubeError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"Kubernetes API {status}: {message}")
        self.status = status


class NotLeader(KubeError):
    """A write refused in the operator itself: this replica does not hold the shard's Lease."""

    def __init__(self) -> None:
        super().__init__(0, "this replica is not the leader; the write was not sent")


def _wrap(exc: ApiException) -> KubeError:
    reason = exc.reason or "error"
    # the API's message names objects, never Secret data (we never send data in a URL)
    return KubeError(int(exc.status or 0), str(reason))


def decode_data(data: Mapping[str, str] | None) -> dict[str, bytes]:
    return {k: base64.b64decode(v) for k, v in (data or {}).items()}


def _env_proxy(url: str) -> str | None:
    """The proxy the environment (HTTPS_PROXY, NO_PROXY...) names for ``url``, if any."""
    parsed = urllib.parse.urlsplit(url)
    if not parsed.hostname or urllib.request.proxy_bypass(parsed.hostname):
        return None
    return urllib.request.getproxies().get(parsed.scheme or "https")


class KubeGateway:
    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.events = client.EventsV1Api(api)
        self.coordination = client.CoordinationV1Api(api)
        #: when set (leader election), writes are refused with ``NotLeader`` while it says False;
        #: the Lease itself is written regardless
        self.write_fence: Callable[[], bool] | None = None
        self._ns_labels: dict[str, tuple[float, dict[str, str]]] = {}
        #: count of writes by verb, for tests and benchmarks
        self.writes: dict[str, int] = {}
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    async def connect(cls, kubeconfig: str | None = None) -> KubeGateway:
        cfg = client.Configuration()
        if kubeconfig or os.environ.get("KUBECONFIG") or not os.environ.get("KUBERNETES_SERVICE_HOST"):
            await config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
        else:
            config.load_incluster_config(client_configuration=cfg)
        cfg.connection_pool_maxsize = 32
        cfg.proxy = cfg.proxy or _env_proxy(cfg.host)
        api = client.ApiClient(cfg)
        # kubernetes_asyncio opens its aiohttp session with trust_env=True, which re-reads ~/.netrc
        # and the proxy variables, in a thread, on every request. The per-object calls (Secrets,
        # status, metadata, Events: nearly every request of a sync) go through Rotor's own session
        # (``_http``, trust_env off, the proxy resolved above once); the client's own session keeps
        # its public defaults for the rest (lists, watches, Leases, workloads)
        return cls(api)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
        await self.api.close()

    def may_write(self) -> bool:
        return self.write_fence is None or self.write_fence()

    def _count(self, verb: str, target: str) -> None:
        """Every write goes through here: the fence first, then the count and a debug line
        naming what is written (never what it holds)."""
        if not self.may_write():
            raise NotLeader()
        self.writes[verb] = self.writes.get(verb, 0) + 1
        log.debug("api write %s %s", verb, target, extra={"apiWrite": verb, "target": target})

    @staticmethod
    async def _json(call: Any, *, parse: bool = True) -> dict[str, Any]:
        """Await a call made with ``_preload_content=False`` and parse its JSON (unless ``parse``
        is False: the answer is not used): the generated model classes, and the client's own
        decoding, cost more CPU than the request itself at thousands of objects."""
        resp = await call
        try:
            payload = await resp.read()
            if resp.status >= 400:  # without preloading, the client does not raise by itself
                try:
                    # the apiserver's message names fields and keys (never Secret data)
                    status = json.loads(payload)
                    message = str(status.get("message") or status.get("reason") or resp.reason)[:300]
                except ValueError:
                    message = str(resp.reason)
                raise ApiException(status=resp.status, reason=message)
            return dict(json.loads(payload)) if parse else {}
        finally:
            resp.release()

    # ------------------------------------------------------------------ the per-object calls
    def _http(self) -> aiohttp.ClientSession:
        """Rotor's own HTTP session for the calls made per object (Secrets, status, finalizer,
        Events), with the client configuration's TLS, proxy and credentials. The generated
        client's per-call machinery (argument checks, serialization walks, URL building,
        decoding) cost about a third of each call's CPU at thousands of objects."""
        if self._session is None or self._session.closed:
            cfg = self.api.configuration
            ctx = ssl.create_default_context(cafile=cfg.ssl_ca_cert)
            if cfg.cert_file:
                ctx.load_cert_chain(cfg.cert_file, keyfile=cfg.key_file)
            if not cfg.verify_ssl:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            if getattr(cfg, "disable_strict_ssl_verification", False):
                ctx.verify_flags &= ~ssl.VERIFY_X509_STRICT
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=cfg.connection_pool_maxsize or 32, ssl=ctx),
                trust_env=False,  # the proxy comes from the configuration (``connect``)
                read_bufsize=2**21,
            )
        return self._session

    async def _call(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        *,
        content_type: str = "application/json",
        parse: bool = True,
        missing_ok: bool = False,
    ) -> dict[str, Any] | None:
        """One request on ``_http``: the answer's JSON (``{}`` unless ``parse``), None for a 404
        when ``missing_ok``; ``KubeError`` with the apiserver's message otherwise."""
        cfg = self.api.configuration
        headers = {
            "Accept": "application/json",
            "User-Agent": self.api.user_agent,
            **self.api.default_headers,
        }
        auth = (await cfg.auth_settings()).get("BearerToken")  # refreshed (exec, in-cluster) here
        if auth:
            headers[auth["key"]] = auth["value"]
        options: dict[str, Any] = {}
        if body is not None:
            headers["Content-Type"] = content_type
            options["data"] = json.dumps(body)
        if cfg.proxy:
            options["proxy"] = cfg.proxy
            if cfg.proxy_headers:
                options["proxy_headers"] = cfg.proxy_headers
        if cfg.tls_server_name:
            options["server_hostname"] = cfg.tls_server_name
        async with self._http().request(method, f"{cfg.host}{path}", headers=headers, **options) as resp:
            payload = await resp.read()
            if resp.status == 404 and missing_ok:
                return None
            if resp.status >= 400:
                try:
                    # the apiserver's message names fields and keys (never Secret data)
                    message = str(json.loads(payload).get("message") or resp.reason)[:300]
                except (ValueError, AttributeError):
                    message = str(resp.reason)
                raise KubeError(resp.status, message)
            return dict(json.loads(payload)) if parse else {}

    @staticmethod
    def _path(group: str, version: str, namespace: str | None, plural: str, name: str = "") -> str:
        base = "/api/v1" if group == "" else f"/apis/{group}/{version}"
        where = f"/namespaces/{urllib.parse.quote(namespace, safe='')}" if namespace else ""
        return f"{base}{where}/{plural}" + (f"/{urllib.parse.quote(name, safe='')}" if name else "")

    # ------------------------------------------------------------------ secrets
    async def get_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await self._call("GET", self._path("", "v1", namespace, "secrets", name), missing_ok=True)

    async def create_secret(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        self._count("create-secret", f"{namespace}/{(body.get('metadata') or {}).get('name')}")
        created = await self._call("POST", self._path("", "v1", namespace, "secrets"), body)
        assert created is not None
        return created

    async def patch_secret(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        """A JSON merge patch (``data`` keys set to None are removed)."""
        self._count("patch-secret", f"{namespace}/{name}")
        patched = await self._call(
            "PATCH", self._path("", "v1", namespace, "secrets", name), patch, content_type=MERGE_PATCH
        )
        assert patched is not None
        return patched

    async def replace_secret(self, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        self._count("replace-secret", f"{namespace}/{name}")
        try:
            obj = await self.core.replace_namespaced_secret(name, namespace, body)
        except ApiException as exc:
            raise _wrap(exc) from None
        return dict(self.api.sanitize_for_serialization(obj))

    async def delete_secret(self, namespace: str, name: str) -> None:
        self._count("delete-secret", f"{namespace}/{name}")
        try:
            await self.core.delete_namespaced_secret(name, namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise _wrap(exc) from None

    # ------------------------------------------------------------------ config maps (templates)
    async def get_config_map(self, namespace: str, name: str) -> dict[str, Any] | None:
        """A ConfigMap (``template.from``), or None when there is none."""
        return await self._call("GET", self._path("", "v1", namespace, "configmaps", name), missing_ok=True)

    # ------------------------------------------------------------------ list and watch (informers)
    def _lister(self, kind: str, namespace: str | None) -> Any:
        if kind == "Namespace":
            return self.core.list_namespace
        if kind == "Secret":
            if namespace:
                return lambda **kw: self.core.list_namespaced_secret(namespace, **kw)
            return self.core.list_secret_for_all_namespaces
        if kind == "ConfigMap":
            if namespace:
                return lambda **kw: self.core.list_namespaced_config_map(namespace, **kw)
            return self.core.list_config_map_for_all_namespaces
        plural = PLURALS[kind]
        if namespace:
            return lambda **kw: self.custom.list_namespaced_custom_object(
                GROUP, VERSION, namespace, plural, **kw
            )
        return lambda **kw: self.custom.list_cluster_custom_object(GROUP, VERSION, plural, **kw)

    async def list_page(
        self,
        kind: str,
        namespace: str | None,
        *,
        label_selector: str | None = None,
        limit: int = 500,
        continue_: str | None = None,
    ) -> dict[str, Any]:
        """One page of a list, as the API's JSON (``items``, ``metadata.continue``,
        ``metadata.resourceVersion``); no model classes."""
        params: dict[str, Any] = {"limit": limit, "_preload_content": False}
        if label_selector:
            params["label_selector"] = label_selector
        if continue_:
            params["_continue"] = continue_
        try:
            return await self._json(self._lister(kind, namespace)(**params))
        except ApiException as exc:
            raise _wrap(exc) from None

    async def open_watch(
        self,
        kind: str,
        namespace: str | None,
        *,
        resource_version: str,
        label_selector: str | None = None,
        server_timeout: int = 300,
    ) -> Any:
        """Start a watch from ``resource_version``; returns the open HTTP response (one JSON event
        per line). The caller reads and releases it. 410 Gone raises ``KubeError(410)``. The
        server ends the watch after ``server_timeout`` seconds."""
        params: dict[str, Any] = {
            "watch": True,
            "resource_version": resource_version,
            "allow_watch_bookmarks": True,
            "timeout_seconds": server_timeout,
            "_preload_content": False,
            # the server ends the watch after ``timeout``; the client only guards a silent socket
            "_request_timeout": aiohttp.ClientTimeout(
                connect=15, sock_connect=15, sock_read=server_timeout + 60
            ),
        }
        if label_selector:
            params["label_selector"] = label_selector
        try:
            resp = await self._lister(kind, namespace)(**params)
        except ApiException as exc:
            raise _wrap(exc) from None
        if resp.status >= 400:
            try:
                payload = await resp.read()
                message = str(json.loads(payload).get("message") or resp.reason)[:300]
            except ValueError:
                message = str(resp.reason)
            finally:
                resp.release()
            raise KubeError(int(resp.status), message)
        return resp

    # ------------------------------------------------------------------ rotor objects
    async def get_object(self, kind: str, name: str, namespace: str | None) -> dict[str, Any] | None:
        try:
            if namespace:
                obj = await self.custom.get_namespaced_custom_object(
                    GROUP, VERSION, namespace, PLURALS[kind], name
                )
            else:
                obj = await self.custom.get_cluster_custom_object(GROUP, VERSION, PLURALS[kind], name)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise _wrap(exc) from None
        return dict(obj)

    async def list_objects(self, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
        try:
            if namespace:
                resp = await self.custom.list_namespaced_custom_object(
                    GROUP, VERSION, namespace, PLURALS[kind]
                )
            else:
                resp = await self.custom.list_cluster_custom_object(GROUP, VERSION, PLURALS[kind])
        except ApiException as exc:
            raise _wrap(exc) from None
        return list(resp.get("items", []))

    async def patch_status(
        self,
        kind: str,
        name: str,
        namespace: str | None,
        status: dict[str, Any],
        *,
        resource_version: str | None = None,
    ) -> dict[str, Any] | None:
        """Merge-patch status; returns the object as stored (None if it is gone).

        With ``resource_version`` the write is conditional (optimistic concurrency): the apiserver
        refuses it with ``KubeError`` 409 when the object changed since that version was read."""
        self._count("patch-status", f"{kind}/{namespace + '/' if namespace else ''}{name}")
        body: dict[str, Any] = {"status": status}
        if resource_version is not None:
            body["metadata"] = {"resourceVersion": resource_version}
        path = self._path(GROUP, VERSION, namespace, PLURALS[kind], name) + "/status"
        return await self._call("PATCH", path, body, content_type=MERGE_PATCH, missing_ok=True)

    async def patch_object(self, kind: str, name: str, namespace: str | None, patch: dict[str, Any]) -> None:
        self._count("patch-object", f"{kind}/{namespace + '/' if namespace else ''}{name}")
        path = self._path(GROUP, VERSION, namespace, PLURALS[kind], name)
        await self._call("PATCH", path, patch, content_type=MERGE_PATCH, parse=False, missing_ok=True)

    async def replace_object(self, kind: str, namespace: str | None, body: dict[str, Any]) -> dict[str, Any]:
        """Replace a Rotor object's metadata and spec (not its status); conditional on
        ``body.metadata.resourceVersion`` (``KubeError`` 409 when it changed meanwhile)."""
        name = body["metadata"]["name"]
        self._count("replace-object", f"{kind}/{namespace + '/' if namespace else ''}{name}")
        replaced = await self._call("PUT", self._path(GROUP, VERSION, namespace, PLURALS[kind], name), body)
        assert replaced is not None
        return replaced

    async def delete_object(
        self, kind: str, name: str, namespace: str | None, *, uid: str | None = None
    ) -> None:
        """Delete a Rotor object (gone already: fine). With ``uid`` only that very object (a
        precondition: ``KubeError`` 409 when the name now belongs to another one)."""
        self._count("delete-object", f"{kind}/{namespace + '/' if namespace else ''}{name}")
        body = {"apiVersion": "v1", "kind": "DeleteOptions", "preconditions": {"uid": uid}} if uid else None
        await self._call(
            "DELETE",
            self._path(GROUP, VERSION, namespace, PLURALS[kind], name),
            body,
            parse=False,
            missing_ok=True,
        )

    # ------------------------------------------------------------------ leases (leader election)
    async def get_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return await self._json(
                self.coordination.read_namespaced_lease(name, namespace, _preload_content=False)
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise _wrap(exc) from None

    async def create_lease(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        """Create a Lease; ``KubeError`` 409 when another replica created it first."""
        try:
            return await self._json(
                self.coordination.create_namespaced_lease(namespace, body, _preload_content=False)
            )
        except ApiException as exc:
            raise _wrap(exc) from None

    async def replace_lease(self, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """Replace a Lease; ``body.metadata.resourceVersion`` makes it conditional (409 when the
        Lease changed since it was read)."""
        try:
            return await self._json(
                self.coordination.replace_namespaced_lease(name, namespace, body, _preload_content=False)
            )
        except ApiException as exc:
            raise _wrap(exc) from None

    # ------------------------------------------------------------------ namespaces, tokens
    async def namespace_labels(self, name: str, *, max_age: float = 5.0) -> dict[str, str] | None:
        loop = asyncio.get_running_loop()
        cached = self._ns_labels.get(name)
        if cached and loop.time() - cached[0] < max_age:
            return cached[1]
        try:
            ns = await self.core.read_namespace(name)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise _wrap(exc) from None
        labels = dict(ns.metadata.labels or {})
        self._ns_labels[name] = (loop.time(), labels)
        return labels

    async def service_account_token(
        self, namespace: str, name: str, audiences: list[str], seconds: int = 600
    ) -> tuple[str, dt.datetime]:
        body = client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(audiences=audiences or None, expiration_seconds=seconds)
        )
        try:
            resp = await self.core.create_namespaced_service_account_token(name, namespace, body)
        except ApiException as exc:
            raise _wrap(exc) from None
        return resp.status.token, resp.status.expiration_timestamp

    # ------------------------------------------------------------------ workloads
    async def list_workloads(self, namespace: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for kind, lister in (
            ("Deployment", self.apps.list_namespaced_deployment),
            ("StatefulSet", self.apps.list_namespaced_stateful_set),
            ("DaemonSet", self.apps.list_namespaced_daemon_set),
        ):
            try:
                resp = await lister(namespace)
            except ApiException as exc:
                raise _wrap(exc) from None
            for item in self.api.sanitize_for_serialization(resp).get("items", []):
                item["kind"] = kind
                out.append(item)
        return out

    async def get_workload(self, namespace: str, kind: str, name: str) -> dict[str, Any] | None:
        readers = {
            "Deployment": self.apps.read_namespaced_deployment,
            "StatefulSet": self.apps.read_namespaced_stateful_set,
            "DaemonSet": self.apps.read_namespaced_daemon_set,
        }
        try:
            obj = await readers[kind](name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise _wrap(exc) from None
        out = dict(self.api.sanitize_for_serialization(obj))
        out["kind"] = kind
        return out

    async def patch_workload(self, namespace: str, kind: str, name: str, patch: dict[str, Any]) -> None:
        self._count("patch-workload", f"{kind}/{namespace}/{name}")
        patchers = {
            "Deployment": self.apps.patch_namespaced_deployment,
            "StatefulSet": self.apps.patch_namespaced_stateful_set,
            "DaemonSet": self.apps.patch_namespaced_daemon_set,
        }
        try:
            await patchers[kind](name, namespace, patch, _content_type="application/merge-patch+json")
        except ApiException as exc:
            raise _wrap(exc) from None

    # ------------------------------------------------------------------ events
    async def post_event(
        self,
        regarding: Mapping[str, Any],
        *,
        type_: str,
        reason: str,
        note: str,
        action: str,
        component: str = "rotor",
        instance: str = "rotor",
    ) -> None:
        meta = regarding.get("metadata", {})
        namespace = meta.get("namespace") or "default"
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        body = {
            "apiVersion": "events.k8s.io/v1",
            "kind": "Event",
            "metadata": {"name": f"{meta.get('name')}.{uuid.uuid4().hex[:16]}", "namespace": namespace},
            "eventTime": now,
            "reportingController": f"rotor.dev/{component}",
            "reportingInstance": instance,
            "action": action,
            "reason": reason,
            "note": note[:1024],
            "type": type_,
            "regarding": {
                "apiVersion": regarding.get("apiVersion"),
                "kind": regarding.get("kind"),
                "name": meta.get("name"),
                "namespace": meta.get("namespace"),
                "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
            },
        }
        if not self.may_write():
            return  # events are best effort; a standby posts none
        self._count("event", f"{namespace}/{meta.get('name')}")
        try:
            await self._call(
                "POST", self._path("events.k8s.io", "v1", namespace, "events"), body, parse=False
            )
        except KubeError:
            return  # events are best effort

    # ------------------------------------------------------------------ command line (status, sync, import)
    @classmethod
    async def connect_context(cls, kubeconfig: str | None, context: str | None) -> KubeGateway:
        """Like ``connect``, for people: a kubeconfig (default $KUBECONFIG, ~/.kube/config) and an
        optional context in it; in-cluster credentials only when no kubeconfig exists at all."""
        if context is None:
            return await cls.connect(kubeconfig)
        cfg = client.Configuration()
        await config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=cfg)
        return cls(client.ApiClient(cfg))

    @staticmethod
    def default_namespace(kubeconfig: str | None, context: str | None) -> str:
        """The namespace of the kubeconfig context (the current one unless named), else the pod's own
        namespace in a cluster, else ``default``."""
        try:
            contexts, current = config.list_kube_config_contexts(kubeconfig)
        except (config.ConfigException, OSError, TypeError, KeyError, AssertionError):
            contexts, current = [], None
        chosen = next((c for c in contexts if c.get("name") == context), None) if context else current
        namespace = ((chosen or {}).get("context") or {}).get("namespace")
        if namespace:
            return str(namespace)
        sa_namespace = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
        if not contexts and os.path.exists(sa_namespace):
            with open(sa_namespace) as fh:
                return fh.read().strip() or "default"
        return "default"

    async def create_object(self, kind: str, namespace: str | None, body: dict[str, Any]) -> dict[str, Any]:
        """Create a Rotor object; ``KubeError`` 409 when it exists already."""
        self._count(
            "create-object",
            f"{kind}/{namespace + '/' if namespace else ''}{(body.get('metadata') or {}).get('name')}",
        )
        try:
            plural = PLURALS[kind]
            if namespace:
                obj = await self.custom.create_namespaced_custom_object(
                    GROUP, VERSION, namespace, plural, body
                )
            else:
                obj = await self.custom.create_cluster_custom_object(GROUP, VERSION, plural, body)
        except ApiException as exc:
            raise _wrap(exc) from None
        return dict(obj)

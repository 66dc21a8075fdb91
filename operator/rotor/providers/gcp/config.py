"""Plain configuration of one Google Secret Manager store, built from the store spec's
``provider.gcpSecretManager`` section, one auth method per module (``auth_service_account_key``,
``auth_workload_identity``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rotor.providers.base import SHARE_WINDOW, InvalidConfig, StoreAccess
from rotor.providers.gcp import auth_service_account_key, auth_workload_identity
from rotor.providers.gcp.auth_service_account_key import ServiceAccountKeyAuth
from rotor.providers.gcp.auth_workload_identity import WorkloadIdentityAuth

GcpAuth = ServiceAccountKeyAuth | WorkloadIdentityAuth


@dataclass(frozen=True)
class GcpConfig:
    project_id: str
    store_id: str  # "<kind>/<namespace>/<name>", for messages and metrics
    auth: GcpAuth
    #: the API's host[:port]; None: secretmanager.googleapis.com
    endpoint: str | None = None
    #: seconds per call, and how long the SDK retries an UNAVAILABLE answer
    timeout: float = 15.0
    retry_for: float = 5.0
    #: how long a secret's ``expireTime`` (one GetSecret) serves the reads of that secret: the
    #: backend's share window, so objects on one refresh slot cost one GetSecret per secret
    expiry_window: float = SHARE_WINDOW
    #: after GetSecret was denied (a role without ``secretmanager.secrets.get``), how long the
    #: expiry of that secret is left unknown before asking again
    expiry_denied_retry: float = 300.0


async def _auth(spec: Any, access: StoreAccess) -> GcpAuth:
    if spec.service_account_key_ref is not None:
        return await auth_service_account_key.from_spec(spec.service_account_key_ref, access)
    if spec.workload_identity is not None:
        return auth_workload_identity.from_spec(spec.workload_identity, access)
    raise InvalidConfig(
        "GCP Secret Manager store has no auth method (workloadIdentity or serviceAccountKeyRef)"
    )


async def configure(spec: Any, access: StoreAccess) -> GcpConfig:
    """``spec`` is the store's ``provider.gcpSecretManager`` (``rotor.api.secretstore.GcpSecretManagerProvider``)."""
    return GcpConfig(
        project_id=spec.project_id,
        store_id=access.store_id,
        auth=await _auth(spec.auth, access),
        endpoint=spec.endpoint,
    )

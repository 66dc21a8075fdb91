"""Workload identity federation: a short-lived token of the store's ServiceAccount (TokenRequest,
through the store service's port; audience ``https:`` + the pool provider by default) is exchanged
with Google's Security Token Service for an access token. Rotor never presents its own identity on
a store's behalf, and no credential file is needed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from google.auth import identity_pool

from rotor.providers.base import StoreAccess
from rotor.providers.gcp.auth_service_account_key import CLOUD_PLATFORM

JWT_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:jwt"
DEFAULT_TOKEN_URL = "https://sts.googleapis.com/v1/token"


class _ServiceAccountTokens(identity_pool.SubjectTokenSupplier):
    def __init__(self, fetch: Callable[[], str]) -> None:
        self._fetch = fetch

    def get_subject_token(self, context: Any, request: Any) -> str:
        return self._fetch()


@dataclass(frozen=True)
class WorkloadIdentityAuth:
    #: the pool provider, //iam.googleapis.com/projects/<n>/locations/global/workloadIdentityPools/<p>/providers/<q>
    audience: str
    #: returns a fresh ServiceAccount JWT; blocking, called from a worker thread at each exchange
    subject_token: Callable[[], str] = field(repr=False, compare=False)
    token_url: str = DEFAULT_TOKEN_URL
    service_account: str = ""  # "namespace/name"
    name = "workloadIdentity"

    def credentials(self) -> identity_pool.Credentials:
        return identity_pool.Credentials(
            self.audience,
            JWT_TOKEN_TYPE,
            token_url=self.token_url,
            subject_token_supplier=_ServiceAccountTokens(self.subject_token),
            scopes=[CLOUD_PLATFORM],
        )


def from_spec(spec: Any, access: StoreAccess) -> WorkloadIdentityAuth:
    ref = spec.service_account_ref
    namespace = ref.namespace_in(access.namespace)
    audiences = list(ref.audiences or ["https:" + spec.audience])
    name = ref.name

    def subject_token() -> str:
        return access.service_account_token(namespace, name, audiences)

    return WorkloadIdentityAuth(
        audience=spec.audience,
        subject_token=subject_token,
        token_url=spec.token_url or DEFAULT_TOKEN_URL,
        service_account=f"{namespace}/{name}",
    )

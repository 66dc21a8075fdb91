"""A Google service account key (the JSON file ``gcloud iam service-accounts keys create``
writes), read from a Secret key. As the Secret Manager SDK does by default, the key signs
short-lived self-signed JWTs for the API (AIP-4111) instead of calling a token endpoint."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from google.oauth2 import service_account

from rotor.providers.base import InvalidConfig, StoreAccess

CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"


@dataclass(frozen=True)
class ServiceAccountKeyAuth:
    key_json: str = field(repr=False)
    name = "serviceAccountKey"

    def credentials(self) -> service_account.Credentials:
        try:
            info = json.loads(self.key_json)
            if not isinstance(info, dict) or info.get("type") != "service_account":
                raise ValueError("not a service account key")
            credentials = service_account.Credentials.from_service_account_info(info, scopes=[CLOUD_PLATFORM])
        except (ValueError, KeyError, TypeError):
            raise InvalidConfig(
                "GCP store: serviceAccountKeyRef does not hold a service account key (JSON with "
                '"type": "service_account", client_email, private_key and token_uri)'
            ) from None
        # what the SDK does with a key itself: self-signed JWTs (AIP-4111), no token endpoint
        return credentials.with_always_use_jwt_access(True)


async def from_spec(spec: Any, access: StoreAccess) -> ServiceAccountKeyAuth:
    return ServiceAccountKeyAuth(key_json=await access.secret(spec))

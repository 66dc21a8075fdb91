"""Vault and transport errors mapped onto Rotor's provider errors (no values in messages)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import hvac.exceptions as vexc
import requests

from rotor.providers.base import (
    AccessDenied,
    AuthFailed,
    InvalidConfig,
    KeyNotFound,
    ProviderError,
    Unreachable,
    WriteConflict,
)


def _first_error(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if isinstance(errors, list) and errors:
        return str(errors[0])[:200]
    return type(exc).__name__


@contextmanager
def mapped(operation: str, path: str, server: str) -> Iterator[None]:
    try:
        yield
    except ProviderError:
        raise
    except vexc.InvalidPath:
        raise KeyNotFound(
            f"Vault {operation} '{path}': no secret at this path; check the key and the KV mount"
        ) from None
    except vexc.Forbidden as exc:
        raise AccessDenied(
            f"Vault {operation} '{path}': permission denied ({_first_error(exc)}); the store's Vault policy "
            "must grant this path"
        ) from None
    except vexc.Unauthorized as exc:
        raise AuthFailed(f"Vault {operation}: authentication failed ({_first_error(exc)})") from None
    except vexc.InvalidRequest as exc:
        text = _first_error(exc)
        if "check-and-set" in text:
            raise WriteConflict(
                f"Vault {operation} '{path}': the path changed since it was read (check-and-set)"
            ) from None
        raise InvalidConfig(f"Vault {operation} '{path}': invalid request ({text})") from None
    except (vexc.VaultDown, vexc.InternalServerError, vexc.BadGateway, vexc.RateLimitExceeded) as exc:
        error = Unreachable(f"Vault {operation} '{path}': server error ({type(exc).__name__}) at {server}")
        # 429 (a rate limit quota) and 503 (standby, sealed, overloaded): the store's limiter backs off
        error.throttled = isinstance(exc, vexc.RateLimitExceeded | vexc.VaultDown)
        raise error from None
    except vexc.VaultError as exc:
        raise ProviderError(
            f"Vault {operation} '{path}': {type(exc).__name__} ({_first_error(exc)})"
        ) from None
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise Unreachable(
            f"Vault at {server} is unreachable ({type(exc).__name__}); check the address and network"
        ) from None
    except requests.RequestException as exc:
        raise Unreachable(f"Vault at {server}: {type(exc).__name__}") from None

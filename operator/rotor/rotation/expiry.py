"""Expiry in the style of cert-manager's Certificate status: ``notAfter`` is the earliest of any
certificate's notAfter, the last rotation plus ``maxAge``, and the backend's own expiry;
``renewalTime`` is ``notAfter - rotateBefore``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, NamedTuple

from cryptography import x509

ExpirySource = Literal["Certificate", "Policy", "Provider"]

_PEM_CERTIFICATE = re.compile(rb"-----BEGIN CERTIFICATE-----\r?\n.+?-----END CERTIFICATE-----", re.DOTALL)


class FoundCertificate(NamedTuple):
    key: str
    not_before: datetime
    not_after: datetime


@dataclass(frozen=True)
class Expiry:
    not_after: datetime
    source: ExpirySource
    renewal_time: datetime


def certificates_in(data: Mapping[str, bytes]) -> list[FoundCertificate]:
    """Every PEM X.509 certificate in any value (bundles included), sorted by notAfter.
    Blocks that do not parse are skipped."""
    found: list[FoundCertificate] = []
    for key, value in data.items():
        if b"-----BEGIN CERTIFICATE-----" not in value:
            continue
        for block in _PEM_CERTIFICATE.findall(value):
            try:
                certificate = x509.load_pem_x509_certificate(block)
            except ValueError:
                continue
            found.append(
                FoundCertificate(key, certificate.not_valid_before_utc, certificate.not_valid_after_utc)
            )
    return sorted(found, key=lambda c: (c.not_after, c.key))


def compute_expiry(
    *,
    data: Mapping[str, bytes],
    last_rotation: datetime | None,
    source_created: datetime | None,
    max_age: timedelta | None,
    rotate_before: timedelta | None,
    provider_expiry: datetime | None,
) -> Expiry | None:
    """The earliest expiry among the candidates, or ``None`` if there is none.

    ``rotate_before`` defaults to a third of the lifetime for a certificate (renewal at 2/3) and to
    zero otherwise. A ``rotate_before`` at least as long as a certificate's lifetime would renew
    forever, so the default is used for it instead. On a tie, Certificate wins over Policy, and
    Policy over Provider.
    """
    candidates: list[Expiry] = []
    certificates = certificates_in(data)
    if certificates:
        first = certificates[0]
        lifetime = first.not_after - first.not_before
        before = rotate_before if rotate_before is not None and rotate_before < lifetime else lifetime / 3
        candidates.append(Expiry(first.not_after, "Certificate", first.not_after - before))
    base = last_rotation or source_created
    if base is not None and max_age is not None:
        not_after = base + max_age
        candidates.append(Expiry(not_after, "Policy", not_after - (rotate_before or timedelta(0))))
    if provider_expiry is not None:
        candidates.append(
            Expiry(provider_expiry, "Provider", provider_expiry - (rotate_before or timedelta(0)))
        )
    return min(candidates, key=lambda e: e.not_after, default=None)

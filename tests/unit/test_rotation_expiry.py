"""Expiry: certificates found in the data, maxAge and provider expiry; the earliest wins."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from rotor.rotation.expiry import Expiry, certificates_in, compute_expiry
from rotor.rotation.generators import generate

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
BACKDATE = timedelta(minutes=5)


def cert(hours: int, name: str = "a.example", at: datetime = NOW) -> dict[str, bytes]:
    return dict(
        generate(
            "selfSignedCertificate", {"commonName": name, "duration": f"{hours}h"}, key="tls.crt", now=at
        )
    )


def test_certificates_are_found_in_any_value_and_bundles():
    leaf, other = cert(100), cert(50)
    data = {
        "tls.crt": leaf["tls.crt"],
        "tls.key": leaf["tls.key"],
        "ca.crt": other["tls.crt"] + b"\n" + leaf["tls.crt"],
        "password": b"hunter2",
        "garbage": b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n",
    }
    found = certificates_in(data)
    assert [(c.key, c.not_after) for c in found] == [
        ("ca.crt", NOW + timedelta(hours=50)),
        ("ca.crt", NOW + timedelta(hours=100)),
        ("tls.crt", NOW + timedelta(hours=100)),
    ]
    assert all(c.not_before == NOW - BACKDATE for c in found)


def test_certificate_renews_at_two_thirds_of_its_lifetime():
    expiry = compute_expiry(
        data=cert(90),
        last_rotation=None,
        source_created=None,
        max_age=None,
        rotate_before=None,
        provider_expiry=None,
    )
    assert expiry is not None
    lifetime = timedelta(hours=90) + BACKDATE
    assert expiry == Expiry(NOW + timedelta(hours=90), "Certificate", NOW - BACKDATE + lifetime * 2 / 3)


def test_explicit_rotate_before_is_used_for_certificates():
    expiry = compute_expiry(
        data=cert(90),
        last_rotation=None,
        source_created=None,
        max_age=None,
        rotate_before=timedelta(hours=10),
        provider_expiry=None,
    )
    assert expiry is not None and expiry.renewal_time == NOW + timedelta(hours=80)


def test_rotate_before_longer_than_the_lifetime_falls_back_to_one_third():
    expiry = compute_expiry(
        data=cert(3),
        last_rotation=None,
        source_created=None,
        max_age=None,
        rotate_before=timedelta(hours=240),
        provider_expiry=None,
    )
    assert expiry is not None and expiry.renewal_time > NOW


@pytest.mark.parametrize(
    ("cert_hours", "max_age", "provider_in", "source", "not_after"),
    [
        (90, timedelta(hours=720), None, "Certificate", NOW + timedelta(hours=90)),
        (2000, timedelta(hours=720), None, "Policy", NOW + timedelta(hours=720)),
        (2000, timedelta(hours=720), timedelta(hours=100), "Provider", NOW + timedelta(hours=100)),
        (None, timedelta(hours=720), None, "Policy", NOW + timedelta(hours=720)),
        (None, None, timedelta(hours=5), "Provider", NOW + timedelta(hours=5)),
        (
            720,
            timedelta(hours=720),
            None,
            "Certificate",
            NOW + timedelta(hours=720),
        ),  # a tie goes to the certificate
    ],
)
def test_the_earliest_expiry_wins(cert_hours, max_age, provider_in, source, not_after):
    expiry = compute_expiry(
        data=cert(cert_hours) if cert_hours else {"password": b"x"},
        last_rotation=NOW,
        source_created=NOW - timedelta(days=400),
        max_age=max_age,
        rotate_before=None,
        provider_expiry=NOW + provider_in if provider_in else None,
    )
    assert expiry is not None
    assert (expiry.source, expiry.not_after) == (source, not_after)
    if source != "Certificate":
        assert expiry.renewal_time == expiry.not_after  # rotateBefore defaults to 0 here


def test_policy_expiry_counts_from_the_source_version_when_never_rotated():
    created = NOW - timedelta(days=10)
    expiry = compute_expiry(
        data={},
        last_rotation=None,
        source_created=created,
        max_age=timedelta(days=30),
        rotate_before=timedelta(days=3),
        provider_expiry=None,
    )
    assert expiry == Expiry(created + timedelta(days=30), "Policy", created + timedelta(days=27))


def test_no_expiry_without_any_source():
    assert (
        compute_expiry(
            data={"k": b"v"},
            last_rotation=None,
            source_created=None,
            max_age=None,
            rotate_before=None,
            provider_expiry=None,
        )
        is None
    )

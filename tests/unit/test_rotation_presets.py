"""Presets, explicit fields overriding them, and refused policies."""

from __future__ import annotations

from datetime import timedelta

import pytest

from rotor.rotation.durations import format_duration, parse_duration
from rotor.rotation.errors import PolicyError
from rotor.rotation.presets import PRESETS, effective_policy

DAY = timedelta(days=1)


@pytest.mark.parametrize(
    ("preset", "every", "generator", "grace"),
    [
        ("api-key", 90 * DAY, "apiKey", DAY),
        ("database-password", 30 * DAY, "password", DAY),
        ("oauth-secret", 180 * DAY, "randomBytes", DAY),
        ("encryption-key", 365 * DAY, "fernetKey", DAY),
        ("webhook-secret", 90 * DAY, "randomBytes", DAY),
        ("certificate", None, "selfSignedCertificate", timedelta(0)),
    ],
)
def test_presets_give_the_documented_defaults(preset, every, generator, grace):
    spec = {"preset": preset}
    if preset == "certificate":  # a certificate needs a name
        spec["generator"] = {"selfSignedCertificate": {"commonName": "api.example.com"}}
    policy = effective_policy(spec)
    assert policy.preset == preset
    assert policy.strategy == "Generate"
    assert policy.every == every
    assert policy.max_age == every  # maxAge defaults to the schedule's period
    assert policy.generator_kind == generator
    assert policy.grace_period == grace
    assert policy.previous_key_suffix == "_previous"


def test_certificate_preset_renews_on_expiry_not_on_a_schedule():
    policy = effective_policy(
        {"preset": "certificate", "generator": {"selfSignedCertificate": {"dnsNames": ["a.example"]}}}
    )
    assert not policy.has_schedule
    assert policy.rotate_before is None  # one third of the lifetime, see compute_expiry
    assert policy.generator_params["duration"] == "2160h"
    assert policy.generator_params["keyAlgorithm"] == "ECDSA-P256"


def test_certificate_preset_without_a_name_is_refused():
    with pytest.raises(PolicyError, match="commonName"):
        effective_policy({"preset": "certificate"})


def test_webhook_and_oauth_encodings():
    assert effective_policy({"preset": "webhook-secret"}).generator_params["encoding"] == "hex"
    assert effective_policy({"preset": "oauth-secret"}).generator_params["encoding"] == "base64url"


def test_explicit_fields_override_the_preset():
    policy = effective_policy(
        {
            "preset": "database-password",
            "schedule": {"cron": "0 3 * * 0", "timeZone": "Europe/Paris"},
            "generator": {"password": {"length": 48}},
            "gracePeriod": "2h",
            "previousKeySuffix": ".old",
            "maxAge": "1000h",
        }
    )
    assert policy.every is None
    assert policy.cron == "0 3 * * 0"
    assert policy.time_zone == "Europe/Paris"
    assert policy.generator_params["length"] == 48
    assert policy.generator_params["lower"] == 1  # the preset's other rules stay
    assert policy.grace_period == timedelta(hours=2)
    assert policy.previous_key_suffix == ".old"
    assert policy.max_age == timedelta(hours=1000)


def test_a_generator_of_another_kind_replaces_the_preset_one():
    policy = effective_policy({"preset": "database-password", "generator": {"randomBytes": {"length": 16}}})
    assert policy.generator_kind == "randomBytes"
    assert dict(policy.generator_params) == {"length": 16}


def test_time_zone_alone_keeps_the_preset_period():
    policy = effective_policy({"preset": "api-key", "schedule": {"timeZone": "Asia/Tokyo"}})
    assert policy.every == 90 * DAY
    assert policy.time_zone == "Asia/Tokyo"


def test_none_fields_count_as_not_written():
    policy = effective_policy({"preset": "api-key", "schedule": None, "gracePeriod": None, "maxAge": None})
    assert policy.every == 90 * DAY
    assert policy.grace_period == DAY


def test_presets_are_read_only():
    with pytest.raises(TypeError):
        PRESETS["api-key"] = {}  # type: ignore[index]


@pytest.mark.parametrize(
    ("cron", "max_age"),
    [
        ("0 3 * * 0", timedelta(days=7)),
        ("0 3 * * 1-5", timedelta(days=3)),  # the weekend gap, not one day
        ("0 0 1 * *", timedelta(days=31)),
        ("@hourly", timedelta(hours=1)),
    ],
)
def test_cron_max_age_defaults_to_the_longest_gap(cron, max_age):
    policy = effective_policy({"schedule": {"cron": cron}, "generator": {"fernetKey": {}}})
    assert policy.max_age == max_age


@pytest.mark.parametrize(
    ("spec", "field", "words"),
    [
        ({"preset": "nope"}, "spec.preset", "unknown preset 'nope'"),
        (
            {"schedule": {"cron": "61 * * * *"}, "generator": {"fernetKey": {}}},
            "spec.schedule.cron",
            "'61 * * * *'",
        ),
        ({"schedule": {"cron": "* * * *"}, "generator": {"fernetKey": {}}}, "spec.schedule.cron", "5 fields"),
        (
            {"schedule": {"cron": "0 0 30 2 *"}, "generator": {"fernetKey": {}}},
            "spec.schedule.cron",
            "never fires",
        ),
        (
            {"schedule": {"cron": "0 3 * * *", "timeZone": "Mars/Olympus"}, "generator": {"fernetKey": {}}},
            "spec.schedule.timeZone",
            "unknown time zone 'Mars/Olympus'",
        ),
        (
            {"schedule": {"every": "720h", "cron": "0 3 * * *"}, "generator": {"fernetKey": {}}},
            "spec.schedule",
            "exactly one of every or cron",
        ),
        (
            {"schedule": {"every": "0s"}, "generator": {"fernetKey": {}}},
            "spec.schedule.every",
            "longer than 0s",
        ),
        (
            {"schedule": {"every": "monthly"}, "generator": {"fernetKey": {}}},
            "spec.schedule.every",
            "'monthly'",
        ),
        ({"strategy": "Generate", "schedule": {"every": "720h"}}, "spec.generator", "needs a generator"),
        ({"strategy": "Provider", "schedule": {"every": "720h"}}, "spec.provider", "needs a provider"),
        ({"strategy": "Provider", "provider": {"lambda": {}}}, "spec.provider", "unknown provider"),
        ({"strategy": "Rotate", "generator": {"fernetKey": {}}}, "spec.strategy", "unknown strategy"),
        ({"generator": {"fernetKey": {}, "apiKey": {}}}, "spec.generator", "exactly one"),
        ({"generator": {"uuid": {}}}, "spec.generator", "unknown generator"),
        (
            {"generator": {"password": {"length": 2, "lower": 3}}},
            "spec.generator.password",
            "exceed length 2",
        ),
        (
            {"preset": "api-key", "window": {"cron": "0 2 * * *", "duration": "0s"}},
            "spec.window.duration",
            "0s",
        ),
        ({"preset": "api-key", "window": {"cron": "0 2 * * *"}}, "spec.window", "cron and duration"),
        (
            {"preset": "api-key", "window": {"cron": "0 0 30 2 *", "duration": "3h"}},
            "spec.window.cron",
            "window never opens",
        ),
        (
            {"preset": "api-key", "maxAge": "24h", "rotateBefore": "48h"},
            "spec.rotateBefore",
            "shorter than maxAge",
        ),
        (
            {
                "preset": "certificate",
                "generator": {"selfSignedCertificate": {"commonName": "a"}},
                "rotateBefore": "3000h",
            },
            "spec.rotateBefore",
            "certificate duration",
        ),
        ({"preset": "api-key", "gracePeriod": "-1h"}, "spec.gracePeriod", "gracePeriod"),
        ({"preset": "api-key", "previousKeySuffix": "/old"}, "spec.previousKeySuffix", "previousKeySuffix"),
    ],
)
def test_bad_policies_are_refused_naming_the_field(spec, field, words):
    with pytest.raises(PolicyError) as info:
        effective_policy(spec)
    assert info.value.reason == "InvalidSpec"
    assert info.value.field == field
    assert words in info.value.message


def test_a_written_provider_turns_a_preset_into_the_provider_strategy():
    policy = effective_policy({"preset": "database-password", "provider": {"vaultDatabaseStaticRole": {}}})
    assert (policy.strategy, policy.provider_kind, policy.every) == (
        "Provider",
        "vaultDatabaseStaticRole",
        30 * DAY,
    )
    explicit = effective_policy({"preset": "database-password", "strategy": "Observe"})
    assert explicit.strategy == "Observe"


def test_provider_and_observe_strategies():
    provider = effective_policy({"provider": {"awsRotateSecret": {}}, "schedule": {"every": "720h"}})
    assert (provider.strategy, provider.provider_kind, provider.generator_kind) == (
        "Provider",
        "awsRotateSecret",
        None,
    )
    observe = effective_policy({"strategy": "Observe", "maxAge": "720h"})
    assert (observe.strategy, observe.max_age, observe.has_schedule) == (
        "Observe",
        timedelta(hours=720),
        False,
    )


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("720h", timedelta(hours=720)),
        ("90m", timedelta(minutes=90)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("30s", timedelta(seconds=30)),
        ("30d", timedelta(days=30)),
        ("1.5h", timedelta(minutes=90)),
        ("500ms", timedelta(milliseconds=500)),
        ("0", timedelta(0)),
    ],
)
def test_durations_parse(text, value):
    assert parse_duration(text) == value


@pytest.mark.parametrize("text", ["", "h", "10", "-5m", "1y", "1h 30m", "1H"])
def test_bad_durations_are_refused(text):
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_format_duration_round_trips():
    for value in (timedelta(hours=1, minutes=30), timedelta(days=30), timedelta(seconds=5)):
        assert parse_duration(format_duration(value)) == value

"""Rotation presets and the effective policy: a RotationPolicy spec (a plain mapping with the CRD's
camelCase names) merged over its preset, validated, and turned into typed values.

Fields written out override the preset. A written ``generator`` of the same kind as the preset's
is merged into it (``{password: {length: 48}}`` keeps the preset's other password rules); a
different kind replaces it. A written ``schedule`` with ``every`` or ``cron`` replaces the preset's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from types import MappingProxyType
from typing import Any

from rotor.rotation import cron
from rotor.rotation.durations import parse_duration
from rotor.rotation.errors import INVALID_SPEC, GeneratorError, PolicyError
from rotor.rotation.generators import GENERATOR_KINDS, check_params

STRATEGIES = ("Generate", "Provider", "Observe")
PROVIDER_KINDS = ("vaultDatabaseStaticRole", "awsRotateSecret")
DEFAULT_PREVIOUS_KEY_SUFFIX = "_previous"
_KEY_CHARS = re.compile(r"[-._a-zA-Z0-9]+")

#: name -> policy spec fragment (camelCase), the defaults a preset gives.
PRESETS: Mapping[str, Mapping[str, Any]] = MappingProxyType(
    {
        "api-key": {
            "schedule": {"every": "2160h"},
            "generator": {"apiKey": {"prefix": "", "length": 40}},
            "gracePeriod": "24h",
        },
        "database-password": {
            "schedule": {"every": "720h"},
            "generator": {
                "password": {
                    "length": 32,
                    "lower": 1,
                    "upper": 1,
                    "digits": 1,
                    "symbols": 0,
                    "exclude": "\"'`\\",
                }
            },
            "gracePeriod": "24h",
        },
        "oauth-secret": {
            "schedule": {"every": "4320h"},
            "generator": {"randomBytes": {"length": 32, "encoding": "base64url"}},
            "gracePeriod": "24h",
        },
        "encryption-key": {
            "schedule": {"every": "8760h"},
            "generator": {"fernetKey": {}},
            "gracePeriod": "24h",
        },
        "webhook-secret": {
            "schedule": {"every": "2160h"},
            "generator": {"randomBytes": {"length": 32, "encoding": "hex"}},
            "gracePeriod": "24h",
        },
        # No schedule: renewal is driven by the certificate's expiry, at 2/3 of its lifetime
        # (rotateBefore left unset means one third of the lifetime, see expiry.py).
        "certificate": {
            "generator": {"selfSignedCertificate": {"duration": "2160h", "keyAlgorithm": "ECDSA-P256"}},
        },
    }
)


@dataclass(frozen=True)
class EffectivePolicy:
    """A validated policy with the preset applied. ``every``/``cron`` are both ``None`` when the
    policy has no schedule (rotation is then driven by expiry only)."""

    strategy: str
    every: timedelta | None = None
    cron: str | None = None
    time_zone: str = "UTC"
    max_age: timedelta | None = None
    rotate_before: timedelta | None = None
    window_cron: str | None = None
    window_duration: timedelta | None = None
    window_time_zone: str = "UTC"
    generator_kind: str | None = None
    generator_params: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    provider_kind: str | None = None
    grace_period: timedelta = timedelta(0)
    previous_key_suffix: str = DEFAULT_PREVIOUS_KEY_SUFFIX
    preset: str | None = None
    #: createIfMissing: a missing remote key the policy generates is created at the source
    create_if_missing: bool = False

    @property
    def has_schedule(self) -> bool:
        return self.every is not None or self.cron is not None

    @property
    def has_window(self) -> bool:
        return self.window_cron is not None and self.window_duration is not None


def _fail(message: str, field: str) -> PolicyError:
    return PolicyError(INVALID_SPEC, message, field=field)


def _duration(value: Any, field: str, *, positive: bool) -> timedelta:
    try:
        parsed = parse_duration(value)
    except ValueError as exc:
        raise _fail(f"{field}: {exc}", field) from None
    if parsed < timedelta(0) or (positive and parsed == timedelta(0)):
        raise _fail(f"{field} must be longer than 0s", field)
    return parsed


def _one_of(value: Any, field: str) -> tuple[str, Mapping[str, Any]]:
    """The single ``{kind: params}`` entry of a one-of block."""
    if not isinstance(value, Mapping) or len(value) != 1:
        raise _fail(f"{field} must set exactly one kind", field)
    ((kind, params),) = value.items()
    if params is None:
        params = {}
    if not isinstance(params, Mapping):
        raise _fail(f"{field}.{kind} must be a mapping", field)
    return str(kind), params


def _merged(written: Mapping[str, Any]) -> tuple[dict[str, Any], str | None]:
    name = written.get("preset")
    if name is None:
        return dict(written), None
    if name not in PRESETS:
        raise _fail(f"unknown preset {name!r}; known: {', '.join(PRESETS)}", "spec.preset")
    merged = dict(PRESETS[name])
    for key, value in written.items():
        if key == "preset":
            continue
        base = merged.get(key)
        if key == "generator" and isinstance(base, Mapping) and isinstance(value, Mapping):
            (base_kind, base_params), (kind, params) = _one_of(base, key), _one_of(value, "spec.generator")
            merged[key] = {kind: {**base_params, **params}} if kind == base_kind else value
        elif key == "schedule" and isinstance(base, Mapping) and isinstance(value, Mapping):
            has_period = "every" in value or "cron" in value
            merged[key] = dict(value) if has_period else {**base, **value}
        else:
            merged[key] = value
    return merged, name


def _schedule(spec: Mapping[str, Any]) -> tuple[timedelta | None, str | None, str]:
    schedule = spec.get("schedule")
    if schedule is None:
        return None, None, "UTC"
    if not isinstance(schedule, Mapping):
        raise _fail("spec.schedule must be a mapping", "spec.schedule")
    time_zone = schedule.get("timeZone") or "UTC"
    cron.zone(time_zone)
    every_raw, cron_raw = schedule.get("every"), schedule.get("cron")
    if (every_raw is None) == (cron_raw is None):
        raise _fail("spec.schedule must set exactly one of every or cron", "spec.schedule")
    if every_raw is not None:
        return _duration(every_raw, "spec.schedule.every", positive=True), None, time_zone
    expr = cron.validate_cron(cron_raw, field="spec.schedule.cron")
    cron.period(expr, time_zone)  # refuses an expression that never fires
    return None, expr, time_zone


def _window(spec: Mapping[str, Any], time_zone: str) -> tuple[str | None, timedelta | None, str]:
    """The window's cron, duration and time zone (its own ``timeZone``, else the schedule's)."""
    window = spec.get("window")
    if window is None:
        return None, None, time_zone
    if not isinstance(window, Mapping) or window.get("cron") is None or window.get("duration") is None:
        raise _fail("spec.window must set cron and duration", "spec.window")
    expr = cron.validate_cron(window["cron"], field="spec.window.cron")
    duration = _duration(window["duration"], "spec.window.duration", positive=True)
    window_zone = window.get("timeZone") or time_zone
    cron.zone(window_zone, field="spec.window.timeZone")
    try:
        cron.period(expr, window_zone)
    except PolicyError:
        raise _fail(
            f"window never opens: {expr!r} has no start within eight years; rotations could never run",
            "spec.window.cron",
        ) from None
    return expr, duration, window_zone


def _strategy(written: Mapping[str, Any], merged: Mapping[str, Any]) -> str:
    """The written strategy; if unwritten, Provider when a provider is written without a generator
    (or only a provider is known at all), else Generate."""
    strategy = written.get("strategy")
    if strategy is None:
        provider_written = "provider" in written and "generator" not in written
        provider_only = "provider" in merged and "generator" not in merged
        strategy = "Provider" if provider_written or provider_only else "Generate"
    if strategy not in STRATEGIES:
        raise _fail(f"unknown strategy {strategy!r}; use one of {', '.join(STRATEGIES)}", "spec.strategy")
    return str(strategy)


def _generator(spec: Mapping[str, Any], strategy: str) -> tuple[str | None, Mapping[str, Any]]:
    if spec.get("generator") is None:
        if strategy == "Generate":
            raise _fail("strategy Generate needs a generator (or a preset that gives one)", "spec.generator")
        return None, MappingProxyType({})
    kind, params = _one_of(spec["generator"], "spec.generator")
    if kind not in GENERATOR_KINDS:
        raise _fail(f"unknown generator {kind!r}; known: {', '.join(GENERATOR_KINDS)}", "spec.generator")
    if strategy == "Generate":  # Observe and Provider never generate: a preset's generator is inert
        try:
            check_params(kind, params)
        except GeneratorError as exc:
            raise _fail(exc.message, f"spec.generator.{kind}") from None
    return kind, MappingProxyType(dict(params))


def _provider(spec: Mapping[str, Any], strategy: str) -> str | None:
    if spec.get("provider") is None:
        if strategy == "Provider":
            raise _fail("strategy Provider needs a provider", "spec.provider")
        return None
    kind, _ = _one_of(spec["provider"], "spec.provider")
    if kind not in PROVIDER_KINDS:
        raise _fail(f"unknown provider {kind!r}; known: {', '.join(PROVIDER_KINDS)}", "spec.provider")
    return kind


def effective_policy(spec: Mapping[str, Any]) -> EffectivePolicy:
    """Merge ``spec`` over its preset and validate it. Raises ``PolicyError`` (reason InvalidSpec)
    naming the field at fault.

    ``maxAge`` defaults to the schedule's period: ``every``, or for a cron expression the longest
    gap between two consecutive occurrences.
    """
    written = {k: v for k, v in spec.items() if v is not None}
    merged, preset = _merged(written)
    strategy = _strategy(written, merged)
    every, cron_expr, time_zone = _schedule(merged)
    window_cron, window_duration, window_time_zone = _window(merged, time_zone)
    generator_kind, generator_params = _generator(merged, strategy)
    provider_kind = _provider(merged, strategy)

    if merged.get("maxAge") is not None:
        max_age: timedelta | None = _duration(merged["maxAge"], "spec.maxAge", positive=True)
    else:
        max_age = every if every is not None else cron.period(cron_expr, time_zone) if cron_expr else None
    rotate_before = (
        _duration(merged["rotateBefore"], "spec.rotateBefore", positive=False)
        if merged.get("rotateBefore") is not None
        else None
    )
    if rotate_before is not None and max_age is not None and rotate_before >= max_age:
        raise _fail(
            "rotateBefore must be shorter than maxAge, or every rotation would be due at once",
            "spec.rotateBefore",
        )
    if rotate_before is not None and generator_kind == "selfSignedCertificate" and strategy == "Generate":
        lifetime = _duration(
            generator_params.get("duration", "2160h"),
            "spec.generator.selfSignedCertificate.duration",
            positive=True,
        )
        if rotate_before >= lifetime:
            raise _fail("rotateBefore must be shorter than the certificate duration", "spec.rotateBefore")

    grace_period = _duration(merged.get("gracePeriod", "0"), "spec.gracePeriod", positive=False)
    suffix = merged.get("previousKeySuffix", DEFAULT_PREVIOUS_KEY_SUFFIX)
    if not isinstance(suffix, str) or not _KEY_CHARS.fullmatch(suffix):
        raise _fail(
            "previousKeySuffix must be non-empty and use only letters, digits, '-', '_' and '.'",
            "spec.previousKeySuffix",
        )

    return EffectivePolicy(
        strategy=strategy,
        every=every,
        cron=cron_expr,
        time_zone=time_zone,
        max_age=max_age,
        rotate_before=rotate_before,
        window_cron=window_cron,
        window_duration=window_duration,
        window_time_zone=window_time_zone,
        generator_kind=generator_kind,
        generator_params=generator_params,
        provider_kind=provider_kind,
        grace_period=grace_period,
        previous_key_suffix=suffix,
        preset=preset,
        create_if_missing=bool(merged.get("createIfMissing")) and strategy == "Generate",
    )

"""RotationPolicy and ClusterRotationPolicy spec: when to rotate and how to produce the new value."""

from __future__ import annotations

from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import AfterValidator, Field

from rotor.api.common import PositiveDuration, SpecModel
from rotor.api.duration import GracePeriod, RotationInterval
from rotor.api.rules import AtLeastOneOf, Custom, ExactlyOneOf, RequiredWhen

__all__ = [
    "PRESET_PERIODS",
    "ApiKeyGenerator",
    "AwsRotateSecret",
    "EcKeyPairGenerator",
    "Ed25519KeyPairGenerator",
    "FernetKeyGenerator",
    "Generator",
    "PasswordGenerator",
    "Preset",
    "ProviderRotation",
    "RandomBytesGenerator",
    "RotationPolicySpec",
    "RsaKeyPairGenerator",
    "Schedule",
    "SelfSignedCertificateGenerator",
    "VaultDatabaseStaticRole",
    "VaultPKIGenerator",
    "Window",
]

Preset = Literal[
    "api-key", "database-password", "oauth-secret", "encryption-key", "webhook-secret", "certificate"
]

#: The rotation period each preset gives when the policy has no schedule. ``certificate`` has none: it
#: renews at 2/3 of the certificate's lifetime (rotateBefore defaults to 1/3 of it).
PRESET_PERIODS: dict[str, str | None] = {
    "api-key": "2160h",  # 90 days
    "database-password": "720h",  # 30 days
    "oauth-secret": "4320h",  # 180 days
    "encryption-key": "8760h",  # 365 days
    "webhook-secret": "2160h",  # 90 days
    "certificate": None,
}


def _check_cron(value: str) -> str:
    if not croniter.is_valid(value):
        raise ValueError(f'{value!r} is not a cron expression; use five fields, e.g. "0 3 * * 0"')
    return value


def _check_time_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as err:
        raise ValueError(f"{value!r} is not an IANA time zone, e.g. UTC or Europe/Paris") from err
    return value


Cron = Annotated[str, Field(min_length=9, max_length=256), AfterValidator(_check_cron)]
TimeZone = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_check_time_zone)]
DnsName = Annotated[str, Field(min_length=1, max_length=253)]
Name = Annotated[str, Field(min_length=1, max_length=256)]


class Schedule(SpecModel):
    cel_rules = (ExactlyOneOf(("every", "cron"), message="schedule sets exactly one of every or cron"),)

    every: RotationInterval | None = Field(
        default=None, description="Rotate this long after the last rotation, e.g. 720h or 30d; at least 1m."
    )
    cron: Cron | None = Field(default=None, description='Rotate at these times, e.g. "0 3 * * 0".')
    time_zone: TimeZone = Field(default="UTC", description="IANA time zone the cron expression is read in.")


class Window(SpecModel):
    cron: Cron = Field(description='When each window opens, e.g. "0 2 * * 1-5" (02:00 on weekdays).')
    duration: RotationInterval = Field(description="How long each window stays open, e.g. 3h; at least 1m.")
    time_zone: TimeZone = Field(default="UTC", description="IANA time zone the cron expression is read in.")


# --------------------------------------------------------------------------- generators


class PasswordGenerator(SpecModel):
    cel_rules = (
        Custom(
            expression="self.lower + self.upper + self.digits + self.symbols <= self.length",
            check=lambda g: g.lower + g.upper + g.digits + g.symbols <= g.length,
            message="lower + upper + digits + symbols must not exceed length",
        ),
    )

    length: int = Field(default=32, ge=8, le=1024, description="Number of characters.")
    lower: int = Field(default=1, ge=0, le=1024, description="At least this many lowercase letters.")
    upper: int = Field(default=1, ge=0, le=1024, description="At least this many uppercase letters.")
    digits: int = Field(default=1, ge=0, le=1024, description="At least this many digits.")
    symbols: int = Field(
        default=0, ge=0, le=1024, description="At least this many symbols; 0 leaves symbols out entirely."
    )
    exclude: Annotated[str, Field(max_length=256)] = Field(
        default="\"'`\\", description="Characters never used; by default the quotes and the backslash."
    )


class RandomBytesGenerator(SpecModel):
    length: int = Field(default=32, ge=1, le=4096, description="Number of random bytes.")
    encoding: Literal["base64", "base64url", "hex"] = Field(
        default="base64", description="How the bytes are written: base64, base64url or hex."
    )


class ApiKeyGenerator(SpecModel):
    prefix: Annotated[str, Field(max_length=64, pattern=r"^[A-Za-z0-9_\-.]*$")] = Field(
        default="", description='Fixed text before the random part, e.g. "sk_".'
    )
    length: int = Field(
        default=40, ge=16, le=256, description="Number of random letters and digits after the prefix."
    )


class RsaKeyPairGenerator(SpecModel):
    bits: Literal[2048, 3072, 4096] = Field(default=3072, description="Key size: 2048, 3072 or 4096.")


class EcKeyPairGenerator(SpecModel):
    curve: Literal["P-256", "P-384", "P-521"] = Field(
        default="P-256", description="Curve: P-256, P-384 or P-521."
    )


class Ed25519KeyPairGenerator(SpecModel):
    """An Ed25519 key pair: the key (PKCS#8 PEM) and <key>.pub."""


class FernetKeyGenerator(SpecModel):
    """A Fernet key: 32 random bytes, base64url-encoded."""


class SelfSignedCertificateGenerator(SpecModel):
    cel_rules = (
        AtLeastOneOf(
            ("common_name", "dns_names"), message="a certificate needs commonName, dnsNames or both"
        ),
    )

    common_name: Annotated[str, Field(min_length=1, max_length=64)] | None = Field(
        default=None, description="Subject common name."
    )
    dns_names: list[DnsName] = Field(
        default_factory=list, min_length=1, max_length=100, description="Subject alternative DNS names."
    )
    duration: PositiveDuration = Field(default="2160h", description="Validity of each certificate.")
    key_algorithm: Literal["RSA-2048", "RSA-3072", "ECDSA-P256", "ECDSA-P384", "Ed25519"] = Field(
        default="ECDSA-P256", description="Key type of the certificate."
    )


class VaultPKIGenerator(SpecModel):
    mount: Name = Field(default="pki", description="Mount path of the Vault PKI secrets engine.")
    role: Name = Field(description="The PKI role to issue with.")
    common_name: Annotated[str, Field(min_length=1, max_length=253)] = Field(
        description="Common name to request."
    )
    alt_names: list[DnsName] = Field(
        default_factory=list, max_length=100, description="Subject alternative names to request."
    )
    ttl: PositiveDuration | None = Field(
        default=None, description="Requested lifetime. Absent: the role's default TTL."
    )


class Generator(SpecModel):
    cel_rules = (
        ExactlyOneOf(
            (
                "password",
                "random_bytes",
                "api_key",
                "rsa_key_pair",
                "ec_key_pair",
                "ed25519_key_pair",
                "fernet_key",
                "self_signed_certificate",
                "vault_pki",
            ),
            message="generator sets exactly one of password, randomBytes, apiKey, rsaKeyPair, ecKeyPair, "
            "ed25519KeyPair, fernetKey, selfSignedCertificate or vaultPKI",
        ),
    )

    password: PasswordGenerator | None = Field(default=None, description="A random password.")
    random_bytes: RandomBytesGenerator | None = Field(default=None, description="Random bytes, encoded.")
    api_key: ApiKeyGenerator | None = Field(default=None, description="A prefixed random API key.")
    rsa_key_pair: RsaKeyPairGenerator | None = Field(
        default=None, description="An RSA key pair: the key (PKCS#8 PEM) and <key>.pub."
    )
    ec_key_pair: EcKeyPairGenerator | None = Field(
        default=None, description="An EC key pair: the key (PKCS#8 PEM) and <key>.pub."
    )
    ed25519_key_pair: Ed25519KeyPairGenerator | None = Field(
        default=None, description="An Ed25519 key pair: the key (PKCS#8 PEM) and <key>.pub."
    )
    fernet_key: FernetKeyGenerator | None = Field(
        default=None, description="A Fernet key (32 random bytes, base64url)."
    )
    self_signed_certificate: SelfSignedCertificateGenerator | None = Field(
        default=None, description="A self-signed certificate and its key."
    )
    vault_pki: VaultPKIGenerator | None = Field(
        default=None,
        alias="vaultPKI",
        description="A certificate issued by a Vault PKI secrets engine of the same store.",
    )


# --------------------------------------------------------------------------- provider-side rotation


class VaultDatabaseStaticRole(SpecModel):
    """Rotate the static role named by the ManagedSecret's dataFrom.vaultDatabase."""


class AwsRotateSecret(SpecModel):
    """Call RotateSecret on the ManagedSecret's AWS secret, with the rotation function set in AWS."""


class ProviderRotation(SpecModel):
    cel_rules = (
        ExactlyOneOf(
            ("vault_database_static_role", "aws_rotate_secret"),
            message="provider sets exactly one of vaultDatabaseStaticRole or awsRotateSecret",
        ),
    )

    vault_database_static_role: VaultDatabaseStaticRole | None = Field(
        default=None,
        description="Vault database static role: <mount>/rotate-role/<role>, then read static-creds.",
    )
    aws_rotate_secret: AwsRotateSecret | None = Field(
        default=None, description="AWS Secrets Manager RotateSecret; Rotor tracks the version stages."
    )


class RotationPolicySpec(SpecModel):
    cel_rules = (
        AtLeastOneOf(
            ("schedule", "preset", "max_age", "rotate_before"),
            message="set schedule, maxAge, rotateBefore or a preset: otherwise no rotation ever falls due",
        ),
        RequiredWhen(
            "generator",
            "strategy",
            "Generate",
            unless=("preset",),
            message="strategy Generate needs a generator (or a preset that gives one)",
        ),
        RequiredWhen("provider", "strategy", "Provider", message="strategy Provider needs provider"),
        Custom(
            "!has(self.createIfMissing) || !self.createIfMissing || "
            "(!has(self.strategy) || self.strategy == 'Generate')",
            lambda spec: not spec.create_if_missing or spec.strategy == "Generate",
            message="createIfMissing needs strategy Generate: only a value Rotor generates can be created",
        ),
    )

    preset: Preset | None = Field(
        default=None,
        description="Defaults from common rotation guidance, overridden by any field written out: "
        "api-key (every 90 days), database-password (30 days), oauth-secret (180 days), "
        "encryption-key (365 days), webhook-secret (90 days), certificate (renew at 2/3 of the lifetime).",
    )
    schedule: Schedule | None = Field(default=None, description="When rotations are due.")
    max_age: PositiveDuration | None = Field(
        default=None,
        description="Age at which a value counts as expired. Default: the schedule's period.",
    )
    rotate_before: PositiveDuration | None = Field(
        default=None,
        description="Rotate this long before expiry (notAfter). Default: 1/3 of the value's lifetime.",
    )
    window: Window | None = Field(default=None, description="Rotate only inside these windows.")
    strategy: Literal["Generate", "Provider", "Observe"] = Field(
        default="Generate",
        description="Generate: Rotor makes the new value and writes it to the source first. Provider: the "
        "backend rotates with its own machinery. Observe: never write; only track age and expiry.",
    )
    generator: Generator | None = Field(default=None, description="How to make new values (Generate).")
    provider: ProviderRotation | None = Field(
        default=None, description="Which backend rotation to call (Provider)."
    )
    grace_period: GracePeriod | None = Field(
        default=None,
        description="Keep the previous value beside the new one for this long after a rotation, e.g. 24h; "
        "0 or at least 1s. "
        "Default: the preset's (24h for every preset but certificate), otherwise 0: no previous value.",
    )
    create_if_missing: bool = Field(
        default=False,
        description="When a remote key this policy generates does not exist at the source, generate it and "
        "create it there (Vault KV v2 check-and-set 0, AWS CreateSecret with the rotation's "
        "ClientRequestToken, SSM PutParameter without Overwrite), then sync. Never overwrites: a value "
        "that exists (or appears meanwhile) is read, not replaced. Needs strategy Generate and write "
        "access (create) at the source.",
    )
    previous_key_suffix: Annotated[str, Field(min_length=1, max_length=63, pattern=r"^[-._a-zA-Z0-9]+$")] = (
        Field(
            default="_previous",
            description="During the grace period the old value is kept as <key><suffix>, "
            "e.g. password_previous.",
        )
    )

"""The values the examples read, written into the local Vault and AWS emulator (demo and tests).

The values are generated at random each time; nothing here is a real credential.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from typing import Any

import boto3
import hvac
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from rotor.devenv.aws import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY

DEMO_NAMESPACES = ("demo", "team-a", "team-b", "rotor-system")
READER_POLICY = 'path "secret/data/apps/*" { capabilities = ["read"] }\npath "secret/metadata/apps/*" { capabilities = ["read", "list"] }\n'


def _certificate(common_name: str, days: int = 90) -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(common_name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem


def seed_vault(client: hvac.Client) -> dict[str, dict[str, Any]]:
    crt, key = _certificate("web.demo.svc")
    pair_crt, pair_key = _certificate("api.demo.svc")
    values: dict[str, dict[str, Any]] = {
        "apps/db": {"username": "app", "password": secrets.token_urlsafe(24)},
        "apps/registry": {"username": "robot-demo", "password": secrets.token_urlsafe(24)},
        "apps/api": {
            "stripe-key": "sk_test_" + secrets.token_hex(16),
            "webhook-secret": secrets.token_hex(24),
        },
        "apps/web-tls": {"key": key, "certificate": crt, "ca": crt},
        "apps/web-tls-pair": {"tls.crt": pair_crt, "tls.key": pair_key},
        "apps/orders-db": {"username": "orders", "password": secrets.token_urlsafe(24)},
        "tenants/team-a/config": {"api-token": secrets.token_hex(20)},
        "tenants/team-b/config": {"api-token": secrets.token_hex(20)},
    }
    for path, data in values.items():
        client.secrets.kv.v2.create_or_update_secret(path=path, secret=data, mount_point="secret")
    client.sys.create_or_update_policy("rotor-demo-reader", READER_POLICY)
    client.auth.kubernetes.create_role(
        "rotor-demo",
        bound_service_account_names=["rotor-reader"],
        bound_service_account_namespaces=["demo"],
        policies=["rotor-demo-reader"],
        ttl="1h",
        audience="vault",
    )
    return values


def seed_aws(endpoint: str) -> dict[str, str]:
    kwargs: dict[str, Any] = {
        "endpoint_url": endpoint,
        "region_name": REGION,
        "aws_access_key_id": ACCESS_KEY_ID,
        "aws_secret_access_key": SECRET_ACCESS_KEY,
    }
    sm = boto3.client("secretsmanager", **kwargs)
    ssm = boto3.client("ssm", **kwargs)
    payments = json.dumps({"api-key": "pk_" + secrets.token_hex(16), "signing-secret": secrets.token_hex(24)})
    try:
        sm.create_secret(Name="demo/payments", SecretString=payments)
    except sm.exceptions.ResourceExistsException:
        sm.put_secret_value(SecretId="demo/payments", SecretString=payments)
    flags = {"/demo/flags/new-checkout": "true", "/demo/flags/beta-token": secrets.token_hex(12)}
    for name, value in flags.items():
        ssm.put_parameter(Name=name, Value=value, Type="SecureString", Overwrite=True)
    # the change-event queue of examples/aws-change-events.yaml (EventBridge would feed it on AWS)
    boto3.client("sqs", **kwargs).create_queue(QueueName="rotor-demo-secret-changes")
    return {"demo/payments": payments, **flags}

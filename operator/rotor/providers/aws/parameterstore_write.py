"""Parameter Store writes: a new version per write (PutParameter Overwrite keeps the history),
and rollback as a re-put of the previous version's value."""

from __future__ import annotations

from typing import Any

from rotor.providers.aws.client import AwsClient
from rotor.providers.aws.errors import error_from_code
from rotor.providers.aws.parameterstore_read import describe_parameters, history
from rotor.providers.aws.payload import Value, parameter_text
from rotor.providers.base import KeyNotFound, RolledBack, WriteConflict, WriteResult

DEFAULT_TYPE = "SecureString"


def current(client: AwsClient, key: str) -> dict[str, Any] | None:
    """The parameter's metadata (Version, Type), without its value; None if it does not exist."""
    filters = [{"Key": "Name", "Option": "Equals", "Values": [key]}]
    return next((p for p in describe_parameters(client, filters) if p.get("Name") == key), None)


def _put(client: AwsClient, key: str, text: str, parameter_type: str) -> WriteResult:
    response = client.call(
        "PutParameter", key, write=True, Name=key, Value=text, Type=parameter_type, Overwrite=True
    )
    return WriteResult(key=key, version=str(response.get("Version")))


def create(client: AwsClient, key: str, value: Value) -> WriteResult:
    """PutParameter without Overwrite: a parameter that exists refuses it (ParameterAlreadyExists,
    ``WriteConflict``), so nothing is ever overwritten. A new parameter is a SecureString."""
    response = client.call(
        "PutParameter",
        key,
        write=True,
        Name=key,
        Value=parameter_text(value, key),
        Type=DEFAULT_TYPE,
        Overwrite=False,
    )
    return WriteResult(key=key, version=str(response.get("Version")))


def write(client: AwsClient, key: str, value: Value, cas: str | None) -> WriteResult:
    """Put a new version, keeping the parameter's type (SecureString for a new one).

    ``cas`` is the version the caller read; a different latest version raises WriteConflict.
    Parameter Store has no conditional put, so this is checked just before the put.
    """
    text = parameter_text(value, key)
    existing = current(client, key)
    latest = str(existing.get("Version")) if existing else None
    if cas is not None and cas != latest:
        raise WriteConflict(
            f"AWS SSM Parameter Store write on '{key}': the latest version is {latest}, not {cas}; "
            "read it again and retry"
        )
    parameter_type = str(existing.get("Type") or DEFAULT_TYPE) if existing else DEFAULT_TYPE
    return _put(client, key, text, parameter_type)


def rollback(client: AwsClient, key: str) -> RolledBack:
    """Re-put the previous version's value (and type) as a new latest version."""
    entries = history(client, key, decrypt=True)
    if not entries:
        raise error_from_code(client.label, "GetParameterHistory", key, "ParameterNotFound")
    if len(entries) < 2:
        raise KeyNotFound(f"AWS SSM Parameter Store rollback on '{key}': no previous version to restore")
    previous = entries[-2]
    put = _put(client, key, str(previous.get("Value") or ""), str(previous.get("Type") or DEFAULT_TYPE))
    return RolledBack(
        key=key,
        version=put.version,
        before=str(entries[-1].get("Version")),
        restored=str(previous.get("Version")),
    )


def delete(client: AwsClient, key: str) -> None:
    """DeleteParameter (every version goes with it); gone already is fine."""
    try:
        client.call("DeleteParameter", key, write=True, Name=key)
    except KeyNotFound:
        return

"""Turn botocore failures into Rotor's ProviderErrors.

botocore's own messages can echo request parameters (a ``SecretString``, a parameter ``Value``,
``ParamValidationError`` reports), so they are NEVER copied: a message names the AWS service, the
operation, the key, the AWS error code and a hint, and nothing else. The original exception is
dropped from the chain (``raise ... from None``) so a logged traceback cannot show it either.
"""

from __future__ import annotations

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    CredentialRetrievalError,
    HTTPClientError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    PartialCredentialsError,
    ReadTimeoutError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from rotor.providers.base import (
    AccessDenied,
    AuthFailed,
    InvalidConfig,
    KeyNotFound,
    ProviderError,
    Unreachable,
    WriteConflict,
)

SECRETS_MANAGER = "AWS Secrets Manager"
PARAMETER_STORE = "AWS SSM Parameter Store"
STS = "AWS STS"

_NOT_FOUND = {
    "ResourceNotFoundException": ("secret not found", "check the key and region"),
    "ParameterNotFound": ("parameter not found", "check the key and region"),
    "ParameterVersionNotFound": ("version not found", "check the version number"),
    "ParameterVersionLabelNotFound": ("label not found", "check the version label"),
}
_AUTH_FAILED = {
    "UnrecognizedClientException": ("unknown access key", "check the store's credentials"),
    "InvalidClientTokenId": ("unknown access key", "check the store's credentials"),
    "InvalidSignatureException": ("bad signature", "check the store's secret access key"),
    "SignatureDoesNotMatch": ("bad signature", "check the store's secret access key"),
    "IncompleteSignature": ("bad signature", "check the store's credentials"),
    "ExpiredTokenException": ("session token expired", "renew the store's session token"),
    "ExpiredToken": ("session token expired", "renew the store's session token"),
    "MissingAuthenticationToken": ("no credentials sent", "check the store's credentials"),
}
_ACCESS_DENIED = {"AccessDeniedException", "AccessDenied", "UnauthorizedOperation"}
_THROTTLED = {
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "TooManyUpdates",
}
_INVALID = {
    "ValidationException",
    "InvalidParameterException",
    "InvalidParameterValue",
    "InvalidParameterValueException",
    "InvalidFilterKey",
    "InvalidFilterValue",
    "ParameterPatternMismatchException",
    "HierarchyLevelLimitExceededException",
    "HierarchyTypeMismatchException",
    "UnsupportedParameterType",
}
_CONFLICT = {
    "ResourceExistsException": ("version or secret already exists", "retry with a new request token"),
    "ParameterAlreadyExists": ("parameter already exists", "retry the write"),
}
_KMS = {"DecryptionFailure", "EncryptionFailure", "InvalidKeyId", "KMSInvalidStateException"}
#: codes meaning "this endpoint does not implement the operation" (emulators, old regions)
UNSUPPORTED_CODES = frozenset(
    {"UnknownOperationException", "InvalidAction", "NotImplemented", "UnsupportedOperation"}
)


def _where(service: str, operation: str, key: str | None) -> str:
    return f"{service} {operation} on '{key}'" if key else f"{service} {operation}"


def aws_code(error: ProviderError) -> str | None:
    """The AWS error code a ProviderError was made from, if any."""
    return error.backend_code


#: AWS error codes that mean "slow down" (Secrets Manager, SSM, STS)
THROTTLING_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "ThrottledException",
        "TooManyRequestsException",
        "TooManyRequests",
        "RequestLimitExceeded",
        "SlowDown",
    }
)


def error_from_code(
    service: str, operation: str, key: str | None, code: str, status: int | None = None
) -> ProviderError:
    """The ProviderError for an AWS error code (from an HTTP error or a batch's ``Errors`` list)."""
    error = _error_from_code(service, operation, key, code, status)
    error.backend_code = code
    error.throttled = code in THROTTLING_CODES
    return error


def _error_from_code(
    service: str, operation: str, key: str | None, code: str, status: int | None
) -> ProviderError:
    where = _where(service, operation, key)
    if code in _NOT_FOUND:
        what, hint = _NOT_FOUND[code]
        return KeyNotFound(f"{where}: {code} ({what}); {hint}")
    if code in _AUTH_FAILED:
        what, hint = _AUTH_FAILED[code]
        return AuthFailed(f"{where}: {code} ({what}); {hint}")
    if code in _ACCESS_DENIED or (status == 403 and code not in _THROTTLED):
        action = operation if service == STS else _iam_action(service, operation)
        return AccessDenied(f"{where}: {code} (access denied); grant {action} to the store's credentials")
    if code in _THROTTLED:
        return Unreachable(f"{where}: {code} (throttled); lower the store's rateLimit or retry later")
    if code in _INVALID:
        return InvalidConfig(f"{where}: {code} (request rejected); check the key, version and store settings")
    if code in _CONFLICT:
        what, hint = _CONFLICT[code]
        return WriteConflict(f"{where}: {code} ({what}); {hint}")
    if code in _KMS:
        return ProviderError(
            f"{where}: {code} (KMS could not decrypt or encrypt the value); "
            "check the KMS key and the kms:Decrypt permission of the store's credentials"
        )
    if code == "InvalidRequestException":
        return ProviderError(
            f"{where}: {code} (the secret's state does not allow this request: deleted, "
            "rotation already in progress, or no rotation function configured); check the secret in AWS"
        )
    if code in UNSUPPORTED_CODES:
        return InvalidConfig(f"{where}: {code} (operation not supported here); check the endpoint")
    if (status is not None and status >= 500) or code.startswith("Internal") or code == "ServiceUnavailable":
        return Unreachable(f"{where}: {code} (AWS server error); retry later")
    return ProviderError(f"{where}: {code}; see the AWS documentation for this error code")


def _iam_action(service: str, operation: str) -> str:
    prefix = "ssm" if service == PARAMETER_STORE else "secretsmanager"
    return f"{prefix}:{operation}"


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code") or "Unknown")


def to_provider_error(service: str, operation: str, key: str | None, exc: Exception) -> ProviderError:
    """Map any exception botocore raises during one call. Never reads ``str(exc)``."""
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, ClientError):
        code = error_code(exc)
        if exc.operation_name == "AssumeRole":
            # Raised while refreshing the assumed role's credentials for this call.
            mapped = error_from_code(STS, "AssumeRole", None, code, _status(exc))
            if isinstance(mapped, Unreachable):
                return mapped
            return AuthFailed(
                f"{_where(service, operation, key)}: STS AssumeRole failed with {code}; "
                "check the role ARN, its trust policy, the externalId and the source credentials"
            )
        return error_from_code(service, operation, key, code, _status(exc))
    where = _where(service, operation, key)
    name = type(exc).__name__
    if isinstance(exc, NoCredentialsError | PartialCredentialsError | CredentialRetrievalError):
        return AuthFailed(
            f"{where}: {name} (no usable AWS credentials); set auth.secretRef on the store, "
            "or give the operator's pod IRSA or EKS Pod Identity"
        )
    if isinstance(exc, ReadTimeoutError):
        return Unreachable(f"{where}: {name} (AWS did not answer in time); check the endpoint and network")
    if isinstance(exc, BotoConnectionError | ConnectionClosedError | HTTPClientError):
        return Unreachable(f"{where}: {name} (could not reach AWS); check the endpoint, region and network")
    if isinstance(exc, ParamValidationError):
        return InvalidConfig(f"{where}: {name} (request rejected before sending); check the key and version")
    if isinstance(exc, NoRegionError):
        return InvalidConfig(f"{where}: {name}; set the store's region")
    if isinstance(exc, BotoCoreError):
        return ProviderError(f"{where}: {name}")
    return ProviderError(f"{where}: unexpected {name}")


def _status(exc: ClientError) -> int | None:
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return int(status) if status is not None else None

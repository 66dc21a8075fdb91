"""The pure value pipeline of a sync: extract, decode, validate, template, bound, hash.

Nothing here does I/O or reads the clock; messages of every error name keys and rules, never
values.
"""

from rotor.values.decode import DECODE_MODES, decode
from rotor.values.errors import (
    SECRET_TOO_LARGE_REASON,
    InvalidSpec,
    PropertyNotFound,
    TemplateError,
    TemplateMissing,
    TooLarge,
    ValidationFailed,
    ValueFailure,
)
from rotor.values.hashing import consumer_digest, data_hash
from rotor.values.properties import (
    extract_property,
    flatten_map,
    require_secret_key,
    require_secret_keys,
    sanitize_secret_key,
    secret_key_is_valid,
)
from rotor.values.size import SECRET_SIZE_LIMIT, check_secret_size, secret_data_size
from rotor.values.template import render_templates
from rotor.values.validate import FORMATS, validate_all, validate_value

__all__ = [
    "DECODE_MODES",
    "FORMATS",
    "SECRET_SIZE_LIMIT",
    "SECRET_TOO_LARGE_REASON",
    "InvalidSpec",
    "PropertyNotFound",
    "TemplateError",
    "TemplateMissing",
    "TooLarge",
    "ValidationFailed",
    "ValueFailure",
    "check_secret_size",
    "consumer_digest",
    "data_hash",
    "decode",
    "extract_property",
    "flatten_map",
    "render_templates",
    "require_secret_key",
    "require_secret_keys",
    "sanitize_secret_key",
    "secret_data_size",
    "secret_key_is_valid",
    "validate_all",
    "validate_value",
]

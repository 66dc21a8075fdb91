"""Secret Manager resource names: a key is a secret id in the store's project (or a full
``projects/<p>/secrets/<id>`` name), a version is a number, ``latest`` or an alias."""

from __future__ import annotations

import re

from rotor.providers.base import InvalidSpec

_ID = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
_FULL = re.compile(r"^projects/([^/\s]+)/secrets/([A-Za-z0-9_-]{1,255})$")
_ALIAS = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,62}$")


def secret_path(project: str, key: str) -> str:
    """``projects/<project>/secrets/<id>``."""
    if _FULL.match(key):
        return key
    if not _ID.match(key):
        raise InvalidSpec(
            f"GCP Secret Manager secret id '{key[:200]}' is not valid: 1-255 letters, digits, '-' and '_' "
            "(or a full name projects/<project>/secrets/<id>)"
        )
    return f"projects/{project}/secrets/{key}"


def version_segment(version: str | None) -> str:
    """``latest``, a version number or an alias (``prod``)."""
    if version is None or version == "" or version.lower() == "latest":
        return "latest"
    if version.isdigit() and int(version) > 0:
        return str(int(version))
    if _ALIAS.match(version):
        return version
    raise InvalidSpec(
        f"GCP Secret Manager version '{version[:100]}' is not valid: a version number, 'latest' or an alias"
    )


def version_number(name: str) -> str:
    """The number at the end of ``projects/.../versions/<n>``."""
    return name.rsplit("/", 1)[-1]

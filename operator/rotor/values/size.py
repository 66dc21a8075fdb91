"""The size bound of a Secret (DESIGN §7): refuse data Kubernetes would refuse, with a reason."""

from __future__ import annotations

from collections.abc import Mapping

from rotor.values.errors import TooLarge
from rotor.values.properties import quote_name

#: Kubernetes refuses a Secret whose data (key names and values) totals more than 1 MiB.
SECRET_SIZE_LIMIT = 1024 * 1024
_KEYS_NAMED = 3


def secret_data_size(data: Mapping[str, bytes]) -> int:
    """Bytes of ``data`` as Kubernetes counts them: every key name plus its decoded value."""
    return sum(len(name.encode("utf-8")) + len(value) for name, value in data.items())


def check_secret_size(data: Mapping[str, bytes], *, limit: int = SECRET_SIZE_LIMIT) -> int:
    """The size of ``data``; TooLarge when it is over ``limit``, naming the largest keys."""
    size = secret_data_size(data)
    if size > limit:
        largest = sorted(data, key=lambda name: (-len(data[name]), name))[:_KEYS_NAMED]
        raise TooLarge(
            f"the Secret's data is {size} bytes, over the {limit}-byte limit "
            f"({_limit_text(limit)}); largest keys: {', '.join(quote_name(name) for name in largest)}"
        )
    return size


def _limit_text(limit: int) -> str:
    if limit % (1024 * 1024) == 0:
        return f"{limit // (1024 * 1024)} MiB"
    if limit % 1024 == 0:
        return f"{limit // 1024} KiB"
    return f"{limit} bytes"

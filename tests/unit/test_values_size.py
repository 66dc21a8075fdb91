"""The Secret size bound."""

import pytest

from rotor.values import SECRET_SIZE_LIMIT, SECRET_TOO_LARGE_REASON, TooLarge, check_secret_size


def test_data_under_the_limit_passes_and_reports_its_size() -> None:
    assert check_secret_size({"a": b"xyz", "bb": b""}) == 6


def test_exactly_the_limit_passes() -> None:
    assert check_secret_size({"k": b"x" * (SECRET_SIZE_LIMIT - 1)}) == SECRET_SIZE_LIMIT


def test_over_the_limit_is_refused_with_size_limit_and_largest_keys() -> None:
    data = {"small": b"x", "blob": b"\x00" * SECRET_SIZE_LIMIT, "medium": b"y" * 100}
    with pytest.raises(TooLarge) as caught:
        check_secret_size(data)
    message = caught.value.message
    assert caught.value.reason == SECRET_TOO_LARGE_REASON
    assert str(SECRET_SIZE_LIMIT + 1 + 5 + 4 + 100 + 6) in message
    assert "1 MiB" in message
    assert message.index("'blob'") < message.index("'medium'") < message.index("'small'")


def test_a_smaller_limit_can_be_given() -> None:
    with pytest.raises(TooLarge) as caught:
        check_secret_size({"k": b"x" * 2000}, limit=1024)
    assert "1 KiB" in caught.value.message

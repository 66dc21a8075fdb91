"""decode: None, Base64, Auto."""

import base64

import pytest

from rotor.values import InvalidSpec, ValidationFailed, decode


def test_none_keeps_the_value_as_it_is() -> None:
    assert decode(b"aGVsbG8=", "None", key="k") == b"aGVsbG8="


@pytest.mark.parametrize(
    "encoded",
    [
        b"aGVsbG8gd29ybGQ=",  # standard, padded
        b"aGVsbG8gd29ybGQ",  # padding left out
        b"aGVsbG8g\nd29ybGQ=\n",  # wrapped lines
    ],
)
def test_base64_decodes_standard_alphabet_with_or_without_padding(encoded: bytes) -> None:
    assert decode(encoded, "Base64", key="k") == b"hello world"


def test_base64_decodes_the_url_safe_alphabet() -> None:
    raw = bytes([0xFB, 0xFF, 0xBF])  # encodes to +/+/ in the standard alphabet
    assert decode(base64.urlsafe_b64encode(raw), "Base64", key="k") == raw
    assert decode(base64.b64encode(raw), "Base64", key="k") == raw


@pytest.mark.parametrize("bad", [b"not base64!", b"abcde", b"ab+_", b"a===", b"ab=c"])
def test_base64_refuses_what_is_not_base64_and_names_the_key(bad: bytes) -> None:
    with pytest.raises(ValidationFailed) as caught:
        decode(bad, "Base64", key="api-token")
    assert caught.value.reason == "ValidationFailed"
    assert "'api-token'" in caught.value.message
    assert "Base64" in caught.value.message


def test_auto_decodes_canonical_base64() -> None:
    assert decode(base64.b64encode(b"\x00\x01binary"), "Auto", key="k") == b"\x00\x01binary"


@pytest.mark.parametrize("plain", [b"p@ssw0rd!", b"hello world", b"", b"abc\n", b"abd"])
def test_auto_keeps_what_is_not_canonical_base64(plain: bytes) -> None:
    # "abd" is decodable by lenient decoders but has stray trailing bits, so it is not canonical
    assert decode(plain, "Auto", key="k") == plain


def test_an_unknown_mode_is_a_spec_error() -> None:
    with pytest.raises(InvalidSpec) as caught:
        decode(b"x", "Hex", key="k")
    assert caught.value.reason == "InvalidSpec"
    assert "'Hex'" in caught.value.message

"""The one HOST:PORT parser (vipcast.spec.addresses.parse_host_port)."""

from __future__ import annotations

import pytest

from vipcast.spec.addresses import parse_host_port


@pytest.mark.parametrize(("text", "kw", "want"), [
    ("192.0.2.1:179", {}, ("192.0.2.1", 179)),
    ("[2001:db8::1]:7946", {}, ("2001:db8::1", 7946)),
    ("[::1]:0", {}, ("::1", 0)),
    ("example.test:443", {}, ("example.test", 443)),
    ("7472", {"default_host": "127.0.0.1"}, ("127.0.0.1", 7472)),
    (":9473", {"default_host": "0.0.0.0"}, ("0.0.0.0", 9473)),
    ("192.0.2.7", {"default_port": 7946}, ("192.0.2.7", 7946)),
    ("[2001:db8::7]", {"default_port": 7946}, ("2001:db8::7", 7946)),
    ("2001:db8::7", {"default_port": 7946}, ("2001:db8::7", 7946)),
    (" 127.0.0.1:80 ", {}, ("127.0.0.1", 80)),
])
def test_accepted_forms(text: str, kw: dict[str, object], want: tuple[str, int]) -> None:
    assert parse_host_port(text, **kw) == want  # type: ignore[arg-type]


@pytest.mark.parametrize(("text", "kw", "message"), [
    ("", {}, "empty address"),
    ("192.0.2.1", {}, "no port"),
    ("2001:db8::1:80", {}, r"\[IPV6\]:PORT"),
    ("[2001:db8::1:80", {}, "unclosed"),
    ("[2001:db8::1]80", {}, "':PORT' after"),
    ("[192.0.2.1]:80", {}, "IPv6 addresses only"),
    ("192.0.2.1:http", {}, "port 'http'"),
    ("192.0.2.1:65536", {}, "0 to 65535"),
    (":80", {}, "no host"),
    ("7472", {}, "no port"),
])
def test_refused_forms_name_the_text(text: str, kw: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        parse_host_port(text, **kw)  # type: ignore[arg-type]
    assert repr(text.strip()) in str(info.value) or not text

"""The address guard of hpgc/net: every kind of non-public address, and the IPv4 ones hidden in IPv6 ones."""

from __future__ import annotations

import pytest

from hpgc.net.guard import UrlGuard, UrlRefused

# address → what the guard must call it (None: public, allowed). Written out on purpose: the table is the spec.
ADDRESSES: list[tuple[str, str | None]] = [
    # IPv4
    ("8.8.8.8", None), ("93.184.216.34", None), ("1.1.1.1", None),
    ("127.0.0.1", "loopback"), ("127.255.0.9", "loopback"),
    ("10.1.2.3", "private"), ("172.16.0.1", "private"), ("172.31.255.255", "private"), ("192.168.1.1", "private"),
    ("169.254.169.254", "link-local"),
    ("100.64.0.1", "CGNAT"), ("100.127.255.254", "CGNAT"),
    ("0.0.0.0", "unspecified"), ("0.1.2.3", "unspecified"),
    ("224.0.0.1", "multicast"), ("239.255.255.250", "multicast"),
    ("240.0.0.1", "reserved"), ("255.255.255.255", "reserved"),
    ("192.0.0.8", "IETF"), ("192.0.2.1", "documentation"), ("198.51.100.7", "documentation"),
    ("203.0.113.9", "documentation"), ("198.18.0.1", "benchmarking"), ("192.88.99.1", "6to4 relay"),
    # IPv6
    ("2606:4700:4700::1111", None), ("2a00:1450:4001:80b::200e", None),
    ("::1", "loopback"), ("::", "unspecified"),
    ("fe80::1", "link-local"), ("fe80::1%eth0", "link-local"),
    ("fc00::1", "unique-local"), ("fd12:3456::1", "unique-local"),
    ("fec0::1", "site-local"), ("ff02::1", "multicast"), ("ff05::2", "multicast"),
    ("2001:db8::1", "documentation"), ("100::1", "discard"),
    # IPv4-mapped: a dual-stack socket delivers ::ffff:a.b.c.d to a.b.c.d
    ("::ffff:127.0.0.1", "IPv4-mapped IPv6 address embedding a loopback"),
    ("::ffff:10.0.0.1", "IPv4-mapped IPv6 address embedding a private"),
    ("::ffff:169.254.169.254", "IPv4-mapped IPv6 address embedding a link-local"),
    ("::ffff:8.8.8.8", None),
    # IPv4-compatible (deprecated): refused whatever it embeds
    ("::127.0.0.1", "IPv4-compatible IPv6 address embedding a loopback"),
    ("::10.0.0.1", "IPv4-compatible IPv6 address embedding a private"),
    ("::8.8.8.8", "IPv4-compatible"),
    # 6to4 2002:AABB:CCDD::/48 carries AA.BB.CC.DD
    ("2002:7f00:1::", "6to4 IPv6 address embedding a loopback"),
    ("2002:a00:1::1", "6to4 IPv6 address embedding a private"),
    ("2002:a9fe:a9fe::", "6to4 IPv6 address embedding a link-local"),
    ("2002:6440:1::", "6to4 IPv6 address embedding a shared (CGNAT)"),
    ("2002:808:808::1", None),
    # NAT64: the well-known prefix carries the IPv4 address in its last 32 bits; the local-use one is refused
    ("64:ff9b::7f00:1", "NAT64 IPv6 address embedding a loopback"),
    ("64:ff9b::a9fe:a9fe", "NAT64 IPv6 address embedding a link-local"),
    ("64:ff9b::808:808", None),
    ("64:ff9b:1::808:808", "local-use NAT64"), ("64:ff9b:1::a00:1", "local-use NAT64"),
    # Teredo 2001:0:SSSS:SSSS:flags:port:~CCCC:~CCCC (server, then the client inverted)
    ("2001:0:7f00:1::1", "Teredo IPv6 address embedding a loopback"),  # server 127.0.0.1
    ("2001:0:4136:e378:8000:63bf:f5ff:fffe", "Teredo IPv6 address embedding a private"),  # client 10.0.0.1
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo IPv6 address embedding a documentation"),  # 192.0.2.45
    ("2001:0:808:808:8000:63bf:f7f7:f7f7", None),  # server 8.8.8.8, client 8.8.8.8
]


@pytest.mark.parametrize(("address", "kind"), ADDRESSES)
def test_address_table(address: str, kind: str | None) -> None:
    why = UrlGuard().refusal(address)
    if kind is None:
        assert why is None, f"{address} is public, but refused as {why}"
    else:
        assert why is not None and kind in why, f"{address}: expected {kind!r}, got {why!r}"


def test_allowed_networks_open_exactly_what_they_name() -> None:
    guard = UrlGuard(allowed_networks=["127.0.0.2/32", "10.1.0.0/16"])
    assert guard.refusal("127.0.0.2") is None and guard.refusal("10.1.9.9") is None
    assert guard.refusal("127.0.0.1") == "loopback" and guard.refusal("10.2.0.1") == "private"
    # the same host written as IPv4-mapped or 6to4 is the same decision
    assert guard.refusal("::ffff:127.0.0.2") is None
    assert guard.refusal("::ffff:127.0.0.1") is not None
    assert guard.refusal("2002:a01:909::") is None
    assert UrlGuard(allow_private=True).refusal("169.254.169.254") is None


@pytest.mark.parametrize("url", [
    "http://[::ffff:127.0.0.1]:8000/", "http://[2002:7f00:1::]/", "http://[64:ff9b::a9fe:a9fe]/latest/meta-data",
    "http://[2001:0:7f00:1::1]/", "http://[::127.0.0.1]/", "http://[fe80::1%25eth0]/", "http://100.64.1.1/",
])
def test_literals_are_refused_by_policy_without_a_lookup(url: str) -> None:
    with pytest.raises(UrlRefused, match=r"refused by policy: .* address; .*outbound\.allowed_networks"):
        UrlGuard().check_literal(url)


async def test_a_name_is_refused_without_telling_its_address() -> None:
    with pytest.raises(UrlRefused) as info:
        await UrlGuard().check("http://localhost:1/x")
    assert "localhost resolves to a loopback address" in str(info.value)
    assert "127.0.0.1" not in str(info.value) and "::1" not in str(info.value)

"""The address guard of hpgc/net: every kind of non-public address, and the IPv4 ones hidden in IPv6 ones."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

import pytest

from hpgc.net.guard import AddressRefused, GuardedResolver, UrlGuard, UrlRefused, check_syntax

# address → what the guard must call it (None: public, allowed). Written out on purpose: the table is the spec.
ADDRESSES: list[tuple[str, str | None]] = [
    # IPv4
    ("8.8.8.8", None), ("93.184.216.34", None), ("1.1.1.1", None),
    ("127.0.0.1", "loopback"), ("127.255.0.9", "loopback"),
    ("10.1.2.3", "private"), ("172.16.0.1", "private"), ("172.31.255.255", "private"), ("192.168.1.1", "private"),
    ("169.254.169.254", "link-local"),
    ("100.64.0.1", "shared (CGNAT)"), ("100.127.255.254", "shared (CGNAT)"),
    ("0.0.0.0", "unspecified ('this network')"), ("0.1.2.3", "unspecified ('this network')"),
    ("224.0.0.1", "multicast"), ("239.255.255.250", "multicast"),
    ("240.0.0.1", "reserved"), ("255.255.255.255", "reserved"),
    ("192.0.0.8", "IETF protocol"), ("192.0.2.1", "documentation"), ("198.51.100.7", "documentation"),
    ("203.0.113.9", "documentation"), ("198.18.0.1", "benchmarking"), ("198.19.255.255", "benchmarking"),
    ("192.88.99.1", "6to4 relay"),
    # just outside each range: public
    ("100.63.255.255", None), ("100.128.0.0", None), ("172.15.255.255", None), ("172.32.0.0", None),
    ("192.0.1.1", None), ("198.17.255.255", None), ("198.20.0.0", None), ("223.255.255.255", None),
    # IPv6
    ("2606:4700:4700::1111", None), ("2a00:1450:4001:80b::200e", None), ("2001:db9::1", None),
    ("::1", "loopback"), ("::0.0.0.1", "loopback"), ("::", "unspecified"),
    ("fe80::1", "link-local"), ("fe80::1%eth0", "link-local"),
    ("fc00::1", "unique-local (private)"), ("fd12:3456::1", "unique-local (private)"),
    ("fec0::1", "site-local (private)"), ("feff::1", "site-local (private)"),
    ("ff02::1", "multicast"), ("ff05::2", "multicast"), ("ff00::", "multicast"),
    ("2001:db8::1", "documentation"), ("3fff::1", "documentation"), ("100::1", "discard-only"),
    ("5f00::1", "segment routing"),
    # not in the tables, but not public either (Python's registry: IETF, benchmarking, ORCHID, reserved)
    ("2001:2::1", "reserved or non-public"), ("2001:10::1", "reserved or non-public"),
    ("4000::1", "reserved or non-public"), ("fbff::1", "reserved or non-public"), ("fe7f::1", "reserved or non-public"),
    # IPv4-mapped: a dual-stack socket delivers ::ffff:a.b.c.d to a.b.c.d
    ("::ffff:127.0.0.1", "IPv4-mapped IPv6 address embedding a loopback IPv4 address"),
    ("::ffff:10.0.0.1", "IPv4-mapped IPv6 address embedding a private IPv4 address"),
    ("::ffff:169.254.169.254", "IPv4-mapped IPv6 address embedding a link-local IPv4 address"),
    ("::ffff:0.0.0.0", "IPv4-mapped IPv6 address embedding an unspecified ('this network') IPv4 address"),
    ("::ffff:8.8.8.8", None),
    # IPv4-compatible (deprecated): refused whatever it embeds
    ("::127.0.0.1", "IPv4-compatible IPv6 address embedding a loopback IPv4 address"),
    ("::10.0.0.1", "IPv4-compatible IPv6 address embedding a private IPv4 address"),
    ("::2", "IPv4-compatible IPv6 address embedding an unspecified ('this network') IPv4 address"),
    ("::8.8.8.8", "IPv4-compatible IPv6 (deprecated)"),
    # 6to4 2002:AABB:CCDD::/48 carries AA.BB.CC.DD
    ("2002:7f00:1::", "6to4 IPv6 address embedding a loopback IPv4 address"),
    ("2002:a00:1::1", "6to4 IPv6 address embedding a private IPv4 address"),
    ("2002:a9fe:a9fe::", "6to4 IPv6 address embedding a link-local IPv4 address"),
    ("2002:6440:1::", "6to4 IPv6 address embedding a shared (CGNAT) IPv4 address"),
    ("2002::", "6to4 IPv6 address embedding an unspecified ('this network') IPv4 address"),
    ("2002:808:808::1", None),
    # NAT64: the well-known prefix carries the IPv4 address in its last 32 bits; the local-use one is refused
    ("64:ff9b::7f00:1", "NAT64 IPv6 address embedding a loopback IPv4 address"),
    ("64:ff9b::a9fe:a9fe", "NAT64 IPv6 address embedding a link-local IPv4 address"),
    ("64:ff9b::", "NAT64 IPv6 address embedding an unspecified ('this network') IPv4 address"),
    ("64:ff9b::808:808", None),
    ("64:ff9b:1::808:808", "local-use NAT64"), ("64:ff9b:1::a00:1", "local-use NAT64"),
    # Teredo 2001:0:SSSS:SSSS:flags:port:~CCCC:~CCCC (server, then the client inverted)
    ("2001:0:7f00:1::1", "Teredo IPv6 address embedding a loopback IPv4 address"),  # server 127.0.0.1
    ("2001:0:4136:e378:8000:63bf:f5ff:fffe", "Teredo IPv6 address embedding a private IPv4 address"),  # client 10.0.0.1
    ("2001:0:808:808:8000:63bf:f5ff:fffe", "Teredo IPv6 address embedding a private IPv4 address"),  # client 10.0.0.1
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2",
     "Teredo IPv6 address embedding a documentation IPv4 address"),  # client 192.0.2.45
    ("2001:0:808:808:8000:63bf:f7f7:f7f7", None),  # server 8.8.8.8, client 8.8.8.8
]


@pytest.mark.parametrize(("address", "kind"), ADDRESSES)
def test_address_table(address: str, kind: str | None) -> None:
    guard = UrlGuard()
    assert guard.refusal(address) == kind
    assert guard.refusal(ipaddress.ip_address(address.split("%")[0])) == kind, "an address object, the same"
    assert guard.address_allowed(address) is (kind is None)


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


@pytest.mark.parametrize("address, message", [
    ("127.0.0.1", "127.0.0.1 is a loopback address"),
    ("192.0.0.8", "192.0.0.8 is an IETF protocol address"),
    ("0.0.0.0", "0.0.0.0 is an unspecified ('this network') address"),
    ("fc00::1", "fc00::1 is a unique-local (private) address"),
    ("fe80::1%eth0", "fe80::1%eth0 is a link-local address"),
    ("::ffff:10.0.0.1", "::ffff:10.0.0.1 is an IPv4-mapped IPv6 address embedding a private IPv4 address address"),
    ("2002::", "2002:: is a 6to4 IPv6 address embedding an unspecified ('this network') IPv4 address address"),
    ("4000::1", "4000::1 is a reserved or non-public address"),
])
def test_refusal_messages_name_the_kind_with_its_article(address: str, message: str) -> None:
    with pytest.raises(UrlRefused) as err:
        UrlGuard().refuse_address(address, address)
    assert str(err.value) == (f"refused by policy: {message}; this server does not connect to loopback, private, "
                              "link-local or other non-public addresses (outbound.allowed_networks)")
    UrlGuard().refuse_address("8.8.8.8", "8.8.8.8")  # public: nothing raised


def test_a_name_is_told_as_resolving_to_its_kind() -> None:
    with pytest.raises(UrlRefused) as err:
        UrlGuard().refuse_address("metadata.internal", "169.254.169.254")
    assert str(err.value).startswith("refused by policy: metadata.internal resolves to a link-local address; ")
    assert "169.254" not in str(err.value)
    with pytest.raises(UrlRefused, match=r"^refused by policy: fe80::1%eth0 is a link-local address"):
        UrlGuard().refuse_address("fe80::1%eth0", "fe80::1")


@pytest.mark.parametrize("url, message", [
    ("http://example.org/" + "a" * 2029, None),  # 2048 characters: the limit
    ("http://example.org/" + "a" * 2030, "is longer than 2048 characters"),
    ("ftp://example.org/x", "must be an http or https URL"),
    ("file:///etc/passwd", "must be an http or https URL"),
    ("http:///x", "has no host"),
    ("https://user:pw@example.org/", "must not contain a user name or password"),
    ("https://user@example.org/", "must not contain a user name or password"),
    ("https://:pw@example.org/", "must not contain a user name or password"),
    ("http://example.org:99999/", "is not a valid URL: Port out of range 0-65535"),
    ("http://[::1/", "is not a valid URL: Invalid IPv6 URL"),
])
def test_url_syntax(url: str, message: str | None) -> None:
    if message is None:
        assert check_syntax(url) == "example.org"
        return
    with pytest.raises(UrlRefused) as err:
        check_syntax(url)
    assert str(err.value) == message


def test_url_length_limit_can_be_set() -> None:
    assert check_syntax("http://a.example/xyz", max_length=20) == "a.example"
    with pytest.raises(UrlRefused, match=r"^is longer than 19 characters$"):
        check_syntax("http://a.example/xyz", max_length=19)
    with pytest.raises(UrlRefused, match=r"^is longer than 19 characters$"):
        UrlGuard().check_literal("http://a.example/xyz", max_length=19)


def test_literal_tells_addresses_from_names() -> None:
    assert UrlGuard.literal("127.0.0.1") == "127.0.0.1"
    assert UrlGuard.literal("0:0::1") == "::1"
    assert UrlGuard.literal("fe80::1%eth0") == "fe80::1"
    assert UrlGuard.literal("localhost") is None
    assert UrlGuard.literal("1.2.3") is None


def test_check_literal_leaves_names_and_public_addresses() -> None:
    guard = UrlGuard()
    guard.check_literal("http://localhost/x")  # a name: the resolver's job
    guard.check_literal("http://8.8.8.8/x")
    with pytest.raises(UrlRefused, match=r"10.0.0.1 is a private address"):
        guard.check_literal("http://10.0.0.1/x")


async def test_check_refuses_literals_and_skips_dns_when_private_is_allowed() -> None:
    with pytest.raises(UrlRefused, match=r"^refused by policy: 10.0.0.1 is a private address"):
        await UrlGuard().check("http://10.0.0.1/x")
    await UrlGuard().check("http://8.8.8.8/x")
    await UrlGuard(allow_private=True).check("http://10.0.0.1/x")
    # no lookup at all: a name that cannot resolve passes when nothing would be refused anyway
    await UrlGuard(allow_private=True).check("http://no-such-host.invalid/x")
    with pytest.raises(UrlRefused, match=r"^host no-such-host.invalid does not resolve$"):
        await UrlGuard().check("http://no-such-host.invalid/x")
    with pytest.raises(UrlRefused, match=r"^must be an http or https URL$"):
        await UrlGuard().check("gopher://8.8.8.8/")


async def test_check_allows_a_name_in_an_allowed_network() -> None:
    await UrlGuard(allowed_networks=["127.0.0.0/8", "::1/128"]).check("http://localhost:1/x")


class FakeResolver:
    def __init__(self, *hosts: str) -> None:
        self.hosts = hosts
        self.closed = False
        self.asked: list[tuple[str, int, socket.AddressFamily]] = []

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> Any:
        self.asked.append((host, port, family))
        return [{"hostname": host, "host": h, "port": port, "family": family, "proto": 0, "flags": 0}
                for h in self.hosts]

    async def close(self) -> None:
        self.closed = True


async def test_guarded_resolver_refuses_any_refused_address_and_passes_the_rest() -> None:
    inner = FakeResolver("8.8.8.8", "2606:4700:4700::1111")
    resolver = GuardedResolver(UrlGuard(), inner)  # type: ignore[arg-type]
    infos = await resolver.resolve("example.org", 443, socket.AF_INET6)
    assert [i["host"] for i in infos] == ["8.8.8.8", "2606:4700:4700::1111"]
    await resolver.resolve("example.org")
    assert inner.asked == [("example.org", 443, socket.AF_INET6), ("example.org", 0, socket.AF_INET)]
    resolver = GuardedResolver(UrlGuard(), FakeResolver("8.8.8.8", "10.0.0.1"))  # type: ignore[arg-type]
    with pytest.raises(AddressRefused) as err:
        await resolver.resolve("rebinding.example")
    assert str(err.value).startswith("refused by policy: rebinding.example resolves to a private address")
    resolver = GuardedResolver(UrlGuard(allowed_networks=["10.0.0.0/8"]), FakeResolver("10.0.0.1"))  # type: ignore
    assert [i["host"] for i in await resolver.resolve("ok.example")] == ["10.0.0.1"]
    await resolver.close()
    assert resolver.inner.closed  # type: ignore[attr-defined]


async def test_check_has_the_same_length_limit() -> None:
    await UrlGuard().check("http://8.8.8.8/" + "a" * 2033)  # 2048 characters
    with pytest.raises(UrlRefused, match=r"^is longer than 2048 characters$"):
        await UrlGuard().check("http://8.8.8.8/" + "a" * 2034)
    with pytest.raises(UrlRefused, match=r"^is longer than 19 characters$"):
        await UrlGuard().check("http://8.8.8.8/abcde", max_length=19)


def test_a_zone_index_is_cut_at_its_first_percent_sign() -> None:
    guard = UrlGuard()
    assert guard.refusal("fe80::1%a%b") == "link-local"
    assert guard.refusal("10.0.0.1%eth0") == "private"
    assert guard.refusal("10.0.0.1%a%b") == "private"
    assert UrlGuard.literal("fe80::1%a%b") == "fe80::1"
    with pytest.raises(UrlRefused, match=r"^refused by policy: fe80::1%a%b is a link-local address"):
        guard.refuse_address("fe80::1%a%b", "fe80::1%a%b")


def test_allowed_networks_may_have_host_bits_set() -> None:
    guard = UrlGuard(allowed_networks=["10.1.2.3/16", "fd00::1/64"])
    assert guard.refusal("10.1.9.9") is None and guard.refusal("fd00::ffff") is None
    assert guard.refusal("10.2.0.1") == "private"


def test_check_literal_default_length_limit_is_2048() -> None:
    UrlGuard().check_literal("http://8.8.8.8/" + "a" * 2033)
    with pytest.raises(UrlRefused, match=r"^is longer than 2048 characters$"):
        UrlGuard().check_literal("http://8.8.8.8/" + "a" * 2034)

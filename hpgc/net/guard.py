"""Which addresses hpgc may connect to on a user's behalf: the SSRF guard.

A URL in a request (a callback, an `href` input, an `executionUnit.href`) is fetched by the server, from
inside the network the server lives in. Without a guard, `http://169.254.169.254/…` turns hpgc into a proxy
to the cloud metadata service or to any internal host. So every address a URL resolves to must be public,
unless the configuration allows it (`outbound.allowed_networks`, or `outbound.allow_private` for closed test
setups).

The check is explicit, range by range, rather than `ipaddress.is_global` alone: Python's idea of "global"
changed between releases (site-local fec0::/10 and 6to4 2002::/16 are "global" on 3.11) and says nothing of
IPv4 addresses embedded in IPv6 ones, which the network delivers to the IPv4 host (IPv4-mapped ::ffff:a.b.c.d
reaches a.b.c.d through a dual-stack socket; 6to4, NAT64 and Teredo reach it through a relay or translator).

The check runs where the connection is made: inside the HTTP client's resolver (GuardedResolver) for names,
before the request for IP literals (which aiohttp does not resolve). A name that resolved to a public address
at submit time and to a private one later (DNS rebinding) is refused before a connection is made.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver
from aiohttp.resolver import ThreadedResolver

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
SETTINGS_HINT = "outbound.allowed_networks"


def _nets(*pairs: tuple[str, str]) -> list[tuple[IPNetwork, str]]:
    return [(ipaddress.ip_network(net), kind) for net, kind in pairs]


V4_REFUSED = _nets(
    ("0.0.0.0/8", "unspecified ('this network')"), ("10.0.0.0/8", "private"), ("100.64.0.0/10", "shared (CGNAT)"),
    ("127.0.0.0/8", "loopback"), ("169.254.0.0/16", "link-local"), ("172.16.0.0/12", "private"),
    ("192.0.0.0/24", "IETF protocol"), ("192.0.2.0/24", "documentation"), ("192.88.99.0/24", "6to4 relay"),
    ("192.168.0.0/16", "private"), ("198.18.0.0/15", "benchmarking"), ("198.51.100.0/24", "documentation"),
    ("203.0.113.0/24", "documentation"), ("224.0.0.0/4", "multicast"), ("240.0.0.0/4", "reserved"),
)
V6_REFUSED = _nets(
    ("::/128", "unspecified"), ("::1/128", "loopback"), ("100::/64", "discard-only"),
    ("64:ff9b:1::/48", "local-use NAT64"),  # the operator chooses where the IPv4 address sits: refuse it all
    ("2001:db8::/32", "documentation"), ("3fff::/20", "documentation"), ("5f00::/16", "segment routing"),
    ("fc00::/7", "unique-local (private)"), ("fe80::/10", "link-local"), ("fec0::/10", "site-local (private)"),
    ("ff00::/8", "multicast"),
)
IPV4_MAPPED = ipaddress.ip_network("::ffff:0:0/96")
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated (RFC 4291); ::a.b.c.d
SIX_TO_FOUR = ipaddress.ip_network("2002::/16")
NAT64 = ipaddress.ip_network("64:ff9b::/96")
TEREDO = ipaddress.ip_network("2001::/32")


class UrlRefused(ValueError):
    """This URL is not one hpgc will fetch or post to; the message says why (a sentence fragment)."""


class AddressRefused(OSError):
    """Raised inside the HTTP client's resolver: the connection is never attempted."""


def check_syntax(url: str, max_length: int = 2048) -> str:
    """http(s), a host, no credentials; returns the host."""
    if len(url) > max_length:
        raise UrlRefused(f"is longer than {max_length} characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise UrlRefused(f"is not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise UrlRefused("must be an http or https URL")
    if not parts.hostname:
        raise UrlRefused("has no host")
    if parts.username or parts.password:
        # credentials in a URL end up in logs and in listings
        raise UrlRefused("must not contain a user name or password")
    return parts.hostname


def _embedded(ip: ipaddress.IPv6Address) -> tuple[str, list[ipaddress.IPv4Address]] | None:
    """(mechanism, IPv4 addresses) when this IPv6 address carries IPv4 ones the network would deliver to."""
    if ip in IPV4_MAPPED:
        return "IPv4-mapped", [ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)]
    if ip in IPV4_COMPATIBLE and int(ip) > 1:
        return "IPv4-compatible", [ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)]
    if ip in SIX_TO_FOUR:
        return "6to4", [ipaddress.IPv4Address((int(ip) >> 80) & 0xFFFFFFFF)]
    if ip in NAT64:
        return "NAT64", [ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)]
    if ip in TEREDO:
        # server in bits 32-63, client (inverted) in the last 32 bits (RFC 4380)
        return "Teredo", [ipaddress.IPv4Address((int(ip) >> 64) & 0xFFFFFFFF),
                          ipaddress.IPv4Address(~int(ip) & 0xFFFFFFFF)]
    return None


def _a(kind: str) -> str:
    return f"{'an' if kind[:1] in 'aeioIu' and not kind.startswith('uni') else 'a'} {kind}"


class UrlGuard:
    def __init__(self, allow_private: bool = False, allowed_networks: list[str] | None = None) -> None:
        self.allow_private = allow_private
        self.networks: list[IPNetwork] = [ipaddress.ip_network(n, strict=False) for n in allowed_networks or []]

    def refusal(self, address: str | IPAddress) -> str | None:
        """None when hpgc may connect to this address; otherwise what kind of address it is."""
        ip = ipaddress.ip_address(address.split("%", 1)[0]) if isinstance(address, str) else address
        if self.allow_private or any(ip in net for net in self.networks):
            return None
        if isinstance(ip, ipaddress.IPv6Address):
            embedded = _embedded(ip)
            if embedded is not None:
                mechanism, inner = embedded
                for v4 in inner:
                    why = self.refusal(v4)
                    if why is not None:
                        return f"{mechanism} IPv6 address embedding {_a(why)} IPv4 address"
                if mechanism == "IPv4-compatible":
                    return "IPv4-compatible IPv6 (deprecated)"
                # 6to4, NAT64 (an IPv6-only server's way to every IPv4 site), Teredo, mapped: what counts is
                # the IPv4 host they deliver to, which is public
                return None
            table = V6_REFUSED
        else:
            table = V4_REFUSED
        for net, kind in table:
            if ip in net:
                return kind
        if not ip.is_global or ip.is_reserved or ip.is_multicast or ip.is_unspecified:
            return "reserved or non-public"
        return None

    def address_allowed(self, address: str | IPAddress) -> bool:
        return self.refusal(address) is None

    def refuse_address(self, host: str, address: str) -> None:
        why = self.refusal(address)
        if why is None:
            return
        # the address a name resolves to is not told: it would map the inside network's DNS for the user
        subject = f"{host} is {_a(why)} address" if host.split("%", 1)[0] == address.split("%", 1)[0] else (
            f"{host} resolves to {_a(why)} address")
        raise UrlRefused(
            f"refused by policy: {subject}; this server does not connect to loopback, private, link-local or "
            f"other non-public addresses ({SETTINGS_HINT})")

    @staticmethod
    def literal(host: str) -> str | None:
        """The host as an IP address when it is one, else None (a name, left to the resolver)."""
        try:
            return str(ipaddress.ip_address(host.split("%", 1)[0]))
        except ValueError:
            return None

    def check_literal(self, url: str, max_length: int = 2048) -> None:
        """Syntax, and the host when it is an IP address: the HTTP client does not resolve those, so the
        resolver-side check never sees them."""
        host = check_syntax(url, max_length)
        if self.literal(host) is not None:
            self.refuse_address(host, host)

    async def check(self, url: str, max_length: int = 2048) -> None:
        """Syntax, then every address the host resolves to. Raises UrlRefused."""
        host = check_syntax(url, max_length)
        if self.literal(host) is not None:
            self.refuse_address(host, host)
            return
        if self.allow_private:
            return  # nothing to refuse: do not make the submission wait on DNS
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except OSError:
            raise UrlRefused(f"host {host} does not resolve") from None
        for info in infos:
            self.refuse_address(host, str(info[4][0]))


class GuardedResolver(AbstractResolver):
    """aiohttp resolver that refuses names resolving to an address the guard does not allow.

    aiohttp's TCPConnector connects to exactly the addresses its resolver returned
    (`TCPConnector._create_direct_connection` → `_resolve_host` → `_convert_hosts_to_addr_infos`, numeric
    addr_infos handed to aiohappyeyeballs: no second lookup), so what is checked here is what is connected to.
    Its DNS cache only ever holds answers that passed this check. IP-literal hosts skip the resolver
    (`_resolve_host` returns them as they are): the client checks those itself before each request."""

    def __init__(self, guard: UrlGuard, inner: AbstractResolver | None = None) -> None:
        self.guard = guard
        self.inner = inner or ThreadedResolver()

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> Any:
        infos = await self.inner.resolve(host, port, family)
        for info in infos:
            try:
                self.guard.refuse_address(host, info["host"])
            except UrlRefused as exc:
                raise AddressRefused(str(exc)) from None
        return infos

    async def close(self) -> None:
        await self.inner.close()

"""Which callback URLs hpgc may post to: the SSRF guard.

A callback URL comes from an anonymous-enough request and is fetched by the server, from inside the
network the server lives in. Without a guard, `subscriber.successUri = http://169.254.169.254/…` turns
hpgc into a proxy to the cloud metadata service or to any internal host. So every address a callback
URL resolves to must be public, unless the configuration allows it (an allow-list of networks, or
`allow_private` for closed deployments and tests).

The check runs twice: at submit time (a 400 that names the field) and at delivery time, inside the HTTP
client's resolver, so that a name which resolved to a public address at submit time and to a private
one later (DNS rebinding) is still refused before a connection is made.
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


class UrlRefused(ValueError):
    """This URL is not one hpgc will post to; the message says why."""


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
        # credentials in a URL end up in logs and in the callbacks listing; use the signature instead
        raise UrlRefused("must not contain a user name or password")
    return parts.hostname


class UrlGuard:
    def __init__(self, allow_private: bool = False, allowed_networks: list[str] | None = None) -> None:
        self.allow_private = allow_private
        self.networks: list[IPNetwork] = [ipaddress.ip_network(n, strict=False) for n in allowed_networks or []]

    def address_allowed(self, address: str | IPAddress) -> bool:
        ip = ipaddress.ip_address(address) if isinstance(address, str) else address
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped  # ::ffff:10.0.0.1 is 10.0.0.1
        if self.allow_private or any(ip in net for net in self.networks):
            return True
        # is_global alone lets some special ranges through on older Pythons: be explicit
        return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_unspecified)

    def refuse_address(self, host: str, address: str) -> None:
        if not self.address_allowed(address):
            where = "" if host == address else f" resolves to {address}, which"
            raise UrlRefused(
                f"{host}{where} is a loopback, link-local or private address; this server does not send "
                "callbacks there (callbacks.allowed_networks, callbacks.allow_private)"
            )

    def check_literal(self, url: str, max_length: int = 2048) -> None:
        """Syntax, and the host when it is an IP address: the HTTP client does not resolve those, so the
        resolver-side check never sees them."""
        host = check_syntax(url, max_length)
        try:
            ipaddress.ip_address(host)
        except ValueError:
            return
        self.refuse_address(host, host)

    async def check(self, url: str, max_length: int = 2048) -> None:
        """Syntax, then every address the host resolves to. Raises UrlRefused."""
        host = check_syntax(url, max_length)
        try:
            literal: IPAddress | None = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None:
            self.refuse_address(host, host)
            return
        if self.allow_private:
            return  # nothing to refuse: do not make the submission wait on DNS
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise UrlRefused(f"host {host} does not resolve: {exc}") from None
        for info in infos:
            self.refuse_address(host, str(info[4][0]))


class GuardedResolver(AbstractResolver):
    """aiohttp resolver that refuses names resolving to an address the guard does not allow."""

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

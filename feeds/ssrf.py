"""SSRF guard: a feed URL must not make the bot talk to private, local or metadata addresses.

The check runs inside the aiohttp resolver (`GuardedResolver`), so the addresses that were checked
are exactly the addresses the connector dials: a DNS answer cannot change between check and
connect (DNS rebinding). IP-literal hosts never reach a resolver in aiohttp, so the fetcher checks
those itself with `AddressPolicy.check_literal` before every request (every redirect hop too).
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Iterable

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

log = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Cloud instance-metadata endpoints (AWS/GCP/Azure/OpenStack, AWS IPv6, Alibaba).
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200")
)


class RefusedAddress(OSError):
    """The host resolves to an address the SSRF policy refuses."""

    def __init__(self, host: str, address: str, reason: str) -> None:
        super().__init__(f"{host} resolves to {reason} address {address}")
        self.host = host
        self.address = address
        self.reason = reason


def refusal_reason(ip: IPAddress) -> str | None:
    """Return why `ip` must not be contacted (e.g. "loopback"), or None if it is public."""
    if isinstance(ip, ipaddress.IPv6Address):
        # An IPv4 address in IPv6 clothing is judged as the IPv4 address it reaches.
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is not None:
            return refusal_reason(embedded)
        if ip.teredo is not None:
            return refusal_reason(ip.teredo[1])
    if ip in METADATA_ADDRESSES:
        return "cloud metadata"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if ip.is_reserved:
        return "reserved"
    if ip.is_private:
        return "private"
    if not ip.is_global:
        return "non-public"
    return None


class AddressPolicy:
    """Which addresses the fetcher may connect to: public ones, plus an explicit allow list."""

    def __init__(self, allow_private: Iterable[str] = ()) -> None:
        self._networks: list[IPNetwork] = []
        self._hosts: set[str] = set()
        for entry in allow_private:
            text = entry.strip()
            if not text:
                continue
            try:
                self._networks.append(ipaddress.ip_network(text, strict=False))
            except ValueError:
                self._hosts.add(_norm_host(text))

    def host_allowed(self, host: str) -> bool:
        """Return True if `host` (a name) is explicitly allowed whatever it resolves to."""
        return _norm_host(host) in self._hosts

    def address_allowed(self, ip: IPAddress) -> bool:
        """Return True if `ip` is inside one of the allowed networks."""
        return any(ip.version == net.version and ip in net for net in self._networks)

    def check(self, host: str, addresses: Iterable[str]) -> None:
        """Raise RefusedAddress if ANY of `addresses` for `host` is refused."""
        if self.host_allowed(host):
            return
        for text in addresses:
            ip = _parse_ip(text)
            if ip is None:
                raise RefusedAddress(host, text, "unparseable")
            if self.address_allowed(ip):
                continue
            reason = refusal_reason(ip)
            if reason is not None:
                raise RefusedAddress(host, str(ip), reason)

    def check_literal(self, host: str) -> None:
        """Raise RefusedAddress if `host` is an IP literal that is refused; names pass."""
        ip = _parse_ip(host)
        if ip is not None:
            self.check(host, [str(ip)])


class GuardedResolver(AbstractResolver):
    """An aiohttp resolver that resolves with getaddrinfo and refuses disallowed addresses."""

    def __init__(self, policy: AddressPolicy) -> None:
        self._policy = policy
        self._inner = ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """Resolve `host` and return its addresses only if every one of them is allowed."""
        results = await self._inner.resolve(host, port, family)
        self._policy.check(host, [r["host"] for r in results])
        return results

    async def close(self) -> None:
        """Close the wrapped resolver."""
        await self._inner.close()


def _norm_host(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()


def _parse_ip(text: str) -> IPAddress | None:
    candidate = _norm_host(text).split("%", 1)[0]  # drop an IPv6 zone id ("fe80::1%eth0")
    try:
        return ipaddress.ip_address(candidate)
    except ValueError:
        return None

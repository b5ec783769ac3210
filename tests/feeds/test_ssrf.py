"""The SSRF policy and the guarded resolver (real getaddrinfo on names in /etc/hosts)."""

from __future__ import annotations

import ipaddress

import pytest

from feeds.ssrf import AddressPolicy, GuardedResolver, RefusedAddress, refusal_reason


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fd12:3456::1", "private"),
        ("169.254.169.254", "cloud metadata"),
        ("fd00:ec2::254", "cloud metadata"),
        ("169.254.10.10", "link-local"),
        ("fe80::1", "link-local"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("240.0.0.1", "reserved"),
        ("100.64.0.1", "non-public"),  # carrier-grade NAT
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped
        ("::ffff:169.254.169.254", "cloud metadata"),
        ("2002:0a00:0001::1", "private"),  # 6to4 wrapping 10.0.0.1
        ("8.8.8.8", None),
        ("2001:4860:4860::8888", None),
        ("151.101.1.69", None),
    ],
)
def test_refusal_reason(address: str, reason: str | None) -> None:
    assert refusal_reason(ipaddress.ip_address(address)) == reason


def test_policy_refuses_if_any_address_is_refused() -> None:
    policy = AddressPolicy()
    policy.check("public.example", ["8.8.8.8", "1.1.1.1"])
    with pytest.raises(
        RefusedAddress, match=r"mixed\.example resolves to private address 10\.0\.0\.5"
    ):
        policy.check("mixed.example", ["8.8.8.8", "10.0.0.5"])


def test_allow_list_by_address_network_and_name() -> None:
    policy = AddressPolicy(("127.0.0.1", "10.0.0.0/8", "Intranet.Example.", ""))
    policy.check("a", ["127.0.0.1", "10.200.0.1"])
    policy.check("intranet.example", ["192.168.9.9"])  # the name itself is trusted
    with pytest.raises(RefusedAddress):
        policy.check("b", ["127.0.0.2"])
    with pytest.raises(RefusedAddress):
        policy.check("c", ["::1"])


def test_check_literal_only_judges_ip_literals() -> None:
    policy = AddressPolicy()
    policy.check_literal("news.example.com")
    policy.check_literal("93.184.215.14")
    for literal in ("127.0.0.1", "[::1]", "::ffff:10.0.0.1", "fe80::1%eth0"):
        with pytest.raises(RefusedAddress):
            policy.check_literal(literal)


async def test_guarded_resolver_refuses_localhost() -> None:
    resolver = GuardedResolver(AddressPolicy())
    try:
        with pytest.raises(RefusedAddress, match="localhost resolves to loopback"):
            await resolver.resolve("localhost", 80)
    finally:
        await resolver.close()


async def test_guarded_resolver_returns_allowed_addresses() -> None:
    resolver = GuardedResolver(AddressPolicy(("127.0.0.0/8",)))
    try:
        results = await resolver.resolve("localhost", 8080)
    finally:
        await resolver.close()
    assert results
    assert {r["host"] for r in results} <= {"127.0.0.1"}
    assert all(r["port"] == 8080 for r in results)

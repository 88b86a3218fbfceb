"""The fetcher's address rule: no notation of an address may lead back to this host or a private network."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from image_tokenizer.fetch import FetchOptions, address_policy, is_public_address

NON_PUBLIC_IPV4_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "224.0.0.0/4",
        "240.0.0.0/4",
    )
)


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "169.254.169.254",
        "::1",
        "fe80::1",
        "fc00::1",
        "::ffff:127.0.0.1",  # IPv4-mapped
        "::ffff:0:7f00:1",  # IPv4-translated (SIIT)
        "::127.0.0.1",  # IPv4-compatible (deprecated)
        "::10.0.0.1",
        "::8.8.8.8",  # the whole deprecated IPv4-compatible range, public or not
        "64:ff9b::7f00:1",  # NAT64 well-known prefix -> 127.0.0.1
        "64:ff9b::a9fe:a9fe",  # NAT64 -> 169.254.169.254
        "64:ff9b:1::7f00:1",  # NAT64 local-use prefix (RFC 8215)
        "64:ff9b:1:ffff::808:808",  # local use, whatever it embeds
        "2002:7f00:1::1",  # 6to4 of 127.0.0.1
        "2002:c0a8:101::1",  # 6to4 of 192.168.1.1
        "2002:a00:1:1::",  # 6to4 of 10.0.0.1
        "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo, client 127.0.0.1
        "2001:0:a00:1:8000:63bf:3fff:fdd2",  # Teredo, server 10.0.0.1
        "2001::1",  # Teredo
        "2606:4700:1:2:0:5efe:a00:1",  # ISATAP interface id embedding 10.0.0.1
        "2606:4700:1:2:200:5efe:7f00:1",  # ISATAP, universal bit set, 127.0.0.1
        "fec0::1",  # site-local (deprecated)
        "feff:ffff::1",
        "ff02::1",
        "ff0e::1",  # global-scope multicast
        "fd00:ec2::254",
        "100.100.100.200",
    ],
)
def test_addresses_reaching_this_host_or_a_private_network_are_refused(address):
    ip = ipaddress.ip_address(address)
    assert not is_public_address(ip)
    assert not address_policy(FetchOptions())(address)


@pytest.mark.parametrize(
    "address",
    [
        "8.8.8.8",
        "93.184.216.34",
        "2606:4700:4700::1111",
        "2a00:1450:4001:82a::200e",
        "64:ff9b::808:808",  # NAT64 of a public address
        "2002:808:808::1",  # 6to4 of a public address
        "2606:4700:1:2:200:5efe:808:808",  # ISATAP-like interface id embedding a public address
    ],
)
def test_public_addresses_pass(address):
    assert is_public_address(ipaddress.ip_address(address))


def test_allowed_networks_exempt_only_what_they_name():
    allowed = address_policy(FetchOptions(allowed_networks=("127.0.0.0/8",)))
    assert allowed("127.0.0.1")
    assert not allowed("10.0.0.1") and not allowed("64:ff9b::a00:1")


@st.composite
def non_public_ipv4(draw) -> ipaddress.IPv4Address:
    network = draw(st.sampled_from(NON_PUBLIC_IPV4_NETWORKS))
    return network[draw(st.integers(0, network.num_addresses - 1))]


def _ipv6(value: int) -> ipaddress.IPv6Address:
    return ipaddress.IPv6Address(value & (2**128 - 1))


@st.composite
def ipv6_embedding_non_public_ipv4(draw) -> ipaddress.IPv6Address:
    v4 = int(draw(non_public_ipv4()))
    other = draw(st.integers(0, 2**128 - 1))
    form = draw(
        st.sampled_from(
            ["mapped", "translated", "compatible", "nat64", "nat64_local", "6to4"]
            + ["teredo_client", "teredo_server", "isatap"]
        )
    )
    if form == "mapped":
        return _ipv6(0xFFFF << 32 | v4)
    if form == "translated":
        return _ipv6(0xFFFF << 48 | v4)
    if form == "compatible":
        return _ipv6(v4)
    if form == "nat64":
        return _ipv6(0x64FF9B << 96 | v4)
    if form == "nat64_local":  # where the operator's prefix length puts it; any position
        return _ipv6(0x64FF9B0001 << 80 | (v4 << draw(st.integers(0, 48))) & (2**80 - 1))
    if form == "6to4":
        return _ipv6(0x2002 << 112 | v4 << 80 | other & (2**80 - 1))
    if form == "teredo_client":  # the client address is stored inverted
        return _ipv6(0x20010000 << 96 | (other & (2**64 - 1)) << 32 | (~v4 & 0xFFFFFFFF))
    if form == "teredo_server":
        return _ipv6(0x20010000 << 96 | v4 << 64 | other & (2**64 - 1))
    universal = draw(st.sampled_from([0, 0x0200]))
    return _ipv6((other >> 64) << 64 | (universal << 48 | 0x5EFE << 32 | v4))


@given(ipv6_embedding_non_public_ipv4())
def test_no_ipv6_form_of_a_non_public_ipv4_is_public(ip):
    assert not is_public_address(ip), ip

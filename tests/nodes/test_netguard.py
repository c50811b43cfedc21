"""The HTTP node's network guard (apps/nodes/netguard.py). No real network: every test
passes a fake resolver with getaddrinfo's signature."""

from __future__ import annotations

import socket

import pytest

from apps.nodes.contract import ConfigurationError
from apps.nodes.netguard import AddressRefused, Target, resolve_target


class FakeResolver:
    """resolver(host, port, type=...) → getaddrinfo-style tuples for fixed addresses."""

    def __init__(self, *addresses: str):
        self.addresses = addresses
        self.calls: list[tuple] = []

    def __call__(self, host, port, type=0):  # noqa: A002 - getaddrinfo's own keyword
        self.calls.append((host, port, type))
        infos = []
        for address in self.addresses:
            if ":" in address:
                infos.append((socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port, 0, 0)))
            else:
                infos.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port)))
        return infos


def failing_resolver(host, port, type=0):  # noqa: A002
    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


@pytest.mark.parametrize("address", [
    "127.0.0.1",           # loopback
    "127.8.9.10",
    "10.0.0.1",            # RFC 1918
    "10.255.255.254",
    "172.16.0.1",
    "172.31.255.255",
    "192.168.1.10",
    "169.254.169.254",     # link-local: cloud metadata
    "100.64.0.1",          # carrier-grade NAT
    "0.0.0.0",
    "224.0.0.1",           # multicast
    "240.0.0.1",           # reserved
    "::1",                 # IPv6 loopback
    "::",
    "fc00::1",             # unique local fc00::/7
    "fd12:3456:789a::1",
    "fe80::1",             # IPv6 link-local
    "fe80::1%eth0",        # with a scope id
    "::ffff:127.0.0.1",    # IPv4-mapped loopback
    "::ffff:10.1.2.3",
    "::ffff:169.254.169.254",
])
def test_private_loopback_and_link_local_addresses_are_refused(address):
    with pytest.raises(AddressRefused) as info:
        resolve_target("http://internal.example/", [], resolver=FakeResolver(address))
    message = str(info.value)
    assert address in message and "BRAID_HTTP_ALLOW" in message


def test_refusal_is_a_non_retryable_configuration_error():
    with pytest.raises(ConfigurationError) as info:
        resolve_target("http://internal.example/", [], resolver=FakeResolver("10.0.0.1"))
    assert info.value.error_class == "configuration" and info.value.retryable is False


def test_hostname_resolving_to_a_public_and_a_private_address_is_refused():
    resolver = FakeResolver("93.184.216.34", "192.168.0.5")
    with pytest.raises(AddressRefused, match="192.168.0.5"):
        resolve_target("https://rebind.example/", [], resolver=resolver)


def test_literal_private_ip_in_the_url_is_refused():
    with pytest.raises(AddressRefused):
        resolve_target("http://127.0.0.1:8000/admin", [], resolver=FakeResolver("127.0.0.1"))
    with pytest.raises(AddressRefused):
        resolve_target("http://[::1]/", [], resolver=FakeResolver("::1"))


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111",
                                     "::ffff:8.8.8.8"])
def test_public_addresses_are_allowed(address):
    target = resolve_target("https://api.example.com/v1", [], resolver=FakeResolver(address))
    assert target.address == address


def test_target_carries_scheme_host_default_port_and_the_vetted_address():
    resolver = FakeResolver("93.184.216.34")
    assert resolve_target("https://API.Example.com/x?q=1", [], resolver=resolver) == Target(
        "https", "api.example.com", 443, "93.184.216.34")
    assert resolve_target("http://api.example.com/", [], resolver=resolver).port == 80
    assert resolver.calls == [("api.example.com", 443, socket.SOCK_STREAM),
                              ("api.example.com", 80, socket.SOCK_STREAM)]


def test_explicit_port_is_used():
    resolver = FakeResolver("93.184.216.34")
    target = resolve_target("http://user:pw@api.example.com:8443/", [], resolver=resolver)
    assert (target.host, target.port) == ("api.example.com", 8443)


def test_host_is_resolved_once_and_the_checked_address_is_the_one_returned():
    resolver = FakeResolver("93.184.216.35", "93.184.216.34")
    target = resolve_target("https://multi.example/", [], resolver=resolver)
    assert len(resolver.calls) == 1
    assert target.address in resolver.addresses


def test_allow_list_by_hostname_permits_a_private_address():
    resolver = FakeResolver("10.0.0.7")
    target = resolve_target("http://billing.internal:9000/", ["billing.internal"],
                            resolver=resolver)
    assert (target.address, target.port) == ("10.0.0.7", 9000)


def test_allow_list_by_hostname_ignores_case():
    target = resolve_target("http://Billing.Internal/", ["BILLING.internal"],
                            resolver=FakeResolver("10.0.0.7"))
    assert target.address == "10.0.0.7"


def test_allow_list_by_hostname_does_not_allow_other_hosts():
    with pytest.raises(AddressRefused):
        resolve_target("http://other.internal/", ["billing.internal"],
                       resolver=FakeResolver("10.0.0.7"))


def test_allow_list_by_cidr_permits_only_that_network():
    allow = ["10.0.0.0/8", "fd00::/8"]
    assert resolve_target("http://svc/", allow, resolver=FakeResolver("10.20.30.40")).address \
        == "10.20.30.40"
    assert resolve_target("http://svc/", allow, resolver=FakeResolver("fd00::5")).address \
        == "fd00::5"
    with pytest.raises(AddressRefused):
        resolve_target("http://svc/", allow, resolver=FakeResolver("192.168.1.1"))
    with pytest.raises(AddressRefused):
        resolve_target("http://svc/", allow, resolver=FakeResolver("10.1.1.1", "127.0.0.1"))


def test_allow_list_by_single_address():
    target = resolve_target("http://localhost:8080/", ["127.0.0.1"],
                            resolver=FakeResolver("127.0.0.1"))
    assert target.address == "127.0.0.1"
    with pytest.raises(AddressRefused):
        resolve_target("http://localhost:8080/", ["127.0.0.1"],
                       resolver=FakeResolver("127.0.0.1", "::1"))


def test_malformed_allow_list_entries_are_ignored():
    with pytest.raises(AddressRefused):
        resolve_target("http://svc/", ["not a network", "10.0.0.0/99"],
                       resolver=FakeResolver("10.0.0.1"))


@pytest.mark.parametrize("url", [
    "ftp://example.com/file",
    "file:///etc/passwd",
    "gopher://example.com/",
    "javascript:alert(1)",
    "example.com/path",
    "http:///no-host",
    "",
])
def test_non_http_urls_are_refused_without_resolving(url):
    resolver = FakeResolver("93.184.216.34")
    with pytest.raises(AddressRefused, match="not an http"):
        resolve_target(url, [], resolver=resolver)
    assert resolver.calls == []


@pytest.mark.parametrize("url", ["http://example.com:99999/", "http://example.com:port/"])
def test_invalid_port_is_refused(url):
    with pytest.raises(AddressRefused, match="invalid port"):
        resolve_target(url, [], resolver=FakeResolver("93.184.216.34"))


def test_host_without_addresses_is_refused():
    with pytest.raises(AddressRefused, match="has no address"):
        resolve_target("http://empty.example/", [], resolver=FakeResolver())


def test_resolution_failure_is_a_retryable_resource_error():
    with pytest.raises(ConfigurationError) as info:
        resolve_target("http://nowhere.example/", [], resolver=failing_resolver)
    assert not isinstance(info.value, AddressRefused)
    assert info.value.error_class == "resource" and info.value.retryable is True
    assert "cannot resolve 'nowhere.example'" in str(info.value)

"""Keep the HTTP node away from private networks unless an operator allows it.

The host is resolved once, every address is checked, and the request is sent
to the checked address (with the original Host header and TLS server name), so
DNS cannot answer differently between the check and the connection.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from apps.nodes.contract import ConfigurationError


class AddressRefused(ConfigurationError):
    pass


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    address: str  # the vetted IP the request will connect to


def _allowed(host: str, ip: ipaddress._BaseAddress, allow: list[str]) -> bool:
    for entry in allow:
        if entry.lower() == host.lower():
            return True
        try:
            if ip in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


def _is_public(ip: ipaddress._BaseAddress) -> bool:
    if ip.version == 6 and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_global and not (ip.is_multicast or ip.is_reserved)


def _parse(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise AddressRefused(f"{url!r} is not an http(s) URL with a host")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:  # a port that is not a number from 0 to 65535
        raise AddressRefused(f"{url!r} has an invalid port") from None
    return parts.scheme, parts.hostname, port


def _vet(scheme: str, host: str, port: int, infos, allow: list[str]) -> Target:
    addresses = sorted({info[4][0] for info in infos})
    if not addresses:
        raise AddressRefused(f"{host!r} has no address")
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%")[0])
        if not _is_public(ip) and not _allowed(host, ip, allow):
            raise AddressRefused(
                f"{host} resolves to {address}, a private, loopback or link-local address; "
                "add the host or network to BRAID_HTTP_ALLOW to permit it")
    return Target(scheme, host, port, addresses[0])


def _unresolvable(host: str, exc: Exception) -> ConfigurationError:
    return ConfigurationError(f"cannot resolve {host!r}: {exc}", retryable=True,
                              error_class="resource")


def _literal(host: str, port: int):
    """getaddrinfo's answer for an IP literal, without asking a resolver."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    return [(family, socket.SOCK_STREAM, 0, "", (str(ip), port))]


def resolve_target(url: str, allow: list[str], resolver=socket.getaddrinfo) -> Target:
    """Check `url` and pick the address to connect to, or raise AddressRefused."""
    scheme, host, port = _parse(url)
    try:
        infos = resolver(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise _unresolvable(host, exc) from None
    return _vet(scheme, host, port, infos, allow)


async def resolve_target_async(url: str, allow: list[str]) -> Target:
    """`resolve_target` for an event loop: the lookup runs off the loop's thread
    (`loop.getaddrinfo`), so a slow DNS server never stalls other requests; an IP
    literal needs no lookup at all."""
    import asyncio

    scheme, host, port = _parse(url)
    infos = _literal(host, port)
    if infos is None:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise _unresolvable(host, exc) from None
    return _vet(scheme, host, port, infos, allow)

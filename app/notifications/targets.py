"""Where notifications may be sent: a notification endpoint's URL must not reach PayBridge's own
network (SSRF).

`check_target` decides, once per save and once per delivery attempt: it resolves the host
itself and refuses the URL when the name does not resolve, or when any address it resolves to
is loopback, private, link-local, multicast, unspecified, reserved, or one of those wrapped in
an IPv6 form (IPv4-mapped, IPv4-compatible, NAT64 `64:ff9b::/96`, 6to4) — unless the address
lies in a network the operator allowed (`NOTIFY_ALLOWED_NETWORKS`, for on-premises client
apps). Names under `localhost` are loopback whatever a resolver says (RFC 6761).

The answer is a `Target` that carries the checked addresses, and `PinnedAdapter` connects to
exactly that address: the host is never resolved a second time, so a name that answered a
public address to the check cannot answer 127.0.0.1 to the connection (DNS rebinding). The
Host header, TLS SNI and the certificate check still use the URL's host name.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from requests.adapters import HTTPAdapter

from app.common.urls import split_url
from app.errors import ValidationError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# (host, port) → the addresses it resolves to; socket.getaddrinfo's answers, reduced.
Resolver = Callable[[str, int], list[str]]

# IPv6 prefixes that carry an IPv4 address in their last 32 bits: the IPv4 address is what
# a packet reaches (through a NAT64 gateway, or the host's own stack), so it is what counts.
_EMBEDDING_V4 = (
    ipaddress.IPv6Network("::ffff:0:0/96"),  # IPv4-mapped
    ipaddress.IPv6Network("::/96"),  # IPv4-compatible (deprecated)
    ipaddress.IPv6Network("64:ff9b::/96"),  # NAT64, well-known prefix
)
# NAT64 for local use (RFC 8215): an operator's own translator, never a public target.
_LOCAL_NAT64 = ipaddress.IPv6Network("64:ff9b:1::/48")


class TargetRefused(ValueError):
    """The URL must not be called; `reason` says why, in words a merchant can act on."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Target:
    """A notify URL that passed the check, with the addresses it was checked at."""

    url: str
    hostname: str  # lower case, without a trailing dot: for SNI and the certificate
    port: int
    addresses: tuple[IPAddress, ...]

    @property
    def address(self) -> IPAddress:
        """The address to connect to: the first one the check resolved."""
        return self.addresses[0]

    def pinned_url(self, url: str) -> str:
        """`url` (this target's, as a request prepared it) with its host replaced by the
        checked address: what the connection uses."""
        host = f"[{self.address}]" if self.address.version == 6 else str(self.address)
        return urlunsplit(urlsplit(url)._replace(netloc=f"{host}:{self.port}"))

    @property
    def host_header(self) -> str:
        """The Host header a client that resolved the name itself would send."""
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        return host if parts.port is None else f"{host}:{parts.port}"


def parse_networks(text: str | Iterable[str]) -> tuple[IPNetwork, ...]:
    """Comma-separated CIDRs (or a list of them) as networks; ValueError names a bad one."""
    items = text.split(",") if isinstance(text, str) else list(text)
    networks = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"{item!r} is not a network (CIDR such as 10.0.0.0/8)") from None
    return tuple(networks)


def system_resolver(host: str, port: int) -> list[str]:
    """The addresses the machine's resolver gives for `host`, in its order of preference."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return [str(info[4][0]).split("%", 1)[0] for info in infos]


def check_target(
    url: str,
    *,
    allowed_networks: Iterable[IPNetwork] = (),
    resolver: Resolver = system_resolver,
) -> Target:
    """The `Target` to connect to for `url`, or TargetRefused saying why it may not be called."""
    try:
        parts = split_url((url or "").strip())
    except ValidationError:
        raise TargetRefused("it cannot be read as a URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TargetRefused("it must be an absolute http(s) URL")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    hostname = parts.hostname.lower().rstrip(".")
    if not hostname:
        raise TargetRefused("it needs a host name")
    allowed = tuple(allowed_networks)
    if hostname == "localhost" or hostname.endswith(".localhost"):
        names = [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")]
        addresses = tuple(a for a in names if _allowed(a, allowed))
        if not addresses:
            raise TargetRefused(f"it names {hostname!r}: this machine")
        return Target(url, hostname, port, addresses)
    try:
        found = resolver(hostname, port)
    except (OSError, UnicodeError, ValueError):
        found = []
    if not found:
        raise TargetRefused(f"its host {hostname!r} does not resolve")
    addresses = tuple(dict.fromkeys(ipaddress.ip_address(a) for a in found))
    for address in addresses:
        why = forbidden_address(address, allowed)
        if why:
            raise TargetRefused(f"it resolves to {why} ({address})")
    return Target(url, hostname, port, addresses)


def forbidden_address(address: IPAddress, allowed: Iterable[IPNetwork] = ()) -> str | None:
    """What kind of non-public address `address` is, or None when it may be called (public,
    or in an allowed network)."""
    allowed = tuple(allowed)
    if _allowed(address, allowed):
        return None
    if address.version == 6 and address in _LOCAL_NAT64:
        return "a local-use NAT64 address"
    inner = embedded_ipv4(address)
    if inner is not None:
        if _allowed(inner, allowed):
            return None
        why = _kind(inner)
        return f"{why} in an IPv6 form" if why else None
    return _kind(address)


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, compatible, NAT64, 6to4), or None."""
    if address.version == 4 or address.is_loopback or address.is_unspecified:
        return None  # ::1 and :: are IPv6's own, not IPv4-compatible 0.0.0.1 and 0.0.0.0
    if address.sixtofour is not None:
        return address.sixtofour
    if any(address in prefix for prefix in _EMBEDDING_V4):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _allowed(address: IPAddress, allowed: tuple[IPNetwork, ...]) -> bool:
    return any(address.version == net.version and address in net for net in allowed)


def _kind(address: IPAddress) -> str | None:
    """Which kind of address no notification may reach, or None for a public one."""
    for flag, words in (
        ("is_unspecified", "an unspecified address"),
        ("is_loopback", "a loopback address"),
        ("is_link_local", "a link-local address"),
        ("is_multicast", "a multicast address"),
        ("is_private", "a private address"),
        ("is_reserved", "a reserved address"),
    ):
        if getattr(address, flag):
            return words
    if not address.is_global:
        return "a non-public address"
    return None


class PinnedAdapter(HTTPAdapter):
    """A transport that sends each request to the address its `Target` was checked at.

    The request carries its Target (`pin(prepared, target)`); the URL's host becomes that
    address, so nothing resolves the name again, while the Host header, TLS SNI and the
    certificate's host name check keep the URL's host name. A request without a Target is
    refused: nothing leaves unchecked. Proxies are not used (a proxy would resolve the name).
    """

    def send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None):
        target = getattr(request, "paybridge_target", None)
        if target is None:
            raise TargetRefused("no checked target for this request")
        request.url = target.pinned_url(request.url)
        request.headers["Host"] = target.host_header
        return super().send(request, stream, timeout, verify, cert, proxies=None)

    def build_connection_pool_key_attributes(self, request, verify, cert=None):
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(
            request, verify, cert
        )
        if host_params["scheme"] == "https":
            hostname = request.paybridge_target.hostname
            pool_kwargs["server_hostname"] = hostname
            pool_kwargs["assert_hostname"] = hostname
        return host_params, pool_kwargs


def pin(request, target: Target):
    """Attach the checked target to a prepared request, for `PinnedAdapter`."""
    request.paybridge_target = target
    return request

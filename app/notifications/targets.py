"""Where notifications may be sent: a merchant's notify_url must not reach PayBridge's own
network (SSRF) in production. The check runs at delivery time, on the addresses the host
resolves to then, so a URL that was public when saved cannot be turned inward later."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit


def forbidden_target(url: str, *, allow_private: bool) -> str | None:
    """Why `url` must not be called, or None when it may be."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "notify_url must be an absolute http(s) URL"
    if allow_private:
        return None
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 443, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        return None  # the request itself will fail and record why
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global:
            return f"notify_url resolves to a non-public address ({address}); refused"
    return None

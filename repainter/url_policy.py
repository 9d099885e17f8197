"""Which addresses a dataset download may reach.

A manifest is data, often written by someone else: a row ``url: http://169.254.169.254/...``
(a cloud metadata service), ``http://127.0.0.1:6379/`` or a redirect to either would make the
run read from this machine or its private network. So a download refuses, before connecting,
any host that resolves to a loopback, link-local, private, unspecified, multicast or reserved
address, checks every redirect hop the same way, follows only http(s) redirects, and checks the
address it actually connected to (a name that resolves differently the second time). A dataset
sets ``allow_private_urls: true`` to permit such addresses (a mirror on the local network); the
environment variable ``REPAINTER_ALLOW_PRIVATE_URLS=1`` does the same for every dataset.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import urllib.parse

ALLOW_ENV = "REPAINTER_ALLOW_PRIVATE_URLS"
ALLOWED_SCHEMES = ("http", "https")


class URLRefused(ValueError):
    """The URL (or a redirect hop) points where a download may not go; the message says why."""


def private_allowed(flag: bool = False) -> bool:
    """``flag`` (a dataset's ``allow_private_urls``) or the environment switch."""
    return bool(flag) or os.environ.get(ALLOW_ENV, "").strip().lower() in ("1", "true", "yes")


def address_problem(address: str) -> str | None:
    """Why ``address`` (an IP literal) may not be fetched, or None when it is public."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return f"{address!r} is not an IP address"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for kind in ("loopback", "link_local", "unspecified", "multicast", "private", "reserved"):
        if getattr(ip, f"is_{kind}"):
            return f"{ip} is a {kind.replace('_', '-')} address"
    return None


def check_url(url: str, allow_private: bool) -> None:
    """Raise URLRefused unless ``url`` is http(s) and (unless allowed) its host is public."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        raise URLRefused(f"{url}: only http(s) URLs can be downloaded (got {scheme or 'none'!r})")
    if not parts.hostname:
        raise URLRefused(f"{url}: no host")
    if not allow_private:
        check_host(parts.hostname, parts.port or (443 if scheme == "https" else 80))


def check_host(host: str, port: int) -> None:
    """Resolve ``host`` (no connection is made) and refuse it if any address is not public."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise URLRefused(f"cannot resolve {host!r} ({exc})") from exc
    for info in infos:
        problem = address_problem(str(info[4][0]))
        if problem:
            raise URLRefused(f"host {host!r}: {problem}; set allow_private_urls: true on the "
                             f"dataset (or {ALLOW_ENV}=1) to permit it")


def check_peer(sock: socket.socket, host: str) -> None:
    """Refuse a connection whose peer is not public (``host`` resolved differently than checked)."""
    problem = address_problem(str(sock.getpeername()[0]))
    if problem:
        raise URLRefused(f"host {host!r} connected to a non-public address: {problem}; set "
                         f"allow_private_urls: true on the dataset (or {ALLOW_ENV}=1) to permit it")

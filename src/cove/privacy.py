"""The egress guard: the process itself refuses outbound network connections.

:func:`install_egress_guard` wraps the standard library's socket layer so that every connection
(TCP ``connect``/``connect_ex``, UDP ``sendto``/``sendmsg`` to an address) and every name lookup
(``getaddrinfo``) is checked. Allowed: unix sockets, loopback addresses (127.0.0.0/8, ::1,
``localhost``) and the unspecified address (which Linux routes to this host). Anything else is
refused with :class:`EgressRefused` (a ``ConnectionRefusedError``, so HTTP clients report a
connection error) and logged — destination only, never payload — unless its host was explicitly
allowed with :func:`egress_allowed`, which only model pulls use, and only when the user asked for
a pull.

This guards Python code. Native libraries that open sockets themselves (none that Cove loads:
llama.cpp is built without curl) are outside its reach.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

log = logging.getLogger("cove.privacy")

_lock = threading.Lock()
_allowed_hosts: dict[str, int] = {}  # host name or IP -> reference count
_allowed_ips: dict[str, int] = {}
_installed = False
_refusals: list[str] = []
_backend_hosts: dict[str, list[str]] = {}  # registered remote backends: host -> their names
_backend_ips: set[str] = set()


class EgressRefused(ConnectionRefusedError):
    """An outbound connection was refused by Cove's egress guard."""


def _is_local_ip(host: str) -> bool:
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback or ip.is_unspecified


def _is_local_name(host: str) -> bool:
    h = host.lower().rstrip(".")
    return h == "localhost" or h.endswith(".localhost") or _is_local_ip(h)


def _allowed(host: str) -> bool:
    return (_is_local_name(host) or host in _allowed_hosts or host in _allowed_ips
            or host in _backend_hosts or host in _backend_ips)


def _refuse(what: str, dest: str) -> EgressRefused:
    message = f"egress refused: {what} {dest} is not loopback and not on the allow-list"
    log.warning(message)
    with _lock:
        _refusals.append(dest)
    return EgressRefused(message)


def _check_address(family: int, address: Any, what: str) -> None:
    if family == getattr(socket, "AF_UNIX", None) or not isinstance(address, tuple):
        return
    host = str(address[0])
    if not _allowed(host):
        raise _refuse(what, f"{host}:{address[1]}" if len(address) > 1 else host)


def refusals() -> list[str]:
    """Destinations refused so far in this process (``host:port``), oldest first."""
    with _lock:
        return list(_refusals)


def install_egress_guard() -> None:
    """Install the guard for the whole process (idempotent). Call before anything else runs."""
    global _installed
    with _lock:
        if _installed:
            return
        _installed = True

    base = socket.socket
    orig_connect = base.connect
    orig_connect_ex = base.connect_ex
    orig_sendto = base.sendto
    orig_sendmsg = base.sendmsg
    orig_getaddrinfo = socket.getaddrinfo

    def connect(self: socket.socket, address: Any) -> None:
        _check_address(self.family, address, "connection to")
        orig_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        _check_address(self.family, address, "connection to")
        return orig_connect_ex(self, address)

    def sendto(self: socket.socket, data: Any, *args: Any) -> int:
        _check_address(self.family, args[-1], "datagram to")
        return orig_sendto(self, data, *args)  # type: ignore[arg-type]

    def sendmsg(self: socket.socket, buffers: Any, *args: Any) -> int:
        if len(args) >= 3 and args[2] is not None:
            _check_address(self.family, args[2], "datagram to")
        return orig_sendmsg(self, buffers, *args)

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name is not None and not _allowed(str(name)):
            raise _refuse("name lookup of", str(name))
        infos = orig_getaddrinfo(host, port, *args, **kwargs)
        if name is not None and not _is_local_name(str(name)):
            with _lock:  # the addresses of an allowed host become allowed while it is
                if str(name) in _backend_hosts:
                    _backend_ips.update(str(info[4][0]) for info in infos)
                for info in infos:
                    ip = str(info[4][0])
                    _allowed_ips[ip] = _allowed_ips.get(ip, 0) + 1
        return infos

    base.connect = connect  # type: ignore[method-assign,assignment]
    base.connect_ex = connect_ex  # type: ignore[method-assign,assignment]
    base.sendto = sendto  # type: ignore[method-assign,assignment]
    base.sendmsg = sendmsg  # type: ignore[method-assign,assignment]
    socket.getaddrinfo = getaddrinfo


def guard_installed() -> bool:
    """Whether :func:`install_egress_guard` has run in this process."""
    return _installed


@contextmanager
def egress_allowed(*hosts: str) -> Iterator[None]:
    """Allow outbound connections to ``hosts`` (names or IPs) inside this block only.

    Only model pulls use this, for the hub the user asked to pull from.
    """
    with _lock:
        for h in hosts:
            _allowed_hosts[h] = _allowed_hosts.get(h, 0) + 1
    try:
        yield
    finally:
        with _lock:
            for h in hosts:
                _allowed_hosts[h] -= 1
                if not _allowed_hosts[h]:
                    del _allowed_hosts[h]
            if not _allowed_hosts:
                _allowed_ips.clear()


def allow_backends(hosts: dict[str, list[str]]) -> None:
    """Allow connections to the hosts of the registered remote backends (``host -> backend
    names``, :meth:`cove.backends.registry.BackendRegistry.hosts`) and to the addresses their
    names resolve to; nothing else. Each call replaces the previous list (``backends.json``
    was re-read): a host no backend uses any more is refused from then on (the addresses
    resolved so far are forgotten, and found again by the next look-up of a host that
    remains)."""
    with _lock:
        if set(_backend_hosts) - set(hosts):
            _backend_ips.clear()
        _backend_hosts.clear()
        for host, names in hosts.items():
            _backend_hosts[host] = list(dict.fromkeys(names))


def policy() -> dict[str, Any]:
    """The egress policy in force, for ``cove privacy`` and diagnostics."""
    with _lock:
        return {
            "guard_installed": _installed,
            "allowed": "loopback and unix sockets only" if not _backend_hosts else
            "loopback, unix sockets and the registered backend hosts",
            "backend_hosts": {h: sorted(n) for h, n in sorted(_backend_hosts.items())},
            "temporarily_allowed_hosts": sorted(_allowed_hosts),
        }

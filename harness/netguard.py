"""Offline by default, and provably so: refuse any connection that leaves this machine.

Installed in the run's process when the LM is the offline one. A connection to anything but a
loopback address fails at once (no time-out wait) with a clear error, and is counted so the
record can show that the run made no network attempt.
"""

from __future__ import annotations

import ipaddress
import socket
import threading

_lock = threading.Lock()
_attempts: list[str] = []
_installed = False


class NetworkBlocked(OSError):
    pass


def _is_loopback(host: object) -> bool:
    if host in ("localhost", "", None):
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


def _refuse(target: str) -> None:
    with _lock:
        _attempts.append(target)
    raise NetworkBlocked(f"network access blocked by the harness (offline run): {target}")


def install() -> None:
    """Patch socket connect and name resolution in this process (idempotent)."""
    global _installed
    if _installed:
        return
    _installed = True
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def _check(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple):
            if not _is_loopback(address[0]):
                _refuse(f"{address[0]}:{address[1]}")

    def connect(self, address):
        _check(self, address)
        return real_connect(self, address)

    def connect_ex(self, address):
        _check(self, address)
        return real_connect_ex(self, address)

    def getaddrinfo(host, port=None, *args, **kwargs):
        if not _is_loopback(host):
            _refuse(f"{host}:{port}" if port is not None else str(host))
        return real_getaddrinfo(host, port, *args, **kwargs)

    socket.socket.connect, socket.socket.connect_ex = connect, connect_ex
    socket.getaddrinfo = getaddrinfo


def attempts() -> list[str]:
    with _lock:
        return list(_attempts)
